//! Workers that run tasks. In `single` mode they are in-process: each is a named slot on this process's
//! Tokio runtime, and tasks placed on it run as Tokio tasks. The placement and the task boundary are the
//! same ones remote workers will use; only [`Worker::spawn`] changes.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::task::JoinHandle;
use tributary_connectors::system::NodeInfo;

use crate::tracker::now_us;

/// One worker: where tasks placed on it run.
#[derive(Debug)]
pub struct Worker {
    /// Node id shown in `system.runtime.nodes`, e.g. `worker-1`.
    pub id: String,
    tasks_started: AtomicU64,
}

impl Worker {
    /// Runs a task on this worker.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks_started.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(task)
    }

    /// Tasks started on this worker since the server started.
    pub fn tasks_started(&self) -> u64 {
        self.tasks_started.load(Ordering::Relaxed)
    }
}

/// The workers tasks are placed on.
#[derive(Debug)]
pub struct WorkerPool {
    workers: Vec<Arc<Worker>>,
}

impl WorkerPool {
    /// `n` in-process workers (at least one), named `worker-1` .. `worker-n`.
    pub fn in_process(n: usize) -> Self {
        let workers = (1..=n.max(1))
            .map(|i| {
                Arc::new(Worker {
                    id: format!("worker-{i}"),
                    tasks_started: AtomicU64::new(0),
                })
            })
            .collect();
        Self { workers }
    }

    /// The worker task `task` of stage `stage` runs on: tasks of a stage are dealt round-robin, each
    /// stage starting at a different worker so single-task stages spread too.
    pub fn place(&self, stage: usize, task: usize) -> &Arc<Worker> {
        &self.workers[(stage + task) % self.workers.len()]
    }

    pub fn workers(&self) -> &[Arc<Worker>] {
        &self.workers
    }

    /// The nodes of a `single`-mode server: the coordinator and the in-process workers.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        let now = now_us();
        let mut nodes = vec![NodeInfo {
            node_id: "coordinator".into(),
            address: "in-process".into(),
            role: "coordinator".into(),
            state: "active".into(),
            last_heartbeat_us: now,
        }];
        nodes.extend(self.workers.iter().map(|w| NodeInfo {
            node_id: w.id.clone(),
            address: "in-process".into(),
            role: "worker".into(),
            state: "active".into(),
            last_heartbeat_us: now,
        }));
        nodes
    }
}
