//! The protobuf messages of node RPC actions (`run_tasks`, `release`, `announce`) and of the
//! `run_tasks` reply stream, declared with `prost` derives, and their conversions from and to the
//! engine's own types ([`TaskSpec`], [`TaskReport`], [`OperatorMetrics`]).
//!
//! Every request starts with `uint32 version = 1` and `string sender = 2`
//! ([`tributary_exchange::flight::RequestHeader`]), checked against [`NODE_RPC_VERSION`] by
//! [`tributary_exchange::flight::decode_request`] before the rest is read. Replies need no version:
//! they answer a request whose version was checked.

use bytes::Bytes;
use tributary_exchange::flight::{Location, NODE_RPC_VERSION};

use crate::operator_metrics::{self, OperatorMetrics};
use crate::task::{TaskReport, TaskSpec};

/// `run_tasks`: start some tasks of a stage on the receiving node.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RunTasks {
    /// [`NODE_RPC_VERSION`] of the sender.
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// The sending node's id (the coordinator).
    #[prost(string, tag = "2")]
    pub sender: String,
    /// Query id.
    #[prost(string, tag = "3")]
    pub query: String,
    /// Stage id.
    #[prost(uint64, tag = "4")]
    pub stage: u64,
    /// The tasks to run on the receiving node (partitions of the stage plan).
    #[prost(uint64, repeated, tag = "5")]
    pub tasks: Vec<u64>,
    /// Tasks of the whole stage.
    #[prost(uint64, tag = "6")]
    pub stage_tasks: u64,
    /// Output partitions each task writes.
    #[prost(uint64, tag = "7")]
    pub output_partitions: u64,
    /// Readers of each output partition (more than 1 for a broadcast output).
    #[prost(uint64, tag = "8")]
    pub readers: u64,
    /// Where the tasks of the stages this one reads run.
    #[prost(message, repeated, tag = "9")]
    pub locations: Vec<TaskLocation>,
    /// The session's settings (`datafusion.*` options).
    #[prost(message, repeated, tag = "10")]
    pub config: Vec<Setting>,
    /// Whether `fragment` is wrapped in the `RepartitionExec` giving the tasks' output partitioning.
    #[prost(bool, tag = "11")]
    pub partitioned: bool,
    /// The stage fragment, encoded by `datafusion-proto` ([`crate::codec::PlanCodec`]).
    #[prost(bytes = "bytes", tag = "12")]
    pub fragment: Bytes,
    /// Tasks that must fail with an injected error (tests' `inject_failure`).
    #[prost(uint64, repeated, tag = "13")]
    pub fail_tasks: Vec<u64>,
    /// The attempt the tasks run as (0 for the first).
    #[prost(uint32, tag = "14")]
    pub attempt: u32,
    /// Whether output and inputs go through the spool (`retry_policy = TASK`).
    #[prost(bool, tag = "15")]
    pub spooled: bool,
    /// For spooled inputs, the committed attempt of each input task.
    #[prost(message, repeated, tag = "16")]
    pub input_attempts: Vec<InputAttempt>,
    /// Memory the tasks' plan instance may use, bytes; 0 for the node's default.
    #[prost(uint64, tag = "17")]
    pub memory_limit: u64,
    /// When not empty, the plan partitions each task of `tasks` runs in turn (same order).
    #[prost(message, repeated, tag = "18")]
    pub task_partitions: Vec<TaskPartitions>,
}

/// The plan partitions one task runs, one after another.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct TaskPartitions {
    /// Partitions of the stage plan.
    #[prost(uint64, repeated, tag = "1")]
    pub partitions: Vec<u64>,
}

/// The committed attempt of one task of an input stage (spooled exchanges).
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct InputAttempt {
    /// The input stage.
    #[prost(uint64, tag = "1")]
    pub stage: u64,
    /// The task within it.
    #[prost(uint64, tag = "2")]
    pub task: u64,
    /// Its committed attempt.
    #[prost(uint32, tag = "3")]
    pub attempt: u32,
}

/// Where one task of an input stage runs.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TaskLocation {
    /// The input stage.
    #[prost(uint64, tag = "1")]
    pub stage: u64,
    /// The task within it.
    #[prost(uint64, tag = "2")]
    pub task: u64,
    /// Id of the node running it.
    #[prost(string, tag = "3")]
    pub node: String,
    /// That node's RPC address, `host:port`.
    #[prost(string, tag = "4")]
    pub address: String,
}

/// One session setting, e.g. `datafusion.execution.batch_size` = `8192`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Setting {
    /// The option's full key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Its value, as text.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `release`: abort a query's tasks on the receiving node and free its exchange data.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Release {
    /// [`NODE_RPC_VERSION`] of the sender.
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// The sending node's id.
    #[prost(string, tag = "2")]
    pub sender: String,
    /// Query id.
    #[prost(string, tag = "3")]
    pub query: String,
}

/// `announce`: a worker's announcement / heartbeat, sent to the coordinator.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Announce {
    /// [`NODE_RPC_VERSION`] of the worker.
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// The worker's node id (the request's sender).
    #[prost(string, tag = "2")]
    pub node_id: String,
    /// The worker's RPC address, `host:port`.
    #[prost(string, tag = "3")]
    pub address: String,
    /// Tasks running on the worker now.
    #[prost(uint64, tag = "4")]
    pub running_tasks: u64,
    /// The worker is shutting down (SIGTERM): place no new tasks on it.
    #[prost(bool, tag = "5")]
    pub draining: bool,
    /// The worker has drained and is leaving: forget it.
    #[prost(bool, tag = "6")]
    pub leaving: bool,
    /// Threads of the worker's task runtime (its task slots; 0 from a worker that does not say).
    #[prost(uint32, tag = "7")]
    pub task_threads: u32,
}

/// One message of a `run_tasks` reply stream: first [`RunTasksReply::Started`], then one report per
/// task as it ends.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RunTasksMessage {
    /// What the message says.
    #[prost(oneof = "RunTasksReply", tags = "1, 2")]
    pub reply: Option<RunTasksReply>,
}

/// The content of a [`RunTasksMessage`].
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum RunTasksReply {
    /// The tasks' output sinks exist: readers may open them.
    #[prost(message, tag = "1")]
    Started(Started),
    /// One task ended.
    #[prost(message, tag = "2")]
    Report(TaskReportMessage),
}

/// The tasks of a `run_tasks` request have started (no content).
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Started {}

/// What one task did ([`TaskReport`] on the wire).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TaskReportMessage {
    /// Task number within its stage.
    #[prost(uint64, tag = "1")]
    pub task: u64,
    /// Rows written to the task's output partitions.
    #[prost(uint64, tag = "2")]
    pub rows: u64,
    /// Bytes of those rows as Arrow data.
    #[prost(uint64, tag = "3")]
    pub bytes: u64,
    /// Wall time from start to end, milliseconds.
    #[prost(uint64, tag = "4")]
    pub elapsed_ms: u64,
    /// The task's failure, if it failed.
    #[prost(message, optional, tag = "5")]
    pub error: Option<TaskError>,
    /// On the last report of a stage instance: its per-operator metrics, in pre-order.
    #[prost(message, repeated, tag = "6")]
    pub operators: Vec<OperatorMetricsMessage>,
    /// Bytes written to the spool (spooled exchanges).
    #[prost(uint64, tag = "7")]
    pub spooled_bytes: u64,
    /// Bytes of the rows written to each output partition, as Arrow data.
    #[prost(uint64, repeated, tag = "8")]
    pub partition_bytes: Vec<u64>,
}

/// A task's failure, as the front end of the node it ran on would report it.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct TaskError {
    /// Five-character SQLSTATE.
    #[prost(string, tag = "1")]
    pub sqlstate: String,
    /// The message.
    #[prost(string, tag = "2")]
    pub message: String,
}

/// The metrics of one operator ([`OperatorMetrics`] on the wire).
#[derive(Clone, PartialEq, prost::Message)]
pub struct OperatorMetricsMessage {
    /// The operator's name (`ExecutionPlan::name`).
    #[prost(string, tag = "1")]
    pub operator: String,
    /// One entry per metric and partition.
    #[prost(message, repeated, tag = "2")]
    pub metrics: Vec<MetricEntryMessage>,
}

/// One metric value of an operator ([`operator_metrics::MetricEntry`] on the wire).
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricEntryMessage {
    /// DataFusion's metric name, e.g. `output_rows`.
    #[prost(string, tag = "1")]
    pub name: String,
    /// How the value adds up and displays.
    #[prost(enumeration = "MetricKind", tag = "2")]
    pub kind: i32,
    /// The value: rows, bytes, nanoseconds...
    #[prost(uint64, tag = "3")]
    pub value: u64,
    /// Whether DataFusion lists it among the summary metrics.
    #[prost(bool, tag = "4")]
    pub summary: bool,
}

/// [`operator_metrics::MetricKind`] on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MetricKind {
    /// A counter.
    Count = 0,
    /// Elapsed time in nanoseconds.
    Time = 1,
    /// A gauge.
    Gauge = 2,
}

impl RunTasks {
    /// The request starting `spec`'s tasks with `fragment` (wrapped in its output's
    /// `RepartitionExec` when `partitioned`), sent by node `sender`.
    pub fn new(sender: &str, spec: &TaskSpec, partitioned: bool, fragment: Bytes) -> Self {
        Self {
            version: NODE_RPC_VERSION,
            sender: sender.to_string(),
            query: spec.query.clone(),
            stage: spec.stage as u64,
            tasks: spec.tasks.iter().map(|&t| t as u64).collect(),
            stage_tasks: spec.stage_tasks as u64,
            output_partitions: spec.output_partitions as u64,
            readers: spec.readers as u64,
            locations: spec
                .locations
                .iter()
                .map(|((stage, task), l)| TaskLocation {
                    stage: *stage as u64,
                    task: *task as u64,
                    node: l.node.clone(),
                    address: l.address.clone(),
                })
                .collect(),
            config: spec
                .config
                .iter()
                .map(|(key, value)| Setting {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
            partitioned,
            fragment,
            fail_tasks: spec.fail_tasks.iter().map(|&t| t as u64).collect(),
            attempt: spec.attempt,
            spooled: spec.spooled,
            input_attempts: spec
                .input_attempts
                .iter()
                .map(|((stage, task), attempt)| InputAttempt {
                    stage: *stage as u64,
                    task: *task as u64,
                    attempt: *attempt,
                })
                .collect(),
            memory_limit: spec.memory_limit.map_or(0, |m| m as u64),
            task_partitions: spec
                .task_partitions
                .iter()
                .map(|ps| TaskPartitions {
                    partitions: ps.iter().map(|&p| p as u64).collect(),
                })
                .collect(),
        }
    }

    /// The tasks' spec, whether the fragment is partitioned, and the fragment.
    pub fn into_parts(self) -> (TaskSpec, bool, Bytes) {
        let spec = TaskSpec {
            query: self.query,
            stage: self.stage as usize,
            tasks: self.tasks.into_iter().map(|t| t as usize).collect(),
            stage_tasks: self.stage_tasks as usize,
            output_partitions: self.output_partitions as usize,
            readers: self.readers as usize,
            locations: self
                .locations
                .into_iter()
                .map(|l| {
                    let location = Location {
                        node: l.node,
                        address: l.address,
                    };
                    ((l.stage as usize, l.task as usize), location)
                })
                .collect(),
            config: self.config.into_iter().map(|s| (s.key, s.value)).collect(),
            fail_tasks: self.fail_tasks.into_iter().map(|t| t as usize).collect(),
            attempt: self.attempt,
            spooled: self.spooled,
            input_attempts: self
                .input_attempts
                .into_iter()
                .map(|a| ((a.stage as usize, a.task as usize), a.attempt))
                .collect(),
            memory_limit: (self.memory_limit > 0).then_some(self.memory_limit as usize),
            task_partitions: self
                .task_partitions
                .into_iter()
                .map(|ps| ps.partitions.into_iter().map(|p| p as usize).collect())
                .collect(),
        };
        (spec, self.partitioned, self.fragment)
    }
}

impl Release {
    /// The request releasing `query`, sent by node `sender`.
    pub fn new(sender: &str, query: &str) -> Self {
        Self {
            version: NODE_RPC_VERSION,
            sender: sender.to_string(),
            query: query.to_string(),
        }
    }
}

impl Announce {
    /// The heartbeat of worker `node_id` at `address`, running `running_tasks` tasks.
    pub fn new(node_id: &str, address: &str, running_tasks: usize) -> Self {
        Self {
            version: NODE_RPC_VERSION,
            node_id: node_id.to_string(),
            address: address.to_string(),
            running_tasks: running_tasks as u64,
            draining: false,
            leaving: false,
            task_threads: 0,
        }
    }
}

impl RunTasksMessage {
    /// The first message of a reply stream.
    pub fn started() -> Self {
        Self {
            reply: Some(RunTasksReply::Started(Started {})),
        }
    }

    /// A message carrying `report`.
    pub fn report(report: &TaskReport) -> Self {
        Self {
            reply: Some(RunTasksReply::Report(report.into())),
        }
    }
}

impl From<&TaskReport> for TaskReportMessage {
    fn from(r: &TaskReport) -> Self {
        Self {
            task: r.task as u64,
            rows: r.rows,
            bytes: r.bytes,
            spooled_bytes: r.spooled_bytes,
            partition_bytes: r.partition_bytes.clone(),
            elapsed_ms: r.elapsed_ms,
            error: r.error.as_ref().map(|(sqlstate, message)| TaskError {
                sqlstate: sqlstate.clone(),
                message: message.clone(),
            }),
            operators: r.operators.iter().map(Into::into).collect(),
        }
    }
}

impl From<TaskReportMessage> for TaskReport {
    /// The report; metric entries of a kind this node does not know are left out.
    fn from(r: TaskReportMessage) -> Self {
        Self {
            task: r.task as usize,
            rows: r.rows,
            bytes: r.bytes,
            spooled_bytes: r.spooled_bytes,
            partition_bytes: r.partition_bytes,
            elapsed_ms: r.elapsed_ms,
            error: r.error.map(|e| (e.sqlstate, e.message)),
            operators: r.operators.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<&OperatorMetrics> for OperatorMetricsMessage {
    fn from(o: &OperatorMetrics) -> Self {
        Self {
            operator: o.operator.clone(),
            metrics: o
                .metrics
                .iter()
                .map(|m| MetricEntryMessage {
                    name: m.name.clone(),
                    kind: MetricKind::from(m.kind) as i32,
                    value: m.value,
                    summary: m.summary,
                })
                .collect(),
        }
    }
}

impl From<OperatorMetricsMessage> for OperatorMetrics {
    fn from(o: OperatorMetricsMessage) -> Self {
        Self {
            operator: o.operator,
            metrics: o
                .metrics
                .into_iter()
                .filter_map(|m| {
                    let kind = MetricKind::try_from(m.kind).ok()?;
                    Some(operator_metrics::MetricEntry {
                        name: m.name,
                        kind: kind.into(),
                        value: m.value,
                        summary: m.summary,
                    })
                })
                .collect(),
        }
    }
}

impl From<operator_metrics::MetricKind> for MetricKind {
    fn from(kind: operator_metrics::MetricKind) -> Self {
        match kind {
            operator_metrics::MetricKind::Count => Self::Count,
            operator_metrics::MetricKind::Time => Self::Time,
            operator_metrics::MetricKind::Gauge => Self::Gauge,
        }
    }
}

impl From<MetricKind> for operator_metrics::MetricKind {
    fn from(kind: MetricKind) -> Self {
        match kind {
            MetricKind::Count => Self::Count,
            MetricKind::Time => Self::Time,
            MetricKind::Gauge => Self::Gauge,
        }
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use tributary_exchange::flight::{RequestError, decode_request};

    use super::*;
    use crate::operator_metrics::MetricEntry;

    #[test]
    fn run_tasks_round_trips() {
        let spec = TaskSpec {
            query: "q1".into(),
            stage: 2,
            tasks: vec![0, 3],
            task_partitions: vec![vec![0, 1], vec![5, 6, 7]],
            stage_tasks: 4,
            output_partitions: 8,
            readers: 2,
            locations: vec![(
                (3, 1),
                Location {
                    node: "worker-2".into(),
                    address: "127.0.0.1:7502".into(),
                },
            )],
            config: vec![("datafusion.execution.batch_size".into(), "1024".into())],
            fail_tasks: vec![3],
            attempt: 2,
            spooled: true,
            input_attempts: vec![((3, 1), 1)],
            memory_limit: Some(3 << 20),
        };
        let fragment = Bytes::from_static(b"\x0a\x03plan");
        let body = RunTasks::new("coordinator", &spec, true, fragment.clone()).encode_to_vec();
        let request: RunTasks = decode_request("run_tasks", body.into(), "worker-1").unwrap();
        let (back, partitioned, back_fragment) = request.into_parts();
        assert!(partitioned);
        assert_eq!(back_fragment, fragment);
        assert_eq!(back.query, spec.query);
        assert_eq!(back.stage, spec.stage);
        assert_eq!(back.tasks, spec.tasks);
        assert_eq!(back.stage_tasks, spec.stage_tasks);
        assert_eq!(back.output_partitions, spec.output_partitions);
        assert_eq!(back.readers, spec.readers);
        assert_eq!(back.locations, spec.locations);
        assert_eq!(back.config, spec.config);
        assert_eq!(back.fail_tasks, spec.fail_tasks);
        assert_eq!(back.attempt, spec.attempt);
        assert!(back.spooled);
        assert_eq!(back.input_attempts, spec.input_attempts);
        assert_eq!(back.memory_limit, spec.memory_limit);
        assert_eq!(back.task_partitions, spec.task_partitions);
    }

    #[test]
    fn a_request_of_another_version_is_refused_before_it_is_read() {
        let mut announce = Announce::new("worker-7501", "127.0.0.1:7501", 0);
        announce.version = NODE_RPC_VERSION + 1;
        // A field this version does not know (another version's) does not hide the version.
        let mut body = announce.encode_to_vec();
        // Field 99, varint 1.
        body.extend_from_slice(&[0x98, 0x06, 0x01]);
        let err = decode_request::<Announce>("announce", body.into(), "coordinator").unwrap_err();
        assert!(
            matches!(err, RequestError::Version { received, .. } if received == NODE_RPC_VERSION + 1)
        );
        assert!(
            err.to_string()
                .contains("from worker-7501 is not supported by coordinator"),
            "{err}"
        );
    }

    #[test]
    fn task_reports_carry_their_error_and_metrics() {
        let report = TaskReport {
            task: 3,
            rows: 10,
            bytes: 80,
            spooled_bytes: 40,
            partition_bytes: vec![30, 0, 50],
            elapsed_ms: 7,
            error: Some(("22012".into(), "division by zero".into())),
            operators: vec![OperatorMetrics {
                operator: "ProjectionExec".into(),
                metrics: vec![MetricEntry {
                    name: "elapsed_compute".into(),
                    kind: operator_metrics::MetricKind::Time,
                    value: 1500,
                    summary: true,
                }],
            }],
        };
        let body = RunTasksMessage::report(&report).encode_to_vec();
        let Some(RunTasksReply::Report(wire)) =
            RunTasksMessage::decode(body.as_slice()).unwrap().reply
        else {
            panic!("not a report");
        };
        let back = TaskReport::from(wire);
        assert_eq!(back.task, report.task);
        assert_eq!((back.rows, back.bytes, back.elapsed_ms), (10, 80, 7));
        assert_eq!(back.partition_bytes, report.partition_bytes);
        assert_eq!(back.error, report.error);
        assert_eq!(back.operators, report.operators);
    }
}
