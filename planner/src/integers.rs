//! PostgreSQL's integers: literal typing and overflow.
//!
//! PostgreSQL types an integer literal that fits in 32 bits as `integer` and a larger one as
//! `bigint`; DataFusion's SQL planner types every one `Int64`. So `int4_column + 1` was a `bigint`
//! here and `2147483647::int + 1` was `2147483648`; [`type_integer_literals`] types the literals
//! of a statement as PostgreSQL does before it is planned (`SELECT 1` is an `int4`, `a + 1` keeps
//! `a`'s type).
//!
//! PostgreSQL's integer arithmetic: `+`, `-` and `*` on `smallint`, `integer` and `bigint` refuse
//! a result their type cannot hold with SQLSTATE `22003` (`integer out of range`, `smallint out of
//! range`, `bigint out of range`), where DataFusion wraps around (`2147483647::int + 1::int` is
//! `-2147483648` there).
//!
//! DataFusion's `BinaryExpr` has a checked mode (`with_fail_on_overflow`), but no planner path sets
//! it and `datafusion-proto` does not carry it to workers. So the operator is replaced in plans by
//! [`IntegerArithmetic`], a function named as PostgreSQL names the operator's implementation
//! (`int4pl`, `int8mi`, `int2mul`, ...; callable by those names, as in PostgreSQL), that computes
//! with Arrow's checked kernels. Its column name is the operator's (`a + b`), so names in plans and
//! results do not change.
//!
//! Two rules place it: [`CheckedConstantArithmetic`] (analyzer) for arithmetic on constants only,
//! before DataFusion folds constants (with wrapping), so that folding goes through the checked
//! function (a fold that fails is left for run time, where the error reaches the client), and
//! [`CheckedIntegerArithmetic`] (optimizer, after pushdown) for the rest; pushdown to a SQL source
//! sees the operator, which the source evaluates with its own overflow check.
//!
//! Unary minus is checked the same way (`int2um`, `int4um`, `int8um`: `-(-2147483648)::int` is
//! `integer out of range`, not `-2147483648`).
//!
//! Other integer types (`tinyint`, unsigned: MySQL's) keep DataFusion's arithmetic, as do `/` and
//! `%` (Arrow's kernels already refuse `i32::MIN / -1`).

use std::sync::Arc;

use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::arrow::error::ArrowError;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result, ScalarValue, internal_err};
use datafusion::logical_expr::expr::{BinaryExpr, ScalarFunction};
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ReturnFieldArgs, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::analyzer::AnalyzerRule;
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};
use datafusion::physical_expr_common::datum::apply;
use datafusion::sql::sqlparser::ast;

use crate::decimals::NumericArithmetic;

/// `left op right` (or `-value`) on values of one signed integer type, refusing overflow as
/// PostgreSQL does. Arguments: two (one for unary minus) arrays or scalars of
/// [`IntegerArithmetic::ty`]; result: the same type. Errors: Arrow's `ArithmeticOverflow` with
/// PostgreSQL's message (`integer out of range`), which the front end reports as `22003`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct IntegerArithmetic {
    name: &'static str,
    /// The binary operator, or `None` for unary minus.
    op: Option<Operator>,
    ty: DataType,
    /// PostgreSQL's word for the type in its error message (`integer`).
    word: &'static str,
    signature: Signature,
}

/// The types checked, with PostgreSQL's word for each in its error message.
const TYPES: [(DataType, &str); 3] = [
    (DataType::Int16, "smallint"),
    (DataType::Int32, "integer"),
    (DataType::Int64, "bigint"),
];
/// The operators checked; `None` is unary minus.
const OPERATORS: [Option<Operator>; 4] = [
    Some(Operator::Plus),
    Some(Operator::Minus),
    Some(Operator::Multiply),
    None,
];
/// PostgreSQL's names of the operators' implementations, per type (rows) and operator (columns).
const NAMES: [[&str; 4]; 3] = [
    ["int2pl", "int2mi", "int2mul", "int2um"],
    ["int4pl", "int4mi", "int4mul", "int4um"],
    ["int8pl", "int8mi", "int8mul", "int8um"],
];

impl IntegerArithmetic {
    fn new(op: Option<Operator>, ty: DataType) -> Option<Self> {
        let t = TYPES.iter().position(|(x, _)| *x == ty)?;
        let o = OPERATORS.iter().position(|x| *x == op)?;
        let arity = if op.is_some() { 2 } else { 1 };
        Some(Self {
            name: NAMES[t][o],
            op,
            word: TYPES[t].1,
            signature: Signature::exact(vec![ty.clone(); arity], Volatility::Immutable),
            ty,
        })
    }

    /// Arrow's overflow error `e` with PostgreSQL's message.
    fn out_of_range(&self, e: ArrowError) -> ArrowError {
        match e {
            ArrowError::ArithmeticOverflow(_) => {
                ArrowError::ArithmeticOverflow(format!("{} out of range", self.word))
            }
            e => e,
        }
    }
}

/// Every checked function, for registration in a session (`int2pl` ... `int8mul`, `int2um` ...
/// `int8um`).
pub fn functions() -> Vec<ScalarUDF> {
    TYPES
        .iter()
        .flat_map(|(ty, _)| {
            OPERATORS
                .iter()
                .filter_map(|op| IntegerArithmetic::new(*op, ty.clone()))
        })
        .map(ScalarUDF::new_from_impl)
        .collect()
}

impl ScalarUDFImpl for IntegerArithmetic {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.ty.clone())
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let nullable = args.arg_fields.iter().any(|f| f.is_nullable());
        Ok(Arc::new(Field::new(self.name, self.ty.clone(), nullable)))
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        // As DataFusion names the operator (`Expr::Negative` as `(- a)`).
        match (self.op, args) {
            (Some(op), [left, right]) => Ok(format!(
                "{} {op} {}",
                left.schema_name(),
                right.schema_name()
            )),
            (None, [value]) => Ok(format!("(- {})", value.schema_name())),
            _ => internal_err!("{}: wrong number of arguments", self.name),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match (self.op, args.args.as_slice()) {
            (Some(op), [left, right]) => {
                let kernel = match op {
                    Operator::Plus => numeric::add,
                    Operator::Minus => numeric::sub,
                    _ => numeric::mul,
                };
                // DataFusion's own mapping of a Datum kernel over arrays and scalars (as
                // `BinaryExpr`).
                apply(left, right, |l, r| {
                    kernel(l, r).map_err(|e| self.out_of_range(e))
                })
            }
            (None, [ColumnarValue::Array(array)]) => Ok(ColumnarValue::Array(
                numeric::neg(array.as_ref()).map_err(|e| self.out_of_range(e))?,
            )),
            (None, [ColumnarValue::Scalar(scalar)]) => {
                let negated =
                    numeric::neg(scalar.to_array()?.as_ref()).map_err(|e| self.out_of_range(e))?;
                Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                    negated.as_ref(),
                    0,
                )?))
            }
            _ => internal_err!("{}: wrong number of arguments", self.name),
        }
    }
}

/// `e` with its integer `+`, `-`, `*` and unary minus (those `only` accepts) replaced by
/// [`IntegerArithmetic`], and with `decimals` its numeric `+`, `-`, `*` by
/// [`NumericArithmetic`]; `schema` types the operands.
fn check_arithmetic(
    e: Expr,
    schema: &DFSchema,
    only: &dyn Fn(&Expr) -> bool,
    decimals: bool,
) -> Result<Transformed<Expr>> {
    e.transform_up(|e| {
        let checked = match &e {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) if only(&e) => {
                match (left.get_type(schema), right.get_type(schema)) {
                    (Ok(lt), Ok(rt)) if lt == rt && lt.is_integer() => {
                        IntegerArithmetic::new(Some(*op), lt).map(ScalarUDF::new_from_impl)
                    }
                    (Ok(lt), Ok(rt)) if decimals => {
                        NumericArithmetic::new(*op, &lt, &rt).map(ScalarUDF::new_from_impl)
                    }
                    _ => None,
                }
            }
            Expr::Negative(value) if only(&e) => value
                .get_type(schema)
                .ok()
                .and_then(|ty| IntegerArithmetic::new(None, ty))
                .map(ScalarUDF::new_from_impl),
            _ => None,
        }
        .map(Arc::new);
        Ok(match (checked, e) {
            (Some(f), Expr::BinaryExpr(BinaryExpr { left, right, .. })) => Transformed::yes(
                Expr::ScalarFunction(ScalarFunction::new_udf(f, vec![*left, *right])),
            ),
            (Some(f), Expr::Negative(value)) => Transformed::yes(Expr::ScalarFunction(
                ScalarFunction::new_udf(f, vec![*value]),
            )),
            (_, e) => Transformed::no(e),
        })
    })
}

/// Types the integer literals of `statement` as PostgreSQL does, before DataFusion plans it: a
/// number without a fraction or exponent that fits in 32 bits becomes `CAST(n AS INT)` (an
/// `Int32`, PostgreSQL's `integer`); larger ones stay `Int64` (`bigint`). Done on the syntax tree,
/// so every type DataFusion's planner derives (unions, recursive CTEs, grouping sets, outer
/// references of subqueries) follows; a cast's column name is its operand's (`Int64(1)`), so
/// output names do not change (the front end names columns from the SQL text anyway).
///
/// Left as written: numbers that are positions (`ORDER BY 1`, `GROUP BY 2`), `LIMIT`, `OFFSET`
/// and `FETCH` counts, window frame offsets, `INTERVAL` quantities, and numbers passed directly to
/// a function (`count(1)` is DataFusion's `count(*)`, recognized by its `Int64` literal; `ntile(4)`,
/// `round(x, 2)`; a function's signature coerces them anyway). Parameters (`$1`) are not literals.
/// `COPY ... TO` statements are left alone (their query is planned on its own).
pub fn type_integer_literals(statement: &mut datafusion::sql::parser::Statement) {
    use datafusion::sql::parser::Statement as DfStatement;
    use datafusion::sql::sqlparser::ast::VisitMut;
    match statement {
        DfStatement::Statement(s) => {
            let _ = s.visit(&mut IntegerLiterals::default());
        }
        DfStatement::Explain(explain) => type_integer_literals(&mut explain.statement),
        _ => {}
    }
}

/// The visitor of [`type_integer_literals`]: `keep` holds the numbers to leave as written, by
/// address (found before their own visit, in the node that holds them).
#[derive(Default)]
struct IntegerLiterals {
    keep: std::collections::HashSet<*const ast::Expr>,
}

impl IntegerLiterals {
    fn keep(&mut self, e: &ast::Expr) {
        if matches!(e, ast::Expr::Value(v) if matches!(v.value, ast::Value::Number(..))) {
            self.keep.insert(e as *const ast::Expr);
        }
    }
}

impl ast::VisitorMut for IntegerLiterals {
    type Break = ();

    fn pre_visit_query(&mut self, q: &mut ast::Query) -> std::ops::ControlFlow<()> {
        if let Some(ast::OrderBy {
            kind: ast::OrderByKind::Expressions(items),
            ..
        }) = &q.order_by
        {
            items.iter().for_each(|i| self.keep(&i.expr));
        }
        match &q.limit_clause {
            Some(ast::LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            }) => {
                limit.iter().for_each(|e| self.keep(e));
                offset.iter().for_each(|o| self.keep(&o.value));
                limit_by.iter().for_each(|e| self.keep(e));
            }
            Some(ast::LimitClause::OffsetCommaLimit { offset, limit }) => {
                self.keep(offset);
                self.keep(limit);
            }
            None => {}
        }
        if let Some(quantity) = q.fetch.as_ref().and_then(|f| f.quantity.as_ref()) {
            self.keep(quantity);
        }
        std::ops::ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, s: &mut ast::Select) -> std::ops::ControlFlow<()> {
        if let ast::GroupByExpr::Expressions(exprs, _) = &s.group_by {
            exprs.iter().for_each(|e| self.keep(e));
        }
        std::ops::ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &mut ast::Expr) -> std::ops::ControlFlow<()> {
        match e {
            ast::Expr::Function(f) => {
                if let ast::FunctionArguments::List(list) = &f.args {
                    for arg in &list.args {
                        match arg {
                            ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(x))
                            | ast::FunctionArg::Named {
                                arg: ast::FunctionArgExpr::Expr(x),
                                ..
                            }
                            | ast::FunctionArg::ExprNamed {
                                arg: ast::FunctionArgExpr::Expr(x),
                                ..
                            } => self.keep(x),
                            _ => {}
                        }
                    }
                }
                if let Some(ast::WindowType::WindowSpec(spec)) = &f.over
                    && let Some(frame) = &spec.window_frame
                {
                    for bound in std::iter::once(&frame.start_bound).chain(&frame.end_bound) {
                        if let ast::WindowFrameBound::Preceding(Some(x))
                        | ast::WindowFrameBound::Following(Some(x)) = bound
                        {
                            self.keep(x);
                        }
                    }
                }
            }
            ast::Expr::Interval(interval) => self.keep(&interval.value),
            _ => {}
        }
        std::ops::ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, e: &mut ast::Expr) -> std::ops::ControlFlow<()> {
        let fits = matches!(
            e,
            ast::Expr::Value(v) if matches!(&v.value, ast::Value::Number(n, false) if n.parse::<i32>().is_ok())
        );
        if fits && !self.keep.contains(&(e as *const ast::Expr)) {
            let literal = std::mem::replace(e, ast::Expr::Value(ast::Value::Null.into()));
            *e = ast::Expr::Cast {
                kind: ast::CastKind::Cast,
                expr: Box::new(literal),
                data_type: ast::DataType::Int(None),
                array: false,
                format: None,
            };
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// Whether `e` is computed from constants alone (no columns, outer references, parameters or
/// volatile functions), so DataFusion's simplifier would fold it.
fn constant(e: &Expr) -> bool {
    !e.any_column_refs()
        && !e.is_volatile()
        && !e
            .exists(|e| {
                Ok(matches!(
                    e,
                    Expr::Placeholder(_) | Expr::ScalarSubquery(_) | Expr::OuterReferenceColumn(..)
                ))
            })
            .unwrap_or(true)
}

/// Analyzer rule (after type coercion): integer arithmetic on constants only becomes
/// [`IntegerArithmetic`] before DataFusion's simplifier folds it. See the module doc.
#[derive(Debug, Default)]
pub struct CheckedConstantArithmetic;

impl AnalyzerRule for CheckedConstantArithmetic {
    fn name(&self) -> &str {
        "checked_constant_arithmetic"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            let schema = merge_schema(&plan.inputs());
            plan.map_expressions(|e| check_arithmetic(e, &schema, &constant, false))
        })
        .map(|t| t.data)
    }
}

/// Optimizer rule (after pushdown to SQL sources): every integer `+`, `-` and `*` left in the plan
/// becomes [`IntegerArithmetic`], and every numeric (`Decimal128`) one
/// [`NumericArithmetic`] (same answers, computed in 64-bit halves where the operands fit; see
/// [`crate::decimals`]). Scans keep the operator (their filters are the source's to translate), as
/// do extension nodes. See the module doc.
#[derive(Debug, Default)]
pub struct CheckedIntegerArithmetic;

impl OptimizerRule for CheckedIntegerArithmetic {
    fn name(&self) -> &str {
        "checked_integer_arithmetic"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        if matches!(plan, LogicalPlan::TableScan(_) | LogicalPlan::Extension(_)) {
            return Ok(Transformed::no(plan));
        }
        let schema = merge_schema(&plan.inputs());
        plan.map_expressions(|e| check_arithmetic(e, &schema, &|_| true, true))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;

    async fn answer(ctx: &SessionContext, sql: &str) -> std::result::Result<String, String> {
        let batches = ctx
            .sql(sql)
            .await
            .map_err(|e| e.to_string())?
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        Ok(
            datafusion::arrow::util::pretty::pretty_format_batches(&batches)
                .unwrap()
                .to_string(),
        )
    }

    #[tokio::test]
    async fn integer_overflow_is_refused_and_in_range_answers_stay() {
        let state = datafusion::execution::SessionStateBuilder::new()
            .with_default_features()
            .with_analyzer_rule(std::sync::Arc::new(super::CheckedConstantArithmetic))
            .with_optimizer_rule(std::sync::Arc::new(super::CheckedIntegerArithmetic))
            .build();
        let ctx = SessionContext::new_with_state(state);
        for f in super::functions() {
            ctx.register_udf(f);
        }
        for (sql, words) in [
            ("SELECT 2147483647::int + 1::int", "integer out of range"),
            (
                "SELECT a * 2::int FROM (VALUES (2000000000::int)) t(a)",
                "integer out of range",
            ),
            (
                "SELECT a - 1::smallint FROM (VALUES ((-32768)::smallint)) t(a)",
                "smallint out of range",
            ),
            (
                "SELECT 9223372036854775807 + a FROM (VALUES (1)) t(a)",
                "bigint out of range",
            ),
            (
                "SELECT int4pl(2147483647::int, 1::int)",
                "integer out of range",
            ),
            ("SELECT -(-2147483648)::int", "integer out of range"),
            (
                "SELECT -a FROM (VALUES ((-32768)::smallint)) t(a)",
                "smallint out of range",
            ),
            (
                "SELECT -a FROM (VALUES (-9223372036854775807 - 1)) t(a)",
                "bigint out of range",
            ),
        ] {
            let err = answer(&ctx, sql).await.expect_err(sql);
            assert!(err.contains(words), "{sql}: {err}");
        }
        let ok = answer(
            &ctx,
            "SELECT a + b AS s, a * b, a - b, int8mul(a, 3) FROM (VALUES (2, 3), (NULL, 1)) t(a, b)",
        )
        .await
        .unwrap();
        assert!(ok.contains("| 5 | 6 "), "{ok}");
        let negated = answer(
            &ctx,
            "SELECT -a, -(-2147483647)::int FROM (VALUES (5::int)) t(a)",
        )
        .await
        .unwrap();
        assert!(negated.contains("| -5 "), "{negated}");
        assert!(negated.contains("2147483647"), "{negated}");
        // The column name is the operator's.
        let df = ctx
            .sql("SELECT a + b FROM (VALUES (1::int, 2::int)) t(a, b)")
            .await
            .unwrap();
        assert_eq!(df.schema().field(0).name(), "t.a + t.b");
    }
}
