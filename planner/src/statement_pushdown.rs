//! Statement pushdown: a query that DataFusion cannot plan, whose tables all live in one SQL source
//! that takes statement text (a `postgres` catalog), runs there whole, as the user wrote it.
//!
//! DataFusion refuses some queries PostgreSQL runs: a correlated reference two levels up
//! (`... WHERE EXISTS (SELECT ... WHERE EXISTS (SELECT ... WHERE y.c > t1.c))`,
//! apache/datafusion#15558), a correlated scalar subquery that is not an aggregate (PostgreSQL fails
//! only when it returns two rows), functions DataFusion lacks (`width_bucket`, `to_char` of a
//! number). When [`crate::plan::logical_plan`] gets such a refusal (from DataFusion's SQL planner, or
//! from its analyzer or optimizer for a plan holding subqueries over SQL sources only:
//! [`may_run_at_source`]), [`plan_at_source`] tries this, and the original error stands when it does
//! not apply or the source refuses the text too.
//!
//! It applies when:
//! - the statement is a query (or `EXPLAIN` of one), without parameters, `SELECT ... INTO`, row
//!   locks (`FOR UPDATE`) or data-modifying CTEs;
//! - every relation it names resolves, through the session's catalogs, to a table of one
//!   [`SqlSource`] whose [`SqlSource::statement`] takes text (CTE names aside; a CTE named like a
//!   table it also reads is refused rather than guessed at);
//! - it calls no function whose answer depends on the source's session rather than the client's
//!   ([`SESSION_FUNCTIONS`]: `current_user` would name the catalog's user, `set_config` or an
//!   advisory lock would leave state on a pooled connection, `nextval` writes, `query_to_xml` runs
//!   SQL text), and holds only literals printed escaped (no `N'...'`, `X'...'`, parameters);
//! - the session's `TimeZone` is UTC ([`ClientTimeZone`]), the zone of the source's connections.
//!
//! The statement runs in a read-only transaction, rolled back at its end, so a function that would
//! write (a user's own) fails, and settings it changes do not stay on the pooled connection.
//!
//! The relation names are replaced by the tables' names at the source and the text is described
//! there (a Parse/Describe, nothing runs); the plan is one scan of that statement, the source's own
//! column names on top, and when the query has an ORDER BY, the statement numbers its rows
//! (`row_number() OVER ()` over the ordered derived table) and a local sort on that number keeps
//! the source's order. Results are the source's own, its types included (an unconstrained
//! `numeric` comes back as PostgreSQL's text of it, reported as `numeric`). `EXPLAIN` shows the
//! statement in the scan (`PostgresScan: ... sql="SELECT ... FROM (<query>) AS q(...)"`).
//!
//! MySQL/MariaDB do not take statement text ([`SqlSource::statement`]): the same text would answer
//! differently there (case-insensitive collations, decimal `/`).

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, ResolvedTableReference, TableReference};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, col};
use datafusion::sql::parser::Statement;
use datafusion::sql::planner::object_name_to_table_reference;
use datafusion::sql::sqlparser::ast::{
    self, Ident, ObjectName, Query, SetExpr, TableFactor, Value, Visit, Visitor,
    visit_relations_mut,
};
use tributary_connectors::sql_source::{SqlSource, as_sql_table};

use crate::pushdown::RemoteQueryTable;

/// Functions never sent in statement text: their answer depends on the source's session (user,
/// database, settings, backend), they change it or write, or they run SQL given as text. Matched on
/// the function name's last part, lower case (and on unquoted identifiers, which PostgreSQL reads
/// as calls of the keyword functions); names starting with one of [`SESSION_PREFIXES`] too. Writes
/// that slip through (a user's volatile function) fail anyway: the statement runs in a read-only
/// transaction, rolled back ([`tributary_connectors::sql_source::READ_ONLY_MARKER`]).
pub const SESSION_FUNCTIONS: &[&str] = &[
    "current_user",
    "session_user",
    "user",
    "current_role",
    "current_catalog",
    "current_schema",
    "current_schemas",
    "current_database",
    "current_query",
    "current_setting",
    "set_config",
    "version",
    "inet_client_addr",
    "inet_client_port",
    "inet_server_addr",
    "inet_server_port",
    "nextval",
    "setval",
    "currval",
    "lastval",
    "system_user",
    "setseed",
    // Run SQL text given as a string (which no check here sees).
    "query_to_xml",
    "query_to_xmlschema",
    "query_to_xml_and_xmlschema",
    "cursor_to_xml",
    "cursor_to_xmlschema",
    "table_to_xml",
    "table_to_xmlschema",
    "table_to_xml_and_xmlschema",
    "schema_to_xml",
    "schema_to_xmlschema",
    "schema_to_xml_and_xmlschema",
    "database_to_xml",
    "database_to_xmlschema",
    "database_to_xml_and_xmlschema",
    "ts_stat",
    "ts_rewrite",
    "gin_clean_pending_list",
    // The front end turned its PostgreSQL template into DataFusion's strftime format.
    "to_char",
];

/// Prefixes of function names never sent in statement text: PostgreSQL's `pg_*` (backend,
/// locks, settings, sleeping), large objects `lo_*`, `dblink*`, `txid_*`, privilege checks `has_*`.
pub const SESSION_PREFIXES: &[&str] = &["pg_", "lo_", "dblink", "txid_", "has_", "brin_"];

/// The client session's `TimeZone` as the client set it (a session config extension the front end
/// keeps): statement pushdown only runs when it is UTC, the zone of the source's connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTimeZone(pub String);

impl ClientTimeZone {
    /// Whether the zone is UTC (`UTC`, `GMT`, `Z`, `Etc/UTC`, `+00:00`, `00:00`, any case).
    pub fn is_utc(&self) -> bool {
        let zone = self.0.trim().to_ascii_lowercase();
        matches!(
            zone.as_str(),
            "utc" | "gmt" | "z" | "etc/utc" | "etc/gmt" | "+00:00" | "00:00" | "+00" | "0"
        )
    }
}

/// Table name of the statement's scan.
const STATEMENT: &str = "__statement";

/// The plan running `statement` whole at its source, when it can (see the module docs); `None`
/// when it does not apply or the source refused to describe it (logged at debug level).
pub async fn plan_at_source(state: &SessionState, statement: &Statement) -> Option<LogicalPlan> {
    let (query, explain) = match statement {
        Statement::Statement(s) => (as_query(s)?, None),
        Statement::Explain(e) => match e.statement.as_ref() {
            Statement::Statement(s) => (as_query(s)?, Some(&e.options)),
            _ => return None,
        },
        _ => return None,
    };
    // The source's connections run in UTC: a statement computing with the session's zone
    // (`ts::date`, `date_trunc`, `now()::date`) would answer for UTC.
    if state
        .config()
        .get_extension::<ClientTimeZone>()
        .is_some_and(|zone| !zone.is_utc())
    {
        return None;
    }
    let mut checks = Checks::default();
    if query.visit(&mut checks).is_break() {
        return None;
    }
    let normalize = state.config_options().sql_parser.enable_ident_normalization;
    let (source, relations) = resolve(state, statement, &checks.ctes).await?;
    let mut query = query.clone();
    let defaults = &state.config_options().catalog;
    let rewritten = visit_relations_mut(&mut query, |name: &mut ObjectName| {
        let Ok(reference) = object_name_to_table_reference(name.clone(), normalize) else {
            return ControlFlow::Break(());
        };
        if is_cte(&reference, &checks.ctes) {
            return ControlFlow::Continue(());
        }
        let resolved = reference.resolve(&defaults.default_catalog, &defaults.default_schema);
        match relations.get(&resolved) {
            // Already quoted in the source's dialect: printed as it is.
            Some(relation) => {
                *name = ObjectName::from(vec![Ident::new(relation.clone())]);
                ControlFlow::Continue(())
            }
            None => ControlFlow::Break(()),
        }
    });
    if rewritten.is_break() {
        return None;
    }
    let ordered = query.order_by.is_some();
    let sql = query.to_string();
    let remote = match source.statement(&sql, ordered).await {
        Ok(remote) => remote?,
        Err(e) => {
            tracing::debug!(error = %e, "statement pushdown: the source refused the statement");
            return None;
        }
    };
    let plan = remote_plan(source, remote, ordered).ok()?;
    match explain {
        None => Some(plan),
        Some(options) => LogicalPlanBuilder::from(plan)
            .explain(options.verbose, options.analyze)
            .ok()?
            .build()
            .ok(),
    }
}

/// The scan of `remote` under a projection giving its columns the source's names (each qualified
/// by its position when two share a name, as DataFusion's schemas refuse duplicates), sorted by
/// its row number first when `ordered`.
fn remote_plan(
    source: Arc<dyn SqlSource>,
    remote: tributary_connectors::sql_source::RemoteStatement,
    ordered: bool,
) -> datafusion::common::Result<LogicalPlan> {
    let table = RemoteQueryTable::new(source, remote.sql, remote.schema);
    let mut builder =
        LogicalPlanBuilder::scan(STATEMENT, provider_as_source(Arc::new(table)), None)?;
    if ordered {
        builder = builder.sort(vec![
            col(Column::new(Some(STATEMENT), "ord")).sort(true, false),
        ])?;
    }
    let mut seen = HashSet::new();
    let duplicates = remote.names.iter().any(|n| !seen.insert(n));
    let exprs: Vec<Expr> = remote
        .names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let column = Expr::Column(Column::new(Some(STATEMENT), format!("c{i}")));
            if duplicates {
                column.alias_qualified(Some(TableReference::bare(format!("c{i}"))), name)
            } else {
                column.alias(name)
            }
        })
        .collect();
    builder.project(exprs)?.build()
}

/// Whether `plan` is a query holding a subquery and every table it scans (in subqueries too) is a
/// SQL source's: the plans [`crate::plan::logical_plan`] checks further, by optimizing them, before
/// trying [`plan_at_source`].
pub fn may_run_at_source(plan: &LogicalPlan) -> bool {
    if matches!(
        plan,
        LogicalPlan::Dml(_) | LogicalPlan::Ddl(_) | LogicalPlan::Copy(_)
    ) {
        return false;
    }
    let mut subquery = false;
    let mut sql_tables_only = true;
    let _ = plan.apply_with_subqueries(|node| {
        subquery = subquery
            || node.expressions().iter().any(|e| {
                e.exists(|e| {
                    Ok(matches!(
                        e,
                        Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_)
                    ))
                })
                .unwrap_or(false)
            });
        if let LogicalPlan::TableScan(scan) = node
            && source_as_provider(&scan.source)
                .ok()
                .is_none_or(|p| as_sql_table(p.as_ref()).is_none())
        {
            sql_tables_only = false;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    subquery && sql_tables_only
}

fn as_query(statement: &ast::Statement) -> Option<&Query> {
    match statement {
        ast::Statement::Query(query) => Some(query),
        _ => None,
    }
}

/// Whether `reference` may name one of `ctes` (a one-part name).
fn is_cte(reference: &TableReference, ctes: &HashSet<String>) -> bool {
    matches!(reference, TableReference::Bare { .. }) && ctes.contains(reference.table())
}

/// The one source of every relation `statement` reads (DataFusion's reference resolution: CTEs
/// aside) and each relation's name there; `None` when some relation is of no SQL source, of
/// another source, or missing, or when a table is read under the one-part name of one of `ctes`
/// (which is meant where depends on scoping: not guessed at).
async fn resolve(
    state: &SessionState,
    statement: &Statement,
    ctes: &HashSet<String>,
) -> Option<(Arc<dyn SqlSource>, HashMap<ResolvedTableReference, String>)> {
    let references = state.resolve_table_references(statement).ok()?;
    let defaults = &state.config_options().catalog;
    let mut source: Option<Arc<dyn SqlSource>> = None;
    let mut relations = HashMap::new();
    for reference in references {
        if is_cte(&reference, ctes) {
            return None;
        }
        let key = reference.resolve(&defaults.default_catalog, &defaults.default_schema);
        let provider = state
            .catalog_list()
            .catalog(&key.catalog)?
            .schema(&key.schema)?
            .table(&key.table)
            .await
            .ok()??;
        let table = as_sql_table(provider.as_ref())?;
        let table_source = table.sql_source();
        match &source {
            Some(s) if s.id() != table_source.id() => return None,
            Some(_) => {}
            None => source = Some(table_source),
        }
        relations.insert(key, table.relation());
    }
    Some((source?, relations))
}

/// Walks a query for what statement pushdown refuses, and gathers its CTE names.
#[derive(Default)]
struct Checks {
    ctes: HashSet<String>,
}

impl Visitor for Checks {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if !query.locks.is_empty()
            || query.for_clause.is_some()
            || !matches!(
                query.body.as_ref(),
                SetExpr::Select(_)
                    | SetExpr::Query(_)
                    | SetExpr::SetOperation { .. }
                    | SetExpr::Values(_)
            )
        {
            return ControlFlow::Break(());
        }
        if let SetExpr::Select(select) = query.body.as_ref()
            && select.into.is_some()
        {
            return ControlFlow::Break(());
        }
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                // DataFusion's normalization: unquoted names in lower case.
                let name = &cte.alias.name;
                self.ctes.insert(match name.quote_style {
                    Some(_) => name.value.clone(),
                    None => name.value.to_lowercase(),
                });
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        match factor {
            TableFactor::Table { args: None, .. }
            | TableFactor::Derived { .. }
            | TableFactor::NestedJoin { .. } => ControlFlow::Continue(()),
            // Table functions, UNNEST, JSON_TABLE, PIVOT...: not resolved as tables; left alone.
            _ => ControlFlow::Break(()),
        }
    }

    fn pre_visit_expr(&mut self, expr: &ast::Expr) -> ControlFlow<()> {
        match expr {
            ast::Expr::Function(function) => {
                let name = match function.name.0.last().and_then(|p| p.as_ident()) {
                    Some(ident) => ident.value.to_lowercase(),
                    None => return ControlFlow::Break(()),
                };
                if is_session_function(&name) {
                    return ControlFlow::Break(());
                }
            }
            // PostgreSQL reads these unquoted words as functions (`current_role`, `current_schema`,
            // `system_user`), where sqlparser sees a column.
            ast::Expr::Identifier(ident)
                if ident.quote_style.is_none()
                    && is_session_function(&ident.value.to_lowercase()) =>
            {
                return ControlFlow::Break(());
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    /// Only literals whose printed form is escaped (sqlparser prints `N'...'`, `B'...'`, `X'...'`
    /// and others as they were read, unescaped: a quote inside would end the literal in the text
    /// sent), and no parameters.
    fn pre_visit_value(&mut self, value: &ast::ValueWithSpan) -> ControlFlow<()> {
        match value.value {
            Value::Number(..) | Value::SingleQuotedString(_) | Value::Boolean(_) | Value::Null => {
                ControlFlow::Continue(())
            }
            _ => ControlFlow::Break(()),
        }
    }
}

/// Whether `name` (lower case) is one of [`SESSION_FUNCTIONS`] or starts with one of
/// [`SESSION_PREFIXES`].
pub fn is_session_function(name: &str) -> bool {
    SESSION_FUNCTIONS.contains(&name) || SESSION_PREFIXES.iter().any(|p| name.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::parser::DFParser;

    fn refused(sql: &str) -> bool {
        let statement = DFParser::parse_sql(sql).unwrap().pop_front().unwrap();
        let Statement::Statement(s) = statement else {
            panic!()
        };
        as_query(&s)
            .map(|q| q.visit(&mut Checks::default()).is_break())
            .unwrap_or(true)
    }

    #[test]
    fn what_is_never_sent_as_text() {
        assert!(!refused(
            "SELECT a, (SELECT b FROM t WHERE t.a = u.a) FROM u ORDER BY 1"
        ));
        assert!(!refused(
            "WITH x AS (SELECT 1) SELECT * FROM x UNION SELECT 2"
        ));
        assert!(refused("SELECT current_user, a FROM t"));
        assert!(refused("SELECT pg_advisory_lock(1) FROM t"));
        assert!(refused("SELECT set_config('a.b', 'c', false) FROM t"));
        assert!(refused("SELECT nextval('s') FROM t"));
        assert!(refused("SELECT to_char(d, '%Y') FROM t"));
        assert!(refused("SELECT a FROM t WHERE a = $1"));
        assert!(refused("SELECT a FROM t FOR UPDATE"));
        assert!(refused("SELECT a INTO u FROM t"));
        assert!(refused("SELECT * FROM generate_series(1, 3)"));
        assert!(refused("INSERT INTO t VALUES (1)"));
        // Literals printed unescaped, unquoted keyword functions, SQL run from a string.
        assert!(refused("SELECT N'x'', (SELECT 1), ''y' FROM t"));
        assert!(refused("SELECT X'00', B'1' FROM t"));
        assert!(refused("SELECT current_role, current_schema FROM t"));
        assert!(!refused("SELECT \"current_role\" FROM t"));
        assert!(refused(
            "SELECT query_to_xml('select 1', true, true, '') FROM t"
        ));
        assert!(ClientTimeZone("Etc/UTC".into()).is_utc());
        assert!(!ClientTimeZone("Europe/Berlin".into()).is_utc());
    }
}
