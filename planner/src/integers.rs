//! PostgreSQL's integers: literal typing and overflow.
//!
//! PostgreSQL types an integer literal that fits in 32 bits as `integer` and a larger one as
//! `bigint`; DataFusion's SQL planner types every one `Int64`. So `int4_column + 1` was a `bigint`
//! here and `2147483647::int + 1` was `2147483648`; [`type_integer_literals`] retypes the literals
//! of a planned statement as PostgreSQL does (`SELECT 1` is an `int4`, `a + 1` keeps `a`'s type).
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
//! Other integer types (`tinyint`, unsigned: MySQL's) keep DataFusion's arithmetic, as do `/` and
//! `%` (Arrow's kernels already refuse `i32::MIN / -1`) and unary minus.

use std::sync::Arc;

use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::arrow::error::ArrowError;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result, ScalarValue, internal_err};
use datafusion::logical_expr::expr::{BinaryExpr, ScalarFunction};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ReturnFieldArgs, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Union, Volatility,
};
use datafusion::optimizer::analyzer::AnalyzerRule;
use datafusion::optimizer::analyzer::type_coercion::{TypeCoercionRewriter, coerce_union_schema};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

/// `left op right` on two values of one signed integer type, refusing overflow as PostgreSQL
/// does. Arguments: two arrays or scalars of [`IntegerArithmetic::ty`]; result: the same type.
/// Errors: Arrow's `ArithmeticOverflow` with PostgreSQL's message (`integer out of range`), which
/// the front end reports as `22003`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct IntegerArithmetic {
    name: &'static str,
    op: Operator,
    ty: DataType,
    signature: Signature,
}

/// The types checked, with PostgreSQL's word for each in its error message.
const TYPES: [(DataType, &str); 3] = [
    (DataType::Int16, "smallint"),
    (DataType::Int32, "integer"),
    (DataType::Int64, "bigint"),
];
/// The operators checked.
const OPERATORS: [Operator; 3] = [Operator::Plus, Operator::Minus, Operator::Multiply];
/// PostgreSQL's names of the operators' implementations, per type (rows) and operator (columns).
const NAMES: [[&str; 3]; 3] = [
    ["int2pl", "int2mi", "int2mul"],
    ["int4pl", "int4mi", "int4mul"],
    ["int8pl", "int8mi", "int8mul"],
];

impl IntegerArithmetic {
    fn new(op: Operator, ty: DataType) -> Option<Self> {
        let t = TYPES.iter().position(|(x, _)| *x == ty)?;
        let o = OPERATORS.iter().position(|x| *x == op)?;
        Some(Self {
            name: NAMES[t][o],
            op,
            signature: Signature::exact(vec![ty.clone(), ty.clone()], Volatility::Immutable),
            ty,
        })
    }

    /// The operator this function computes.
    pub fn op(&self) -> Operator {
        self.op
    }

    /// The integer type of both arguments and the result.
    pub fn ty(&self) -> &DataType {
        &self.ty
    }

    fn type_word(&self) -> &'static str {
        TYPES
            .iter()
            .find(|(t, _)| *t == self.ty)
            .map_or("integer", |(_, w)| *w)
    }
}

/// Every checked function, for registration in a session (`int2pl` ... `int8mul`).
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
        let [left, right] = args else {
            return internal_err!("{} takes two arguments", self.name);
        };
        Ok(format!(
            "{} {} {}",
            left.schema_name(),
            self.op,
            right.schema_name()
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [left, right] = args.args.as_slice() else {
            return internal_err!("{} takes two arguments", self.name);
        };
        let kernel = match self.op {
            Operator::Plus => numeric::add,
            Operator::Minus => numeric::sub,
            _ => numeric::mul,
        };
        let out_of_range = |e: ArrowError| match e {
            ArrowError::ArithmeticOverflow(_) => {
                ArrowError::ArithmeticOverflow(format!("{} out of range", self.type_word()))
            }
            e => e,
        };
        Ok(match (left, right) {
            (ColumnarValue::Scalar(l), ColumnarValue::Scalar(r)) => {
                let array = kernel(&l.to_scalar()?, &r.to_scalar()?).map_err(out_of_range)?;
                ColumnarValue::Scalar(ScalarValue::try_from_array(&array, 0)?)
            }
            (ColumnarValue::Array(l), ColumnarValue::Scalar(r)) => {
                ColumnarValue::Array(kernel(l, &r.to_scalar()?).map_err(out_of_range)?)
            }
            (ColumnarValue::Scalar(l), ColumnarValue::Array(r)) => {
                ColumnarValue::Array(kernel(&l.to_scalar()?, r).map_err(out_of_range)?)
            }
            (ColumnarValue::Array(l), ColumnarValue::Array(r)) => {
                ColumnarValue::Array(kernel(l, r).map_err(out_of_range)?)
            }
        })
    }
}

/// `e` with its integer `+`, `-` and `*` (those `only` accepts) replaced by [`IntegerArithmetic`];
/// `schema` types the operands.
fn check_arithmetic(
    e: Expr,
    schema: &DFSchema,
    only: &dyn Fn(&Expr) -> bool,
) -> Result<Transformed<Expr>> {
    e.transform_up(|e| {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &e else {
            return Ok(Transformed::no(e));
        };
        if !only(&e) {
            return Ok(Transformed::no(e));
        }
        let (Ok(lt), Ok(rt)) = (left.get_type(schema), right.get_type(schema)) else {
            return Ok(Transformed::no(e));
        };
        if lt != rt {
            return Ok(Transformed::no(e));
        }
        let Some(f) = IntegerArithmetic::new(*op, lt) else {
            return Ok(Transformed::no(e));
        };
        let args = vec![left.as_ref().clone(), right.as_ref().clone()];
        Ok(Transformed::yes(Expr::ScalarFunction(
            ScalarFunction::new_udf(Arc::new(ScalarUDF::new_from_impl(f)), args),
        )))
    })
}

/// Retypes the integer literals of `plan`, as DataFusion's SQL planner made it (before parameters
/// are bound and before analysis), as PostgreSQL types them: `Int32` when the value fits in 32 bits
/// (PostgreSQL's `integer`), else `Int64` as before. Schemas above are recomputed (a union's from
/// its inputs' common types, which it lacked before: `SELECT int4_col UNION ALL SELECT int8_col`
/// was described to clients as `integer`); type coercion (in the analyzer, later) casts where an
/// operand of another type meets them. Output names stay
/// DataFusion's (`a + Int64(1)`; the front end names columns from the SQL text).
///
/// Left as they are: `LIMIT`/`OFFSET` (DataFusion wants `Int64` there), `VALUES` rows (their
/// column types are fixed by the planner: `(VALUES (1)) t(a)` stays `bigint`), and literal
/// arguments of aggregate and window functions (`count(*)` is DataFusion's `count(1)`, recognized by
/// that `Int64` literal; `ntile(4)`, `lag(x, 1)`). Parameters (`$1`) keep the client's type.
///
/// Errors: none of its own; DataFusion's, if a schema cannot be recomputed.
pub fn type_integer_literals(plan: LogicalPlan) -> Result<LogicalPlan> {
    plan.transform_up_with_subqueries(|plan| {
        let plan = if matches!(plan, LogicalPlan::Limit(_) | LogicalPlan::Values(_)) {
            plan
        } else {
            // Output names stay as planned (`a + Int64(1)`): the nodes above refer to them.
            let names = NamePreserver::new(&plan);
            plan.map_expressions(|e| {
                let name = names.save(&e);
                Ok(e.transform_down(retype_literal)?
                    .update_data(|e| name.restore(e)))
            })?
            .data
        };
        // Every node's schema again, as its expressions' or its inputs' types may have changed. A
        // union's types are its inputs' common ones, as the analyzer will make them (DataFusion's
        // planner gives a union its first input's types, and clients are told the planned ones).
        Ok(Transformed::yes(match plan {
            LogicalPlan::Union(union) => {
                // From the inputs alone: the planned schema's types would count as one more input.
                let schema = Arc::new(coerce_union_schema(&union.inputs)?);
                TypeCoercionRewriter::coerce_union(Union {
                    inputs: union.inputs,
                    schema,
                })?
            }
            plan => plan.recompute_schema()?,
        }))
    })
    .map(|t| t.data)
}

fn retype_literal(e: Expr) -> Result<Transformed<Expr>> {
    use datafusion::common::tree_node::TreeNodeRecursion;
    let skip_literal_args = |args: &mut Vec<Expr>| -> Result<bool> {
        let mut changed = false;
        for arg in args.iter_mut() {
            if !matches!(arg, Expr::Literal(..)) {
                let t = std::mem::replace(arg, Expr::Literal(ScalarValue::Null, None))
                    .transform_down(retype_literal)?;
                changed |= t.transformed;
                *arg = t.data;
            }
        }
        Ok(changed)
    };
    match e {
        Expr::Literal(ScalarValue::Int64(Some(v)), metadata) => match i32::try_from(v) {
            Ok(v) => Ok(Transformed::yes(Expr::Literal(
                ScalarValue::Int32(Some(v)),
                metadata,
            ))),
            Err(_) => Ok(Transformed::no(Expr::Literal(
                ScalarValue::Int64(Some(v)),
                metadata,
            ))),
        },
        Expr::AggregateFunction(mut f) => {
            let changed = skip_literal_args(&mut f.params.args)?;
            Ok(Transformed::new(
                Expr::AggregateFunction(f),
                changed,
                TreeNodeRecursion::Jump,
            ))
        }
        Expr::WindowFunction(mut f) => {
            let changed = skip_literal_args(&mut f.params.args)?;
            Ok(Transformed::new(
                Expr::WindowFunction(f),
                changed,
                TreeNodeRecursion::Jump,
            ))
        }
        e => Ok(Transformed::no(e)),
    }
}

/// Whether `e` is computed from constants alone (no columns, parameters or volatile functions), so
/// DataFusion's simplifier would fold it.
fn constant(e: &Expr) -> bool {
    !e.any_column_refs()
        && !e.is_volatile()
        && !e
            .exists(|e| Ok(matches!(e, Expr::Placeholder(_) | Expr::ScalarSubquery(_))))
            .unwrap_or(true)
}

/// The schema `plan`'s expressions are typed by: its inputs', merged.
fn input_schema(plan: &LogicalPlan) -> DFSchema {
    let mut schema = DFSchema::empty();
    for input in plan.inputs() {
        schema.merge(input.schema());
    }
    schema
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
            let schema = input_schema(&plan);
            plan.map_expressions(|e| check_arithmetic(e, &schema, &constant))
        })
        .map(|t| t.data)
    }
}

/// Optimizer rule (after pushdown to SQL sources): every integer `+`, `-` and `*` left in the plan
/// becomes [`IntegerArithmetic`]. Scans keep the operator (their filters are the source's to
/// translate), as do extension nodes. See the module doc.
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
        let schema = input_schema(&plan);
        plan.map_expressions(|e| check_arithmetic(e, &schema, &|_| true))
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
        // The column name is the operator's.
        let df = ctx
            .sql("SELECT a + b FROM (VALUES (1::int, 2::int)) t(a, b)")
            .await
            .unwrap();
        assert_eq!(df.schema().field(0).name(), "t.a + t.b");
    }
}
