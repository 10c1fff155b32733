//! A source killed mid-session: through ONE Tributary session, a `postgres` (resp. `mysql`)
//! catalog answers, its server is killed, the next query on it fails with a connection SQLSTATE
//! (08001/08006) and a message naming the catalog and not the password, while the other catalogs
//! still answer in the same session; the source is started again and the same session reads it
//! again. Each source is a dedicated server (the shared ones are used by other tests).

use std::time::{Duration, Instant};

use compat_tests::results::query_text;
use compat_tests::{ConfigDir, Mariadb, Postgres, PostgresOptions, Tributary};

const PASSWORD: &str = "s3cret-Pa55word";

/// The catalogs: `pgk` over the dedicated PostgreSQL (with a password in the file, which trust
/// auth ignores, so errors can be checked for it), `myk` over the dedicated MariaDB.
fn config(pg: &Postgres, my: &Mariadb) -> ConfigDir {
    ConfigDir::new()
        .catalog(
            "pgk",
            &format!(
                "connector = \"postgres\"\nhost = \"127.0.0.1\"\nport = {}\ndatabase = \"postgres\"\n\
                 user = \"postgres\"\npassword = \"{PASSWORD}\"\n",
                pg.port()
            ),
        )
        .catalog("myk", &my.catalog_toml("database = \"kdb\"\n"))
}

async fn count(
    client: &tokio_postgres::Client,
    sql: &str,
) -> Result<String, tokio_postgres::Error> {
    let rows = query_text(client, sql).await?;
    Ok(rows.rows[0][0].clone().unwrap_or_default())
}

/// Asserts that `sql` fails with a connection error naming `catalog` and not the password.
async fn fails_cleanly(client: &tokio_postgres::Client, sql: &str, catalog: &str) {
    let started = Instant::now();
    let err = query_text(client, sql)
        .await
        .expect_err("a query on a stopped source must fail");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the failure took {:?}",
        started.elapsed()
    );
    let db = err
        .as_db_error()
        .unwrap_or_else(|| panic!("not a server error: {err:?}"));
    let code = db.code().code();
    assert!(
        code == "08001" || code == "08006",
        "SQLSTATE {code} ({}), expected 08001 or 08006",
        db.message()
    );
    let text = format!("{} {:?} {:?}", db.message(), db.detail(), db.hint());
    assert!(
        text.contains(catalog),
        "error does not name {catalog}: {text}"
    );
    assert!(!text.contains(PASSWORD), "error shows the password: {text}");
}

/// Retries `sql` until it answers (the source was just restarted), at most `limit`.
async fn answers_again(
    client: &tokio_postgres::Client,
    sql: &str,
    limit: Duration,
) -> (String, u32) {
    let deadline = Instant::now() + limit;
    let mut failures = 0;
    loop {
        match count(client, sql).await {
            Ok(v) => return (v, failures),
            Err(e) if Instant::now() < deadline => {
                failures += 1;
                eprintln!("{sql}: still failing after restart: {e:?}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("{sql}: not answering {limit:?} after the restart: {e:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_and_mariadb_killed_and_restarted_mid_session() {
    // A PostgreSQL of its own (trust auth), stoppable and restartable.
    let pg = Postgres::dedicated(PostgresOptions::default());
    pg.connect("postgres")
        .await
        .batch_execute("create table t (a int); insert into t values (1), (2), (3);")
        .await
        .expect("create t");
    let my = Mariadb::dedicated();
    my.execute(
        "CREATE DATABASE kdb; CREATE TABLE kdb.t (id int PRIMARY KEY, v int);
         INSERT INTO kdb.t VALUES (1, 10), (2, 20);",
    );
    let config = config(&pg, &my);
    let server = Tributary::start(Some(config.path()));
    let client = server.connect("tpch").await;

    let pg_sql = "select count(*) from pgk.public.t";
    let my_sql = "select count(*) from myk.kdb.t";
    let tpch_sql = "select count(*) from tpch.tiny.nation";
    assert_eq!(count(&client, pg_sql).await.unwrap(), "3");
    assert_eq!(count(&client, my_sql).await.unwrap(), "2");

    // PostgreSQL down: its queries fail cleanly, MariaDB and tpch still answer.
    pg.stop();
    fails_cleanly(&client, pg_sql, "pgk").await;
    assert_eq!(count(&client, my_sql).await.unwrap(), "2");
    assert_eq!(count(&client, tpch_sql).await.unwrap(), "25");
    fails_cleanly(&client, pg_sql, "pgk").await;

    pg.start();
    let (v, failures) = answers_again(&client, pg_sql, Duration::from_secs(30)).await;
    assert_eq!(v, "3");
    assert_eq!(failures, 0, "the first query after the restart failed");

    // MariaDB down: same, the other way round.
    my.stop();
    fails_cleanly(&client, my_sql, "myk").await;
    assert_eq!(count(&client, pg_sql).await.unwrap(), "3");
    assert_eq!(count(&client, tpch_sql).await.unwrap(), "25");
    // A pushed aggregate (one remote statement) fails the same way.
    fails_cleanly(
        &client,
        "select v, count(*) from myk.kdb.t group by v order by v limit 1",
        "myk",
    )
    .await;

    my.restart();
    let (v, failures) = answers_again(&client, my_sql, Duration::from_secs(30)).await;
    assert_eq!(v, "2");
    assert_eq!(failures, 0, "the first query after the restart failed");
    assert_eq!(
        count(
            &client,
            "select count(*) from myk.kdb.t t join pgk.public.t p on t.id = p.a"
        )
        .await
        .unwrap(),
        "2"
    );
}
