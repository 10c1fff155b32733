//! A coordinator and worker processes of the built binary on 127.0.0.1, over one config directory.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use crate::{ConfigDir, Tributary, free_port};

/// A coordinator plus worker processes over one config directory.
pub struct Cluster {
    /// The coordinator (serves clients).
    pub coordinator: Tributary,
    /// The coordinator's node RPC address, `127.0.0.1:PORT`.
    pub rpc: String,
    /// The config directory every node reads.
    pub config: ConfigDir,
    workers: Mutex<Vec<(String, Arc<Tributary>)>>,
}

impl Cluster {
    /// Starts a coordinator on `config`, then workers `worker_ids`, each waited for until active.
    pub async fn start_with(config: ConfigDir, worker_ids: &[&str]) -> Cluster {
        let rpc = format!("127.0.0.1:{}", free_port());
        let coordinator = Tributary::start_with_args(
            Some(config.path()),
            &["--role", "coordinator", "--rpc-listen", &rpc],
        );
        let cluster = Cluster {
            coordinator,
            rpc,
            config,
            workers: Mutex::new(Vec::new()),
        };
        for id in worker_ids {
            cluster.add_worker(id).await;
        }
        cluster
    }

    /// Starts worker `id` and waits until the coordinator lists it active.
    pub async fn add_worker(&self, id: &str) {
        let worker = Tributary::start_worker(Some(self.config.path()), &self.rpc, id);
        self.workers
            .lock()
            .unwrap()
            .push((id.to_string(), Arc::new(worker)));
        self.wait_node_state(id, "active").await;
    }

    /// Freezes worker `id` (`kill -STOP`): its process and connections stay open but it answers
    /// nothing, like a hung or partitioned node. It is killed when the cluster is dropped.
    pub fn freeze_worker(&self, id: &str) {
        self.signal_worker(id, "STOP");
    }

    /// `kill -TERM` of worker `id`: a graceful shutdown (it drains, then exits).
    pub fn terminate_worker(&self, id: &str) {
        self.signal_worker(id, "TERM");
    }

    /// Worker `id`'s exit status once it has exited.
    pub fn worker_exit(&self, id: &str) -> Option<std::process::ExitStatus> {
        self.worker(id).try_wait()
    }

    /// Worker `id`'s log so far.
    pub fn worker_log(&self, id: &str) -> String {
        self.worker(id).log()
    }

    /// `kill -9` of worker `id`.
    pub fn kill_worker(&self, id: &str) {
        self.worker(id).kill();
    }

    /// Worker `id` (panics for an unknown id).
    fn worker(&self, id: &str) -> Arc<Tributary> {
        let workers = self.workers.lock().unwrap();
        let (_, w) = workers.iter().find(|(w, _)| w == id).expect("known worker");
        w.clone()
    }

    /// `kill -SIGNAL` of worker `id`.
    fn signal_worker(&self, id: &str, signal: &str) {
        let pid = self.worker(id).pid().to_string();
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap_or_else(|e| panic!("run kill -{signal}: {e}"));
        assert!(status.success(), "kill -{signal} {id}: {status}");
    }

    /// Waits (30 s at most) until `system.runtime.nodes` shows node `id` in `state`.
    pub async fn wait_node_state(&self, id: &str, state: &str) {
        let client = self.coordinator.connect("tpch").await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let rows = client
                .query(
                    "SELECT state FROM system.runtime.nodes WHERE node_id = $1",
                    &[&id],
                )
                .await
                .expect("nodes table");
            if rows.first().map(|r| r.get::<_, String>(0)).as_deref() == Some(state) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "worker {id} not {state} within 30 s; coordinator log:\n{}",
                crate::tail(&self.coordinator.log(), 40)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Waits until some query has a RUNNING task on `worker`.
pub async fn wait_running_task(client: &Client, worker: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = client
            .query(
                "SELECT count(*) FROM system.runtime.tasks WHERE state = 'RUNNING' AND worker = $1",
                &[&worker],
            )
            .await
            .unwrap();
        if rows[0].get::<_, i64>(0) > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "no task ever ran on {worker}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
