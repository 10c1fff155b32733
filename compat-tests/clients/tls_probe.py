"""psycopg 3 and psycopg2 (libpq) over TLS against a Tributary with `[tls]` (and a SCRAM user
`alice`): sslmode=require, sslmode=verify-full with the test CA (host `localhost`), verify-full with
a CA that did not sign the server's certificate and with a host name the certificate does not cover,
both of which must fail.
Usage: tls_probe.py PORT PASSWORD CA_FILE OTHER_CA_FILE"""
import sys

import psycopg
import psycopg2

port, password, ca, other_ca = sys.argv[1:5]


def dsn(host, ssl):
    return f"host={host} port={port} user=alice password={password} dbname=tpch {ssl}"


def check(connect, ssl_in_use, name):
    for host, ssl in (("127.0.0.1", "sslmode=require"),
                      ("localhost", f"sslmode=verify-full sslrootcert={ca}")):
        conn = connect(dsn(host, ssl))
        try:
            assert ssl_in_use(conn), (name, ssl)
            cur = conn.cursor()
            cur.execute("select current_user, count(*) from tiny.nation")
            assert cur.fetchone() == ("alice", 25), (name, ssl)
        finally:
            conn.close()
    for host, ssl, expected in (
        ("localhost", f"sslmode=verify-full sslrootcert={other_ca}", "certificate verify failed"),
        ("wrong.invalid", f"hostaddr=127.0.0.1 sslmode=verify-full sslrootcert={ca}", "does not match host name"),
    ):
        try:
            connect(dsn(host, ssl)).close()
        except Exception as e:  # each driver has its own OperationalError
            assert expected in str(e), (name, ssl, str(e))
        else:
            raise AssertionError(f"{name}: {ssl} connected")
    print(f"{name} tls ok")


check(psycopg.connect, lambda c: c.pgconn.ssl_in_use, "psycopg")
check(psycopg2.connect, lambda c: c.info.ssl_in_use, "psycopg2")
