//! PostgreSQL's limit on the size of one value (1 GiB), for the functions and aggregates that build
//! values whose size a user chooses: `repeat(text, n)`, `lpad`/`rpad(text, n [, fill])`,
//! `concat(...)`, `concat_ws(sep, ...)`, `string_agg(text, sep)` and `array_agg(x)` fail with `54000`
//! (program_limit_exceeded, "requested length too large"; PostgreSQL's own wording for the string
//! functions) when the value would pass 1 GiB, instead of allocating it (a few
//! `repeat('x', 2000000000)` at once exhausted the machine's memory).
//!
//! Each is DataFusion's own function wrapped: [`LengthLimited`] checks the arguments of a call and then
//! runs the scalar function unchanged; [`SizeLimitedAggregate`] counts the bytes each group's value
//! has taken in and refuses the batch that would pass the limit, before the aggregate sees it.
//!
//! The `||` operator is a binary expression in DataFusion, not a function: [`LimitStringConcat`]
//! turns what is left of it after pushdown into [`TextConcat`], the same check around DataFusion's
//! own evaluation.

use std::sync::Arc;

use datafusion::arrow::array::{Array, BooleanArray};
use datafusion::arrow::array::{ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::compute::kernels::length::length;
use datafusion::arrow::datatypes::FieldRef;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::Result;
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::logical_expr::expr::AggregateFunctionParams;
use datafusion::logical_expr::expr::{BinaryExpr as BinaryExprNode, ScalarFunction};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::type_coercion::binary::BinaryTypeCoercer;
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, Documentation, EmitTo,
    GroupsAccumulator, ReturnFieldArgs, ReversedUDAF, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature,
};
use datafusion::logical_expr::{Expr, LogicalPlan, Operator, Volatility};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{BinaryExpr, Column};
use tributary_connectors::ConnectorError;
use tributary_connectors::sqlstate;

/// PostgreSQL's `MaxAllocSize`: the most bytes one value may take (1 GiB - 1).
pub const MAX_VALUE_BYTES: i64 = 0x3fff_ffff;

/// The most bytes a UTF-8 character takes (PostgreSQL bounds a pad length by it).
const MAX_CHAR_BYTES: i64 = 4;

/// Which size rule a [`LengthLimited`] function follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Rule {
    /// `repeat(s, n)`: `octet_length(s) * n` bytes.
    Repeat,
    /// `lpad`/`rpad(s, n, ...)`: `n` characters of up to 4 bytes.
    Pad,
    /// `concat(a, b, ...)`: the sum of its arguments' bytes.
    Concat,
    /// `concat_ws(sep, a, b, ...)`: the arguments' bytes and one separator between each two.
    ConcatWs,
}

/// DataFusion's `repeat`, `lpad`, `rpad`, `concat` and `concat_ws`, refusing a result value past
/// [`MAX_VALUE_BYTES`] with SQLSTATE 54000 before computing it.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LengthLimited {
    inner: Arc<ScalarUDF>,
    rule: Rule,
}

/// The functions of this module, to register over DataFusion's of the same names.
pub fn functions() -> Vec<ScalarUDF> {
    use datafusion::functions::{string, unicode};
    [
        (string::repeat(), Rule::Repeat),
        (unicode::lpad(), Rule::Pad),
        (unicode::rpad(), Rule::Pad),
        (string::concat(), Rule::Concat),
        (string::concat_ws(), Rule::ConcatWs),
    ]
    .into_iter()
    .map(|(inner, rule)| ScalarUDF::new_from_impl(LengthLimited { inner, rule }))
    .chain([ScalarUDF::new_from_impl(TextConcat::new())])
    .collect()
}

fn too_large() -> datafusion::error::DataFusionError {
    ConnectorError::sql(
        sqlstate::PROGRAM_LIMIT_EXCEEDED,
        "requested length too large",
    )
}

/// The values of `value` as `i64` (one for a scalar), after `f` (a length kernel, or nothing).
fn values(
    value: &ColumnarValue,
    f: impl Fn(&ArrayRef) -> Result<ArrayRef>,
) -> Result<Vec<Option<i64>>> {
    let array = match value {
        ColumnarValue::Array(a) => Arc::clone(a),
        ColumnarValue::Scalar(s) => s.to_array()?,
    };
    let mapped = cast(&f(&array)?, &DataType::Int64)?;
    Ok(mapped.as_primitive::<Int64Type>().iter().collect())
}

/// Value `i` of `v`, or its only value (a scalar).
fn at(v: &[Option<i64>], i: usize) -> Option<i64> {
    if v.len() == 1 {
        v[0]
    } else {
        v.get(i).copied().flatten()
    }
}

/// The byte length of each value of `value` (one for a scalar) when it is text or binary; `None`
/// for other types, whose text form is small.
fn byte_lengths(value: &ColumnarValue) -> Result<Option<Vec<Option<i64>>>> {
    let string_like = matches!(
        value.data_type(),
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
    );
    if !string_like {
        return Ok(None);
    }
    values(value, |a| Ok(length(a.as_ref())?)).map(Some)
}

impl LengthLimited {
    /// `concat`/`concat_ws`: refuses a row whose pieces add up past the limit.
    fn check_sum(args: &[ColumnarValue], separator_first: bool) -> Result<()> {
        let (separator, pieces) = match (separator_first, args.split_first()) {
            (true, Some((separator, pieces))) => (byte_lengths(separator)?, pieces),
            _ => (None, args),
        };
        let lengths = pieces
            .iter()
            .filter_map(|p| byte_lengths(p).transpose())
            .collect::<Result<Vec<_>>>()?;
        let rows = lengths.iter().map(Vec::len).max().unwrap_or(0);
        let separators = pieces.len().saturating_sub(1) as i64;
        for i in 0..rows {
            let mut total = lengths
                .iter()
                .map(|l| at(l, i).unwrap_or(0))
                .fold(0i64, i64::saturating_add);
            if let Some(separator) = &separator {
                total =
                    total.saturating_add(at(separator, i).unwrap_or(0).saturating_mul(separators));
            }
            if total > MAX_VALUE_BYTES {
                return Err(too_large());
            }
        }
        Ok(())
    }

    fn check(&self, args: &[ColumnarValue]) -> Result<()> {
        match self.rule {
            Rule::Concat => return Self::check_sum(args, false),
            Rule::ConcatWs => return Self::check_sum(args, true),
            Rule::Repeat | Rule::Pad => {}
        }
        let (Some(text), Some(count)) = (args.first(), args.get(1)) else {
            return Ok(());
        };
        let counts = values(count, |a| Ok(Arc::clone(a)))?;
        match self.rule {
            Rule::Pad => {
                let most = counts.iter().flatten().max().copied().unwrap_or(0);
                if most > MAX_VALUE_BYTES / MAX_CHAR_BYTES {
                    return Err(too_large());
                }
            }
            Rule::Concat | Rule::ConcatWs => {}
            Rule::Repeat => {
                let lengths = values(text, |a| Ok(length(a.as_ref())?))?;
                let rows = lengths.len().max(counts.len());
                for i in 0..rows {
                    if let (Some(len), Some(n)) = (at(&lengths, i), at(&counts, i))
                        && len.saturating_mul(n.max(0)) > MAX_VALUE_BYTES
                    {
                        return Err(too_large());
                    }
                }
            }
        }
        Ok(())
    }
}

impl ScalarUDFImpl for LengthLimited {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        self.check(&args.args)?;
        self.inner.invoke_with_args(args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

/// The aggregates of this module, to register over DataFusion's of the same names: `string_agg` and
/// `array_agg`, each a [`SizeLimitedAggregate`].
pub fn aggregate_functions() -> Vec<AggregateUDF> {
    use datafusion::functions_aggregate::{array_agg, string_agg};
    [string_agg::string_agg_udaf(), array_agg::array_agg_udaf()]
        .into_iter()
        .map(|inner| AggregateUDF::new_from_impl(SizeLimitedAggregate { inner }))
        .collect()
}

/// An aggregate that builds one value per group (a string, an array) out of its input, refusing with
/// SQLSTATE 54000 the batch that would take a group's value past [`MAX_VALUE_BYTES`]. The count is
/// of the input bytes a group has taken in (text and binary by length, fixed-width values by width,
/// lists by their elements), checked before the aggregate itself sees the batch; partial states
/// merged from other partitions or tasks count the same way.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SizeLimitedAggregate {
    inner: Arc<AggregateUDF>,
}

/// The bytes of each row of `array`: what a value built of it grows by.
fn row_bytes(array: &ArrayRef) -> Result<Vec<u64>> {
    let rows = array.len();
    let data_type = array.data_type();
    if let Some(width) = data_type.primitive_width() {
        return Ok(vec![width as u64; rows]);
    }
    let out = match data_type {
        DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView => {
            let lengths = cast(&length(array.as_ref())?, &DataType::Int64)?;
            lengths
                .as_primitive::<Int64Type>()
                .iter()
                .map(|l| l.unwrap_or(0).max(0) as u64)
                .collect()
        }
        DataType::List(_) => list_bytes(array.as_list::<i32>())?,
        DataType::LargeList(_) => list_bytes(array.as_list::<i64>())?,
        DataType::Null => vec![0; rows],
        _ => {
            let each = array.get_array_memory_size() as u64 / rows.max(1) as u64;
            vec![each; rows]
        }
    };
    Ok(out)
}

fn list_bytes<O: datafusion::arrow::array::OffsetSizeTrait>(
    list: &datafusion::arrow::array::GenericListArray<O>,
) -> Result<Vec<u64>> {
    let child = row_bytes(list.values())?;
    Ok(list
        .offsets()
        .windows(2)
        .map(|w| child[w[0].as_usize()..w[1].as_usize()].iter().sum::<u64>())
        .collect())
}

/// Adds row `i`'s bytes to `totals[groups[i]]` for the rows `filter` keeps; refuses a total past the
/// limit.
fn add_bytes(
    totals: &mut Vec<u64>,
    values: &[ArrayRef],
    groups: &[usize],
    filter: Option<&BooleanArray>,
    total_groups: usize,
) -> Result<()> {
    let Some(first) = values.first() else {
        return Ok(());
    };
    if totals.len() < total_groups {
        totals.resize(total_groups, 0);
    }
    let bytes = row_bytes(first)?;
    for (row, (&group, &b)) in groups.iter().zip(&bytes).enumerate() {
        if filter.is_some_and(|f| !f.is_valid(row) || !f.value(row)) {
            continue;
        }
        let total = &mut totals[group];
        *total += b;
        if *total > MAX_VALUE_BYTES as u64 {
            return Err(too_large());
        }
    }
    Ok(())
}

impl AggregateUDFImpl for SizeLimitedAggregate {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn schema_name(&self, params: &AggregateFunctionParams) -> Result<String> {
        self.inner.inner().schema_name(params)
    }

    fn human_display(&self, params: &AggregateFunctionParams) -> Result<String> {
        self.inner.inner().human_display(params)
    }

    fn display_name(&self, params: &AggregateFunctionParams) -> Result<String> {
        self.inner.inner().display_name(params)
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field(&self, arg_fields: &[FieldRef]) -> Result<FieldRef> {
        self.inner.return_field(arg_fields)
    }

    fn is_nullable(&self) -> bool {
        self.inner.is_nullable()
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.inner.state_fields(args)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(LimitedAccumulator {
            inner: self.inner.accumulator(args)?,
            bytes: 0,
        }))
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.inner.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(LimitedGroupsAccumulator {
            inner: self.inner.create_groups_accumulator(args)?,
            bytes: Vec::new(),
        }))
    }

    fn with_beneficial_ordering(
        self: Arc<Self>,
        beneficial_ordering: bool,
    ) -> Result<Option<Arc<dyn AggregateUDFImpl>>> {
        let inner = Arc::clone(self.inner.inner()).with_beneficial_ordering(beneficial_ordering)?;
        Ok(inner.map(|inner| {
            Arc::new(SizeLimitedAggregate {
                inner: Arc::new(AggregateUDF::new_from_shared_impl(inner)),
            }) as Arc<dyn AggregateUDFImpl>
        }))
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.inner.inner().order_sensitivity()
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        match self.inner.inner().reverse_expr() {
            ReversedUDAF::Reversed(inner) => ReversedUDAF::Reversed(Arc::new(
                AggregateUDF::new_from_impl(SizeLimitedAggregate { inner }),
            )),
            other => other,
        }
    }

    fn supports_null_handling_clause(&self) -> bool {
        self.inner.inner().supports_null_handling_clause()
    }

    fn supports_within_group_clause(&self) -> bool {
        self.inner.inner().supports_within_group_clause()
    }

    fn default_value(&self, data_type: &DataType) -> Result<ScalarValue> {
        self.inner.default_value(data_type)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

/// [`SizeLimitedAggregate`]'s accumulator for one group.
#[derive(Debug)]
struct LimitedAccumulator {
    inner: Box<dyn Accumulator>,
    /// Bytes taken in.
    bytes: u64,
}

impl LimitedAccumulator {
    /// Counts `values`' bytes into the group's total; refuses a total past the limit.
    fn add(&mut self, values: &[ArrayRef]) -> Result<()> {
        if let Some(first) = values.first() {
            self.bytes += row_bytes(first)?.iter().sum::<u64>();
            if self.bytes > MAX_VALUE_BYTES as u64 {
                return Err(too_large());
            }
        }
        Ok(())
    }
}

impl Accumulator for LimitedAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(values)?;
        self.inner.update_batch(values)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.inner.evaluate()
    }

    fn size(&self) -> usize {
        self.inner.size()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.inner.state()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.add(states)?;
        self.inner.merge_batch(states)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        if let Some(first) = values.first() {
            let gone: u64 = row_bytes(first)?.iter().sum();
            self.bytes = self.bytes.saturating_sub(gone);
        }
        self.inner.retract_batch(values)
    }

    fn supports_retract_batch(&self) -> bool {
        self.inner.supports_retract_batch()
    }
}

/// [`SizeLimitedAggregate`]'s accumulator for many groups.
struct LimitedGroupsAccumulator {
    inner: Box<dyn GroupsAccumulator>,
    /// Bytes taken in, per group index.
    bytes: Vec<u64>,
}

impl LimitedGroupsAccumulator {
    /// Forgets the groups `emit_to` hands out (the others shift down, as the inner accumulator's).
    fn emitted(&mut self, emit_to: EmitTo) {
        let _ = emit_to.take_needed(&mut self.bytes);
    }
}

impl GroupsAccumulator for LimitedGroupsAccumulator {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        add_bytes(
            &mut self.bytes,
            values,
            group_indices,
            opt_filter,
            total_num_groups,
        )?;
        self.inner
            .update_batch(values, group_indices, opt_filter, total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        self.emitted(emit_to);
        self.inner.evaluate(emit_to)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        self.emitted(emit_to);
        self.inner.state(emit_to)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        add_bytes(
            &mut self.bytes,
            values,
            group_indices,
            None,
            total_num_groups,
        )?;
        self.inner
            .merge_batch(values, group_indices, total_num_groups)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        self.inner.convert_to_state(values, opt_filter)
    }

    fn size(&self) -> usize {
        self.inner.size() + self.bytes.capacity() * std::mem::size_of::<u64>()
    }
}

/// `a || b` on text and binary values, as DataFusion evaluates it, after refusing a row whose two
/// values add up past [`MAX_VALUE_BYTES`] (54000). [`LimitStringConcat`] puts it in place of the
/// operator in plans; its column name is the operator's (`a || b`).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TextConcat {
    signature: Signature,
}

impl TextConcat {
    /// The function's name in plans and on other nodes.
    pub const NAME: &'static str = "text_concat";

    fn new() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for TextConcat {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let [left, right] = arg_types else {
            return datafusion::common::plan_err!("text_concat takes two arguments");
        };
        BinaryTypeCoercer::new(left, &Operator::StringConcat, right).get_result_type()
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        let [left, right] = args else {
            return datafusion::common::plan_err!("text_concat takes two arguments");
        };
        Ok(format!("{} || {}", left.schema_name(), right.schema_name()))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        LengthLimited::check_sum(&args.args, false)?;
        let rows = args.number_rows;
        let all_scalars = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<Result<Vec<_>>>()?;
        let fields: Vec<Field> = arrays
            .iter()
            .enumerate()
            .map(|(i, a)| Field::new(format!("c{i}"), a.data_type().clone(), true))
            .collect();
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?;
        let concat = BinaryExpr::new(
            Arc::new(Column::new("c0", 0)),
            Operator::StringConcat,
            Arc::new(Column::new("c1", 1)),
        );
        let result = concat.evaluate(&batch)?;
        match result {
            ColumnarValue::Array(array) if all_scalars => Ok(ColumnarValue::Scalar(
                ScalarValue::try_from_array(&array, 0)?,
            )),
            other => Ok(other),
        }
    }
}

/// Logical optimizer rule, after the pushdown rules: every `a || b` left in the plan is evaluated as
/// [`TextConcat`], so that a value past 1 GiB is refused rather than built. Scans (and what was pushed
/// to a source as SQL) keep the operator: their filters are the source's to translate.
#[derive(Debug, Default)]
pub struct LimitStringConcat;

impl OptimizerRule for LimitStringConcat {
    fn name(&self) -> &str {
        "limit_string_concat"
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
        let udf = Arc::new(ScalarUDF::new_from_impl(TextConcat::new()));
        plan.map_expressions(|expr| {
            expr.transform_up(|e| match e {
                Expr::BinaryExpr(BinaryExprNode {
                    left,
                    op: Operator::StringConcat,
                    right,
                }) => Ok(Transformed::yes(Expr::ScalarFunction(
                    ScalarFunction::new_udf(Arc::clone(&udf), vec![*left, *right]),
                ))),
                other => Ok(Transformed::no(other)),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;

    #[tokio::test]
    async fn values_past_a_gibibyte_are_refused_with_54000() {
        let ctx = SessionContext::new();
        for f in super::functions() {
            ctx.register_udf(f);
        }
        let ok = ctx
            .sql("SELECT length(repeat('ab', 3)), lpad('x', 3, '-'), rpad('x', 2)")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(ok[0].num_rows(), 1);
        for sql in [
            "SELECT repeat('x', 2000000000)",
            "SELECT repeat(s, 600000000) FROM (VALUES ('a'), ('ab')) t(s)",
            "SELECT lpad('x', 300000000)",
            "SELECT rpad('x', 300000000, 'y')",
            "SELECT concat(repeat(s, 600000000), repeat(s, 600000000)) FROM (VALUES ('a')) t(s)",
            "SELECT concat_ws(repeat(s, 400000000), s, s, s, s) FROM (VALUES ('a')) t(s)",
        ] {
            let Err(err) = ctx.sql(sql).await.unwrap().collect().await else {
                panic!("{sql}: no error");
            };
            assert!(
                err.to_string().contains("requested length too large"),
                "{sql}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn aggregates_stop_at_a_gibibyte_per_group() {
        let ctx = SessionContext::new();
        for f in super::functions() {
            ctx.register_udf(f);
        }
        for f in super::aggregate_functions() {
            ctx.register_udaf(f);
        }
        let run = |sql: &'static str| {
            let ctx = ctx.clone();
            async move { ctx.sql(sql).await?.collect().await }
        };
        // The error, without printing a gibibyte of result when there is none.
        let fails = |sql: &'static str| async move {
            match run(sql).await {
                Ok(_) => panic!("{sql}: no error"),
                Err(e) => e,
            }
        };
        // Small groups, grouped and not, ordered and not: unchanged answers.
        let ok = run("SELECT g, string_agg(s, ',' ORDER BY s), array_agg(s) \
             FROM (VALUES (1, 'b'), (1, 'a'), (2, 'c')) t(g, s) GROUP BY g ORDER BY g")
        .await
        .unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&ok)
            .unwrap()
            .to_string();
        assert!(text.contains("a,b") && text.contains("[c]"), "{text}");
        // 5 values of 230 MB in one group pass 1 GiB.
        let big = "SELECT length(string_agg(repeat('x', 230000000), '')) \
                   FROM generate_series(1, 5) t(g)";
        let err = fails(big).await;
        assert!(
            err.to_string().contains("requested length too large"),
            "{err}"
        );
        let grouped = "SELECT g > 0, length(string_agg(repeat('x', 230000000), '')) \
                       FROM generate_series(1, 5) t(g) GROUP BY g > 0";
        let err = fails(grouped).await;
        assert!(
            err.to_string().contains("requested length too large"),
            "{err}"
        );
        let err = fails(
            "SELECT cardinality(array_agg(repeat('x', 230000000))) \
             FROM generate_series(1, 5) t(g)",
        )
        .await;
        assert!(
            err.to_string().contains("requested length too large"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn the_concat_operator_is_limited_and_unchanged_otherwise() {
        use datafusion::execution::SessionStateBuilder;
        let plain = SessionContext::new();
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_optimizer_rule(std::sync::Arc::new(super::LimitStringConcat))
            .build();
        let limited = SessionContext::new_with_state(state);
        for f in super::functions() {
            limited.register_udf(f);
        }
        let sql = "SELECT s || 'x', s || NULL, s || 1, b || b, 'a' || 'b' \
                   FROM (VALUES ('a', X'01'), (NULL, X'02')) t(s, b)";
        let show = |ctx: &SessionContext| {
            let ctx = ctx.clone();
            async move {
                let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
                datafusion::arrow::util::pretty::pretty_format_batches(&batches)
                    .unwrap()
                    .to_string()
            }
        };
        // Same column names, types and values as DataFusion's own operator.
        assert_eq!(show(&limited).await, show(&plain).await);
        let explain = limited
            .sql(&format!("EXPLAIN {sql}"))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let explain = datafusion::arrow::util::pretty::pretty_format_batches(&explain)
            .unwrap()
            .to_string();
        assert!(explain.contains("text_concat"), "{explain}");
        let big = "SELECT length(repeat(s, 600000000) || repeat(s, 600000000)) \
                   FROM (VALUES ('a')) t(s)";
        let Err(err) = limited.sql(big).await.unwrap().collect().await else {
            panic!("no error");
        };
        assert!(
            err.to_string().contains("requested length too large"),
            "{err}"
        );
    }
}
