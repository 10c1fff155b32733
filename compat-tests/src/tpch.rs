//! TPC-H data in PostgreSQL, from the same `tpchgen` generator the server's `tpch` catalog uses.

use std::fmt::Display;
use std::io::Cursor;

use futures::SinkExt;
use tokio_postgres::Client;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};

/// The eight TPC-H tables.
pub const TABLES: [&str; 8] = [
    "nation", "region", "part", "supplier", "partsupp", "customer", "orders", "lineitem",
];

/// TPC-H DDL (specification types: integer keys, bigint order keys so larger scales fit,
/// decimal(15,2), date, char/varchar).
pub const DDL: &str = include_str!("../sql/tpch_ddl.sql");

/// Keys and indexes, created after the load so PostgreSQL plans the correlated subqueries
/// (Q2, Q17, Q20, Q21, Q22) sensibly.
pub const INDEXES: &str = include_str!("../sql/tpch_postgres_indexes.sql");

/// (Re)creates schema `schema` on `client` and loads TPC-H at `scale_factor` into it
/// (scale 0.01 = the server's `tpch.tiny`: ~60k lineitem rows, about a second).
pub async fn load_into_postgres(client: &Client, schema: &str, scale_factor: f64) {
    let q = format!("\"{}\"", schema.replace('"', "\"\""));
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {q} CASCADE; CREATE SCHEMA {q}; SET search_path TO {q};\n{DDL}"
        ))
        .await
        .unwrap_or_else(|e| panic!("create TPC-H tables in schema {schema}: {e}"));
    let sf = scale_factor;
    copy_rows(client, schema, "nation", NationGenerator::new(sf, 1, 1)).await;
    copy_rows(client, schema, "region", RegionGenerator::new(sf, 1, 1)).await;
    copy_rows(client, schema, "part", PartGenerator::new(sf, 1, 1)).await;
    copy_rows(client, schema, "supplier", SupplierGenerator::new(sf, 1, 1)).await;
    copy_rows(client, schema, "partsupp", PartSuppGenerator::new(sf, 1, 1)).await;
    copy_rows(client, schema, "customer", CustomerGenerator::new(sf, 1, 1)).await;
    copy_rows(client, schema, "orders", OrderGenerator::new(sf, 1, 1)).await;
    copy_rows(client, schema, "lineitem", LineItemGenerator::new(sf, 1, 1)).await;
    client
        .batch_execute(&format!("SET search_path TO {q};\n{INDEXES}\nANALYZE;"))
        .await
        .unwrap_or_else(|e| panic!("index/analyze TPC-H tables in schema {schema}: {e}"));
}

/// Streams a generator's rows (TPC-H `.tbl` lines: `a|b|c|`) into `schema.table` with COPY.
async fn copy_rows<I>(client: &Client, schema: &str, table: &str, rows: I)
where
    I: IntoIterator,
    I::Item: Display,
{
    use std::fmt::Write as _;
    let statement = format!(
        "COPY \"{}\".{table} FROM STDIN WITH (FORMAT text, DELIMITER '|', NULL '\\N')",
        schema.replace('"', "\"\"")
    );
    let sink = client
        .copy_in::<_, Cursor<Vec<u8>>>(&statement)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
    futures::pin_mut!(sink);
    let mut chunk = String::with_capacity(1 << 20);
    let mut line = String::new();
    for row in rows {
        line.clear();
        write!(line, "{row}").expect("format row");
        // Drop the .tbl format's trailing delimiter.
        chunk.push_str(line.strip_suffix('|').unwrap_or(&line));
        chunk.push('\n');
        if chunk.len() >= 1 << 20 {
            let data = std::mem::replace(&mut chunk, String::with_capacity(1 << 20));
            sink.send(Cursor::new(data.into_bytes()))
                .await
                .unwrap_or_else(|e| panic!("COPY {table}: {e}"));
        }
    }
    if !chunk.is_empty() {
        sink.send(Cursor::new(chunk.into_bytes()))
            .await
            .unwrap_or_else(|e| panic!("COPY {table}: {e}"));
    }
    sink.as_mut()
        .finish()
        .await
        .unwrap_or_else(|e| panic!("COPY {table}: {e}"));
}

/// Keys and indexes for MariaDB (named, as MySQL requires), created before the load (InnoDB
/// clusters rows by primary key).
pub const MYSQL_INDEXES: &str = include_str!("../sql/tpch_mysql_indexes.sql");

/// (Re)creates database `database` on `server` and loads TPC-H at `scale_factor` into it, with the
/// same generator and the same specification types ([`DDL`] is valid MySQL) as
/// [`load_into_postgres`]. Rows go through `.tbl` files and `LOAD DATA INFILE` (the server runs
/// locally, started by the tests).
pub fn load_into_mariadb(server: &crate::Mariadb, database: &str, scale_factor: f64) {
    load_into_mariadb_with(server, database, scale_factor, true);
}

/// [`load_into_mariadb`], with [`MYSQL_INDEXES`] (keys and indexes) or without any index.
pub fn load_into_mariadb_with(
    server: &crate::Mariadb,
    database: &str,
    scale_factor: f64,
    indexes: bool,
) {
    let q = format!("`{}`", database.replace('`', "``"));
    let dir = crate::TempDir::new("tpch-mariadb");
    let sf = scale_factor;
    let mut loads = String::new();
    let mut file = |table: &str, rows: &mut dyn Iterator<Item = String>| {
        use std::io::Write as _;
        let path = dir.path().join(format!("{table}.tbl"));
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(&path)
                .unwrap_or_else(|e| panic!("create {}: {e}", path.display())),
        );
        for line in rows {
            // Drop the .tbl format's trailing delimiter.
            writeln!(out, "{}", line.strip_suffix('|').unwrap_or(&line))
                .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        }
        out.flush()
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        loads.push_str(&format!(
            "LOAD DATA INFILE '{}' INTO TABLE {table} CHARACTER SET utf8mb4 \
             FIELDS TERMINATED BY '|' LINES TERMINATED BY '\\n';\n",
            path.display().to_string().replace('\'', "''")
        ));
    };
    let text = |r: &dyn Display| r.to_string();
    file(
        "nation",
        &mut NationGenerator::new(sf, 1, 1).into_iter().map(|r| text(&r)),
    );
    file(
        "region",
        &mut RegionGenerator::new(sf, 1, 1).into_iter().map(|r| text(&r)),
    );
    file(
        "part",
        &mut PartGenerator::new(sf, 1, 1).into_iter().map(|r| text(&r)),
    );
    file(
        "supplier",
        &mut SupplierGenerator::new(sf, 1, 1)
            .into_iter()
            .map(|r| text(&r)),
    );
    file(
        "partsupp",
        &mut PartSuppGenerator::new(sf, 1, 1)
            .into_iter()
            .map(|r| text(&r)),
    );
    file(
        "customer",
        &mut CustomerGenerator::new(sf, 1, 1)
            .into_iter()
            .map(|r| text(&r)),
    );
    file(
        "orders",
        &mut OrderGenerator::new(sf, 1, 1).into_iter().map(|r| text(&r)),
    );
    file(
        "lineitem",
        &mut LineItemGenerator::new(sf, 1, 1)
            .into_iter()
            .map(|r| text(&r)),
    );
    let indexes = if indexes { MYSQL_INDEXES } else { "" };
    server.execute(&format!(
        "DROP DATABASE IF EXISTS {q}; CREATE DATABASE {q} CHARACTER SET utf8mb4; USE {q};\n\
         {DDL}\n{indexes}\n{loads}\nANALYZE TABLE {};",
        TABLES.join(", ")
    ));
}
