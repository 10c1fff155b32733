//! Catalogs without a restart (Trino's dynamic catalogs, driven by files): a catalog file added,
//! changed or removed while the server runs takes effect for new statements of every session within
//! `[catalogs] refresh_interval_ms`, or at once on `CALL system.reload_catalogs()`; a bad file is
//! reported (F0000 to the CALL, a warning in the log) and leaves the catalog as it was; a worker
//! reads a catalog the coordinator mounted when a task needs it.

use std::time::{Duration, Instant};

use compat_tests::cluster::Cluster;
use compat_tests::{ConfigDir, TempDir, Tributary};
use tokio_postgres::Client;

/// The SQLSTATE of `sql`'s error, or `None` when it succeeds.
async fn outcome(client: &Client, sql: &str) -> Option<String> {
    match client.simple_query(sql).await {
        Ok(_) => None,
        Err(e) => Some(e.code().map(|c| c.code().to_string()).unwrap_or_default()),
    }
}

/// Waits (at most 15 s) until `sql` ends with `expected` (`None`: succeeds).
async fn eventually(client: &Client, sql: &str, expected: Option<&str>) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = outcome(client, sql).await;
        if got.as_deref() == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sql}: still {got:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn count(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_files_take_effect_in_running_sessions() {
    let config = ConfigDir::new()
        .config("[catalogs]\nrefresh_interval_ms = 200\n")
        .catalog("first", r#"connector = "tpch""#);
    let server = Tributary::start(Some(config.path()));
    let client = server.connect("tpch").await;
    assert_eq!(
        count(&client, "select count(*) from first.tiny.nation").await,
        25
    );

    // Added: the open session sees it.
    std::fs::write(
        config.path().join("catalog/second.toml"),
        r#"connector = "tpch""#,
    )
    .unwrap();
    eventually(&client, "select count(*) from second.tiny.region", None).await;
    assert_eq!(
        count(&client, "select count(*) from second.tiny.region").await,
        5
    );
    // A bad file is reported and leaves the catalog as it was.
    std::fs::write(
        config.path().join("catalog/first.toml"),
        "connector = \"nope\"\npassword = \"hunter2\"\n",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !server.log().contains("catalog file refused") {
        assert!(Instant::now() < deadline, "no warning:\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(server.log().contains("first.toml"), "{}", server.log());
    assert!(!server.log().contains("hunter2"), "a password was logged");
    assert_eq!(
        count(&client, "select count(*) from first.tiny.nation").await,
        25
    );
    let err = client
        .simple_query("CALL system.reload_catalogs()")
        .await
        .expect_err("a bad file fails the CALL");
    assert_eq!(err.code().map(|c| c.code()), Some("F0000"), "{err:?}");
    let message = err.as_db_error().unwrap().message().to_string();
    assert!(
        message.contains("first.toml") && message.contains("nope"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");

    // Changed to another kind: mounted anew.
    let lake = TempDir::new("reload-lake");
    lake.write("s1/t1.csv", "a,b\n1,x\n2,y\n3,z\n");
    std::fs::write(
        config.path().join("catalog/first.toml"),
        format!(
            "connector = \"lake\"\nlocation = \"file://{}\"\n",
            lake.path().display()
        ),
    )
    .unwrap();
    eventually(&client, "select count(*) from first.s1.t1", None).await;
    assert_eq!(count(&client, "select count(*) from first.s1.t1").await, 3);
    assert_eq!(
        outcome(&client, "select count(*) from first.tiny.nation")
            .await
            .as_deref(),
        Some("3F000")
    );

    // Removed: gone for new statements.
    std::fs::remove_file(config.path().join("catalog/second.toml")).unwrap();
    eventually(
        &client,
        "select count(*) from second.tiny.region",
        Some("3D000"),
    )
    .await;
    // The built-in catalogs stay.
    assert_eq!(
        count(&client, "select count(*) from tpch.tiny.region").await,
        5
    );
    assert!(
        server.log().contains("catalogs reloaded"),
        "{}",
        server.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_reload_catalogs_mounts_at_once_on_coordinator_and_workers() {
    // No periodic refresh: only the CALL (and a worker's read when a task needs the catalog).
    let config = ConfigDir::new().config("[catalogs]\nrefresh_interval_ms = 0\n");
    let cluster = Cluster::start_with(config, &["w1"]).await;
    let client = cluster.coordinator.connect("tpch").await;
    let lake = TempDir::new("reload-cluster-lake");
    for part in 0..4 {
        let rows: String = (0..250)
            .map(|i| format!("{},{}\n", part * 250 + i, (part * 250 + i) % 7))
            .collect();
        lake.write(format!("s1/t1/part-{part}.csv"), format!("a,b\n{rows}"));
    }
    std::fs::create_dir_all(cluster.config.path().join("catalog")).unwrap();
    std::fs::write(
        cluster.config.path().join("catalog/late.toml"),
        format!(
            "connector = \"lake\"\nlocation = \"file://{}\"\n",
            lake.path().display()
        ),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        outcome(&client, "select count(*) from late.s1.t1")
            .await
            .as_deref(),
        Some("3D000"),
        "mounted without a CALL"
    );
    client
        .simple_query("CALL system.reload_catalogs()")
        .await
        .expect("CALL");
    // The scan runs on the worker, which had not read the file yet.
    let sql = "select b, count(*) from late.s1.t1 group by b order by b";
    let counts: Vec<(i64, i64)> = client
        .query(sql, &[])
        .await
        .expect("the worker mounts the catalog its task needs")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let expected: Vec<(i64, i64)> = (0..7)
        .map(|b| (b, (0..1000).filter(|i| i % 7 == b).count() as i64))
        .collect();
    assert_eq!(counts, expected);
    let text: Vec<String> =
        compat_tests::results::all_rows(&client, &format!("explain analyze {sql}"))
            .await
            .into_iter()
            .filter_map(|r| r[0].clone())
            .collect();
    let text = text.join("\n");
    assert!(
        text.contains("on w1"),
        "the scan ran on the worker:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_and_drop_catalog_write_catalog_files() {
    // Off by default: catalogs are files.
    let static_config = ConfigDir::new();
    let server = Tributary::start(Some(static_config.path()));
    let client = server.connect("tpch").await;
    assert_eq!(
        outcome(&client, "CREATE CATALOG x USING tpch")
            .await
            .as_deref(),
        Some("0A000")
    );
    drop(server);

    let pg = compat_tests::Postgres::shared();
    pg.create_database("dyn_catalog").await;
    pg.connect("dyn_catalog")
        .await
        .batch_execute(
            "drop table if exists kinds; create table kinds (id int, name text);
             insert into kinds values (1, 'one'), (2, 'two');",
        )
        .await
        .unwrap();
    let lake = TempDir::new("dyn-catalog-lake");
    lake.write("s1/t1.csv", "a,b\n1,x\n2,y\n3,z\n");
    let config =
        ConfigDir::new().config("[catalogs]\nmanagement = \"dynamic\"\nrefresh_interval_ms = 0\n");
    let dir = config.path().join("catalog");
    let server = Tributary::start(Some(config.path()));
    let client = server.connect("tpch").await;

    // One of Tributary's kinds: a TOML file.
    client
        .batch_execute(&format!(
            "CREATE CATALOG Lk USING lake WITH (location = 'file://{}')",
            lake.path().display()
        ))
        .await
        .expect("create a lake catalog");
    assert_eq!(count(&client, "select count(*) from lk.s1.t1").await, 3);
    let file = std::fs::read_to_string(dir.join("lk.toml")).unwrap();
    assert!(file.contains("connector = \"lake\""), "{file}");
    assert_eq!(
        outcome(&client, "CREATE CATALOG lk USING tpch")
            .await
            .as_deref(),
        Some("42710")
    );
    client
        .batch_execute("CREATE CATALOG IF NOT EXISTS lk USING tpch")
        .await
        .unwrap();
    assert_eq!(count(&client, "select count(*) from lk.s1.t1").await, 3);

    // Refused definitions leave nothing behind.
    for (sql, code) in [
        ("CREATE CATALOG bad USING lake WITH (nope = 'x')", "22023"),
        ("CREATE CATALOG bad USING nosuch", "22023"),
        (
            "CREATE CATALOG bad USING lake WITH (location = now())",
            "22023",
        ),
        ("CREATE CATALOG \"b-d\" USING tpch", "42602"),
        ("CREATE CATALOG USING", "42601"),
    ] {
        assert_eq!(outcome(&client, sql).await.as_deref(), Some(code), "{sql}");
    }
    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["lk.toml"]);

    // A Trino connector name: a Trino catalog file, with Trino's property names.
    client
        .batch_execute(&format!(
            "CREATE CATALOG pg USING postgresql WITH (\"connection-url\" = \
             'jdbc:postgresql://127.0.0.1:{}/dyn_catalog', \"connection-user\" = 'postgres')",
            pg.port()
        ))
        .await
        .expect("create a Trino postgresql catalog");
    let file = std::fs::read_to_string(dir.join("pg.properties")).unwrap();
    assert!(file.contains("connector.name=postgresql"), "{file}");
    assert_eq!(
        count(&client, "select count(*) from pg.public.kinds").await,
        2
    );

    // Dropped: gone, and so is its file.
    client.batch_execute("DROP CATALOG lk").await.unwrap();
    assert_eq!(
        outcome(&client, "select count(*) from lk.s1.t1")
            .await
            .as_deref(),
        Some("3D000")
    );
    assert!(!dir.join("lk.toml").exists());
    assert_eq!(
        outcome(&client, "DROP CATALOG lk").await.as_deref(),
        Some("3D000")
    );
    client
        .batch_execute("DROP CATALOG IF EXISTS lk")
        .await
        .unwrap();
    assert_eq!(
        outcome(&client, "DROP CATALOG tpch").await.as_deref(),
        Some("0A000")
    );
    drop(client);
    drop(server);

    // Persisted: a restarted server has the catalog.
    let server = Tributary::start(Some(config.path()));
    let client = server.connect("tpch").await;
    assert_eq!(
        count(&client, "select count(*) from pg.public.kinds").await,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_passwords_only_admins_change_catalogs() {
    let config = ConfigDir::new()
        .config(
            "[catalogs]\nmanagement = \"dynamic\"\n\
             [auth]\nmethod = \"password\"\nusers_file = \"users.toml\"\nadmin_users = [\"root\"]\n",
        )
        .file(
            "users.toml",
            "[[user]]\nname = \"alice\"\npassword = \"a-pass\"\n\
             [[user]]\nname = \"root\"\npassword = \"r-pass\"\n",
        );
    let server = Tributary::start(Some(config.path()));
    let login = |user: &'static str, password: &'static str| {
        let mut c = server.config("tpch");
        c.user(user).password(password);
        async move { compat_tests::try_connect_with(&c).await.unwrap() }
    };
    let alice = login("alice", "a-pass").await;
    let root = login("root", "r-pass").await;
    assert_eq!(
        outcome(&alice, "CREATE CATALOG t2 USING tpch")
            .await
            .as_deref(),
        Some("42501")
    );
    root.batch_execute("CREATE CATALOG t2 USING tpch")
        .await
        .unwrap();
    assert_eq!(
        count(&alice, "select count(*) from t2.tiny.region").await,
        5
    );
    assert_eq!(
        outcome(&alice, "DROP CATALOG t2").await.as_deref(),
        Some("42501")
    );
    // An admin may also cancel another user's query.
    let alice_pid: i32 = alice
        .query_one("select pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let canceled: bool = root
        .query_one(&format!("select pg_cancel_backend({alice_pid})"), &[])
        .await
        .expect("an admin may signal another user's session")
        .get(0);
    assert!(!canceled, "alice runs nothing");
    root.batch_execute("DROP CATALOG t2").await.unwrap();
}
