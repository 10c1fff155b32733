"""psycopg2 against Tributary: client-side interpolation over the simple protocol, implicit transactions,
a named (server-side) cursor, COPY TO STDOUT in CSV. Usage: psycopg2_probe.py PORT."""
import io
import sys

import psycopg2

port = int(sys.argv[1])
conn = psycopg2.connect(f"host=127.0.0.1 port={port} user=tester dbname=tpch")
cur = conn.cursor()
cur.execute("select n_nationkey, n_name from nation where n_name = %s and n_nationkey < %s", ("BRAZIL", 10))
assert cur.fetchall() == [(2, "BRAZIL")]
cur.execute("select 1::numeric, now(), 'a''b'::text")
row = cur.fetchone()
assert row[2] == "a'b", row
conn.rollback()
named = conn.cursor("named")
named.itersize = 4
named.execute("select n_nationkey from nation order by 1")
assert [r[0] for r in named] == list(range(25))
named.close()
conn.commit()
buf = io.StringIO()
cur.copy_expert("COPY (select r_regionkey, r_name from region order by 1) TO STDOUT WITH (FORMAT csv, HEADER)", buf)
lines = buf.getvalue().splitlines()
assert lines[0] == "r_regionkey,r_name" and lines[1] == "0,AFRICA" and len(lines) == 6, lines
conn.commit()
conn.autocommit = True
cur.execute("select count(*) from lineitem")
assert cur.fetchone()[0] > 50000
conn.close()
print("psycopg2 ok")
