//! Query tracking: every query's state, rows and error for `system.runtime.queries`, the node list for
//! `system.runtime.nodes`, and the cancellation handle the front end's CancelRequest reaches.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use tributary_connectors::system::{
    NodeInfo, QueryInfo, QueryState, RuntimeInfo, TaskInfo, TaskState,
};
use tributary_planner::config::RetryPolicy;

/// How many task entries `system.runtime.tasks` keeps (oldest finished ones are dropped first).
const MAX_TASK_HISTORY: usize = 10_000;

#[derive(Debug)]
struct TaskEntry {
    info: TaskInfo,
    started: Instant,
}

/// How many finished queries `system.runtime.queries` keeps (Trino: `query.max-history`).
const MAX_HISTORY: usize = 1000;

#[derive(Debug)]
struct Entry {
    info: QueryInfo,
    started: Instant,
    cancel: CancellationToken,
}

/// Registry of running and recent queries, plus the cluster's nodes. Cheap to share.
#[derive(Debug, Default)]
pub struct QueryTracker {
    queries: Mutex<VecDeque<Entry>>,
    nodes: Mutex<Vec<NodeInfo>>,
    tasks: Mutex<VecDeque<TaskEntry>>,
}

/// A query's progress: stages and tasks, and how many of them finished (a task that is no longer
/// running, whatever its end; a stage whose tasks all are). A query of one stage runs on the
/// coordinator alone and has no tasks: all counts are 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryProgress {
    /// Distributed stages with at least one task.
    pub stages: usize,
    /// Stages whose tasks have all ended.
    pub finished_stages: usize,
    /// Task attempts placed so far.
    pub tasks: usize,
    /// Task attempts that ended.
    pub finished_tasks: usize,
    /// Rows the tasks produced so far (their sum over all stages; a task's rows are set when it ends).
    pub rows: i64,
}

impl QueryProgress {
    /// Folds `tasks` (one query's, any attempts) into counts.
    pub fn of<'a>(tasks: impl IntoIterator<Item = &'a TaskInfo>) -> Self {
        let mut stages = std::collections::BTreeMap::<i64, (usize, usize)>::new();
        let mut rows = 0;
        let mut count = 0;
        for t in tasks {
            count += 1;
            let (done, all) = stages.entry(t.stage).or_default();
            *all += 1;
            if !t.state.is_live() {
                *done += 1;
            }
            rows += t.rows;
        }
        Self {
            stages: stages.len(),
            finished_stages: stages.values().filter(|(d, a)| d == a).count(),
            tasks: count,
            finished_tasks: stages.values().map(|(d, _)| d).sum(),
            rows,
        }
    }
}

/// The query a task's query key belongs to: the key itself, or `QUERY` for a later attempt's key
/// (`QUERY.aN`, `QUERY.rN`, `QUERY.rN.aM`; query ids hold no dot).
fn query_of(key: &str) -> &str {
    match key.split_once('.') {
        Some((query, attempts))
            if attempts.split('.').all(|part| {
                part.strip_prefix(['a', 'r'])
                    .is_some_and(|n| n.parse::<u32>().is_ok())
            }) =>
        {
            query
        }
        _ => key,
    }
}

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

impl QueryTracker {
    /// An empty tracker, shared.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The tracked queries (running and recent), as `system.runtime.queries` lists them.
    pub fn query_infos(&self) -> Vec<QueryInfo> {
        snapshot(&self.queries.lock())
    }

    /// Replaces the node list (the scheduler calls this when membership changes).
    pub fn set_nodes(&self, nodes: Vec<NodeInfo>) {
        *self.nodes.lock() = nodes;
    }

    /// Records a new RUNNING query (run under `retry_policy`, first attempt; sent by session
    /// `session_pid` when given) and returns its cancellation token.
    pub fn begin(
        &self,
        query_id: &str,
        user: &str,
        sql: &str,
        retry_policy: RetryPolicy,
        session_pid: Option<i32>,
    ) -> CancellationToken {
        let cancel = CancellationToken::new();
        let mut q = self.queries.lock();
        trim(&mut q, MAX_HISTORY);
        q.push_back(Entry {
            info: QueryInfo {
                query_id: query_id.to_string(),
                state: QueryState::Running,
                user: user.to_string(),
                query: sql.to_string(),
                created_us: now_us(),
                elapsed_ms: 0,
                rows: 0,
                error: None,
                retry_policy: retry_policy.name(),
                attempts: 1,
                session_pid,
            },
            started: Instant::now(),
            cancel: cancel.clone(),
        });
        cancel
    }

    /// Records that the query started another attempt (`retry_policy = QUERY`).
    pub fn attempt_started(&self, query_id: &str) {
        self.update(query_id, |e| e.info.attempts += 1);
    }

    /// Adds `rows` to the rows returned so far.
    pub fn add_rows(&self, query_id: &str, rows: usize) {
        self.update(query_id, |e| e.info.rows += rows as i64);
    }

    /// Marks the query ended: `Finished`, `Failed` (with `error`) or `Canceled`. A query that
    /// already ended keeps its first ending.
    pub fn finish(&self, query_id: &str, state: QueryState, error: Option<String>) {
        self.update(query_id, |e| {
            if e.info.state == QueryState::Running {
                e.info.state = state;
                e.info.error = error;
                e.info.elapsed_ms = e.started.elapsed().as_millis() as i64;
                crate::metrics::query_ended(state.as_str(), e.started.elapsed().as_secs_f64());
            }
        });
    }

    /// Cancels a running query. Returns whether a running query had that id.
    pub fn cancel(&self, query_id: &str) -> bool {
        let q = self.queries.lock();
        match q.iter().find(|e| e.info.query_id == query_id) {
            Some(e) if e.info.state == QueryState::Running => {
                e.cancel.cancel();
                true
            }
            _ => false,
        }
    }

    /// Records a task of `query_id` (or of one of its sub-plans, `QUERY.sqN`, or a later placement
    /// attempt, `QUERY.aN`: those keys count as the query) placed on `worker`: PLANNED until [`QueryTracker::tasks_running`] says the worker
    /// accepted it. `attempt` is the task's attempt number (0 for the first); `partitions` how
    /// many plan partitions it runs.
    pub fn task_planned(
        &self,
        query_id: &str,
        stage: usize,
        task: usize,
        attempt: u32,
        worker: &str,
        partitions: usize,
    ) {
        let mut t = self.tasks.lock();
        trim(&mut t, MAX_TASK_HISTORY);
        t.push_back(TaskEntry {
            info: TaskInfo {
                query_id: query_id.to_string(),
                stage: stage as i64,
                task: task as i64,
                attempt: attempt as i64,
                worker: worker.to_string(),
                state: TaskState::Planned,
                rows: 0,
                bytes: 0,
                spooled_bytes: 0,
                partitions: partitions as i64,
                elapsed_ms: 0,
                error: None,
            },
            started: Instant::now(),
        });
    }

    /// Marks the PLANNED `tasks` of `stage` RUNNING: their worker accepted them.
    pub fn tasks_running(&self, query_id: &str, stage: usize, tasks: &[usize]) {
        // The stage's entries are among the newest: stop once all are found.
        let mut left = tasks.len();
        for e in self.tasks.lock().iter_mut().rev() {
            if left == 0 {
                break;
            }
            if e.info.query_id == query_id
                && e.info.stage == stage as i64
                && e.info.state == TaskState::Planned
                && tasks.contains(&(e.info.task as usize))
            {
                e.info.state = TaskState::Running;
                left -= 1;
            }
        }
    }

    /// Records the end of an attempt of a task of `stage`: FINISHED, or FAILED with the report's
    /// error.
    pub fn task_finished(
        &self,
        query_id: &str,
        stage: usize,
        attempt: u32,
        report: &crate::task::TaskReport,
    ) {
        let mut t = self.tasks.lock();
        if let Some(e) = t.iter_mut().rev().find(|e| {
            e.info.query_id == query_id
                && e.info.stage == stage as i64
                && e.info.task == report.task as i64
                && e.info.attempt == attempt as i64
        }) && e.info.state.is_live()
        {
            e.info.state = if report.error.is_some() {
                TaskState::Failed
            } else {
                TaskState::Finished
            };
            e.info.rows = report.rows as i64;
            e.info.bytes = report.bytes as i64;
            e.info.spooled_bytes = report.spooled_bytes as i64;
            e.info.elapsed_ms = report.elapsed_ms as i64;
            e.info.error = report.error.as_ref().map(|(_, m)| m.clone());
            crate::metrics::task_ended(
                report.error.as_ref().map(|(code, _)| Some(code.as_str())),
                report.rows,
                report.bytes,
                report.spooled_bytes,
            );
        }
    }

    /// Marks the live attempt `attempt` of task `task` of `stage` FAILED with `error` (its worker was
    /// lost, or it could not be started).
    pub fn task_lost(&self, query_id: &str, stage: usize, task: usize, attempt: u32, error: &str) {
        let mut t = self.tasks.lock();
        if let Some(e) = t.iter_mut().rev().find(|e| {
            e.info.query_id == query_id
                && e.info.stage == stage as i64
                && e.info.task == task as i64
                && e.info.attempt == attempt as i64
        }) && e.info.state.is_live()
        {
            e.info.state = TaskState::Failed;
            e.info.elapsed_ms = e.started.elapsed().as_millis() as i64;
            e.info.error = Some(error.to_string());
            crate::metrics::task_ended(Some(None), 0, 0, 0);
        }
    }

    /// Marks every still-running task of `query_id` CANCELED (the query ended before they did).
    pub fn tasks_canceled(&self, query_id: &str) {
        for e in self.tasks.lock().iter_mut() {
            if e.info.query_id == query_id && e.info.state.is_live() {
                e.info.state = TaskState::Canceled;
                e.info.elapsed_ms = e.started.elapsed().as_millis() as i64;
            }
        }
    }

    /// The tasks recorded for `query_id` and its later attempts (`QUERY.aN`: placed again after a
    /// worker was found lost; `QUERY.rN`: run again under `retry_policy = QUERY`; and both, as
    /// `QUERY.rN.aM`), in start order.
    pub fn tasks_of(&self, query_id: &str) -> Vec<TaskInfo> {
        self.tasks
            .lock()
            .iter()
            .filter(|e| query_of(&e.info.query_id) == query_id)
            .map(|e| e.info.clone())
            .collect()
    }

    /// [`Self::progress`] of every query with tasks, in one pass over the tasks (what a list of
    /// all queries wants).
    pub fn progress_by_query(&self) -> std::collections::HashMap<String, QueryProgress> {
        let tasks = self.tasks.lock();
        let mut by_query: std::collections::HashMap<&str, Vec<&TaskInfo>> = Default::default();
        for e in tasks.iter() {
            by_query
                .entry(query_of(&e.info.query_id))
                .or_default()
                .push(&e.info);
        }
        by_query
            .into_iter()
            .map(|(query, tasks)| (query.to_string(), QueryProgress::of(tasks)))
            .collect()
    }

    /// How far `query_id` has come, folded from its tasks (all attempts) as [`Self::tasks_of`] lists
    /// them; what the web UI's progress bar, `GET /v1/query` and `SET progress_notices` show.
    pub fn progress(&self, query_id: &str) -> QueryProgress {
        QueryProgress::of(&self.tasks_of(query_id))
    }

    fn update(&self, query_id: &str, f: impl FnOnce(&mut Entry)) {
        let mut q = self.queries.lock();
        if let Some(e) = q.iter_mut().rev().find(|e| e.info.query_id == query_id) {
            f(e);
        }
    }
}

impl RuntimeInfo for QueryTracker {
    fn nodes(&self) -> Vec<NodeInfo> {
        self.nodes.lock().clone()
    }

    fn queries(&self) -> Vec<QueryInfo> {
        snapshot(&self.queries.lock())
    }

    fn tasks(&self) -> Vec<TaskInfo> {
        snapshot(&self.tasks.lock())
    }
}

/// A tracked query or task: its row, whether it still runs, and since when.
trait Tracked {
    type Info: Clone;
    fn info(&self) -> &Self::Info;
    fn running(&self) -> bool;
    fn started(&self) -> Instant;
    fn set_elapsed(info: &mut Self::Info, ms: i64);
}

impl Tracked for Entry {
    type Info = QueryInfo;
    fn info(&self) -> &QueryInfo {
        &self.info
    }
    fn running(&self) -> bool {
        self.info.state == QueryState::Running
    }
    fn started(&self) -> Instant {
        self.started
    }
    fn set_elapsed(info: &mut QueryInfo, ms: i64) {
        info.elapsed_ms = ms;
    }
}

impl Tracked for TaskEntry {
    type Info = TaskInfo;
    fn info(&self) -> &TaskInfo {
        &self.info
    }
    fn running(&self) -> bool {
        self.info.state.is_live()
    }
    fn started(&self) -> Instant {
        self.started
    }
    fn set_elapsed(info: &mut TaskInfo, ms: i64) {
        info.elapsed_ms = ms;
    }
}

/// Drops the oldest entries that no longer run until there is room for one more under `max`; running
/// ones always stay.
fn trim<E: Tracked>(entries: &mut VecDeque<E>, max: usize) {
    while entries.len() >= max {
        match entries.iter().position(|e| !e.running()) {
            Some(i) => {
                entries.remove(i);
            }
            None => break,
        }
    }
}

/// The rows of `entries`, running ones with their elapsed time as of now.
fn snapshot<E: Tracked>(entries: &VecDeque<E>) -> Vec<E::Info> {
    entries
        .iter()
        .map(|e| {
            let mut info = e.info().clone();
            if e.running() {
                E::set_elapsed(&mut info, e.started().elapsed().as_millis() as i64);
            }
            info
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::query_of;

    #[test]
    fn later_attempts_belong_to_their_query() {
        let q = "20261205_101500_00003_ab12c";
        for key in [
            q.to_string(),
            format!("{q}.a1"),
            format!("{q}.r2"),
            format!("{q}.r2.a10"),
        ] {
            assert_eq!(query_of(&key), q, "{key}");
        }
        // Not an attempt suffix: the key is a query of its own.
        for key in ["x.b1", "x.a", "x.a1.z", "x."] {
            assert_eq!(query_of(key), key);
        }
    }
}
