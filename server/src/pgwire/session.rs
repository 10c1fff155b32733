//! Per-connection state: the default catalog and schema (the DataFusion context built on them), the
//! run-time parameters of `SET` / `SHOW` / `RESET`, and the session's slot in the cancel registry.
//!
//! Parameters behave like PostgreSQL's: names are case-insensitive, unknown names are `42704` unless
//! dotted (custom parameters), read-only ones are `55P02`, and those PostgreSQL reports
//! (`application_name`, `DateStyle`, ...) send a ParameterStatus when they change.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use datafusion::prelude::SessionContext;
use parking_lot::Mutex;
use pgwire::api::ClientInfo;
use pgwire::api::results::{FieldInfo, SendableRowStream};
use pgwire::error::{ErrorInfo, PgWireResult};
use pgwire::types::format::FormatOptions;
use tributary_exec::{Engine, FailureInjection, QueryOptions, RetryPolicy};

use super::cancel::{Registration, RunningQuery};
use super::catalog::PgCatalog;
use super::errors::{self, sqlstate};

/// `server_version` as clients see it: a PostgreSQL 15 they can talk to.
pub const SERVER_VERSION: &str = concat!("15.0 (Tributary ", env!("CARGO_PKG_VERSION"), ")");

/// How a parameter behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Settable; a change is reported to the client with ParameterStatus.
    Reported,
    /// Settable, not reported.
    Plain,
    /// `SHOW` only.
    ReadOnly,
}

/// The parameters the server knows, with display name, kind and default (`None`: set per session).
const PARAMETERS: &[(&str, Kind, Option<&str>)] = &[
    ("application_name", Kind::Reported, Some("")),
    ("client_encoding", Kind::Reported, Some("UTF8")),
    ("DateStyle", Kind::Reported, Some("ISO, MDY")),
    ("TimeZone", Kind::Reported, Some("UTC")),
    ("IntervalStyle", Kind::Reported, Some("postgres")),
    ("standard_conforming_strings", Kind::Reported, Some("on")),
    ("default_transaction_read_only", Kind::Reported, Some("off")),
    ("server_version", Kind::ReadOnly, Some(SERVER_VERSION)),
    ("server_version_num", Kind::ReadOnly, Some("150000")),
    ("server_encoding", Kind::ReadOnly, Some("UTF8")),
    ("integer_datetimes", Kind::ReadOnly, Some("on")),
    ("in_hot_standby", Kind::ReadOnly, Some("off")),
    ("is_superuser", Kind::ReadOnly, Some("on")),
    ("max_identifier_length", Kind::ReadOnly, Some("63")),
    ("session_authorization", Kind::ReadOnly, None),
    ("search_path", Kind::Plain, None),
    ("extra_float_digits", Kind::Plain, Some("1")),
    ("statement_timeout", Kind::Plain, Some("0")),
    ("bytea_output", Kind::Plain, Some("hex")),
    ("transaction_isolation", Kind::Plain, Some("read committed")),
    (
        "default_transaction_isolation",
        Kind::Plain,
        Some("read committed"),
    ),
    ("transaction_read_only", Kind::Plain, Some("off")),
    ("lock_timeout", Kind::Plain, Some("0")),
    (
        "idle_in_transaction_session_timeout",
        Kind::Plain,
        Some("0"),
    ),
    ("client_min_messages", Kind::Plain, Some("notice")),
    ("lc_messages", Kind::Plain, Some("C")),
    ("lc_monetary", Kind::Plain, Some("C")),
    ("lc_numeric", Kind::Plain, Some("C")),
    ("lc_time", Kind::Plain, Some("C")),
    ("jit", Kind::Plain, Some("off")),
    ("work_mem", Kind::Plain, Some("4MB")),
    ("row_security", Kind::Plain, Some("on")),
    ("synchronous_commit", Kind::Plain, Some("on")),
    ("timezone_abbreviations", Kind::Plain, Some("Default")),
    ("xmloption", Kind::Plain, Some("content")),
    // Trino's session property: NONE, QUERY or TASK; the default is `[query] retry_policy`.
    ("retry_policy", Kind::Plain, None),
    // Trino's session property: AUTOMATIC orders joins by estimates, NONE / ELIMINATE_CROSS_JOINS
    // keep the query's order.
    ("join_reordering_strategy", Kind::Plain, Some("AUTOMATIC")),
    // Aggregates joined on their grouping keys first reduced to the keys the join can meet.
    ("semijoin_reduction", Kind::Plain, Some("on")),
    // Progress of a running query as NOTICEs (simple query protocol), every `progress_interval`.
    ("progress_notices", Kind::Plain, Some("off")),
    ("progress_interval", Kind::Plain, Some("2s")),
    // Tests only: a task made to fail on purpose (`STAGE.TASK[:ATTEMPTS|:all]`, empty for none).
    ("inject_failure", Kind::Plain, Some("")),
];

fn known(name: &str) -> Option<(&'static str, Kind, Option<&'static str>)> {
    PARAMETERS
        .iter()
        .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
        .copied()
}

/// One client connection's state, kept in the connection's session extensions.
pub struct Session {
    pub engine: Arc<Engine>,
    pg_catalog: Arc<PgCatalog>,
    pub user: String,
    /// The startup message's database: the default catalog.
    pub catalog: String,
    state: Mutex<State>,
    registration: Registration,
    /// Open cursors (`DECLARE`), by name. A cursor being read by `FETCH` is taken out meanwhile.
    cursors: Mutex<HashMap<String, Cursor>>,
}

/// An open cursor: its columns (text format) and the rows not fetched yet.
pub struct Cursor {
    pub fields: Arc<Vec<FieldInfo>>,
    pub rows: SendableRowStream,
}

struct State {
    ctx: SessionContext,
    schema: String,
    /// Lower-case name -> (display name, value).
    settings: Settings,
}

/// A session's parameters: lower-case name -> (display name, value). Shared with `current_setting()`.
pub type Settings = Arc<Mutex<BTreeMap<String, (String, String)>>>;

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user)
            .field("catalog", &self.catalog)
            .field("schema", &self.state.lock().schema)
            .finish_non_exhaustive()
    }
}

/// What a session statement produced, beyond its command tag.
#[derive(Debug, Default)]
pub struct Changes {
    /// Reported parameters that changed: send each as ParameterStatus.
    pub reports: Vec<(String, String)>,
}

impl Session {
    pub fn new(
        engine: Arc<Engine>,
        pg_catalog: Arc<PgCatalog>,
        user: String,
        catalog: String,
        search_path: Option<&str>,
        application_name: Option<&str>,
        registration: Registration,
    ) -> Self {
        let mut settings = BTreeMap::new();
        for (name, _, default) in PARAMETERS {
            if let Some(default) = default {
                settings.insert(name.to_lowercase(), (name.to_string(), default.to_string()));
            }
        }
        let put = |settings: &mut BTreeMap<_, _>, name: &str, value: &str| {
            settings.insert(name.to_lowercase(), (name.to_string(), value.to_string()));
        };
        put(&mut settings, "session_authorization", &user);
        if let Some(app) = application_name {
            put(&mut settings, "application_name", app);
        }
        let schema = resolve_search_path(&engine, &catalog, &user, search_path.unwrap_or(""))
            .unwrap_or_else(|| default_schema(&engine, &catalog));
        put(&mut settings, "search_path", search_path.unwrap_or(&schema));
        put(
            &mut settings,
            "retry_policy",
            engine.default_options().retry_policy.name(),
        );
        let settings: Settings = Arc::new(Mutex::new(settings));
        let ctx = engine.new_session_context(&catalog, &schema);
        pg_catalog.install(&ctx, &catalog, &schema, &user);
        super::compat::install(&ctx, &settings, registration.pid());
        apply_time_zone(&ctx, "UTC");
        Self {
            engine,
            pg_catalog,
            user,
            catalog,
            state: Mutex::new(State {
                ctx,
                schema,
                settings,
            }),
            registration,
            cursors: Mutex::new(HashMap::new()),
        }
    }

    /// The session stored in a connection's extensions by the startup handler.
    pub fn of<C: ClientInfo>(client: &C) -> PgWireResult<Arc<Session>> {
        client.session_extensions().get::<Session>().ok_or_else(|| {
            errors::user_error(errors::boxed(
                sqlstate::INTERNAL_ERROR,
                "no session for this connection",
            ))
        })
    }

    /// The DataFusion context to plan and run this session's next statement in.
    pub fn context(&self) -> SessionContext {
        self.state.lock().ctx.clone()
    }

    pub fn schema(&self) -> String {
        self.state.lock().schema.clone()
    }

    pub fn running(&self) -> &Arc<RunningQuery> {
        self.registration.slot()
    }

    /// Opens (or replaces, as PostgreSQL refuses) cursor `name`.
    pub fn open_cursor(&self, name: &str, cursor: Cursor) -> Result<(), Box<ErrorInfo>> {
        let mut cursors = self.cursors.lock();
        if cursors.contains_key(name) {
            return Err(errors::boxed(
                sqlstate::DUPLICATE_CURSOR,
                format!("cursor \"{name}\" already exists"),
            ));
        }
        cursors.insert(name.to_string(), cursor);
        Ok(())
    }

    /// Takes cursor `name` out for a `FETCH` (put it back with [`Session::return_cursor`]).
    pub fn take_cursor(&self, name: &str) -> Result<Cursor, Box<ErrorInfo>> {
        self.cursors
            .lock()
            .remove(name)
            .ok_or_else(|| missing_cursor(name))
    }

    pub fn return_cursor(&self, name: &str, cursor: Cursor) {
        self.cursors.lock().insert(name.to_string(), cursor);
    }

    /// The columns of cursor `name` (for Describe of a `FETCH`).
    pub fn cursor_fields(&self, name: &str) -> Option<Arc<Vec<FieldInfo>>> {
        self.cursors.lock().get(name).map(|c| c.fields.clone())
    }

    /// `CLOSE name` or `CLOSE ALL` (`None`).
    pub fn close_cursor(&self, name: Option<&str>) -> Result<(), Box<ErrorInfo>> {
        let mut cursors = self.cursors.lock();
        match name {
            None => cursors.clear(),
            Some(name) => {
                cursors.remove(name).ok_or_else(|| missing_cursor(name))?;
            }
        }
        Ok(())
    }

    /// The current value of a parameter, by any spelling of its name.
    pub fn get(&self, name: &str) -> Option<String> {
        self.state
            .lock()
            .settings
            .lock()
            .get(&name.to_lowercase())
            .map(|(_, v)| v.clone())
    }

    /// Every parameter PostgreSQL reports at startup, with its value.
    pub fn startup_reports(&self) -> Vec<(String, String)> {
        let state = self.state.lock();
        let settings = state.settings.lock();
        settings
            .values()
            .filter(|(name, _)| {
                known(name).is_some_and(|(_, kind, _)| kind != Kind::Plain)
                    && name != "server_version_num"
                    && name != "max_identifier_length"
            })
            .cloned()
            .collect()
    }

    /// The options of this session's next query: `retry_policy` and `inject_failure`.
    pub fn query_options(&self) -> QueryOptions {
        let mut options = self.engine.default_options();
        if let Some(policy) = self.get("retry_policy").and_then(|v| v.parse().ok()) {
            options.retry_policy = policy;
        }
        options.inject_failure = self
            .get("inject_failure")
            .filter(|v| !v.trim().is_empty())
            .and_then(|v| v.parse().ok());
        options.session_pid = Some(self.registration.pid());
        options
    }

    /// How often a running query reports its progress as a NOTICE: `progress_interval` when
    /// `progress_notices` is on, else `None`.
    pub fn progress_interval(&self) -> Option<Duration> {
        if self.get("progress_notices").as_deref() != Some("on") {
            return None;
        }
        let value = self.get("progress_interval")?;
        parse_duration_ms(&value)
            .ok()
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis)
    }

    /// `statement_timeout`, when set.
    pub fn statement_timeout(&self) -> Option<Duration> {
        let value = self.get("statement_timeout")?;
        parse_duration_ms(&value)
            .ok()
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis)
    }

    /// How result values are rendered in text (DateStyle, IntervalStyle, ...).
    pub fn format_options(&self) -> Arc<FormatOptions> {
        let mut options = FormatOptions::default();
        if let Some(v) = self.get("DateStyle") {
            options.date_style = v;
        }
        if let Some(v) = self.get("IntervalStyle") {
            options.interval_style = v;
        }
        if let Some(v) = self.get("TimeZone") {
            options.time_zone = v;
        }
        if let Some(v) = self.get("extra_float_digits").and_then(|v| v.parse().ok()) {
            options.extra_float_digits = v;
        }
        Arc::new(options)
    }

    /// `SHOW name`: the display name and value, or `42704`.
    pub fn show(&self, name: &str) -> Result<(String, String), Box<ErrorInfo>> {
        let name = canonical_name(name);
        self.state
            .lock()
            .settings
            .lock()
            .get(&name.to_lowercase())
            .cloned()
            .ok_or_else(|| unrecognized(&name))
    }

    /// `SHOW ALL`: (name, value) of every parameter.
    pub fn show_all(&self) -> Vec<(String, String)> {
        self.state
            .lock()
            .settings
            .lock()
            .values()
            .cloned()
            .collect()
    }

    /// `SET name = value` (`None`: `DEFAULT`, the same as `RESET name`).
    pub fn set(&self, name: &str, value: Option<&str>) -> Result<Changes, Box<ErrorInfo>> {
        let name = canonical_name(name);
        let Some(value) = value else {
            return self.reset(Some(&name));
        };
        let (display, kind) = match known(&name) {
            Some((_, Kind::ReadOnly, _)) => {
                return Err(errors::boxed(
                    sqlstate::CANT_CHANGE_RUNTIME_PARAM,
                    format!("parameter \"{name}\" cannot be changed"),
                ));
            }
            Some((display, kind, _)) => (display.to_string(), kind),
            None if name.contains('.') => (name.to_lowercase(), Kind::Plain),
            None => return Err(unrecognized(&name)),
        };
        let value = validate(&display, value)?;
        if display == "retry_policy"
            && let Ok(policy) = value.parse()
            && let Err(reason) = self.engine.check_retry_policy(policy)
        {
            return Err(errors::boxed(sqlstate::INVALID_PARAMETER_VALUE, reason));
        }
        let mut state = self.state.lock();
        if display == "search_path"
            && let Some(schema) =
                resolve_search_path(&self.engine, &self.catalog, &self.user, &value)
            && schema != state.schema
        {
            state.ctx = self.engine.new_session_context(&self.catalog, &schema);
            self.pg_catalog
                .install(&state.ctx, &self.catalog, &schema, &self.user);
            super::compat::install(&state.ctx, &state.settings, self.registration.pid());
            state.schema = schema;
            // The new context takes the settings the old one held (every parameter with a default
            // is always in `settings`).
            let held: Vec<(String, String)> = state.settings.lock().values().cloned().collect();
            for (display, value) in &held {
                apply_to_context(&state.ctx, display, value);
            }
        }
        apply_to_context(&state.ctx, &display, &value);
        let changed = state
            .settings
            .lock()
            .get(&display.to_lowercase())
            .map(|(_, v)| v)
            != Some(&value);
        state
            .settings
            .lock()
            .insert(display.to_lowercase(), (display.clone(), value.clone()));
        let mut changes = Changes::default();
        if changed && kind == Kind::Reported {
            changes.reports.push((display, value));
        }
        Ok(changes)
    }

    /// `RESET name` or `RESET ALL` (`None`).
    pub fn reset(&self, name: Option<&str>) -> Result<Changes, Box<ErrorInfo>> {
        let names: Vec<String> = match name {
            Some(name) => vec![canonical_name(name)],
            None => PARAMETERS
                .iter()
                .filter(|(_, kind, _)| *kind != Kind::ReadOnly)
                .map(|(n, _, _)| n.to_string())
                .collect(),
        };
        let mut changes = Changes::default();
        for name in names {
            let default = match known(&name) {
                Some((_, Kind::ReadOnly, _)) => {
                    return Err(errors::boxed(
                        sqlstate::CANT_CHANGE_RUNTIME_PARAM,
                        format!("parameter \"{name}\" cannot be changed"),
                    ));
                }
                Some((_, _, Some(default))) => default.to_string(),
                Some(("retry_policy", _, None)) => self
                    .engine
                    .default_options()
                    .retry_policy
                    .name()
                    .to_string(),
                Some((_, _, None)) => default_schema(&self.engine, &self.catalog),
                None if name.contains('.') => {
                    self.state
                        .lock()
                        .settings
                        .lock()
                        .remove(&name.to_lowercase());
                    continue;
                }
                None => return Err(unrecognized(&name)),
            };
            changes
                .reports
                .extend(self.set(&name, Some(&default))?.reports);
        }
        Ok(changes)
    }
}

/// Applies parameter `display` = `value` (validated) to `ctx` when the planner reads it there:
/// `TimeZone`, `join_reordering_strategy` and `semijoin_reduction`; the others live in the
/// session's settings only.
fn apply_to_context(ctx: &SessionContext, display: &str, value: &str) {
    match display {
        "TimeZone" => apply_time_zone(ctx, value),
        "join_reordering_strategy" => {
            apply_join_ordering(ctx, |o| o.strategy = value.to_uppercase())
        }
        "semijoin_reduction" => apply_join_ordering(ctx, |o| o.semijoin_reduction = value == "on"),
        _ => {}
    }
}

/// Makes `timestamptz` values and `now()` use the session's time zone. Offsets and `UTC` are passed
/// to DataFusion; a named zone leaves DataFusion on UTC (only `SHOW TimeZone` reflects it).
fn apply_time_zone(ctx: &SessionContext, tz: &str) {
    let client_zone = tz;
    let tz = tributary_planner::numeric::ClientZone::of(tz)
        .datafusion_offset()
        .unwrap_or_else(|| "+00:00".to_string());
    let state = ctx.state_ref();
    let mut state = state.write();
    state.config_mut().set_extension(Arc::new(
        tributary_planner::statement_pushdown::ClientTimeZone(client_zone.to_string()),
    ));
    state.config_mut().options_mut().execution.time_zone = Some(tz);
    state
        .config_mut()
        .options_mut()
        .extensions
        .insert(tributary_planner::numeric::ClientZone::of(client_zone));
    // `now()` and friends read the zone when they are made (as DataFusion's own SET does): remake
    // them, so `now()` is a timestamptz in the session's zone, as in PostgreSQL.
    let options = state.config().options();
    let updated: Vec<_> = state
        .scalar_functions()
        .values()
        .filter_map(|udf| udf.inner().with_updated_config(options).map(Arc::new))
        .collect();
    for udf in updated {
        let _ = datafusion::execution::FunctionRegistry::register_udf(&mut *state, udf);
    }
}

/// Changes the planner's join settings in `ctx` (`join_reordering_strategy` or
/// `semijoin_reduction`, already validated) by `change`.
fn apply_join_ordering(
    ctx: &SessionContext,
    change: impl FnOnce(&mut tributary_planner::join_order::JoinOrdering),
) {
    let state = ctx.state_ref();
    let mut state = state.write();
    let extensions = &mut state.config_mut().options_mut().extensions;
    let mut ordering = extensions
        .get::<tributary_planner::join_order::JoinOrdering>()
        .cloned()
        .unwrap_or_default();
    change(&mut ordering);
    extensions.insert(ordering);
}

fn missing_cursor(name: &str) -> Box<ErrorInfo> {
    errors::boxed(
        sqlstate::INVALID_CURSOR_NAME,
        format!("cursor \"{name}\" does not exist"),
    )
}

fn unrecognized(name: &str) -> Box<ErrorInfo> {
    errors::boxed(
        sqlstate::UNDEFINED_OBJECT,
        format!("unrecognized configuration parameter \"{name}\""),
    )
}

/// Aliases PostgreSQL accepts for parameter names (`SHOW time zone`, `SET SCHEMA`, ...).
fn canonical_name(name: &str) -> String {
    let lower = name.trim().to_lowercase();
    match lower.as_str() {
        "time zone" | "time_zone" => "TimeZone".into(),
        "schema" => "search_path".into(),
        "transaction isolation level" => "transaction_isolation".into(),
        "session authorization" => "session_authorization".into(),
        "names" => "client_encoding".into(),
        _ => known(&lower).map_or(lower, |(display, _, _)| display.to_string()),
    }
}

/// Checks and normalizes a value for `name`.
fn validate(name: &str, value: &str) -> Result<String, Box<ErrorInfo>> {
    let invalid = || {
        errors::boxed(
            sqlstate::INVALID_PARAMETER_VALUE,
            format!("invalid value for parameter \"{name}\": \"{value}\""),
        )
    };
    let unsupported = |what: &str| {
        errors::boxed(
            sqlstate::FEATURE_NOT_SUPPORTED,
            format!("{name} \"{value}\" is not supported; only {what} is"),
        )
    };
    match name {
        "client_encoding" => match value.to_uppercase().replace('-', "").as_str() {
            "UTF8" | "UNICODE" => Ok("UTF8".into()),
            "SQL_ASCII" => Ok("SQL_ASCII".into()),
            _ => Err(invalid()),
        },
        "DateStyle" => {
            let (mut display, mut order) = ("ISO", "MDY");
            for token in value.split(',').map(|t| t.trim().to_lowercase()) {
                match token.as_str() {
                    "iso" => display = "ISO",
                    "sql" => display = "SQL",
                    "german" => display = "German",
                    "postgres" => display = "Postgres",
                    "mdy" | "us" | "noneuropean" | "non-european" => order = "MDY",
                    "dmy" | "european" | "euro" => order = "DMY",
                    "ymd" => order = "YMD",
                    "" | "default" => {}
                    _ => return Err(invalid()),
                }
            }
            Ok(format!("{display}, {order}"))
        }
        "TimeZone" if value.trim().is_empty() => Err(invalid()),
        "TimeZone" if value.eq_ignore_ascii_case("utc") => Ok("UTC".into()),
        "IntervalStyle" => match value.to_lowercase().as_str() {
            v @ ("postgres" | "postgres_verbose" | "sql_standard" | "iso_8601") => Ok(v.into()),
            _ => Err(invalid()),
        },
        "extra_float_digits" => match value.trim().parse::<i32>() {
            Ok(n) if (-15..=3).contains(&n) => Ok(n.to_string()),
            _ => Err(invalid()),
        },
        "retry_policy" => value
            .parse::<RetryPolicy>()
            .map(|p| p.name().to_string())
            .map_err(|e| errors::boxed(sqlstate::INVALID_PARAMETER_VALUE, e.to_string())),
        "inject_failure" if value.trim().is_empty() => Ok(String::new()),
        "inject_failure" => value
            .parse::<FailureInjection>()
            .map(|_| value.trim().to_string())
            .map_err(|e| errors::boxed(sqlstate::INVALID_PARAMETER_VALUE, e.to_string())),
        "progress_notices" | "semijoin_reduction" => match value.trim().to_lowercase().as_str() {
            "on" | "true" | "1" | "yes" => Ok("on".into()),
            "off" | "false" | "0" | "no" => Ok("off".into()),
            _ => Err(invalid()),
        },
        "join_reordering_strategy" => {
            let strategy = value.trim().to_uppercase();
            if tributary_planner::join_order::JoinOrdering::STRATEGIES.contains(&strategy.as_str())
            {
                Ok(strategy)
            } else {
                Err(invalid())
            }
        }
        "progress_interval" => match parse_duration_ms(value) {
            Ok(ms) if ms >= 100 => Ok(value.trim().to_string()),
            _ => Err(invalid()),
        },
        "statement_timeout" | "lock_timeout" | "idle_in_transaction_session_timeout" => {
            parse_duration_ms(value).map_err(|_| invalid())?;
            Ok(value.trim().to_string())
        }
        "standard_conforming_strings" => match value.to_lowercase().as_str() {
            "on" | "true" | "1" => Ok("on".into()),
            "off" | "false" | "0" => Err(unsupported("on")),
            _ => Err(invalid()),
        },
        "bytea_output" => match value.to_lowercase().as_str() {
            "hex" => Ok("hex".into()),
            "escape" => Err(unsupported("hex")),
            _ => Err(invalid()),
        },
        _ => Ok(value.to_string()),
    }
}

/// A PostgreSQL time value in milliseconds: `5000`, `'5s'`, `'100ms'`, `'1min'`, `'2h'`.
fn parse_duration_ms(value: &str) -> Result<u64, ()> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().map_err(|_| ())?;
    let factor = match unit.trim() {
        "" | "ms" => 1.0,
        "s" => 1000.0,
        "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        _ => return Err(()),
    };
    Ok((number * factor) as u64)
}

/// The schema used when the client names none: the first of `public`, `tiny`, `runtime` the catalog
/// has, else its first schema.
pub fn default_schema(engine: &Engine, catalog: &str) -> String {
    let schemas = schema_names(engine, catalog);
    ["public", "tiny", "runtime"]
        .iter()
        .find(|s| schemas.iter().any(|n| n == *s))
        .map(|s| s.to_string())
        .or_else(|| schemas.first().cloned())
        .unwrap_or_else(|| "public".to_string())
}

fn schema_names(engine: &Engine, catalog: &str) -> Vec<String> {
    let mut names = engine
        .registry()
        .get(catalog)
        .map(|c| c.catalog().schema_names())
        .unwrap_or_default();
    names.sort();
    names
}

/// The default schema for a `search_path` value: the first listed schema that exists in the catalog,
/// else the first listed one (PostgreSQL does not check); `None` for an empty list.
pub fn resolve_search_path(
    engine: &Engine,
    catalog: &str,
    user: &str,
    value: &str,
) -> Option<String> {
    let listed = search_path_elements(value, user);
    let existing = schema_names(engine, catalog);
    listed
        .iter()
        .find(|s| *s == "information_schema" || existing.contains(s))
        .or_else(|| listed.iter().find(|s| *s != "pg_catalog"))
        .cloned()
}

/// `"$user", public, "MixedCase"` -> `[user, public, MixedCase]`; unquoted names are lower-cased.
fn search_path_elements(value: &str, user: &str) -> Vec<String> {
    let mut elements = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut was_quoted = false;
    for c in value.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                was_quoted = true;
            }
            ',' if !quoted => {
                push_element(&mut elements, &current, was_quoted, user);
                current.clear();
                was_quoted = false;
            }
            c => current.push(c),
        }
    }
    push_element(&mut elements, &current, was_quoted, user);
    elements
}

fn push_element(elements: &mut Vec<String>, raw: &str, quoted: bool, user: &str) {
    let name = if quoted {
        raw.to_string()
    } else {
        raw.trim().to_lowercase()
    };
    let name = if quoted {
        name
    } else {
        name.trim_matches('\'').to_string()
    };
    match name.as_str() {
        "" => {}
        "$user" => elements.push(user.to_string()),
        _ => elements.push(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_search_path_lists() {
        assert_eq!(
            search_path_elements("\"$user\", public", "alice"),
            vec!["alice", "public"]
        );
        assert_eq!(
            search_path_elements("Tiny,\"Mixed Case\"", "u"),
            vec!["tiny", "Mixed Case"]
        );
        assert!(search_path_elements("", "u").is_empty());
    }

    #[test]
    fn validates_values() {
        assert_eq!(validate("DateStyle", "iso, dmy").unwrap(), "ISO, DMY");
        assert_eq!(validate("DateStyle", "ISO").unwrap(), "ISO, MDY");
        assert_eq!(validate("extra_float_digits", "3").unwrap(), "3");
        assert_eq!(
            validate("extra_float_digits", "9").unwrap_err().code,
            "22023"
        );
        assert_eq!(validate("statement_timeout", "5s").unwrap(), "5s");
        assert_eq!(validate("progress_notices", "TRUE").unwrap(), "on");
        assert_eq!(validate("progress_notices", "off").unwrap(), "off");
        assert_eq!(
            validate("join_reordering_strategy", "none").unwrap(),
            "NONE"
        );
        assert_eq!(
            validate("join_reordering_strategy", "greedy")
                .unwrap_err()
                .code,
            "22023"
        );
        assert!(validate("progress_notices", "loud").is_err());
        assert_eq!(validate("progress_interval", "500ms").unwrap(), "500ms");
        assert!(validate("progress_interval", "1ms").is_err());
        assert_eq!(
            validate("statement_timeout", "soon").unwrap_err().code,
            "22023"
        );
        assert_eq!(parse_duration_ms("1min"), Ok(60_000));
        assert_eq!(parse_duration_ms("250"), Ok(250));
    }

    #[test]
    fn canonical_names() {
        assert_eq!(canonical_name("TIMEZONE"), "TimeZone");
        assert_eq!(canonical_name("time zone"), "TimeZone");
        assert_eq!(canonical_name("datestyle"), "DateStyle");
        assert_eq!(canonical_name("Search_Path"), "search_path");
        assert_eq!(
            canonical_name("transaction isolation level"),
            "transaction_isolation"
        );
    }
}
