//! Workers that run tasks, and cluster membership.
//!
//! A worker is either in-process (`single` mode, or the coordinator itself when it is configured to run
//! tasks: Trino's `node-scheduler.include-coordinator`) or a remote worker process that announced itself
//! to the coordinator. Remote workers heartbeat every `heartbeat_interval`; the coordinator marks one
//! `dead` when no heartbeat arrived for `heartbeat_timeout`, or at once when an RPC to it fails, and stops
//! placing tasks on it. A dead or new worker that announces itself becomes `active` again and gets tasks
//! from the next query on (Trino's failure detector and node manager behave the same way).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use tributary_connectors::system::{NodeInfo, NodeState};
use tributary_planner::config::NodeConfig;

use crate::tracker::{QueryTracker, now_us};

/// Where a worker runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerKind {
    /// In this process: tasks placed on it run on this process's task runtime.
    Local,
    /// Another process, reached over RPC at `address` (`host:port`).
    Remote {
        /// The worker's node RPC address.
        address: String,
    },
}

#[derive(Debug)]
struct Liveness {
    active: bool,
    /// Shutting down: alive, but given no new tasks.
    draining: bool,
    last_heartbeat: Instant,
    last_heartbeat_us: i64,
    running_tasks: usize,
}

/// One worker: where tasks placed on it run.
#[derive(Debug)]
pub struct Worker {
    /// Node id shown in `system.runtime.nodes`, e.g. `worker-1`.
    pub id: String,
    /// In-process or remote.
    pub kind: WorkerKind,
    liveness: Mutex<Liveness>,
    tasks_started: AtomicU64,
    /// Threads of the worker's task runtime, as its heartbeat says (0: not said, in-process).
    task_threads: AtomicUsize,
}

impl Worker {
    fn new(id: String, kind: WorkerKind) -> Arc<Self> {
        Arc::new(Self {
            id,
            kind,
            liveness: Mutex::new(Liveness {
                active: true,
                draining: false,
                last_heartbeat: Instant::now(),
                last_heartbeat_us: now_us(),
                running_tasks: 0,
            }),
            tasks_started: AtomicU64::new(0),
            task_threads: AtomicUsize::new(0),
        })
    }

    /// An in-process worker named `id` (outside any pool: the coordinator running a stage that must
    /// stay on it).
    pub fn local(id: &str) -> Arc<Self> {
        Self::new(id.to_string(), WorkerKind::Local)
    }

    /// The worker's RPC address, or `in-process`.
    pub fn address(&self) -> &str {
        match &self.kind {
            WorkerKind::Local => "in-process",
            WorkerKind::Remote { address } => address,
        }
    }

    /// Whether tasks may be placed on it.
    pub fn is_active(&self) -> bool {
        self.liveness.lock().active
    }

    /// Counts `n` tasks placed on this worker.
    pub fn add_tasks(&self, n: usize) {
        self.tasks_started.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Tasks started on this worker since the server started.
    pub fn tasks_started(&self) -> u64 {
        self.tasks_started.load(Ordering::Relaxed)
    }
}

/// Heartbeat settings of a cluster, as durations: `[node] heartbeat_interval_ms` and
/// `heartbeat_timeout_ms` of [`NodeConfig`] (whose `Default` gives the defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeats {
    /// How often a worker announces itself.
    pub interval: Duration,
    /// Silence after which the coordinator marks a worker dead.
    pub timeout: Duration,
}

impl From<&NodeConfig> for Heartbeats {
    fn from(node: &NodeConfig) -> Self {
        Self {
            interval: Duration::from_millis(node.heartbeat_interval_ms),
            timeout: Duration::from_millis(node.heartbeat_timeout_ms),
        }
    }
}

impl Default for Heartbeats {
    fn default() -> Self {
        Self::from(&NodeConfig::default())
    }
}

/// The workers tasks are placed on, and the node list of `system.runtime.nodes`.
#[derive(Debug)]
pub struct WorkerPool {
    workers: RwLock<Vec<Arc<Worker>>>,
    /// This process's node (the coordinator) as the nodes table shows it.
    coordinator: NodeInfo,
    heartbeats: Heartbeats,
    tracker: Option<Arc<QueryTracker>>,
}

impl WorkerPool {
    /// `n` in-process workers (at least one), named `worker-1` .. `worker-n`: `single` mode.
    pub fn in_process(n: usize) -> Self {
        let workers = (1..=n.max(1))
            .map(|i| Worker::new(format!("worker-{i}"), WorkerKind::Local))
            .collect();
        Self {
            workers: RwLock::new(workers),
            coordinator: NodeInfo {
                node_id: "coordinator".into(),
                address: "in-process".into(),
                role: "coordinator".into(),
                state: NodeState::Active,
                last_heartbeat_us: now_us(),
                running_tasks: 0,
            },
            heartbeats: Heartbeats::default(),
            tracker: None,
        }
    }

    /// The pool of a coordinator at `address`: remote workers join by announcing themselves; with
    /// `include_coordinator` the coordinator itself is also a worker (named `coordinator`).
    pub fn cluster(
        address: &str,
        include_coordinator: bool,
        heartbeats: Heartbeats,
        tracker: Arc<QueryTracker>,
    ) -> Self {
        let workers = if include_coordinator {
            vec![Worker::new("coordinator".into(), WorkerKind::Local)]
        } else {
            Vec::new()
        };
        let pool = Self {
            workers: RwLock::new(workers),
            coordinator: NodeInfo {
                node_id: "coordinator".into(),
                address: address.to_string(),
                role: "coordinator".into(),
                state: NodeState::Active,
                last_heartbeat_us: now_us(),
                running_tasks: 0,
            },
            heartbeats,
            tracker: Some(tracker),
        };
        pool.publish();
        pool
    }

    /// Attaches the tracker whose node list this pool keeps current.
    pub fn with_tracker(mut self, tracker: Arc<QueryTracker>) -> Self {
        self.tracker = Some(tracker);
        self.publish();
        self
    }

    /// The heartbeat settings.
    pub fn heartbeats(&self) -> Heartbeats {
        self.heartbeats
    }

    /// Records a heartbeat (or first announcement) of remote worker `id` at `address`, running
    /// `running_tasks` tasks; a `draining` worker gets no new tasks.
    pub fn heartbeat(&self, id: &str, address: &str, running_tasks: usize, draining: bool) {
        let changed;
        {
            let mut workers = self.workers.write();
            match workers.iter().position(|w| w.id == id) {
                Some(i) if workers[i].address() == address => {
                    let mut l = workers[i].liveness.lock();
                    changed = !l.active;
                    l.active = true;
                    l.last_heartbeat = Instant::now();
                    l.last_heartbeat_us = now_us();
                    l.running_tasks = running_tasks;
                    if draining && !l.draining {
                        tracing::info!(worker = id, "worker draining: no new tasks");
                    }
                    l.draining = draining;
                }
                Some(i) => {
                    // Same id, new address: a restarted worker.
                    workers[i] = Worker::new(id.into(), remote(address));
                    changed = true;
                }
                // A draining worker this pool does not know has left already (a heartbeat sent
                // before its leave message arrived after it) or is leaving: it gets no tasks anyway.
                None if draining => return,
                None => {
                    tracing::info!(worker = id, address, "worker joined");
                    workers.push(Worker::new(id.into(), remote(address)));
                    changed = true;
                }
            }
        }
        if changed {
            tracing::info!(worker = id, address, "worker active");
        }
        self.publish();
    }

    /// Forgets worker `id` at `address`: it drained and is leaving (a graceful shutdown).
    pub fn leave(&self, id: &str, address: &str) {
        let before = self.workers.read().len();
        self.workers
            .write()
            .retain(|w| !(w.id == id && w.address() == address));
        if self.workers.read().len() < before {
            tracing::info!(worker = id, address, "worker drained and left");
        }
        self.publish();
    }

    /// Marks worker `id` dead (an RPC to it failed, or its heartbeats stopped).
    pub fn mark_dead(&self, id: &str, reason: &str) {
        let mut changed = false;
        for w in self.workers.read().iter().filter(|w| w.id == id) {
            let mut l = w.liveness.lock();
            if l.active {
                l.active = false;
                changed = true;
            }
        }
        if changed {
            tracing::warn!(worker = id, reason, "worker marked dead");
            self.publish();
        }
    }

    /// Marks remote workers whose last heartbeat is older than the timeout dead.
    pub fn expire(&self) {
        let timeout = self.heartbeats.timeout;
        let stale: Vec<String> = self
            .workers
            .read()
            .iter()
            .filter(|w| matches!(w.kind, WorkerKind::Remote { .. }))
            .filter(|w| {
                let l = w.liveness.lock();
                l.active && l.last_heartbeat.elapsed() > timeout
            })
            .map(|w| w.id.clone())
            .collect();
        for id in stale {
            self.mark_dead(&id, "no heartbeat within the timeout");
        }
        self.publish();
    }

    /// The workers tasks may be placed on now, in a stable order (in-process first, then by id).
    pub fn active(&self) -> Vec<Arc<Worker>> {
        let mut active: Vec<_> = self
            .workers
            .read()
            .iter()
            .filter(|w| w.is_active() && !w.liveness.lock().draining)
            .cloned()
            .collect();
        active.sort_by(|a, b| {
            (a.kind != WorkerKind::Local, &a.id).cmp(&(b.kind != WorkerKind::Local, &b.id))
        });
        active
    }

    /// Records that remote worker `id` runs tasks on `threads` threads (from its heartbeat).
    pub fn set_task_threads(&self, id: &str, threads: usize) {
        if let Some(w) = self.workers.read().iter().find(|w| w.id == id) {
            w.task_threads.store(threads, Ordering::Relaxed);
        }
    }

    /// The task slots of the cluster: the task threads of the active workers together (0 when no
    /// worker said, as in `single` mode). A coordinator sizes hash partitions by it.
    pub fn task_slots(&self) -> usize {
        self.active()
            .iter()
            .map(|w| w.task_threads.load(Ordering::Relaxed))
            .sum()
    }

    /// Every worker known, active or dead.
    pub fn workers(&self) -> Vec<Arc<Worker>> {
        self.workers.read().clone()
    }

    /// The nodes as `system.runtime.nodes` shows them: the coordinator, then every worker.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        let mut nodes = vec![NodeInfo {
            last_heartbeat_us: now_us(),
            ..self.coordinator.clone()
        }];
        for w in self.workers.read().iter() {
            if w.kind == WorkerKind::Local && w.id == "coordinator" {
                continue;
            }
            let l = w.liveness.lock();
            let local = w.kind == WorkerKind::Local;
            nodes.push(NodeInfo {
                node_id: w.id.clone(),
                address: w.address().to_string(),
                role: "worker".into(),
                state: match (l.active, l.draining) {
                    (true, false) => NodeState::Active,
                    (true, true) => NodeState::Draining,
                    (false, _) => NodeState::Dead,
                },
                last_heartbeat_us: if local { now_us() } else { l.last_heartbeat_us },
                running_tasks: l.running_tasks as i64,
            });
        }
        nodes
    }

    fn publish(&self) {
        if let Some(t) = &self.tracker {
            t.set_nodes(self.nodes());
        }
    }
}

fn remote(address: &str) -> WorkerKind {
    WorkerKind::Remote {
        address: address.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_arriving_after_a_leave_does_not_bring_the_worker_back() {
        let pool = WorkerPool::cluster(
            "127.0.0.1:1",
            false,
            Heartbeats::default(),
            QueryTracker::new(),
        );
        let workers = |pool: &WorkerPool| -> Vec<(String, NodeState)> {
            pool.nodes()
                .into_iter()
                .filter(|n| n.role == "worker")
                .map(|n| (n.node_id, n.state))
                .collect()
        };
        pool.heartbeat("w2", "127.0.0.1:2", 0, false);
        pool.heartbeat("w2", "127.0.0.1:2", 1, true);
        assert_eq!(workers(&pool), [("w2".to_string(), NodeState::Draining)]);
        pool.leave("w2", "127.0.0.1:2");
        // Sent while draining, delivered after the leave.
        pool.heartbeat("w2", "127.0.0.1:2", 0, true);
        assert_eq!(workers(&pool), []);
        // A worker that starts again joins as usual.
        pool.heartbeat("w2", "127.0.0.1:2", 0, false);
        assert_eq!(workers(&pool), [("w2".to_string(), NodeState::Active)]);
    }
}
