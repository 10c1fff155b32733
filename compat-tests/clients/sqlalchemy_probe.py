"""SQLAlchemy 2 Inspector reflection (schemas, tables, views, has_table, primary keys, indexes, unique and
foreign key constraints) of the tpch catalog and Core queries, through psycopg2 and psycopg 3.
Usage: sqlalchemy_probe.py PORT."""
import sys

import sqlalchemy as sa

port = int(sys.argv[1])
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
    # get_columns / MetaData.reflect do not work yet: the identity_options subquery of get_columns
    # projects an outer column (pg_attribute.attidentity) inside json_build_object, which DataFusion
    # cannot decorrelate (see issue 6).
    region = sa.Table(
        "region",
        sa.MetaData(),
        sa.Column("r_regionkey", sa.BigInteger),
        sa.Column("r_name", sa.Text),
        schema="tiny",
    )
    with engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(region)).scalar()
        assert count == 5, count
        names = conn.execute(sa.select(region.c.r_name).where(region.c.r_regionkey < 2).order_by(region.c.r_regionkey)).scalars().all()
        assert names == ["AFRICA", "AMERICA"], names
    print(f"sqlalchemy {driver} ok")
