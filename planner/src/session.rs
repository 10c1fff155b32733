//! DataFusion session setup for one client session: the shared catalogs, the default catalog/schema
//! from the startup message, and the settings the distributed execution relies on.

use std::sync::Arc;

use datafusion::execution::SessionStateBuilder;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::CatalogRegistry;

/// Builds a DataFusion context over `registry` with `catalog.schema` as the default for unqualified
/// names (Postgres: the startup message's database and `search_path`).
///
/// `target_partitions` is the number of hash partitions the planner gives a repartitioned stage
/// (Trino's `hash_partition_count`). Dynamic filter pushdown is off: its shared state spans partitions of
/// one plan instance, which tasks on other workers do not share; so is file work stealing. Round-robin repartitioning is off:
/// a source stage's partitions are its splits, and an extra exchange would only copy data.
pub fn new_session_context(
    registry: &CatalogRegistry,
    runtime: Arc<RuntimeEnv>,
    catalog: &str,
    schema: &str,
    target_partitions: usize,
) -> SessionContext {
    let config = SessionConfig::new()
        // The client's TimeZone, for `crate::numeric::DateTruncOfDate` (the front end sets it).
        .with_option_extension(crate::numeric::ClientZone::default())
        // `SET join_reordering_strategy` (`crate::join_order`).
        .with_option_extension(crate::join_order::JoinOrdering::default())
        .with_information_schema(true)
        .with_create_default_catalog_and_schema(false)
        .with_default_catalog_and_schema(catalog, schema)
        .with_target_partitions(target_partitions.max(1))
        .set_str(
            "datafusion.optimizer.enable_dynamic_filter_pushdown",
            "false",
        )
        // Splits are the unit of source parallelism, as in Trino: no round-robin exchange above scans.
        .set_str(
            "datafusion.optimizer.enable_round_robin_repartition",
            "false",
        )
        // A split belongs to its task: sibling file streams of one plan instance must not steal each
        // other's files, since the other tasks of the stage run in other instances (other workers),
        // and a re-run task must read the same files.
        .set_str(
            "datafusion.execution.enable_file_stream_work_stealing",
            "false",
        )
        // A hash join's build side up to 32 MiB (or 2M rows, when its size is unknown) is collected
        // whole and, across workers, broadcast to every task of the probing stage, which then
        // reads its own splits without an exchange (Trino broadcasts up to 100 MB). DataFusion's
        // 1 MiB made TPC-H q09's 2.7 MB of matching parts and partsuppliers hash-repartition
        // all 6M lineitem rows (432 MB) between workers instead.
        .set_usize(
            "datafusion.optimizer.hash_join_single_partition_threshold",
            32 * 1024 * 1024,
        )
        .set_usize(
            "datafusion.optimizer.hash_join_single_partition_threshold_rows",
            2_000_000,
        )
        .set_str("datafusion.sql_parser.dialect", "PostgreSQL")
        // PostgreSQL types `1.5` as numeric, not float: `1.5 * 2` is `3.0`, `price + 0.25` keeps
        // the column's scale, and comparisons with decimal columns stay exact.
        .set_bool("datafusion.sql_parser.parse_float_as_decimal", true)
        .set_str("datafusion.sql_parser.enable_ident_normalization", "true")
        .with_extension(Arc::new(crate::write::WritableCatalogs::of(registry)));
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_catalog_list(registry.catalog_list())
        .with_default_features()
        // Semi and anti joins build on the side with fewer estimated rows (`crate::join_sides`),
        // and filters evaluate cheap, selective conjuncts first (`crate::conjuncts`).
        .with_physical_optimizer_rules(crate::conjuncts::before_sanity_check(
            crate::join_sides::after_join_selection(
                datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new().rules,
            ),
        ))
        // DataFusion's analyzer, with `date_trunc` of a date made a timestamptz (as PostgreSQL
        // types it) before type coercion makes the date a timestamp.
        .with_analyzer_rules(
            datafusion::optimizer::Analyzer::new()
                .rules
                .into_iter()
                .flat_map(|rule| {
                    let before: Option<Arc<dyn datafusion::optimizer::AnalyzerRule + Send + Sync>> =
                        (rule.name() == "type_coercion")
                            .then(|| Arc::new(crate::numeric::DateTruncOfDate) as _);
                    before.into_iter().chain([rule])
                })
                .collect(),
        )
        // DataFusion's rules, a failing subquery decorrelation leaving the subquery to the apply,
        // which takes what is still correlated right after decorrelation.
        // And inner joins ordered by estimates once filters sit where they apply.
        // First, a correlated avg/min/max over a table the query joins becomes a window over
        // that join (`crate::group_window`).
        .with_optimizer_rules(crate::group_window::first(
            crate::join_order::after_filter_pushdown(crate::apply::with_correlated_apply(
                datafusion::optimizer::Optimizer::new().rules,
            )),
        ))
        // A scalar subquery typed nullable (NULL when it gives no row) before anything folds
        // `IS NULL` or `coalesce` of it.
        .with_analyzer_rule(Arc::new(crate::nullable::ScalarSubqueriesNullable))
        // EXCEPT ALL / INTERSECT ALL with each row's count, as PostgreSQL's.
        .with_analyzer_rule(Arc::new(crate::set_ops::SetOperationsAll))
        // Subqueries in ORDER BY, windows, GROUP BY and inner joins' ON computed below those
        // nodes, where DataFusion takes them.
        .with_analyzer_rule(Arc::new(crate::apply::SubqueriesComputedBelow))
        // Numeric quotients with PostgreSQL's scale (at least 16 fractional digits) and sums of
        // bigints as numeric, once types are known and before constants are folded.
        .with_analyzer_rule(Arc::new(crate::numeric::NumericDivisionScale))
        // The quotients' and sums' new types reach what compares, unions or combines them.
        .with_analyzer_rule(Arc::new(
            datafusion::optimizer::analyzer::type_coercion::TypeCoercion::new(),
        ))
        // And an INSERT still writes its table's types.
        .with_analyzer_rule(Arc::new(crate::numeric::InsertTargetTypes))
        // Integer arithmetic on constants refuses overflow (22003) before constants are folded.
        .with_analyzer_rule(Arc::new(crate::integers::CheckedConstantArithmetic))
        // Last, once types are settled: an apply for each correlated subquery DataFusion would
        // refuse (a reference two levels up, a scalar subquery that is no aggregate).
        .with_analyzer_rule(Arc::new(crate::apply::SubqueriesDataFusionRefuses))
        // `e = (SELECT max(e) FROM <the same rows>)` over one reading (`crate::extreme`).
        .with_optimizer_rule(Arc::new(crate::extreme::ExtremeAsWindow))
        // Whole single-source subplans into SQL sources, after DataFusion's own rules.
        .with_optimizer_rule(Arc::new(crate::pushdown::SqlSourcePushdown))
        // Then every integer `+`, `-`, `*` left here refuses overflow, as in PostgreSQL, and
        // numeric ones compute in 64 bits where their operands fit (`crate::decimals`).
        .with_optimizer_rule(Arc::new(crate::integers::CheckedIntegerArithmetic))
        // Then `||` as a function refusing values past 1 GiB (what pushdown left of it).
        .with_optimizer_rule(Arc::new(crate::limits::LimitStringConcat))
        // Correlated subqueries DataFusion cannot decorrelate: a nested-loop apply.
        .with_query_planner(Arc::new(crate::apply::TributaryQueryPlanner))
        .build();
    let ctx = SessionContext::new_with_state(state);
    // PostgreSQL's 1 GiB bound on one value, for the functions whose result size a user chooses.
    for f in crate::limits::functions() {
        ctx.register_udf(f);
    }
    for f in crate::limits::aggregate_functions() {
        ctx.register_udaf(f);
    }
    // PostgreSQL's checked integer operators (`int4pl`, ...), which the rules above put in plans.
    for f in crate::integers::functions() {
        ctx.register_udf(f);
    }
    // And numeric `+`, `-`, `*` in 64-bit halves where they fit (`numeric_add`, ...).
    for f in crate::decimals::functions() {
        ctx.register_udf(f);
    }
    // PostgreSQL's `sign` is DataFusion's `signum`.
    ctx.register_udf(
        datafusion::functions::math::signum()
            .as_ref()
            .clone()
            .with_aliases(["sign"]),
    );
    // Scalar subqueries typed nullable (`crate::nullable`).
    ctx.register_udf(crate::nullable::function());
    // Float-to-integer casts round half to even (`crate::numeric`).
    ctx.register_udf(crate::numeric::rint().as_ref().clone());
    // `avg` of integers is numeric, as in PostgreSQL.
    ctx.register_udaf(crate::avg::PgAvg::udaf());
    ctx
}
