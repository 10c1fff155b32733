//! Mutual TLS between the nodes of a cluster (`[node] tls_ca_file`, `tls_cert_file`,
//! `tls_key_file`): a coordinator and a worker, each with its own certificate signed by a CA the test
//! makes, run a distributed query over TLS-protected RPC and exchanges; a worker whose certificate
//! another CA signed, and one that speaks plain gRPC, never join; a half-configured node refuses to
//! start.

#[path = "support/certs.rs"]
mod certs;

use std::path::Path;
use std::time::{Duration, Instant};

use compat_tests::results::query_text;
use compat_tests::{ConfigDir, TempDir, Tributary, free_port, toml_string};

const SECRET: &str = "tls-cluster-secret";

/// `[node]` settings with TLS files `ca` (a CA certificate) and `name.crt` / `name.key` of `dir`.
fn node_config(dir: &Path, ca: &str, name: &str) -> ConfigDir {
    let file = |f: String| toml_string(&dir.join(f).display().to_string());
    ConfigDir::new().config(&format!(
        "[node]\nheartbeat_interval_ms = 200\nheartbeat_timeout_ms = 3000\nshared_secret = \"{SECRET}\"\n\
         tls_ca_file = {}\ntls_cert_file = {}\ntls_key_file = {}\n[engine]\ntask_threads = 1\n",
        file(format!("{ca}.crt")),
        file(format!("{name}.crt")),
        file(format!("{name}.key")),
    ))
}

async fn node_state(coordinator: &Tributary, id: &str) -> Option<String> {
    let client = coordinator.connect("tpch").await;
    let rows = client
        .query(
            "SELECT state FROM system.runtime.nodes WHERE node_id = $1",
            &[&id],
        )
        .await
        .unwrap();
    rows.first().map(|r| r.get(0))
}

/// Waits until `worker`'s log contains `needle` (30 s at most).
async fn wait_log(worker: &Tributary, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !worker.log().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in the worker log:\n{}",
            worker.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_on_mutual_tls_runs_queries_and_refuses_strangers() {
    let certs = TempDir::new("node-certs");
    let dir = certs.path();
    certs::make_ca(dir, "ca");
    certs::make_ca(dir, "other-ca");
    certs::make_leaf(dir, "ca", "coordinator");
    certs::make_leaf(dir, "ca", "worker");
    certs::make_leaf(dir, "other-ca", "stranger");

    let rpc = format!("127.0.0.1:{}", free_port());
    let coordinator_dir = node_config(dir, "ca", "coordinator");
    let coordinator = Tributary::start_with_args(
        Some(coordinator_dir.path()),
        &["--role", "coordinator", "--rpc-listen", &rpc],
    );
    let worker_dir = node_config(dir, "ca", "worker");
    let worker = Tributary::start_worker(Some(worker_dir.path()), &rpc, "w1");
    let deadline = Instant::now() + Duration::from_secs(30);
    while node_state(&coordinator, "w1").await.as_deref() != Some("active") {
        assert!(
            Instant::now() < deadline,
            "the TLS worker never joined:\n{}",
            worker.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A query whose stages run on the worker and whose exchanges the coordinator reads over TLS.
    let client = coordinator.connect("tpch").await;
    let answer = query_text(
        &client,
        "select o_orderpriority, count(*) from tpch.tiny.orders join tpch.tiny.lineitem \
         on o_orderkey = l_orderkey where l_quantity > 45 group by 1 order by 1",
    )
    .await
    .unwrap();
    let single = Tributary::start(None);
    let expected = query_text(
        &single.connect("tpch").await,
        "select o_orderpriority, count(*) from tpch.tiny.orders join tpch.tiny.lineitem \
         on o_orderkey = l_orderkey where l_quantity > 45 group by 1 order by 1",
    )
    .await
    .unwrap();
    assert_eq!(answer.strings(), expected.strings());
    let on_worker = query_text(
        &client,
        "select count(*) from system.runtime.tasks where worker = 'w1'",
    )
    .await
    .unwrap();
    assert_ne!(on_worker.strings()[0][0], "0", "no task ran on the worker");

    // A certificate from another CA: the handshake fails, the worker never joins.
    let stranger_dir = node_config(dir, "other-ca", "stranger");
    let stranger = Tributary::start_worker(Some(stranger_dir.path()), &rpc, "stranger");
    wait_log(&stranger, "cannot announce").await;
    // Plain gRPC (no TLS settings, right secret) cannot talk to a TLS coordinator either.
    let plain_dir = ConfigDir::new().config(&format!(
        "[node]\nheartbeat_interval_ms = 200\nshared_secret = \"{SECRET}\"\n"
    ));
    let plain = Tributary::start_worker(Some(plain_dir.path()), &rpc, "plain");
    wait_log(&plain, "cannot announce").await;
    for id in ["stranger", "plain"] {
        assert_eq!(node_state(&coordinator, id).await, None, "{id} joined");
    }
    for log in [coordinator.log(), worker.log(), stranger.log(), plain.log()] {
        assert!(!log.contains(SECRET), "the secret in a log:\n{log}");
        assert!(!log.contains("panicked"), "a panic:\n{log}");
    }

    // Half a TLS configuration is a startup error naming the key.
    let half = ConfigDir::new().config(&format!(
        "[node]\ntls_ca_file = {}\n",
        toml_string(&dir.join("ca.crt").display().to_string())
    ));
    let Err(failure) = Tributary::try_start(Some(half.path())) else {
        panic!("half a TLS configuration must not start");
    };
    assert!(
        failure.to_string().contains("node.tls_ca_file"),
        "{failure}"
    );
}
