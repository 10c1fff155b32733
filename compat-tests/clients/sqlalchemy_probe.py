"""SQLAlchemy 2 Inspector reflection (schemas, tables, views, has_table, columns, primary keys, indexes,
unique and foreign key constraints, comments) and MetaData.reflect of the tpch catalog and of a
`postgres` catalog with keys and comments, and Core queries on reflected tables, through psycopg2 and
psycopg 3. Usage: sqlalchemy_probe.py PORT KEYED_DB (see compat-tests/tests/support/keyed.rs)."""
import sys

import sqlalchemy as sa

port = int(sys.argv[1])
keyed_db = sys.argv[2]
for driver in ("psycopg2", "psycopg"):
    engine = sa.create_engine(f"postgresql+{driver}://tester@127.0.0.1:{port}/tpch")
    insp = sa.inspect(engine)
    schemas = insp.get_schema_names()
    assert "tiny" in schemas and "sf1" in schemas, schemas
    tables = insp.get_table_names(schema="tiny")
    assert "nation" in tables and "lineitem" in tables, tables
    assert insp.get_table_names() == tables
    assert insp.has_table("nation", schema="tiny")
    assert not insp.has_table("nope", schema="tiny")
    assert insp.get_view_names(schema="tiny") == []
    # The tpch connector declares no keys or indexes: valid, empty answers.
    pk = insp.get_pk_constraint("nation", schema="tiny")
    assert pk["constrained_columns"] == [], pk
    assert insp.get_indexes("nation", schema="tiny") == []
    assert insp.get_unique_constraints("nation", schema="tiny") == []
    assert insp.get_foreign_keys("lineitem", schema="tiny") == []
    columns = insp.get_columns("nation", schema="tiny")
    described = [(c["name"], str(c["type"]), c["nullable"], c["default"], c["comment"]) for c in columns]
    assert described == [
        ("n_nationkey", "BIGINT", False, None, None),
        ("n_name", "TEXT", False, None, None),
        ("n_regionkey", "BIGINT", False, None, None),
        ("n_comment", "TEXT", False, None, None),
    ], described
    lineitem = insp.get_columns("lineitem", schema="tiny")
    assert [str(c["type"]) for c in lineitem[4:6]] == ["NUMERIC(15, 2)", "NUMERIC(15, 2)"], lineitem
    metadata = sa.MetaData()
    metadata.reflect(engine, schema="tiny")
    assert sorted(metadata.tables) == [f"tiny.{t}" for t in sorted(tables)], sorted(metadata.tables)
    region = metadata.tables["tiny.region"]
    assert region.c.keys() == ["r_regionkey", "r_name", "r_comment"], region.c.keys()
    with engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(region)).scalar()
        assert count == 5, count
        names = conn.execute(sa.select(region.c.r_name).where(region.c.r_regionkey < 2).order_by(region.c.r_regionkey)).scalars().all()
        assert names == ["AFRICA", "AMERICA"], names

    # A `postgres` catalog: what the source declares reaches the Inspector.
    keyed = sa.create_engine(f"postgresql+{driver}://tester@127.0.0.1:{port}/{keyed_db}")
    insp = sa.inspect(keyed)
    pk = insp.get_pk_constraint("orders", schema="public")
    assert (pk["constrained_columns"], pk["name"]) == (["id"], "orders_pkey"), pk
    assert insp.get_pk_constraint("lines", schema="public")["constrained_columns"] == ["order_id", "line"]
    assert insp.get_table_comment("orders", schema="public") == {"text": "Customer orders"}
    described = [(c["name"], str(c["type"]), c["nullable"], c["comment"])
                 for c in insp.get_columns("orders", schema="public")]
    assert described == [
        ("id", "INTEGER", False, None),
        ("code", "VARCHAR(20)", True, None),
        ("total", "NUMERIC(10, 2)", True, "Total in EUR"),
        ("note", "TEXT", True, None),
    ], described
    metadata = sa.MetaData()
    metadata.reflect(keyed, schema="public")
    orders = metadata.tables["public.orders"]
    assert [c.name for c in orders.primary_key] == ["id"], orders.primary_key
    assert orders.comment == "Customer orders"
    with keyed.connect() as conn:
        codes = conn.execute(sa.select(orders.c.code).order_by(orders.c.id)).scalars().all()
        assert codes == ["A-1", "B-2"], codes
    print(f"sqlalchemy {driver} ok")
