//! `INSERT INTO ... SELECT` into tables of a `postgres` and a `mysql` catalog (real PostgreSQL and
//! MariaDB), from `tpch`, through the built server and tokio-postgres: the rows arrive once with
//! their values intact (tabs, backslashes, newlines, NULLs, dates), the command tag counts them, a
//! statement the source refuses (a duplicate key) leaves the target as it was, a writer task that
//! fails under `retry_policy = TASK` or a query attempt under `QUERY` still inserts each row once,
//! and no staging table is left behind.

use compat_tests::{ConfigDir, Mariadb, Postgres, TempDir, Tributary, toml_string};
use tokio_postgres::Client;

const RETRIES: &str = "[query]\nretry_initial_delay_ms = 50\nretry_max_delay_ms = 200\n";

fn spool(dir: &TempDir) -> String {
    format!(
        "[exchange]\nbase_directories = [{}]\n",
        toml_string(&format!("file://{}", dir.path().display()))
    )
}

fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .unwrap_or_else(|| panic!("not a server error: {e:?}"))
        .code()
        .code()
        .to_string()
}

/// The nations, 25 rows (`DISTINCT`, so that they are written by the tasks of a hash-partitioned
/// stage on the workers), and one row whose name holds a tab, a backslash and a newline (written on
/// the coordinator: a single-partition plan has no stage below the commit); keys offset by
/// `offset`.
fn inserts(catalog: &str, offset: i64) -> [String; 2] {
    [
        format!(
            "INSERT INTO {catalog}.nations SELECT DISTINCT n_nationkey + {offset}, n_name, n_regionkey, \
             n_comment, to_date('2024-01-' || lpad(CAST(n_nationkey + 1 AS VARCHAR), 2, '0')) \
             FROM tpch.tiny.nation"
        ),
        format!(
            "INSERT INTO {catalog}.nations VALUES \
             ({}, 'a' || chr(9) || 'b\\c' || chr(10) || 'd', NULL, NULL, NULL)",
            offset + 100
        ),
    ]
}

/// Asserts that a task attempt ran again (the injected failure).
async fn assert_retried(client: &Client) {
    let attempts: i64 = client
        .query_one(
            "SELECT count(*) FROM system.runtime.tasks WHERE attempt > 0",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(attempts > 0, "the injected failure was retried");
}

/// Runs both [`inserts`] through `client` and checks their command tags.
async fn insert_all(client: &Client, catalog: &str, offset: i64) {
    let [nations, odd] = inserts(catalog, offset);
    assert_eq!(client.execute(&nations, &[]).await.unwrap(), 25);
    assert_eq!(client.execute(&odd, &[]).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_into_postgres_is_atomic_and_retry_safe() {
    let pg = Postgres::shared();
    pg.create_database("sink").await;
    let source = pg.connect("sink").await;
    source
        .batch_execute(
            "drop table if exists nations;
             create table nations (nationkey bigint primary key, name text not null,
                                   regionkey int, comment varchar(200), added date);",
        )
        .await
        .unwrap();
    let dir = TempDir::new("sql-write-pg");
    let config = ConfigDir::new()
        .config(&format!("{RETRIES}{}", spool(&dir)))
        .catalog(
            "pg",
            &format!(
                "connector = \"postgres\"\nhost = \"127.0.0.1\"\nport = {}\ndatabase = \"sink\"\nuser = \"postgres\"\n",
                pg.port()
            ),
        );
    let server = Tributary::start(Some(config.path()));
    let c = server.connect("tpch").await;
    let staging = "select count(*) from pg_tables where tablename like 'tributary_stage_%'";

    insert_all(&c, "pg.public", 0).await;
    let row = source
        .query_one(
            "select count(*), sum(nationkey)::bigint, min(added)::text, max(added)::text, \
                    count(*) filter (where name = E'a\\tb\\\\c\\nd' and regionkey is null) \
             from nations",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, i64>(0),
            row.get::<_, i64>(1),
            row.get::<_, String>(2),
            row.get::<_, String>(3),
            row.get::<_, i64>(4)
        ),
        (26, 400, "2024-01-01".into(), "2024-01-25".into(), 1)
    );
    // Read back through the catalog as well.
    let names = c
        .query_one("SELECT min(name) FROM pg.public.nations", &[])
        .await
        .unwrap();
    assert_eq!(names.get::<_, String>(0), "ALGERIA");

    // EXPLAIN shows the writers and the commit.
    let [nations, _] = inserts("pg.public", 0);
    let plan: Vec<String> = c
        .query(&format!("EXPLAIN {nations}"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    let plan = plan.join("\n");
    assert!(
        plan.contains("PostgresCommit: pg.public.nations")
            && plan.contains("PostgresWrite: pg.public.nations, columns=[nationkey, name"),
        "{plan}"
    );

    // The source refuses the duplicate keys: nothing of the statement is visible.
    let [again, _] = inserts("pg.public", 0);
    let err = c.execute(&again, &[]).await.unwrap_err();
    assert_eq!(sqlstate(&err), "23505", "{err:?}");
    let count: i64 = source
        .query_one("select count(*) from nations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 26);

    // A writer task that fails once (TASK), a query attempt that fails once (QUERY): each row once.
    c.batch_execute("SET retry_policy = 'TASK'; SET inject_failure = '1.0'")
        .await
        .unwrap();
    insert_all(&c, "pg.public", 1000).await;
    c.batch_execute("SET retry_policy = 'QUERY'").await.unwrap();
    insert_all(&c, "pg.public", 2000).await;
    let count: i64 = source
        .query_one("select count(*) from nations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 78);
    assert_retried(&c).await;

    // From the catalog into itself.
    let copied = c
        .execute(
            "INSERT INTO pg.public.nations SELECT DISTINCT nationkey + 5000, name, regionkey, \
             comment, added FROM pg.public.nations",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(copied, 78);
    let left: i64 = source.query_one(staging, &[]).await.unwrap().get(0);
    assert_eq!(left, 0, "staging tables left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_into_mysql_is_atomic_and_retry_safe() {
    let my = Mariadb::shared();
    my.execute(
        "CREATE DATABASE IF NOT EXISTS msink;
         CREATE OR REPLACE TABLE msink.nations (nationkey bigint PRIMARY KEY,
             name varchar(40) NOT NULL, regionkey int, comment varchar(200), added date);",
    );
    let dir = TempDir::new("sql-write-my");
    let config = ConfigDir::new()
        .config(&format!("{RETRIES}{}", spool(&dir)))
        .catalog("my", &my.catalog_toml("database = \"msink\"\n"));
    let server = Tributary::start(Some(config.path()));
    let c = server.connect("tpch").await;
    let staging = "SELECT count(*) FROM information_schema.tables \
                   WHERE table_name LIKE 'tributary\\_stage\\_%'";

    insert_all(&c, "my.msink", 0).await;
    let text = |v: &str| Some(v.to_string());
    assert_eq!(
        my.query(
            "SELECT count(*), sum(nationkey), min(added), max(added), \
                    sum(name = CONCAT('a', CHAR(9), 'b\\\\c', CHAR(10), 'd') AND regionkey IS NULL) \
             FROM msink.nations"
        ),
        [vec![
            text("26"),
            text("400"),
            text("2024-01-01"),
            text("2024-01-25"),
            text("1")
        ]]
    );

    let [again, _] = inserts("my.msink", 0);
    let err = c.execute(&again, &[]).await.unwrap_err();
    assert_eq!(sqlstate(&err), "23505", "{err:?}");
    assert_eq!(
        my.query("SELECT count(*) FROM msink.nations"),
        [vec![text("26")]]
    );

    c.batch_execute("SET retry_policy = 'TASK'; SET inject_failure = '1.0'")
        .await
        .unwrap();
    insert_all(&c, "my.msink", 1000).await;
    c.batch_execute("SET retry_policy = 'QUERY'").await.unwrap();
    insert_all(&c, "my.msink", 2000).await;
    assert_eq!(
        my.query("SELECT count(*) FROM msink.nations"),
        [vec![text("78")]]
    );
    assert_retried(&c).await;
    assert_eq!(my.query(staging), [vec![text("0")]]);
}
