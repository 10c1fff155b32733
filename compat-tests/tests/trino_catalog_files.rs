//! A config directory of Trino catalog files (`catalog/NAME.properties`): the server starts on them
//! and serves PostgreSQL, MariaDB, Kafka, TPC-H and Iceberg catalogs as their TOML equivalents
//! would (one federated query over them, an Iceberg CTAS); a file with a property Tributary does not
//! have, or two files for one catalog, stop the server with a message naming the file and key.

use compat_tests::results;
use compat_tests::{ConfigDir, Mariadb, Postgres, Tansu, TempDir, Tributary};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_of_trino_catalog_files_is_served() {
    let pg = Postgres::shared();
    pg.create_database("trino_props").await;
    pg.connect("trino_props")
        .await
        .batch_execute(
            "drop table if exists regions; create table regions (id int, name text);
             insert into regions values (0, 'AFRICA'), (1, 'AMERICA'), (2, 'ASIA');",
        )
        .await
        .unwrap();
    let my = Mariadb::shared();
    my.execute(
        "CREATE DATABASE IF NOT EXISTS trino_props; DROP TABLE IF EXISTS trino_props.flags; \
         CREATE TABLE trino_props.flags (region_id INT, flag VARCHAR(10)); \
         INSERT INTO trino_props.flags VALUES (0, 'a'), (1, 'b'), (2, 'c');",
    );
    let kafka = Tansu::shared();
    let topic = format!("trino_props_{}", std::process::id());
    kafka.create_topic(&topic, 1);
    kafka.produce(&topic, 0, None, "{\"region\": 1}");
    let warehouse = TempDir::new("trino-props-wh");
    // Trino's own spelling, `${ENV:...}` included.
    // SAFETY: set before the server starts (a child process), read by it only.
    unsafe { std::env::set_var("TRINO_PROPS_PG_USER", "postgres") };
    let config = ConfigDir::new()
        .file(
            "catalog/pg.properties",
            format!(
                "connector.name=postgresql\n\
                 connection-url=jdbc:postgresql://127.0.0.1:{}/trino_props\n\
                 connection-user=${{ENV:TRINO_PROPS_PG_USER}}\n",
                pg.port()
            ),
        )
        .file(
            "catalog/my.properties",
            format!(
                "# a comment, as Trino files have\nconnector.name=mysql\n\
                 connection-url=jdbc:mysql://127.0.0.1:{}/trino_props\nconnection-user=root\n",
                my.port()
            ),
        )
        .file(
            "catalog/events.properties",
            format!(
                "connector.name=kafka\nkafka.nodes={}\nkafka.table-names={topic}\n\
                 kafka.default-schema=default\n",
                kafka.bootstrap()
            ),
        )
        .file("catalog/bench.properties", "connector.name=tpch\n")
        .file(
            "catalog/lakehouse.properties",
            format!(
                "connector.name=iceberg\niceberg.catalog.type=jdbc\n\
                 iceberg.jdbc-catalog.connection-url=jdbc:postgresql://127.0.0.1:{}/trino_props\n\
                 iceberg.jdbc-catalog.connection-user=postgres\n\
                 iceberg.jdbc-catalog.catalog-name=lakehouse\n\
                 iceberg.jdbc-catalog.default-warehouse-dir={}\niceberg.file-format=PARQUET\n",
                pg.port(),
                warehouse.path().display()
            ),
        );
    let server = Tributary::start(Some(config.path()));
    let c = server.connect("bench").await;
    let rows = results::query_text(
        &c,
        &format!(
            "SELECT r.name, f.flag, n.n, k.k \
             FROM pg.public.regions r \
             JOIN my.trino_props.flags f ON f.region_id = r.id \
             CROSS JOIN (SELECT count(*) AS n FROM bench.tiny.nation) n \
             CROSS JOIN (SELECT count(*) AS k FROM events.\"default\".\"{topic}\") k \
             WHERE r.id = 1"
        ),
    )
    .await;
    let rows = match rows {
        Ok(rows) => rows.strings(),
        Err(e) => panic!("{e:?}\n{}", compat_tests::tail(&server.log(), 30)),
    };
    assert_eq!(rows, [["AMERICA", "b", "25", "1"]]);
    c.batch_execute(
        "CREATE SCHEMA lakehouse.s; \
         CREATE TABLE lakehouse.s.nation AS SELECT * FROM bench.tiny.nation",
    )
    .await
    .unwrap();
    let copied = results::query_text(&c, "SELECT count(*) FROM lakehouse.s.nation")
        .await
        .unwrap()
        .strings();
    assert_eq!(copied, [["25"]]);

    // A property Tributary does not have stops the start, naming the file and the key.
    let bad = ConfigDir::new().file(
        "catalog/pg.properties",
        "connector.name=postgresql\nconnection-url=jdbc:postgresql://127.0.0.1:1/x\n\
         case-insensitive-name-matching=true\n",
    );
    let Err(failure) = Tributary::try_start(Some(bad.path())) else {
        panic!("a catalog file with an unknown property must stop the start");
    };
    let message = failure.log;
    assert!(
        message.contains("pg.properties") && message.contains("case-insensitive-name-matching"),
        "{message}"
    );
    let twice = ConfigDir::new()
        .file("catalog/bench.properties", "connector.name=tpch\n")
        .catalog("bench", "connector = \"tpch\"\n");
    let Err(failure) = Tributary::try_start(Some(twice.path())) else {
        panic!("two files for one catalog must stop the start");
    };
    let message = failure.log;
    assert!(message.contains("also defined"), "{message}");
}
