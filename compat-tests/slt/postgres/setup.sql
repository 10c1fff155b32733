-- Tables of the PostgreSQL-oracle suite (compat-tests/tests/slt.rs loads them into PostgreSQL, and
-- copies them into a lake catalog): classic sqllogictest-style integers with NULLs, and a small
-- table of text, numeric and date values.
DROP TABLE IF EXISTS t1;
CREATE TABLE t1 (a int, b int, c int, d int, e int);
INSERT INTO t1
SELECT 100 + (i * 37) % 150,
       100 + (i * 53) % 150,
       CASE WHEN i % 11 = 0 THEN NULL ELSE 100 + (i * 71) % 150 END,
       100 + (i * 13) % 150,
       CASE WHEN i % 7 = 0 THEN NULL ELSE 100 + (i * 29) % 150 END
FROM generate_series(1, 30) i;
DROP TABLE IF EXISTS t2;
CREATE TABLE t2 (k int, name text, amount numeric(10, 2), day date);
INSERT INTO t2 VALUES
  (1, 'apple', 10.50, DATE '2024-01-01'),
  (2, 'banana', 3.25, DATE '2024-01-15'),
  (3, 'cherry', NULL, DATE '2024-02-01'),
  (4, NULL, 7.00, NULL),
  (5, 'date', 120.75, DATE '2024-03-31'),
  (6, 'elderberry', 0.00, DATE '2023-12-31'),
  (7, 'fig', 55.55, DATE '2024-02-29');
