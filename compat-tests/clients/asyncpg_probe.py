"""asyncpg against Tributary: extended protocol with binary results, its type introspection (triggered by
set_type_codec), prepared statements, a transaction, a cursor. Usage: asyncpg_probe.py PORT."""
import asyncio
import datetime
import decimal
import sys

import asyncpg

port = int(sys.argv[1])


async def main():
    conn = await asyncpg.connect(host="127.0.0.1", port=port, user="tester", database="tpch")
    rows = await conn.fetch("select n_nationkey, n_name from nation where n_nationkey < $1 order by 1", 3)
    assert [tuple(r) for r in rows] == [(0, "ALGERIA"), (1, "ARGENTINA"), (2, "BRAZIL")], rows
    row = await conn.fetchrow(
        "select 1::int4 as a, 1.5::numeric(10,2) as b, date '2024-01-02' as d, 'x'::varchar as e, 2.5::float8 as f"
    )
    assert row["a"] == 1 and row["b"] == decimal.Decimal("1.5") and row["d"] == datetime.date(2024, 1, 2), row
    # Type introspection: asyncpg looks the type up in pg_type / pg_namespace with its own query.
    await conn.set_type_codec("int4", schema="pg_catalog", encoder=str, decoder=lambda s: "I" + s, format="text")
    assert await conn.fetchval("select 7::int4") == "I7"
    stmt = await conn.prepare("select r_name from region where r_regionkey = $1")
    for i in range(6):
        assert await stmt.fetchval(i % 5) is not None
    async with conn.transaction():
        got = [r[0] async for r in conn.cursor("select n_nationkey from nation order by 1", prefetch=10)]
        assert got == list(range(25)), got
    await conn.close()
    print("asyncpg ok")


asyncio.run(main())
