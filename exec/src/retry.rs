//! Per-query execution options: the retry policy a query runs under (`SET retry_policy`, default
//! `[query] retry_policy`) and the failure injection tests use to exercise retries (Trino's failure
//! injection: a chosen task fails on its first attempts).

use std::str::FromStr;

pub use tributary_planner::config::{QueryConfig, RetryPolicy};

/// How one query runs, chosen by its session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryOptions {
    /// `NONE`, `QUERY` or `TASK` (see [`RetryPolicy`]).
    pub retry_policy: RetryPolicy,
    /// A task made to fail on purpose (tests only; the session's `inject_failure` setting).
    pub inject_failure: Option<FailureInjection>,
    /// The pid of the PostgreSQL-wire session running the query (shown in
    /// `system.runtime.queries.session_pid`), when a session does.
    pub session_pid: Option<i32>,
}

/// A task that fails on purpose with a retryable error (SQLSTATE 58000), so that tests can check
/// retries without killing processes: task `task` of stage `stage` fails on its first `attempts`
/// attempts (every attempt when `None`). Under `retry_policy = QUERY` the attempts counted are the
/// query's; under `TASK`, the task's own.
///
/// Written `STAGE.TASK` (first attempt only), `STAGE.TASK:N` or `STAGE.TASK:all`; the stage must
/// not be the root stage 0, which runs on the coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureInjection {
    /// The stage of the failing task (>= 1).
    pub stage: usize,
    /// The task within the stage.
    pub task: usize,
    /// How many attempts fail; `None`: all of them.
    pub attempts: Option<u32>,
}

impl FailureInjection {
    /// Whether attempt `attempt` (0 for the first) of task `task` of stage `stage` must fail.
    pub fn fails(&self, stage: usize, task: usize, attempt: u32) -> bool {
        self.stage == stage && self.task == task && self.attempts.is_none_or(|n| attempt < n)
    }
}

/// Why an `inject_failure` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid inject_failure \"{0}\": expected STAGE.TASK, STAGE.TASK:ATTEMPTS or STAGE.TASK:all \
     with STAGE >= 1"
)]
pub struct BadFailureInjection(pub String);

impl FromStr for FailureInjection {
    type Err = BadFailureInjection;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BadFailureInjection(text.to_string());
        let (target, attempts) = match text.trim().split_once(':') {
            Some((target, attempts)) => (target, Some(attempts.trim())),
            None => (text.trim(), None),
        };
        let (stage, task) = target.split_once('.').ok_or_else(bad)?;
        let stage: usize = stage.trim().parse().map_err(|_| bad())?;
        let task: usize = task.trim().parse().map_err(|_| bad())?;
        let attempts = match attempts {
            None => Some(1),
            Some(a) if a.eq_ignore_ascii_case("all") => None,
            Some(a) => Some(a.parse::<u32>().map_err(|_| bad())?),
        };
        if stage == 0 {
            return Err(bad());
        }
        Ok(Self {
            stage,
            task,
            attempts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_failure_injections() {
        let first: FailureInjection = "1.0".parse().unwrap();
        assert!(first.fails(1, 0, 0) && !first.fails(1, 0, 1) && !first.fails(1, 1, 0));
        let two: FailureInjection = "2.3:2".parse().unwrap();
        assert!(two.fails(2, 3, 1) && !two.fails(2, 3, 2));
        let all: FailureInjection = "1.1:ALL".parse().unwrap();
        assert!(all.fails(1, 1, 99));
        for bad in ["", "1", "0.0", "a.b", "1.0:x", "1.0:-1"] {
            assert!(bad.parse::<FailureInjection>().is_err(), "{bad}");
        }
    }
}
