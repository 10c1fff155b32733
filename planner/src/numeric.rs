//! PostgreSQL's scale for numeric division. Arrow divides decimals at the dividend's scale plus 4
//! (`1.0 / 3` is `0.33333`); PostgreSQL keeps at least 16 significant digits (`select_div_scale`:
//! `10.0 / 4` is `2.5000000000000000`). [`NumericDivisionScale`] raises the dividend's scale before
//! the division so the quotient has one digit more than [`MIN_DIVISION_SCALE`] (and never fewer
//! than either operand's scale), within Decimal128's 38 digits, and rounds that digit off as
//! PostgreSQL does (Arrow truncates). PostgreSQL's scale follows each division's operands (16
//! significant digits: 16 decimals when dividend and divisor have the same base-10000 weight, 20
//! when the dividend is smaller, 12 when it is 10^4 times larger); an Arrow column has one scale
//! for every row, so such quotients show more or fewer digits than PostgreSQL's, equal when rounded
//! to the shorter.
//!
//! The same rule makes `sum` of a `bigint` a `numeric`, as PostgreSQL's is (`sum_bigint_as_numeric`),
//! a cast of a numeric to an integer round and one of a float round half to even
//! (`integer_casts_round`, [`rint`]), `ceil`/`floor`/`trunc` of a
//! numeric have scale 0 (`whole_numeric_scale_zero`), and `date_trunc` of a date give a
//! timestamptz ([`DateTruncOfDate`], a rule of its own, before DataFusion's type coercion).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type, TimeUnit};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, DataFusionError, Result, ScalarValue, plan_err};
use datafusion::logical_expr::expr::Cast;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility, WindowFunctionDefinition,
};
use datafusion::optimizer::AnalyzerRule;

/// The fewest fractional digits a numeric quotient gets (PostgreSQL's `NUMERIC_MIN_SIG_DIGITS`).
pub const MIN_DIVISION_SCALE: i8 = 16;

/// Arrow's decimal division adds this many digits to the dividend's scale.
const ARROW_DIVISION_INCREMENT: i8 = 4;

/// The analyzer rule (after DataFusion's type coercion, before constant folding); see the module
/// docs. Output names are kept.
#[derive(Debug, Default)]
pub struct NumericDivisionScale;

impl AnalyzerRule for NumericDivisionScale {
    fn name(&self) -> &str {
        "numeric_division_scale"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(rewrite_node)
            .map(|t| t.data)
    }
}

datafusion::common::extensions_options! {
    /// The session's `TimeZone` as the client set it, for analyzer rules: DataFusion's
    /// `execution.time_zone` holds only UTC or a fixed offset (the front end leaves it at UTC for
    /// a named zone). Registered in every session ([`crate::session::new_session_context`]) so that
    /// workers take the setting a task carries.
    pub struct ClientZone {
        /// The client's `TimeZone` setting (`UTC`, `+05:30`, `Europe/Berlin`).
        pub time_zone: String, default = "UTC".to_string()
    }
}

impl datafusion::common::config::ConfigExtension for ClientZone {
    const PREFIX: &'static str = "tributary_client";
}

impl ClientZone {
    /// The setting for the client's `TimeZone` `zone`.
    pub fn of(zone: &str) -> Self {
        Self {
            time_zone: zone.to_string(),
        }
    }

    /// The zone as DataFusion's `execution.time_zone` takes it: `+00:00` for UTC (any spelling
    /// [`crate::statement_pushdown::ClientTimeZone::is_utc`] knows), the offset itself for
    /// `+HH:MM` / `-HH:MM`, `None` for a named zone (DataFusion then stays on UTC).
    pub fn datafusion_offset(&self) -> Option<String> {
        let zone = &self.time_zone;
        if crate::statement_pushdown::ClientTimeZone(zone.clone()).is_utc() {
            Some("+00:00".into())
        } else if zone.starts_with(['+', '-']) && zone.len() == 6 && zone.as_bytes()[3] == b':' {
            Some(zone.clone())
        } else {
            None
        }
    }

    /// Whether DataFusion's time zone is the client's (UTC or a fixed offset).
    pub fn fixed(&self) -> bool {
        self.datafusion_offset().is_some()
    }
}

/// The analyzer rule giving `date_trunc` of a date PostgreSQL's type (see
/// `date_trunc_of_date_is_timestamptz`). It runs before DataFusion's type coercion, which casts
/// the date to a timestamp without zone (as a user's `day::timestamp` does, which stays a
/// timestamp).
#[derive(Debug, Default)]
pub struct DateTruncOfDate;

impl AnalyzerRule for DateTruncOfDate {
    fn name(&self) -> &str {
        "date_trunc_of_date"
    }

    fn analyze(&self, plan: LogicalPlan, config: &ConfigOptions) -> Result<LogicalPlan> {
        let Some(zone) = config.execution.time_zone.as_deref().map(Arc::<str>::from) else {
            return Ok(plan);
        };
        // A named client zone leaves DataFusion on UTC (the front end's `apply_time_zone`): the
        // date's midnight there is unknown here, so DataFusion's timestamp stays.
        let client = config.extensions.get::<ClientZone>();
        if client.is_some_and(|c| !c.fixed()) {
            return Ok(plan);
        }
        plan.transform_up_with_subqueries(|node| {
            rewrite_expressions(node, |e, schema| {
                date_trunc_of_date_is_timestamptz(e, schema, &zone)
            })
        })
        .map(|t| t.data)
    }
}

/// The analyzer rule (after the type coercion that follows [`NumericDivisionScale`]) casting an
/// `INSERT`'s input back to its target's column types where analysis changed them (`INSERT INTO t
/// SELECT sum(bigint_col)`: DataFusion's SQL planner matched the input to the table while the sum
/// was still a bigint, and writers take the input's types as the table's).
#[derive(Debug, Default)]
pub struct InsertTargetTypes;

impl AnalyzerRule for InsertTargetTypes {
    fn name(&self) -> &str {
        "insert_target_types"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        cast_insert_input(plan)
    }
}

/// See [`InsertTargetTypes`].
fn cast_insert_input(plan: LogicalPlan) -> Result<LogicalPlan> {
    use datafusion::logical_expr::{Projection, WriteOp};
    let LogicalPlan::Dml(mut dml) = plan else {
        return Ok(plan);
    };
    if !matches!(dml.op, WriteOp::Insert(_)) {
        return Ok(LogicalPlan::Dml(dml));
    }
    let target = dml.target.schema();
    let input = dml.input.schema();
    if input.fields().len() != target.fields().len()
        || input
            .fields()
            .iter()
            .zip(target.fields())
            .all(|(i, t)| i.data_type() == t.data_type())
    {
        return Ok(LogicalPlan::Dml(dml));
    }
    let exprs = input
        .columns()
        .into_iter()
        .zip(target.fields())
        .map(|(column, field)| {
            let name = column.name.clone();
            let value = Expr::Column(column);
            if value.get_type(input)? == *field.data_type() {
                Ok(value)
            } else {
                Ok(Expr::Cast(Cast::new(Box::new(value), field.data_type().clone())).alias(name))
            }
        })
        .collect::<Result<Vec<_>>>()?;
    dml.input = std::sync::Arc::new(LogicalPlan::Projection(Projection::try_new(
        exprs,
        std::sync::Arc::clone(&dml.input),
    )?));
    Ok(LogicalPlan::Dml(dml))
}

fn rewrite_node(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    rewrite_expressions(plan, |e, schema| {
        scale_division(e, schema)?
            .transform_data(|e| sum_bigint_as_numeric(e, schema))?
            .transform_data(|e| integer_casts_round(e, schema))?
            .transform_data(|e| whole_numeric_scale_zero(e, schema))
    })
}

/// `plan`'s expressions rewritten bottom-up by `rewrite` (given each expression typed against the
/// node's one input), output names kept. Scans, extension nodes and nodes without exactly one
/// input (joins, `VALUES`) are left as they are.
fn rewrite_expressions(
    plan: LogicalPlan,
    rewrite: impl Fn(Expr, &DFSchema) -> Result<Transformed<Expr>>,
) -> Result<Transformed<LogicalPlan>> {
    if matches!(plan, LogicalPlan::TableScan(_) | LogicalPlan::Extension(_)) {
        return Ok(Transformed::no(plan));
    }
    let inputs = plan.inputs();
    let [input] = inputs.as_slice() else {
        return Ok(Transformed::no(plan));
    };
    let schema = Arc::clone(input.schema());
    let names = NamePreserver::new(&plan);
    plan.map_expressions(|expr| {
        let name = names.save(&expr);
        let rewritten = expr.transform_up(|e| rewrite(e, &schema))?;
        Ok(rewritten.update_data(|e| name.restore(e)))
    })
}

/// `ceil`, `floor` and one-argument `trunc` of a numeric are numerics of scale 0, as PostgreSQL's
/// (`ceil(120.75)` is `121`); DataFusion's keep the argument's scale (`121.00`). The value is the
/// same: a cast to scale 0 drops zero digits.
fn whole_numeric_scale_zero(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    match &e {
        Expr::ScalarFunction(f)
            if matches!(f.func.name(), "ceil" | "floor" | "trunc") && f.args.len() == 1 =>
        {
            match f.args[0].get_type(schema) {
                Ok(DataType::Decimal128(precision, scale)) if scale > 0 => Ok(Transformed::yes(
                    Expr::Cast(Cast::new(Box::new(e), DataType::Decimal128(precision, 0))),
                )),
                _ => Ok(Transformed::no(e)),
            }
        }
        _ => Ok(Transformed::no(e)),
    }
}

/// A cast to an integer type rounds as PostgreSQL's casts do, where Arrow's truncates: a numeric
/// half away from zero (`numeric_int4`: `10.5::int` is 11, `-2.5::int` is -3; DataFusion's `round`
/// of a decimal), a `real`/`double precision` half to even (`dtoi4`/`dtoi8`, C's `rint`:
/// `2.5::float8::int` is 2, `3.5` is 4, `31.75` is 32; [`rint`]). The cast itself still refuses
/// values out of the integer's range (22003).
fn integer_casts_round(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    match e {
        Expr::Cast(Cast { expr, field }) if field.data_type().is_integer() => {
            let round = match expr.get_type(schema) {
                Ok(DataType::Decimal128(_, s) | DataType::Decimal256(_, s)) if s > 0 => {
                    Some(datafusion::functions::math::round())
                }
                // Not again when a plan is analyzed twice.
                Ok(DataType::Float32 | DataType::Float64) if !matches!(expr.as_ref(), Expr::ScalarFunction(f) if f.func.name() == "__rint") => {
                    Some(rint())
                }
                _ => None,
            };
            let value = match round {
                Some(round) => Transformed::yes(round.call(vec![*expr])),
                None => Transformed::no(*expr),
            };
            Ok(value.update_data(|value| Expr::Cast(Cast::new_from_field(Box::new(value), field))))
        }
        other => Ok(Transformed::no(other)),
    }
}

/// `date_trunc(field, date)` is a `timestamptz` in PostgreSQL (the date is cast to one, at
/// midnight in the session's zone: `2024-01-01 00:00:00+00`); DataFusion's is a timestamp without
/// zone. Only for UTC and fixed-offset sessions ([`ClientZone`]). The date is cast to a timestamp and then to one in the session's zone (`zone`, the
/// offset DataFusion's `execution.time_zone` holds), which Arrow reads as local midnight.
fn date_trunc_of_date_is_timestamptz(
    e: Expr,
    schema: &DFSchema,
    zone: &Arc<str>,
) -> Result<Transformed<Expr>> {
    match e {
        Expr::ScalarFunction(mut f)
            if f.func.name() == "date_trunc"
                && f.args.len() == 2
                && matches!(
                    f.args[1].get_type(schema),
                    Ok(DataType::Date32 | DataType::Date64)
                ) =>
        {
            let date = f.args.pop().expect("two arguments");
            let local = Expr::Cast(Cast::new(
                Box::new(date),
                DataType::Timestamp(TimeUnit::Nanosecond, None),
            ));
            f.args.push(Expr::Cast(Cast::new(
                Box::new(local),
                DataType::Timestamp(TimeUnit::Nanosecond, Some(Arc::clone(zone))),
            )));
            Ok(Transformed::yes(Expr::ScalarFunction(f)))
        }
        other => Ok(Transformed::no(other)),
    }
}

/// `rint(x)`: `x` (`real` or `double precision`) rounded to a whole number, halves to even, as C's
/// `rint` under the default rounding mode, which PostgreSQL's float-to-integer casts use. Internal
/// (named `__rint`); registered in every session so workers decode plans holding it.
pub fn rint() -> Arc<ScalarUDF> {
    static RINT: std::sync::LazyLock<Arc<ScalarUDF>> =
        std::sync::LazyLock::new(|| Arc::new(ScalarUDF::new_from_impl(Rint::default())));
    Arc::clone(&RINT)
}

/// See [`rint`].
#[derive(Debug, PartialEq, Eq, Hash)]
struct Rint {
    signature: Signature,
}

impl Default for Rint {
    fn default() -> Self {
        Self {
            signature: Signature::uniform(
                1,
                vec![DataType::Float32, DataType::Float64],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for Rint {
    fn name(&self) -> &str {
        "__rint"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [ty @ (DataType::Float32 | DataType::Float64)] => Ok(ty.clone()),
            _ => plan_err!("__rint takes one real or double precision"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [value] = <[ColumnarValue; 1]>::try_from(args.args)
            .map_err(|_| DataFusionError::Plan("__rint takes one argument".into()))?;
        let array = match value {
            ColumnarValue::Scalar(ScalarValue::Float64(v)) => {
                return Ok(ColumnarValue::Scalar(ScalarValue::Float64(
                    v.map(f64::round_ties_even),
                )));
            }
            ColumnarValue::Scalar(ScalarValue::Float32(v)) => {
                return Ok(ColumnarValue::Scalar(ScalarValue::Float32(
                    v.map(f32::round_ties_even),
                )));
            }
            ColumnarValue::Scalar(other) => {
                return plan_err!("__rint takes a real or double precision, not {other:?}");
            }
            ColumnarValue::Array(array) => array,
        };
        let out: ArrayRef = match array.data_type() {
            DataType::Float64 => Arc::new(
                array
                    .as_primitive::<Float64Type>()
                    .unary::<_, Float64Type>(f64::round_ties_even),
            ),
            DataType::Float32 => Arc::new(
                array
                    .as_primitive::<Float32Type>()
                    .unary::<_, Float32Type>(f32::round_ties_even),
            ),
            other => return plan_err!("__rint takes a real or double precision, not {other}"),
        };
        Ok(ColumnarValue::Array(out))
    }
}

/// `sum` of a `bigint` as PostgreSQL types it: `numeric` (its `int8_sum`), never wrapping around,
/// where DataFusion's is an `Int64` that wraps. The argument is cast to `Decimal128(38, 0)`, whose
/// sum is `Decimal128(38, 0)`; same digits, `numeric` to clients. `sum` of `smallint` and `integer`
/// stays `bigint`, as in PostgreSQL. As an aggregate and as a window function.
fn sum_bigint_as_numeric(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let widen = |args: &mut Vec<Expr>| -> Result<bool> {
        // Type coercion already cast a smaller integer to Int64 for DataFusion's sum.
        let widened_integer = |arg: &Expr| match arg {
            Expr::Cast(Cast { expr, .. }) => matches!(
                expr.get_type(schema),
                Ok(DataType::Int8 | DataType::Int16 | DataType::Int32)
            ),
            _ => false,
        };
        if let [arg] = args.as_mut_slice()
            && arg.get_type(schema)? == DataType::Int64
            && !widened_integer(arg)
        {
            let value = std::mem::replace(arg, Expr::Literal(ScalarValue::Null, None));
            *arg = Expr::Cast(Cast::new(Box::new(value), DataType::Decimal128(38, 0)));
            return Ok(true);
        }
        Ok(false)
    };
    match e {
        Expr::AggregateFunction(mut f) if f.func.name() == "sum" => {
            let changed = widen(&mut f.params.args)?;
            Ok(Transformed::new_transformed(
                Expr::AggregateFunction(f),
                changed,
            ))
        }
        Expr::WindowFunction(mut w) if matches!(&w.fun, WindowFunctionDefinition::AggregateUDF(f) if f.name() == "sum") =>
        {
            let changed = widen(&mut w.params.args)?;
            Ok(Transformed::new_transformed(
                Expr::WindowFunction(w),
                changed,
            ))
        }
        e => Ok(Transformed::no(e)),
    }
}

/// `a / b` of two decimals with `a` cast to the scale that gives the quotient PostgreSQL's.
fn scale_division(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::BinaryExpr(BinaryExpr {
        left,
        op: Operator::Divide,
        right,
    }) = &e
    else {
        return Ok(Transformed::no(e));
    };
    let (Ok(DataType::Decimal128(p1, s1)), Ok(DataType::Decimal128(_, s2))) =
        (left.get_type(schema), right.get_type(schema))
    else {
        return Ok(Transformed::no(e));
    };
    let Some(to) = dividend_type(p1, s1, s2) else {
        return Ok(Transformed::no(e));
    };
    let left = Expr::Cast(Cast::new(left.clone(), to));
    let quotient = Expr::BinaryExpr(BinaryExpr::new(
        Box::new(left),
        Operator::Divide,
        right.clone(),
    ));
    // One digit more than kept, then rounded (half away from zero, as PostgreSQL rounds its last
    // digit; Arrow's division truncates).
    let kept = MIN_DIVISION_SCALE.max(s1).max(s2);
    match quotient.get_type(schema)? {
        DataType::Decimal128(p, s) if s > kept => {
            let to = DataType::Decimal128(p - (s - kept) as u8, kept);
            Ok(Transformed::yes(Expr::Cast(Cast::new(
                Box::new(quotient),
                to,
            ))))
        }
        _ => Ok(Transformed::yes(quotient)),
    }
}

/// The type a `Decimal128(p1, s1)` dividend of a divisor of scale `s2` is cast to, `None` when it
/// already gives enough digits or cannot give more within 38.
fn dividend_type(p1: u8, s1: i8, s2: i8) -> Option<DataType> {
    let target = MIN_DIVISION_SCALE.max(s1).max(s2);
    let integer_digits = i16::from(p1) - i16::from(s1);
    // One digit more than the quotient keeps, for rounding.
    let wanted = i16::from(target + 1 - ARROW_DIVISION_INCREMENT).max(i16::from(s1));
    // Arrow multiplies the dividend by 10^(4 + s2) in 128 bits before dividing: keep that within 38
    // digits too.
    let room = 38 - i16::from(ARROW_DIVISION_INCREMENT) - i16::from(s2.max(0)) - integer_digits;
    let scale = wanted.min(room).max(i16::from(s1));
    if scale <= i16::from(s1) {
        return None;
    }
    Some(DataType::Decimal128(
        (integer_digits + scale) as u8,
        scale as i8,
    ))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::DataType;
    use datafusion::prelude::{SessionConfig, SessionContext};

    use super::*;

    #[test]
    fn the_dividend_gets_thirteen_digits_so_the_quotient_gets_sixteen_rounded() {
        assert_eq!(dividend_type(3, 1, 0), Some(DataType::Decimal128(15, 13)));
        assert_eq!(dividend_type(15, 2, 2), Some(DataType::Decimal128(26, 13)));
        // Already enough, or no room left within 38 digits.
        assert_eq!(dividend_type(30, 14, 2), None);
        assert_eq!(dividend_type(38, 0, 0), None);
        assert_eq!(dividend_type(32, 2, 0), Some(DataType::Decimal128(34, 4)));
        assert_eq!(dividend_type(20, 0, 0), Some(DataType::Decimal128(33, 13)));
        // A divisor of scale 2 leaves two digits fewer.
        assert_eq!(dividend_type(30, 0, 2), Some(DataType::Decimal128(32, 2)));
    }

    #[tokio::test]
    async fn sum_of_bigint_is_numeric_and_keeps_its_name() {
        let ctx = SessionContext::new();
        ctx.add_analyzer_rule(std::sync::Arc::new(NumericDivisionScale));
        ctx.add_analyzer_rule(std::sync::Arc::new(
            datafusion::optimizer::analyzer::type_coercion::TypeCoercion::new(),
        ));
        ctx.add_analyzer_rule(std::sync::Arc::new(InsertTargetTypes));
        let df = ctx
            .sql(
                "SELECT sum(a) + 1, sum(b) FROM \
                 (VALUES (9223372036854775807, CAST(1 AS INT)), (1, CAST(2 AS INT))) t(a, b)",
            )
            .await
            .unwrap();
        // The types once analyzed (DataFusion's own plan has the types before).
        let schema = df.clone().into_optimized_plan().unwrap().schema().clone();
        assert_eq!(schema.field(0).name(), "sum(t.a) + Int64(1)");
        assert!(
            matches!(schema.field(0).data_type(), DataType::Decimal128(..)),
            "{schema:?}"
        );
        // sum of an integer stays bigint, as in PostgreSQL.
        assert_eq!(schema.field(1).data_type(), &DataType::Int64);
        let window = ctx
            .sql("SELECT sum(a) OVER () AS w FROM (VALUES (1), (2)) t(a)")
            .await
            .unwrap();
        assert_eq!(
            window
                .into_optimized_plan()
                .unwrap()
                .schema()
                .field(0)
                .data_type(),
            &DataType::Decimal128(38, 0)
        );
        let batches = df.collect().await.unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        // Past i64::MAX without wrapping around.
        assert!(text.contains("9223372036854775809"), "{text}");
        // INSERT keeps the table's types (a writer takes its input's types as the table's).
        ctx.sql("CREATE TABLE totals (n bigint)")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        ctx.sql("INSERT INTO totals SELECT sum(a) FROM (VALUES (1), (2)) t(a)")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let inserted = ctx
            .sql("SELECT n FROM totals")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(inserted[0].schema().field(0).data_type(), &DataType::Int64);
        assert_eq!(
            inserted[0]
                .column(0)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Int64Array>()
                .unwrap()
                .value(0),
            3
        );
    }

    #[tokio::test]
    async fn float_casts_round_and_date_trunc_of_a_date_is_timestamptz_unless_the_zone_is_named() {
        use datafusion::arrow::array::Int32Array;
        use datafusion::execution::SessionStateBuilder;
        for (client, zone) in [("UTC", Some("+00:00")), ("Europe/Berlin", None)] {
            let options = ClientZone::of(client);
            let config = SessionConfig::new()
                .with_option_extension(options)
                .set_str("datafusion.execution.time_zone", "+00:00");
            let state = SessionStateBuilder::new()
                .with_config(config)
                .with_default_features()
                .with_analyzer_rules(vec![
                    std::sync::Arc::new(DateTruncOfDate),
                    std::sync::Arc::new(
                        datafusion::optimizer::analyzer::type_coercion::TypeCoercion::new(),
                    ),
                    std::sync::Arc::new(NumericDivisionScale),
                ])
                .build();
            let ctx = SessionContext::new_with_state(state);
            let batches = ctx
                .sql(
                    "SELECT date_trunc('month', d) AS m, date_trunc('month', d::timestamp) AS t, \
                     (x / 4)::int AS r, ((x + 2)::real / 2)::int AS h \
                     FROM (VALUES (DATE '2024-01-15', 127.0::double)) v(d, x)",
                )
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
            let schema = batches[0].schema();
            let ns = datafusion::arrow::datatypes::TimeUnit::Nanosecond;
            assert_eq!(
                schema.field(0).data_type(),
                &DataType::Timestamp(ns, zone.map(Arc::from)),
                "{client}"
            );
            assert_eq!(schema.field(1).data_type(), &DataType::Timestamp(ns, None));
            // 31.75 rounds to 32 (Arrow's cast gave 31); 64.5 to 64, half to even.
            let ints = |i: usize| {
                batches[0]
                    .column(i)
                    .as_any()
                    .downcast_ref::<Int32Array>()
                    .unwrap()
                    .value(0)
            };
            assert_eq!((ints(2), ints(3)), (32, 64));
        }
    }

    #[tokio::test]
    async fn quotients_have_postgresql_scale_and_keep_their_names() {
        let config =
            SessionConfig::new().set_bool("datafusion.sql_parser.parse_float_as_decimal", true);
        let ctx = SessionContext::new_with_config(config);
        ctx.add_analyzer_rule(std::sync::Arc::new(NumericDivisionScale));
        let batches = ctx
            .sql("SELECT 10.0 / 4, 1.0 / 3, x / 7 AS q, 55.55 / 3 FROM (VALUES (1.50)) t(x)")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        assert!(text.contains("2.5000000000000000"), "{text}");
        assert!(text.contains("0.3333333333333333"), "{text}");
        assert!(text.contains("0.2142857142857143"), "{text}");
        assert!(text.contains("18.5166666666666667"), "{text}");
        let schema = batches[0].schema();
        assert_eq!(schema.field(2).name(), "q");
        assert!(!schema.field(0).name().contains("CAST"), "{schema:?}");
        // Quotients compared, combined and unioned with values of the old scale still plan.
        ctx.add_analyzer_rule(std::sync::Arc::new(
            datafusion::optimizer::analyzer::type_coercion::TypeCoercion::new(),
        ));
        for sql in [
            "SELECT count(*) FROM (VALUES (1.50), (7.25)) t(x) WHERE x / 7 > 0.5",
            "SELECT CASE WHEN x > 2 THEN x / 7 ELSE 0 END, coalesce(x / 7, 0) FROM (VALUES (1.50)) t(x)",
            "SELECT x / 7 FROM (VALUES (1.50)) t(x) UNION ALL SELECT x FROM (VALUES (2.25)) t(x)",
            "SELECT x / 7 IN (0.5, 1) FROM (VALUES (3.50)) t(x)",
        ] {
            let batches = ctx.sql(sql).await.unwrap().collect().await;
            assert!(batches.is_ok(), "{sql}: {batches:?}");
        }
    }
}
