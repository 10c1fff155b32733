//! `pg_stat_activity` (one row per session of this server, as PostgreSQL's view) and
//! `pg_cancel_backend(pid)` (cancels the query a session runs, as a CancelRequest would) and
//! `pg_terminate_backend(pid)` (ends the session), which psql
//! users, pgAdmin, DBeaver and Grafana dashboards use to see and stop running queries.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};

/// One session, as `pg_stat_activity` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityRow {
    /// The session's process id (BackendKeyData's).
    pub pid: i32,
    /// The catalog the session connected to (PostgreSQL's database).
    pub datname: String,
    /// The session's user.
    pub usename: String,
    /// `application_name` at startup.
    pub application_name: String,
    /// The client's address and port.
    pub client_addr: Option<String>,
    /// The client's port.
    pub client_port: Option<i32>,
    /// When the session started, microseconds since the Unix epoch.
    pub backend_start_us: i64,
    /// `active` while a query runs, else `idle`.
    pub state: &'static str,
    /// The running query's text (empty when idle).
    pub query: String,
    /// When the running query started, microseconds since the Unix epoch.
    pub query_start_us: Option<i64>,
    /// The running query's id (`system.runtime.queries`).
    pub query_id: Option<String>,
}

/// Why a `pg_cancel_backend` call was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum CancelRefused {
    /// The session belongs to another user (PostgreSQL: 42501, "must be a member of the role whose
    /// query is being canceled").
    OtherUser,
}

/// The server's live sessions: what `pg_stat_activity` lists and `pg_cancel_backend` cancels.
pub trait Activity: fmt::Debug + Send + Sync {
    /// Every session now, by pid.
    fn sessions(&self) -> Vec<ActivityRow>;

    /// Cancels the query session `pid` runs, on behalf of `user`: `Ok(true)` when a query was
    /// canceled, `Ok(false)` when there is no such session or it runs nothing (PostgreSQL returns
    /// false with a warning for an unknown pid).
    fn cancel(&self, pid: i32, user: &str) -> std::result::Result<bool, CancelRefused>;

    /// Ends session `pid` on behalf of `user`, as PostgreSQL's `pg_terminate_backend`: its running
    /// query is canceled and its client gets FATAL `57P01` (`terminating connection due to
    /// administrator command`) before the connection closes. `Ok(true)` when the session existed.
    fn terminate(&self, pid: i32, user: &str) -> std::result::Result<bool, CancelRefused>;
}

/// `pg_stat_activity`'s columns, PostgreSQL's names and order (columns Tributary has no value for
/// are NULL; `query_id` is Tributary's text id, not PostgreSQL's bigint hash).
fn schema() -> SchemaRef {
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    let int = |name: &str| Field::new(name, DataType::Int32, true);
    let time = |name: &str| {
        Field::new(
            name,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        )
    };
    Arc::new(Schema::new(vec![
        int("datid"),
        text("datname"),
        int("pid"),
        int("leader_pid"),
        int("usesysid"),
        text("usename"),
        text("application_name"),
        text("client_addr"),
        text("client_hostname"),
        int("client_port"),
        time("backend_start"),
        time("xact_start"),
        time("query_start"),
        time("state_change"),
        text("wait_event_type"),
        text("wait_event"),
        text("state"),
        text("backend_xid"),
        text("backend_xmin"),
        text("query_id"),
        text("query"),
        text("backend_type"),
    ]))
}

/// What PostgreSQL shows instead of another user's query to a non-superuser.
const HIDDEN: &str = "<insufficient privilege>";

/// `pg_stat_activity` with the sessions of `activity` now, sorted by pid, as user `viewer` sees it:
/// other users' sessions without their query, its id and start, or their client address (as
/// PostgreSQL shows them to a user who is not a superuser).
pub fn table(activity: &dyn Activity, viewer: &str) -> Result<Arc<MemTable>> {
    let mut rows = activity.sessions();
    for row in rows.iter_mut().filter(|r| r.usename != viewer) {
        row.query = HIDDEN.to_string();
        row.query_id = None;
        row.query_start_us = None;
        row.client_addr = None;
        row.client_port = None;
    }
    rows.sort_by_key(|r| r.pid);
    let n = rows.len();
    let nulls_int = || Arc::new(Int32Array::from(vec![None::<i32>; n])) as ArrayRef;
    let nulls_text = || Arc::new(StringArray::from(vec![None::<&str>; n])) as ArrayRef;
    let times = |values: Vec<Option<i64>>| {
        Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC")) as ArrayRef
    };
    let texts = |values: Vec<Option<String>>| Arc::new(StringArray::from(values)) as ArrayRef;
    let columns: Vec<ArrayRef> = vec![
        nulls_int(),
        texts(rows.iter().map(|r| Some(r.datname.clone())).collect()),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.pid))),
        nulls_int(),
        nulls_int(),
        texts(rows.iter().map(|r| Some(r.usename.clone())).collect()),
        texts(
            rows.iter()
                .map(|r| Some(r.application_name.clone()))
                .collect(),
        ),
        texts(rows.iter().map(|r| r.client_addr.clone()).collect()),
        nulls_text(),
        Arc::new(Int32Array::from(
            rows.iter().map(|r| r.client_port).collect::<Vec<_>>(),
        )),
        times(rows.iter().map(|r| Some(r.backend_start_us)).collect()),
        times(rows.iter().map(|r| r.query_start_us).collect()),
        times(rows.iter().map(|r| r.query_start_us).collect()),
        times(
            rows.iter()
                .map(|r| Some(r.query_start_us.unwrap_or(r.backend_start_us)))
                .collect(),
        ),
        nulls_text(),
        nulls_text(),
        texts(rows.iter().map(|r| Some(r.state.to_string())).collect()),
        nulls_text(),
        nulls_text(),
        texts(rows.iter().map(|r| r.query_id.clone()).collect()),
        texts(rows.iter().map(|r| Some(r.query.clone())).collect()),
        texts(vec![Some("client backend".to_string()); n]),
    ];
    let schema = schema();
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

/// `pg_cancel_backend(pid integer) -> boolean` for a session of `user` (the argument is taken as
/// int8 so any integer type coerces to it).
pub fn cancel_backend(activity: Arc<dyn Activity>, user: String) -> ScalarUDF {
    backend_signal(
        "pg_cancel_backend",
        "permission denied to cancel query: must be a member of the role whose query is being \
         canceled",
        activity,
        user,
        |a, pid, user| a.cancel(pid, user),
    )
}

/// `pg_terminate_backend(pid integer) -> boolean` for a session of `user`: see
/// [`Activity::terminate`].
pub fn terminate_backend(activity: Arc<dyn Activity>, user: String) -> ScalarUDF {
    backend_signal(
        "pg_terminate_backend",
        "permission denied to terminate process: must be a member of the role whose process is \
         being terminated",
        activity,
        user,
        |a, pid, user| a.terminate(pid, user),
    )
}

type Signal = fn(&dyn Activity, i32, &str) -> std::result::Result<bool, CancelRefused>;

/// A `name(pid) -> boolean` function sending `signal` to a session, refusing another user's
/// session with PostgreSQL's 42501 and `refusal`.
fn backend_signal(
    name: &'static str,
    refusal: &'static str,
    activity: Arc<dyn Activity>,
    user: String,
    signal: Signal,
) -> ScalarUDF {
    create_udf(
        name,
        vec![DataType::Int64],
        DataType::Boolean,
        Volatility::Volatile,
        Arc::new(move |args: &[ColumnarValue]| {
            let cancel = |pid: Option<i64>| -> Result<Option<bool>> {
                let Some(pid) = pid else {
                    return Ok(None);
                };
                // Session pids are int4; a larger value names no session.
                let Ok(pid) = i32::try_from(pid) else {
                    return Ok(Some(false));
                };
                match signal(activity.as_ref(), pid, &user) {
                    Ok(done) => Ok(Some(done)),
                    Err(CancelRefused::OtherUser) => {
                        Err(tributary_exec::error::ConnectorError::sql("42501", refusal))
                    }
                }
            };
            match &args[0] {
                ColumnarValue::Scalar(ScalarValue::Int64(pid)) => {
                    Ok(ColumnarValue::Scalar(ScalarValue::Boolean(cancel(*pid)?)))
                }
                ColumnarValue::Array(array) => {
                    let pids = array.as_any().downcast_ref::<Int64Array>().ok_or_else(|| {
                        DataFusionError::Internal(format!("{name}: pids not int8"))
                    })?;
                    let results = pids.iter().map(cancel).collect::<Result<BooleanArray>>()?;
                    Ok(ColumnarValue::Array(Arc::new(results)))
                }
                other => Err(DataFusionError::Internal(format!(
                    "{name}: unexpected argument {other:?}"
                ))),
            }
        }),
    )
}
