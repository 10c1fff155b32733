#!/usr/bin/env python3
"""Random differential run against PostgreSQL: sqllogictest-style queries over the PostgreSQL-oracle
tables (compat-tests/slt/postgres/setup.sql's t1) run on PostgreSQL directly and on a lake copy
through Tributary; every difference is printed. Not a test (answers need a human's look): a way to
find what the oracle suite does not cover yet.

Setup (see ../shared/INFRA.md for starting PostgreSQL):
  PostgreSQL on PG_PORT (default 25432) with database `oracle` loaded from setup.sql;
  Tributary on TRIBUTARY_PORT (default 15432) with a `postgres` catalog `pgs` on that database and
  a `lake` catalog `lk`, after `CREATE SCHEMA lk.s; CREATE TABLE lk.s.t1 AS SELECT * FROM pgs.public.t1`.
Usage: [TABLE=pgs.public.t1] scripts/differential.py [SEED] [COUNT] (TABLE: Tributary's name of t1,
default lk.s.t1)
"""
import os
import random, subprocess, sys
R = random.Random(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
N = int(sys.argv[2]) if len(sys.argv) > 2 else 300
C = list('abcde')
def col(): return R.choice(C)
def num(): return str(R.randint(100, 250))
def expr(depth=0):
    k = R.randint(0, 20 if depth == 0 else 8)
    c, c2, c3 = col(), col(), col()
    return [
        lambda: c,
        lambda: f"{c}+{c2}*2",
        lambda: f"{c}+{c2}*2+{c3}*3",
        lambda: f"abs({c}-{c2})",
        lambda: f"({c}+{c2}+{c3})/3",
        lambda: f"{c}-{c2}",
        lambda: f"{c}*{R.randint(2,9)}",
        lambda: f"coalesce({c},{c2},{c3})",
        lambda: f"{c}%{R.randint(2,7)}",
        lambda: f"CASE WHEN {c}<{c2}-3 THEN 111 WHEN {c}<={c2} THEN 222 WHEN {c}<{c2}+3 THEN 333 ELSE 444 END",
        lambda: f"CASE {c}+1 WHEN {c2} THEN 111 WHEN {c3} THEN 222 ELSE 555 END",
        lambda: f"(SELECT count(*) FROM t1 AS x WHERE x.{c}<t1.{c2})",
        lambda: f"(SELECT count(*) FROM t1 AS x WHERE x.{c}>t1.{c} AND x.{c2}<t1.{c2})",
        lambda: f"CASE WHEN {c}>(SELECT avg({c}) FROM t1) THEN {c2}*2 ELSE {c3}*10 END",
        lambda: f"(SELECT max(x.{c}) FROM t1 AS x WHERE x.{c2}<t1.{c2})",
        lambda: f"nullif({c},{c2})",
        lambda: f"CASE WHEN {c} IS NULL THEN -1 ELSE {c} END",
        lambda: f"(SELECT x.{c} FROM t1 AS x WHERE x.{c2}>t1.{c2} ORDER BY x.{c2}, x.a LIMIT 1)",
        # References two levels up.
        lambda: f"(SELECT count(*) FROM t1 AS x WHERE x.{c}<t1.{c} AND EXISTS (SELECT 1 FROM t1 AS y WHERE y.{c2}>x.{c2} AND y.{c3}<t1.{c3}))",
        lambda: f"(SELECT max(x.{c}) FROM t1 AS x WHERE x.{c2} > (SELECT min(y.{c2}) FROM t1 AS y WHERE y.{c3} > t1.{c3}))",
        lambda: f"(SELECT sum(x.{c}) FROM t1 AS x WHERE x.{c2} IN (SELECT y.{c2} FROM t1 AS y WHERE y.{c3} < t1.{c3} AND y.a <> x.a))",
    ][k]()
def pred():
    c, c2, c3 = col(), col(), col()
    return R.choice([
        lambda: f"{c}>{c2}",
        lambda: f"{c}<{num()}",
        lambda: f"{c}+{c2} BETWEEN {c3}-10 AND {c3}+130",
        lambda: f"{c} NOT BETWEEN 110 AND 150",
        lambda: f"({c}>{c2} AND {c}<{c3})",
        lambda: f"EXISTS(SELECT 1 FROM t1 AS x WHERE x.{c}<t1.{c2})",
        lambda: f"NOT EXISTS(SELECT 1 FROM t1 AS x WHERE x.{c}>t1.{c} AND x.{c2}<t1.{c2})",
        lambda: f"{c} IS NULL",
        lambda: f"{c} IS NOT NULL",
        lambda: f"({c}>{c2} OR {c}<{c3})",
        lambda: f"{c} IN (SELECT x.{c2} FROM t1 AS x WHERE x.{c3} > t1.{c3})",
        lambda: f"{c} NOT IN (SELECT x.{c2} FROM t1 AS x WHERE x.a <> t1.a)",
        lambda: f"coalesce({c},{c2})<>0",
        lambda: f"{c} > (SELECT min(x.{c}) FROM t1 AS x WHERE x.{c2} > t1.{c2})",
        lambda: f"EXISTS (SELECT 1 FROM t1 AS x WHERE x.{c}>t1.{c} AND NOT EXISTS (SELECT 1 FROM t1 AS y WHERE y.{c2}=x.{c2} AND y.{c3}>t1.{c3}))",
        lambda: f"{c} IN (SELECT x.{c2} FROM t1 AS x WHERE x.{c3} < (SELECT avg(y.{c3}) FROM t1 AS y WHERE y.a <> t1.a))",
    ])()
def query():
    kind = R.randint(0, 5)
    if kind == 4:
        # A self-join with subqueries over both sides.
        c, c2 = col(), col()
        w = R.choice(["", f" WHERE EXISTS (SELECT 1 FROM t1 AS x WHERE x.{col()} > u.{col()} AND x.{col()} < t1.{col()})"])
        return (f"SELECT t1.a, u.b, (SELECT count(*) FROM t1 AS x WHERE x.{c} BETWEEN t1.{c} AND u.{c2}) "
                f"FROM t1 JOIN t1 AS u ON t1.{c} = u.{c2} + {R.randint(-5, 5)}{w} ORDER BY 1, 2, 3")
    if kind == 5:
        # Subqueries in ORDER BY, under UNION, and in an outer join's ON.
        c, c2 = col(), col()
        return R.choice([
            f"SELECT a, {expr()} FROM t1 ORDER BY (SELECT count(*) FROM t1 AS x WHERE x.{c} < t1.{c2}), a, 2",
            f"SELECT a FROM t1 WHERE {pred()} UNION SELECT b FROM t1 WHERE {pred()} ORDER BY 1",
            f"SELECT t1.a, u.b FROM t1 LEFT JOIN t1 AS u ON u.{c} = t1.{c2} AND u.d > (SELECT avg(x.d) FROM t1 AS x WHERE x.e < u.e) ORDER BY 1, 2",
        ])
    if kind <= 1:
        es = [expr() for _ in range(R.randint(1, 4))]
        w = ""
        if R.random() < 0.7:
            ps = [pred() for _ in range(R.randint(1, 3))]
            w = " WHERE " + R.choice([" AND ", " OR "]).join(ps)
        return f"SELECT {', '.join(es)} FROM t1{w} ORDER BY {', '.join(str(i+1) for i in range(len(es)))}"
    if kind == 2:
        g = expr(1)
        agg = R.choice(["count(*)", f"sum({col()})", f"min({col()})", f"max({col()})", f"count({col()})", f"avg({col()})", f"count(DISTINCT {col()})"])
        h = f" HAVING {R.choice(['count(*) > 1', 'sum(a) > 300', 'min(b) < 150', 'max(c) IS NOT NULL'])}" if R.random() < 0.4 else ""
        w = f" WHERE {pred()}" if R.random() < 0.5 else ""
        return f"SELECT {g}, {agg} FROM t1{w} GROUP BY 1{h} ORDER BY 1, 2"
    es = [R.choice([f"count(*)", f"sum({col()})", f"avg({col()})", f"min({expr(1)})", f"max({expr(1)})", f"count({col()})", f"sum({expr(1)})"]) for _ in range(R.randint(1, 3))]
    w = f" WHERE {pred()}" if R.random() < 0.6 else ""
    return f"SELECT {', '.join(es)} FROM t1{w}"
def run(port, db, q):
    p = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", db, "-At", "-F", "|", "-v", "ON_ERROR_STOP=1", "-c", q], capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        return "ERROR " + p.stderr.strip().splitlines()[0] if p.stderr.strip() else "ERROR"
    return p.stdout
bad = 0
for i in range(N):
    q = query()
    exp = run(int(os.environ.get("PG_PORT", "25432")), "oracle", q)
    got = run(int(os.environ.get("TRIBUTARY_PORT", "15432")), "lk", q.replace("FROM t1", "FROM " + os.environ.get("TABLE", "lk.s.t1")))
    if exp != got:
        # numeric formatting differences: compare as floats where possible
        def norm(s):
            out = []
            for line in s.splitlines():
                cells = []
                for v in line.split("|"):
                    try: cells.append(round(float(v), 6))
                    except ValueError: cells.append(v)
                out.append(cells)
            return out
        tag = "NUM" if norm(exp) == norm(got) else "DIFF"
        bad += 1
        print(f"== {tag} {q}\n  pg:  {exp[:300]!r}\n  us:  {got[:300]!r}", flush=True)
print("done", N, "bad", bad)
