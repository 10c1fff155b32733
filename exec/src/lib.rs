//! Tributary's execution side: the engine a session submits queries to, the scheduler that turns stages
//! into tasks over splits and partitions, the workers tasks run on, and query tracking for
//! `system.runtime.*`.
//!
//! `exec` runs what the planner decided; it never changes a plan's meaning.

pub mod codec;
pub mod engine;
pub mod error;
pub mod fte;
pub mod memory;
pub mod metrics;
pub mod operator_metrics;
pub mod retry;
pub mod rpc;
pub mod scheduler;
pub mod subquery;
pub mod task;
pub mod tracker;
pub mod worker;

pub use engine::{Engine, EngineConfig, NodeConfig, NodeRole, QueryStream, QueryTicket};
pub use error::ExecError;
pub use retry::{FailureInjection, QueryOptions, RetryPolicy};
/// What `system.runtime.*` shows of queries, tasks and nodes (the HTTP API shows the same).
pub use tributary_connectors::system;
pub use tributary_connectors::{PG_TYPE_KEY, sqlstate};
pub use tributary_exchange::flight::NodeSecret;
pub use tributary_planner::config::Config;
