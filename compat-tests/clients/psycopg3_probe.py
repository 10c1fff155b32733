"""psycopg 3 against Tributary: text and binary results, server-side parameters, a prepared statement,
a server-side cursor (DECLARE/FETCH/CLOSE), COPY TO STDOUT, transactions with savepoints.
Usage: psycopg3_probe.py PORT. Exits non-zero (with a traceback) on the first failure."""
import sys

import psycopg

port = int(sys.argv[1])
dsn = f"host=127.0.0.1 port={port} user=tester dbname=tpch application_name=psycopg3"

with psycopg.connect(dsn) as conn:
    for binary in (False, True):
        cur = conn.cursor(binary=binary)
        cur.execute(
            "select n_nationkey, n_name, n_regionkey from nation where n_nationkey < %s order by 1",
            (3,),
        )
        rows = cur.fetchall()
        assert rows == [(0, "ALGERIA", 0), (1, "ARGENTINA", 1), (2, "BRAZIL", 1)], (binary, rows)
        cur.execute("select 1::int4 as a, 'x'::text as b, 2.5::float8 as c, true as d, date '2024-01-02' as e")
        assert cur.fetchone() == (1, "x", 2.5, True, __import__("datetime").date(2024, 1, 2)), binary
        print("psycopg3 binary=%s ok" % binary)
    # Prepared statement (psycopg prepares after 5 executions by default; force it).
    cur = conn.cursor()
    for i in range(6):
        cur.execute("select r_name from region where r_regionkey = %s", (i % 5,), prepare=True)
        assert cur.fetchone() is not None
    # Savepoints inside a transaction (nested transaction blocks).
    with conn.transaction():
        with conn.transaction():
            cur.execute("select count(*) from region")
            assert cur.fetchone() == (5,)
    # Server-side cursor: DECLARE / FETCH FORWARD n / CLOSE.
    with conn.cursor(name="srv") as named:
        named.itersize = 7
        named.execute("select n_nationkey from nation order by 1")
        got = [r[0] for r in named]
        assert got == list(range(25)), got
    # COPY TO STDOUT, text and binary.
    with cur.copy("COPY (select r_regionkey, r_name from region order by 1) TO STDOUT") as copy:
        rows = list(copy.rows())
    assert rows[0] == ("0", "AFRICA") and len(rows) == 5, rows
    with cur.copy("COPY (select r_regionkey, r_name from region order by 1) TO STDOUT (FORMAT BINARY)") as copy:
        copy.set_types(["int8", "text"])
        rows = list(copy.rows())
    assert rows[4] == (4, "MIDDLE EAST"), rows
    cur.execute("select current_setting('application_name')")
    assert cur.fetchone() == ("psycopg3",)
    print("psycopg3 ok")
