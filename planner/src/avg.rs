//! `avg` of integers as PostgreSQL types it: numeric, not float8.
//!
//! PostgreSQL's `avg(int2/int4/int8)` sums in numeric and divides by the count, so `avg` of 1 and 2
//! is `1.5000000000000000`, exact, where DataFusion's `avg` casts integers to float8 (`1.5`). [`PgAvg`]
//! replaces DataFusion's `avg` (and its alias `mean`) in every session: integer inputs are summed
//! exactly (i128; unsigned 64-bit values past `i64::MAX` are out of range) and the quotient is a `Decimal128(38, 16)` rounded half away from zero, as
//! PostgreSQL rounds. `avg` of a `Decimal128(p, s)` is summed the same way at its scale and is a
//! `Decimal128(38, max(s, 16))` (PostgreSQL's at least 16 decimals; DataFusion's was `s + 4`,
//! truncated; a sum past i128 is 22003); `avg(DISTINCT numeric)` is DataFusion's, cast to that
//! type. Every other input (floats, intervals) is DataFusion's own `avg`, unchanged.
//!
//! PostgreSQL's quotient scale follows the operands (`select_div_scale` in numeric.c: 16 significant
//! digits after the quotient's first base-10000 digit group), so it shows 16 decimals for averages
//! from about 1 to 10,000, 20 below 1 and 12 above; one Arrow column has one scale, so those come out
//! with 16 decimals here (PostgreSQL's rounded to 16, or ours to 12, agree but where rounding twice
//! differs from rounding once: a digit run like `...49999` past the shorter scale).

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, Int64Array, ListArray, UInt64Array,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{
    DataType, Decimal128Type, Field, FieldRef, Int64Type, UInt64Type,
};
use datafusion::common::types::NativeType;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Coercion, Documentation, EmitTo,
    GroupsAccumulator, ReversedUDAF, Signature, TypeSignature, TypeSignatureClass, Volatility,
};
use datafusion_functions_aggregate_common::aggregate::groups_accumulator::accumulate::accumulate;

/// Precision and scale of the average of integers.
pub const AVG_PRECISION: u8 = 38;
/// See [`AVG_PRECISION`]: PostgreSQL's 16 significant fractional digits.
pub const AVG_SCALE: i8 = 16;
/// 10^[`AVG_SCALE`].
const SCALE_FACTOR: i128 = 10_i128.pow(AVG_SCALE as u32);

/// The `avg` aggregate of every session; see the module docs.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgAvg {
    /// DataFusion's own, for everything but integers.
    inner: Arc<AggregateUDF>,
    /// DataFusion's, with integers taken as Int64 before floats as Float64.
    signature: Signature,
}

impl Default for PgAvg {
    fn default() -> Self {
        let exact = |class| TypeSignature::Coercible(vec![Coercion::new_exact(class)]);
        let implicit = |to: NativeType, from| {
            TypeSignature::Coercible(vec![Coercion::new_implicit(
                TypeSignatureClass::Native(Arc::new(to.clone())),
                vec![from],
                to,
            )])
        };
        Self {
            inner: datafusion::functions_aggregate::average::avg_udaf(),
            signature: Signature::one_of(
                vec![
                    exact(TypeSignatureClass::Decimal),
                    exact(TypeSignatureClass::Duration),
                    implicit(NativeType::Int64, TypeSignatureClass::Integer),
                    implicit(NativeType::Float64, TypeSignatureClass::Float),
                ],
                Volatility::Immutable,
            ),
        }
    }
}

impl PgAvg {
    /// As a DataFusion aggregate function, to register in a session (it replaces `avg`/`mean`).
    pub fn udaf() -> AggregateUDF {
        AggregateUDF::from(Self::default())
    }
}

/// The scale of an input [`PgAvg`] averages itself: 0 for integers (taken as Int64), the scale of
/// a `Decimal128` (for a plain `avg`; `avg(DISTINCT numeric)` is DataFusion's); `None` for the rest.
fn exact_input(fields: &[FieldRef], distinct: bool) -> Option<i8> {
    match fields.first().map(|f| f.data_type()) {
        Some(DataType::Int64) => Some(0),
        Some(DataType::Decimal128(_, scale)) if !distinct && *scale >= 0 => Some(*scale),
        _ => None,
    }
}

/// The scale of the average of values of scale `input`: PostgreSQL's at least 16 decimals, never
/// fewer than the input's.
fn output_scale(input: i8) -> i8 {
    input.max(AVG_SCALE)
}

/// [`output_scale`] and the factor (10^(output - input)) a sum of scale `input` is multiplied by.
fn scaling(input: i8) -> (i8, i128) {
    let out = output_scale(input);
    (out, 10_i128.pow((out - input) as u32))
}

/// Reads an Int64 or Decimal128 array's values as i128 (at the array's scale).
fn exact_values(array: &ArrayRef) -> Box<dyn Iterator<Item = Option<i128>> + '_> {
    match array.data_type() {
        DataType::Decimal128(..) => Box::new(array.as_primitive::<Decimal128Type>().iter()),
        _ => Box::new(
            array
                .as_primitive::<Int64Type>()
                .iter()
                .map(|v| v.map(i128::from)),
        ),
    }
}

fn overflow() -> datafusion::common::DataFusionError {
    datafusion::common::DataFusionError::External(Box::new(
        tributary_connectors::error::ConnectorError::sql(
            tributary_connectors::sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
            "numeric field overflow",
        ),
    ))
}

impl AggregateUDFImpl for PgAvg {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [DataType::Int64] => Ok(DataType::Decimal128(AVG_PRECISION, AVG_SCALE)),
            [DataType::Decimal128(_, scale)] if *scale >= 0 => {
                Ok(DataType::Decimal128(AVG_PRECISION, output_scale(*scale)))
            }
            _ => self.inner.inner().return_type(arg_types),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let Some(scale) = exact_input(args.expr_fields, args.is_distinct) else {
            let to = self.return_type(&[args.expr_fields[0].data_type().clone()])?;
            let inner = self.inner.inner().accumulator(args)?;
            // `avg(DISTINCT numeric)`: DataFusion's, at this function's type.
            return Ok(match to {
                DataType::Decimal128(..) => Box::new(CastResult { inner, to }),
                _ => inner,
            });
        };
        Ok(if args.is_distinct {
            Box::<DistinctIntegerAvg>::default()
        } else {
            Box::new(IntegerAvg::new(scale))
        })
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let Some(scale) = exact_input(args.input_fields, args.is_distinct) else {
            return self.inner.inner().state_fields(args);
        };
        let name = |what: &str| format!("{}[{what}]", args.name);
        Ok(if args.is_distinct {
            vec![Arc::new(Field::new_list(
                name("distinct"),
                Field::new_list_field(DataType::Int64, true),
                true,
            ))]
        } else {
            vec![
                Arc::new(Field::new(name("count"), DataType::UInt64, true)),
                Arc::new(Field::new(
                    name("sum"),
                    DataType::Decimal128(38, scale),
                    true,
                )),
            ]
        })
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        match exact_input(args.expr_fields, args.is_distinct) {
            Some(_) => !args.is_distinct,
            // DataFusion's groups accumulator would give its own type.
            None if matches!(args.expr_fields[0].data_type(), DataType::Decimal128(..)) => false,
            None => self.inner.inner().groups_accumulator_supported(args),
        }
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        match exact_input(args.expr_fields, args.is_distinct) {
            Some(scale) => Ok(Box::new(IntegerAvgGroups::new(scale))),
            None => self.inner.inner().create_groups_accumulator(args),
        }
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::Identical
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

/// `sum / count` at [`AVG_SCALE`], rounded half away from zero; `None` for no values. Exact for
/// any i128 sum: the integer and fractional parts are divided separately.
pub fn average(sum: i128, count: u64) -> Option<i128> {
    scaled_average(sum, count, SCALE_FACTOR)
}

/// `sum * factor / count`, rounded half away from zero; `None` for no values or past i128.
/// `factor` is at most 10^16.
fn scaled_average(sum: i128, count: u64, factor: i128) -> Option<i128> {
    if count == 0 {
        return None;
    }
    let count = i128::from(count);
    let (whole, rest) = (sum / count, sum % count);
    // |rest| < count < 2^64, so rest * 10^16 fits.
    let scaled = rest * factor;
    let (mut fraction, remainder) = (scaled / count, scaled % count);
    if 2 * remainder.abs() >= count {
        fraction += sum.signum();
    }
    whole.checked_mul(factor)?.checked_add(fraction)
}

/// The average of values of scale `scale` summing to `sum`, at [`output_scale`].
fn average_at(sum: i128, count: u64, scale: i8) -> Result<ScalarValue> {
    let (out, factor) = scaling(scale);
    let value = match count {
        0 => None,
        _ => Some(scaled_average(sum, count, factor).ok_or_else(overflow)?),
    };
    Ok(ScalarValue::Decimal128(value, AVG_PRECISION, out))
}

fn decimal(value: Option<i128>) -> ScalarValue {
    ScalarValue::Decimal128(value, AVG_PRECISION, AVG_SCALE)
}

/// An accumulator whose result is cast to `to`.
#[derive(Debug)]
struct CastResult {
    inner: Box<dyn Accumulator>,
    to: DataType,
}

impl Accumulator for CastResult {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.inner.update_batch(values)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.inner.merge_batch(states)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.inner.state()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.inner.evaluate()?.cast_to(&self.to)
    }

    fn size(&self) -> usize {
        self.inner.size() + size_of::<DataType>()
    }
}

/// The running sum and count of one group. No sum here overflows: an i128 holds the sum of 2^64
/// values of i64, more than a u64 count can number.
#[derive(Debug)]
struct IntegerAvg {
    sum: i128,
    count: u64,
    /// The input's scale (0 for integers).
    scale: i8,
}

impl IntegerAvg {
    fn new(scale: i8) -> Self {
        Self {
            sum: 0,
            count: 0,
            scale,
        }
    }
}

impl Accumulator for IntegerAvg {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for v in exact_values(&values[0]).flatten() {
            self.sum = self.sum.checked_add(v).ok_or_else(overflow)?;
            self.count += 1;
        }
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for v in exact_values(&values[0]).flatten() {
            self.sum = self.sum.checked_sub(v).ok_or_else(overflow)?;
            self.count -= 1;
        }
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let counts = states[0].as_primitive::<UInt64Type>();
        let sums = states[1].as_primitive::<Decimal128Type>();
        for (count, sum) in counts.iter().zip(sums.iter()) {
            if let (Some(count), Some(sum)) = (count, sum) {
                self.count += count;
                self.sum = self.sum.checked_add(sum).ok_or_else(overflow)?;
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::UInt64(Some(self.count)),
            ScalarValue::Decimal128(Some(self.sum), 38, self.scale),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        average_at(self.sum, self.count, self.scale)
    }

    fn size(&self) -> usize {
        size_of_val(self)
    }
}

/// `avg(DISTINCT integer)`: the distinct values seen.
#[derive(Debug, Default)]
struct DistinctIntegerAvg {
    values: HashSet<i64>,
}

impl Accumulator for DistinctIntegerAvg {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.values
            .extend(values[0].as_primitive::<Int64Type>().iter().flatten());
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = states[0].as_list::<i32>();
        for list in lists.iter().flatten() {
            self.values
                .extend(list.as_primitive::<Int64Type>().iter().flatten());
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let values = Int64Array::from_iter_values(self.values.iter().copied());
        let field = Arc::new(Field::new_list_field(DataType::Int64, true));
        let list = ListArray::new(
            field,
            OffsetBuffer::from_lengths([values.len()]),
            Arc::new(values),
            None,
        );
        Ok(vec![ScalarValue::List(Arc::new(list))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let sum: i128 = self.values.iter().map(|v| i128::from(*v)).sum();
        Ok(decimal(average(sum, self.values.len() as u64)))
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.values.capacity() * size_of::<i64>()
    }
}

/// Sums and counts per group, for hash aggregation.
#[derive(Debug, Default)]
struct IntegerAvgGroups {
    sums: Vec<i128>,
    counts: Vec<u64>,
    /// The input's scale (0 for integers).
    scale: i8,
}

impl IntegerAvgGroups {
    fn new(scale: i8) -> Self {
        Self {
            scale,
            ..Self::default()
        }
    }

    fn resize(&mut self, groups: usize) {
        self.sums.resize(groups, 0);
        self.counts.resize(groups, 0);
    }
}

/// Whether row `i` passes the aggregate's FILTER.
fn passes(filter: Option<&BooleanArray>, i: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(i) && f.value(i))
}

impl GroupsAccumulator for IntegerAvgGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.resize(total_num_groups);
        let (sums, counts) = (&mut self.sums, &mut self.counts);
        let mut overflowed = false;
        let mut add = |group: usize, value: i128| match sums[group].checked_add(value) {
            Some(sum) => {
                sums[group] = sum;
                counts[group] += 1;
            }
            None => overflowed = true,
        };
        match values[0].data_type() {
            DataType::Decimal128(..) => accumulate(
                group_indices,
                values[0].as_primitive::<Decimal128Type>(),
                opt_filter,
                add,
            ),
            _ => accumulate(
                group_indices,
                values[0].as_primitive::<Int64Type>(),
                opt_filter,
                |group, value| add(group, i128::from(value)),
            ),
        }
        if overflowed {
            return Err(overflow());
        }
        Ok(())
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.resize(total_num_groups);
        let counts = values[0].as_primitive::<UInt64Type>();
        let sums = values[1].as_primitive::<Decimal128Type>();
        for (i, &group) in group_indices.iter().enumerate() {
            if counts.is_valid(i) && sums.is_valid(i) {
                self.counts[group] += counts.value(i);
                self.sums[group] = self.sums[group]
                    .checked_add(sums.value(i))
                    .ok_or_else(overflow)?;
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let sums = emit_to.take_needed(&mut self.sums);
        let counts = emit_to.take_needed(&mut self.counts);
        let (out, factor) = scaling(self.scale);
        let values = sums
            .into_iter()
            .zip(counts)
            .map(|(sum, count)| match count {
                0 => Ok(None),
                _ => scaled_average(sum, count, factor)
                    .map(Some)
                    .ok_or_else(overflow),
            })
            .collect::<Result<Vec<Option<i128>>>>()?;
        Ok(Arc::new(
            Decimal128Array::from(values).with_precision_and_scale(AVG_PRECISION, out)?,
        ))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let sums = emit_to.take_needed(&mut self.sums);
        let counts = emit_to.take_needed(&mut self.counts);
        let no_nulls: Option<NullBuffer> = None;
        Ok(vec![
            Arc::new(UInt64Array::new(counts.into(), no_nulls.clone())),
            Arc::new(
                Decimal128Array::new(sums.into(), no_nulls)
                    .with_precision_and_scale(38, self.scale)?,
            ),
        ])
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let array = &values[0];
        let taken = |i: usize| array.is_valid(i) && passes(opt_filter, i);
        let counts: UInt64Array = (0..array.len()).map(|i| u64::from(taken(i))).collect();
        let sums: Decimal128Array = exact_values(array)
            .enumerate()
            .map(|(i, v)| if taken(i) { v.unwrap_or(0) } else { 0 })
            .collect();
        Ok(vec![
            Arc::new(counts),
            Arc::new(sums.with_precision_and_scale(38, self.scale)?),
        ])
    }

    fn size(&self) -> usize {
        self.sums.capacity() * size_of::<i128>() + self.counts.capacity() * size_of::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: Option<i128>) -> String {
        decimal(value).to_string()
    }

    #[test]
    fn averages_round_half_away_from_zero_at_16_digits() {
        assert_eq!(text(average(3, 2)), "1.5000000000000000");
        assert_eq!(text(average(2, 3)), "0.6666666666666667");
        assert_eq!(text(average(-2, 3)), "-0.6666666666666667");
        assert_eq!(text(average(1, 3)), "0.3333333333333333");
        assert_eq!(text(average(-5, 2)), "-2.5000000000000000");
        assert_eq!(average(7, 0), None);
        // A sum far beyond what sum * 10^16 could hold.
        let big = i128::from(i64::MAX) * 3;
        assert_eq!(
            text(average(big, 3)),
            format!("{}.0000000000000000", i64::MAX)
        );
    }
}
