//! What a SQL source (PostgreSQL, MySQL, ...) offers the planner so it can push whole single-source
//! subplans (filters, projections, aggregates, top-N, joins) as one remote statement.
//!
//! The planner's pushdown rule (`tributary_planner::pushdown`) finds a table scan's [`SqlTable`] with
//! [`as_sql_table`], checks that every table of a subplan has the same [`SqlSource::id`], writes the
//! statement with the source's [`SqlDialect`] and asks [`SqlSource::query_scan`] for a scan of it.
//! A connector plugs in by implementing these traits and answering
//! [`ConnectorFactory::sql_table`](crate::ConnectorFactory::sql_table) for its table type.
//!
//! The dialect only renders; deciding what keeps its meaning is shared: a column's [`SqlKind`] says
//! which operations on it are the same at the source as in DataFusion.

use std::fmt::Debug;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

/// What operations on a value mean the same at the source as in DataFusion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlKind {
    /// Integers: equality, ordering, grouping, min/max, sum, avg.
    Integer,
    /// Exact decimals: as integers, plus `+ - *` (exact on both sides).
    Decimal,
    /// Floats: only carried, summed and averaged (NaN and -0 compare and group differently).
    Float,
    /// Booleans: equality, grouping, ordering.
    Bool,
    /// Strings. Never ordered (collations differ from DataFusion's byte order).
    Text {
        /// `=` / `<>` / `IN` / `LIKE` against literals and other such strings mean byte equality
        /// (a deterministic collation and no blank-padding).
        eq: bool,
        /// Two values of the column are equal at the source exactly when they are byte-equal, so
        /// grouping and `count(distinct)` agree (deterministic collation; blank-padded char(n) too).
        group: bool,
    },
    /// Dates and timestamps: equality, ordering, grouping, min/max.
    Temporal,
    /// Anything else: only carried through.
    Other,
}

impl SqlKind {
    /// Whether `a = b` between two such values is byte/value equality on both sides.
    pub fn eq_safe(self) -> bool {
        matches!(
            self,
            SqlKind::Integer
                | SqlKind::Decimal
                | SqlKind::Bool
                | SqlKind::Temporal
                | SqlKind::Text { eq: true, .. }
        )
    }

    /// Whether grouping / `count(distinct)` on it agrees.
    pub fn group_safe(self) -> bool {
        self.eq_safe() || matches!(self, SqlKind::Text { group: true, .. })
    }

    /// Whether `<`, `>`, ORDER BY, min and max agree (never strings or floats).
    pub fn order_safe(self) -> bool {
        matches!(
            self,
            SqlKind::Integer | SqlKind::Decimal | SqlKind::Bool | SqlKind::Temporal
        )
    }
}

/// Whether joins (and semi/anti joins) between tables of one SQL source run at the source: the
/// catalog file's `join_pushdown` (Trino's `join_pushdown_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JoinPushdown {
    /// Pushed when the source's own estimates ([`SqlSource::estimate`]) say the joined statement
    /// costs little more than its inputs apart, as Trino's `AUTOMATIC` decides (the planner's
    /// `pushdown` module); without estimates, pushed to a source with hash joins (PostgreSQL) and
    /// kept here from one joining by nested loops (MySQL/MariaDB). The default.
    #[default]
    Automatic,
    /// Always pushed (the source's planner decides everything).
    Eager,
    /// Never pushed: joins run here, over the tables' scans.
    Never,
}

impl JoinPushdown {
    /// The strategy named `name` (`automatic`, `eager`, `never`; any case).
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "automatic" => Some(Self::Automatic),
            "eager" => Some(Self::Eager),
            "never" => Some(Self::Never),
            _ => None,
        }
    }
}

/// How a source writes SQL. Only rendering: the planner decides what may be pushed.
pub trait SqlDialect: Send + Sync + Debug {
    /// A quoted identifier.
    fn quote_ident(&self, name: &str) -> String;

    /// The SQL literal of `value` with exactly that value at the source, if there is one.
    fn literal(&self, value: &ScalarValue) -> Option<String>;

    /// The source's type that reads back as Arrow type `ty` (used in casts), if any.
    fn type_name(&self, ty: &DataType) -> Option<String>;

    /// `CAST(expr AS ty)` in this dialect, if the source has such a type.
    fn cast(&self, expr: &str, ty: &DataType) -> Option<String> {
        Some(format!("CAST({expr} AS {})", self.type_name(ty)?))
    }

    /// The source's name of DataFusion aggregate `name` (`count`, `sum`, `min`, `max`, `avg`,
    /// `stddev`, `stddev_pop`, `var_samp`, `var_pop`), if the source has it with the same meaning.
    fn aggregate(&self, name: &str) -> Option<&'static str>;

    /// One ORDER BY item with explicit null placement.
    fn order_item(&self, expr: &str, asc: bool, nulls_first: bool) -> String;

    /// `LIMIT` / `OFFSET` clause (with a leading space), empty when neither is set.
    fn limit(&self, fetch: Option<usize>, skip: usize) -> String;

    /// Whether FULL OUTER JOIN exists.
    fn full_join(&self) -> bool;

    /// Whether `SELECT FROM t` (no columns) is valid.
    fn empty_select(&self) -> bool;

    /// Whether `+ - * / %` on two integers of one type mean what they do here, an error on overflow
    /// or division by zero included (PostgreSQL: yes; MySQL: `/` is decimal division, division by
    /// zero is NULL and unsigned columns refuse negative results, so no).
    fn integer_arithmetic(&self) -> bool {
        false
    }

    /// Whether the source joins large inputs by hashing (PostgreSQL: yes; MariaDB: only with a
    /// non-default `join_cache_level`, so no), which decides [`JoinPushdown::Automatic`] when the
    /// source gives no estimate ([`SqlSource::estimate`]).
    fn hash_joins(&self) -> bool {
        false
    }

    /// Whether a subquery may reference the columns of the query around it from inside its own
    /// derived tables (`(SELECT count(*) FROM (SELECT ... WHERE x.b < o1.c0) AS t)`): PostgreSQL yes,
    /// MariaDB no. Without it, correlated subqueries are never pushed.
    fn correlated_subqueries(&self) -> bool {
        false
    }

    /// `a IS [NOT] DISTINCT FROM b` (`distinct`: whether it is `IS DISTINCT FROM`).
    fn distinct_from(&self, a: &str, b: &str, distinct: bool) -> String {
        let not = if distinct { "" } else { "NOT " };
        format!("({a} IS {not}DISTINCT FROM {b})")
    }
}

/// One remote database: the unit within which subplans (joins included) can be pushed.
#[async_trait::async_trait]
pub trait SqlSource: Send + Sync + Debug {
    /// Identifies the remote database: tables with the same id can be joined in one statement.
    fn id(&self) -> String;

    /// The dialect of the source.
    fn dialect(&self) -> &dyn SqlDialect;

    /// A scan running `sql` at the source as ONE split (one output partition), reading its columns
    /// as `schema` (the statement's columns have exactly the types `schema` maps to, see
    /// [`SqlDialect::type_name`]). Executing the partition twice runs the statement twice.
    fn query_scan(&self, sql: String, schema: SchemaRef) -> Result<Arc<dyn ExecutionPlan>>;

    /// The catalog's `join_pushdown` strategy.
    fn join_pushdown(&self) -> JoinPushdown {
        JoinPushdown::Automatic
    }

    /// `sql`, a query in the source's own dialect naming only the source's tables, as a statement
    /// to run whole at the source ([`RemoteStatement`]), described there without running it (a
    /// PostgreSQL Parse/Describe). `ordered`: the statement's rows come in an order that matters, so
    /// the statement also numbers them. `Ok(None)` when the source does not take statement text
    /// (MySQL/MariaDB: its string comparisons and `/` differ from PostgreSQL's, so the same text
    /// would answer differently). Errors: the source refuses the text, or cannot be reached.
    async fn statement(&self, _sql: &str, _ordered: bool) -> Result<Option<RemoteStatement>> {
        Ok(None)
    }

    /// The source planner's estimate of running query `sql` (its `EXPLAIN`, nothing run), which
    /// `join_pushdown = "automatic"` weighs a pushed join by. `Ok(None)` when the source gives
    /// none. Errors: the source refuses the text, or cannot be reached.
    async fn estimate(&self, _sql: &str) -> Result<Option<Estimate>> {
        Ok(None)
    }
}

/// What answering one query at its source costs, by the source's own planner ([`SqlSource::estimate`]).
/// Comparable only between queries of the same source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Rows the query returns.
    pub rows: f64,
    /// What sending its rows here costs, with what answering it costs where that dominates, in
    /// the source's unit: PostgreSQL, which hashes joins, the bytes sent (rows x plan width), as
    /// Trino's automatic join pushdown weighs a join; MariaDB, which joins by nested loops, the
    /// rows it reads weighted by how it reads them plus the rows it sends (see the `mysql`
    /// connector).
    pub cost: f64,
    /// What answering it costs the source, by its planner's own measure (PostgreSQL's total cost;
    /// MariaDB's rows read, as in `cost`): bounds a pushed join the source would run by nested
    /// loops.
    pub work: f64,
}

/// How a [`RemoteStatement`]'s SQL begins: a comment telling the source's reader to run it in a
/// read-only transaction rolled back at its end (PostgreSQL's `BEGIN READ ONLY` ... `ROLLBACK`), since
/// a statement as a user wrote it may call functions that write or change session settings.
pub const READ_ONLY_MARKER: &str = "/* read-only */ ";

/// A query run whole at its source, as [`SqlSource::statement`] wraps it.
#[derive(Debug, Clone)]
pub struct RemoteStatement {
    /// What [`SqlSource::query_scan`] runs: [`READ_ONLY_MARKER`], then the query as a derived table,
    /// its columns renamed `c0`, `c1`, ... and read as [`RemoteStatement::schema`] says (types
    /// without an Arrow equivalent cast to text), plus `ord` (`row_number() OVER ()`, from 1) when
    /// asked for an order.
    pub sql: String,
    /// The columns of [`RemoteStatement::sql`]: `c0`, `c1`, ... (nullable; field metadata
    /// `tributary.pg_type` where clients should see another type than the Arrow one), then `ord`
    /// (Int64) if ordered.
    pub schema: SchemaRef,
    /// The query's own column names, as the source names them (`?column?`, `count`, ...).
    pub names: Vec<String>,
}

/// A table of a [`SqlSource`].
pub trait SqlTable: Send + Sync + Debug {
    /// The source holding the table.
    fn sql_source(&self) -> Arc<dyn SqlSource>;

    /// The table's quoted name at the source (`"schema"."table"`, `` `db`.`table` ``).
    fn relation(&self) -> String;

    /// The SELECT-list expression reading column `index` as its Arrow type (e.g. with a cast to
    /// text), and what operations on the value keep their meaning.
    fn column(&self, index: usize) -> Option<(String, SqlKind)>;

    /// The SQL of a filter that the table's provider accepted as `Exact` (so the same rows).
    fn filter_sql(&self, filter: &Expr) -> Option<String>;

    /// Whether column `index` is the first column of an index at the source (primary key
    /// included), so a lookup by it is not a scan.
    fn indexed(&self, _index: usize) -> bool {
        false
    }
}

/// The [`SqlTable`] behind a table provider: the first of [`crate::FACTORIES`] that knows the
/// provider's type ([`ConnectorFactory::sql_table`](crate::ConnectorFactory::sql_table)), `None` for a
/// table of no SQL source.
pub fn as_sql_table(provider: &dyn TableProvider) -> Option<&dyn SqlTable> {
    crate::FACTORIES.iter().find_map(|f| f.sql_table(provider))
}
