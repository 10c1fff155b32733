//! Numeric (`Decimal128`) `+`, `-` and `*` computed in 64-bit halves where the operands allow.
//!
//! DataFusion's `BinaryExpr` computes decimal arithmetic with Arrow's kernels, which check every
//! row's 128-bit multiplication (rescaling for `+`/`-`, the product for `*`) for overflow: a
//! compiler-runtime call (`__muloti4`) of about 5 ns a row. TPC-H q01's four operations over
//! lineitem's 6M rows (`l_extendedprice * (1 - l_discount) * (1 + l_tax)`) were a quarter of its
//! CPU. Where every operand of a batch fits in 64 bits (a `numeric(15,2)` always does), neither a
//! product of two operands nor a sum of two rescaled ones (a factor of at most 10^18) can leave the
//! 128-bit range, so [`NumericArithmetic`] computes the batch with one widening multiply a row and
//! no check. Otherwise it calls Arrow's kernel, as `BinaryExpr` does, with its errors. Results are
//! the same values and types as DataFusion's, operand by operand (Arrow's kernel types them).
//!
//! The functions carry PostgreSQL's names for the operators' implementations (`numeric_add`,
//! `numeric_sub`, `numeric_mul`; callable by those names) and the operator's column name
//! (`a * b`). [`crate::integers::CheckedIntegerArithmetic`] places them, after pushdown, where it
//! places the integer ones.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Datum, Decimal128Array};
use datafusion::arrow::buffer::{NullBuffer, ScalarBuffer};
use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::arrow::error::ArrowError;
use datafusion::common::{ScalarValue, internal_err, plan_err};
use datafusion::logical_expr::type_coercion::binary::BinaryTypeCoercer;
use datafusion::logical_expr::{
    ColumnarValue, Expr, Operator, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};
use datafusion::physical_expr_common::datum::apply;

/// `left op right` on two numeric (`Decimal128`) values, of any precisions and scales. Arguments:
/// two arrays or scalars; result: the type Arrow's kernel gives (for `+`/`-` the larger scale,
/// for `*` the sum of the scales; precision as Arrow, at most 38). Errors: Arrow's, when a result
/// leaves the 128-bit range (only possible with an operand past 64 bits).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct NumericArithmetic {
    name: &'static str,
    op: Operator,
    signature: Signature,
}

/// The operators, with PostgreSQL's names of their `numeric` implementations.
const OPERATORS: [(Operator, &str); 3] = [
    (Operator::Plus, "numeric_add"),
    (Operator::Minus, "numeric_sub"),
    (Operator::Multiply, "numeric_mul"),
];

impl NumericArithmetic {
    /// The function for `op` on operands of types `left` and `right`, when both are `Decimal128`
    /// and `op` is `+`, `-` or `*`.
    pub fn new(op: Operator, left: &DataType, right: &DataType) -> Option<Self> {
        let (_, name) = OPERATORS.iter().find(|(o, _)| *o == op)?;
        both_decimal128(left, right).then(|| Self {
            name,
            op,
            signature: Signature::any(2, Volatility::Immutable),
        })
    }

    /// Arrow's kernel for the operator (checked, as `BinaryExpr`'s for decimals).
    fn kernel(&self, left: &dyn Datum, right: &dyn Datum) -> Result<ArrayRef, ArrowError> {
        match self.op {
            Operator::Plus => numeric::add(left, right),
            Operator::Minus => numeric::sub(left, right),
            _ => numeric::mul(left, right),
        }
    }
}

/// Whether both operand types are `Decimal128` (of any precision and scale).
fn both_decimal128(left: &DataType, right: &DataType) -> bool {
    matches!(
        (left, right),
        (DataType::Decimal128(..), DataType::Decimal128(..))
    )
}

/// Every function, for registration in a session (`numeric_add`, `numeric_sub`, `numeric_mul`).
pub fn functions() -> Vec<ScalarUDF> {
    let decimal = DataType::Decimal128(38, 0);
    OPERATORS
        .iter()
        .filter_map(|(op, _)| NumericArithmetic::new(*op, &decimal, &decimal))
        .map(ScalarUDF::new_from_impl)
        .collect()
}

/// An operand's values when every one fits in 64 bits (nulls' slots included), with its nulls.
struct Narrow<'a> {
    values: Operand<'a>,
    nulls: Option<&'a NullBuffer>,
}

enum Operand<'a> {
    /// An array's values (each fits in 64 bits).
    Array(&'a [i128]),
    Scalar(i64),
}

fn fits(v: i128) -> bool {
    v == i128::from(v as i64)
}

/// `value` as a [`Narrow`] operand, or `None` when it is not `Decimal128`, is a null scalar, or a
/// value needs more than 64 bits.
fn narrow(value: &ColumnarValue) -> Option<Narrow<'_>> {
    match value {
        ColumnarValue::Array(array) => {
            let array = array.as_any().downcast_ref::<Decimal128Array>()?;
            let values: &[i128] = array.values();
            // Every value, without stopping at the first too wide one (so the loop vectorizes).
            values
                .iter()
                .fold(true, |all, v| all & fits(*v))
                .then_some(Narrow {
                    values: Operand::Array(values),
                    nulls: array.nulls(),
                })
        }
        ColumnarValue::Scalar(ScalarValue::Decimal128(Some(v), ..)) => Some(Narrow {
            values: Operand::Scalar(i64::try_from(*v).ok()?),
            nulls: None,
        }),
        _ => None,
    }
}

/// `10^exponent` when it fits in 64 bits.
fn power_of_ten(exponent: i8) -> Option<i64> {
    10i64.checked_pow(u32::try_from(exponent).ok()?)
}

/// Each row's `f(left, right)`, when at least one operand is an array.
fn rows(left: &Operand, right: &Operand, f: impl Fn(i64, i64) -> i128) -> Option<Vec<i128>> {
    Some(match (left, right) {
        (Operand::Array(a), Operand::Array(b)) => a
            .iter()
            .zip(*b)
            .map(|(a, b)| f(*a as i64, *b as i64))
            .collect(),
        (Operand::Array(a), Operand::Scalar(b)) => a.iter().map(|a| f(*a as i64, *b)).collect(),
        (Operand::Scalar(a), Operand::Array(b)) => b.iter().map(|b| f(*a, *b as i64)).collect(),
        (Operand::Scalar(_), Operand::Scalar(_)) => return None,
    })
}

impl NumericArithmetic {
    /// The result over `left` and `right` when both operands are narrow (see the module docs) and
    /// at least one is an array; `None` otherwise (Arrow's kernel then).
    fn narrow_result(
        &self,
        left: &ColumnarValue,
        right: &ColumnarValue,
        result: &DataType,
    ) -> Option<ArrayRef> {
        let (DataType::Decimal128(_, s1), DataType::Decimal128(_, s2)) =
            (left.data_type(), right.data_type())
        else {
            return None;
        };
        let DataType::Decimal128(precision, scale) = *result else {
            return None;
        };
        let (l, r) = (narrow(left)?, narrow(right)?);
        // Each row one or two widening 64-bit multiplies. `*`: |l * r| < 2^126. `+`/`-`: both
        // operands to the result's scale (factors of at most 10^18 < 2^60), then the sum:
        // |l * f| < 2^123, so a sum of two stays below 2^124.
        let wide = i128::from;
        let values = match self.op {
            Operator::Multiply => rows(&l.values, &r.values, |a, b| wide(a) * wide(b))?,
            op => {
                let (lf, rf) = (power_of_ten(scale - s1)?, power_of_ten(scale - s2)?);
                if op == Operator::Plus {
                    rows(&l.values, &r.values, |a, b| {
                        wide(a) * wide(lf) + wide(b) * wide(rf)
                    })?
                } else {
                    rows(&l.values, &r.values, |a, b| {
                        wide(a) * wide(lf) - wide(b) * wide(rf)
                    })?
                }
            }
        };
        let nulls = NullBuffer::union(l.nulls, r.nulls);
        Decimal128Array::new(ScalarBuffer::from(values), nulls)
            .with_precision_and_scale(precision, scale)
            .ok()
            .map(|a| Arc::new(a) as ArrayRef)
    }
}

impl ScalarUDFImpl for NumericArithmetic {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        let [left, right] = arg_types else {
            return plan_err!("{} takes two arguments", self.name);
        };
        if !both_decimal128(left, right) {
            return plan_err!(
                "{} takes two numeric arguments, not {left} and {right}",
                self.name
            );
        }
        // The operator's result type, as DataFusion's type coercion gives it (from Arrow's kernel).
        BinaryTypeCoercer::new(left, &self.op, right).get_result_type()
    }

    fn return_field_from_args(
        &self,
        args: ReturnFieldArgs,
    ) -> datafusion::common::Result<FieldRef> {
        let types: Vec<DataType> = args
            .arg_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let nullable = args.arg_fields.iter().any(|f| f.is_nullable());
        Ok(Arc::new(Field::new(
            self.name,
            self.return_type(&types)?,
            nullable,
        )))
    }

    fn schema_name(&self, args: &[Expr]) -> datafusion::common::Result<String> {
        match args {
            [left, right] => Ok(format!(
                "{} {} {}",
                left.schema_name(),
                self.op,
                right.schema_name()
            )),
            _ => internal_err!("{}: wrong number of arguments", self.name),
        }
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let [left, right] = args.args.as_slice() else {
            return internal_err!("{}: wrong number of arguments", self.name);
        };
        if let Some(array) = self.narrow_result(left, right, args.return_field.data_type()) {
            return Ok(ColumnarValue::Array(array));
        }
        // DataFusion's own mapping of a Datum kernel over arrays and scalars (as `BinaryExpr`).
        apply(left, right, |l, r| self.kernel(l, r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::AsArray;
    use datafusion::common::Result;
    use datafusion::config::ConfigOptions;

    fn decimals(values: &[Option<i128>], precision: u8, scale: i8) -> ColumnarValue {
        ColumnarValue::Array(Arc::new(
            Decimal128Array::from(values.to_vec())
                .with_precision_and_scale(precision, scale)
                .unwrap(),
        ))
    }

    fn call(op: Operator, left: ColumnarValue, right: ColumnarValue) -> Result<ArrayRef> {
        let f = NumericArithmetic::new(op, &left.data_type(), &right.data_type()).unwrap();
        let fields = [&left, &right].map(|v| Arc::new(Field::new("v", v.data_type(), true)));
        let return_field = f.return_field_from_args(ReturnFieldArgs {
            arg_fields: &fields,
            scalar_arguments: &[None, None],
        })?;
        let rows = rows_of(&left, &right);
        f.invoke_with_args(ScalarFunctionArgs {
            args: vec![left, right],
            arg_fields: fields.to_vec(),
            number_rows: rows,
            return_field,
            config_options: Arc::new(ConfigOptions::default()),
        })?
        .into_array(rows)
    }

    /// What `BinaryExpr` computes: Arrow's kernel.
    fn arrow(op: Operator, left: ColumnarValue, right: ColumnarValue) -> Result<ArrayRef> {
        let f = NumericArithmetic::new(op, &left.data_type(), &right.data_type()).unwrap();
        let rows = rows_of(&left, &right);
        apply(&left, &right, |l, r| f.kernel(l, r))?.into_array(rows)
    }

    /// The rows of an operation over `left` and `right`: an array's length, else one.
    fn rows_of(left: &ColumnarValue, right: &ColumnarValue) -> usize {
        match (left, right) {
            (ColumnarValue::Array(a), _) | (_, ColumnarValue::Array(a)) => a.len(),
            _ => 1,
        }
    }

    /// Narrow operands (64-bit values, nulls, a scalar, different scales) give Arrow's values and
    /// types; a wide operand goes to Arrow's kernel, with its overflow error.
    #[test]
    fn same_answers_as_arrow() {
        let price = || {
            decimals(
                &[
                    Some(10_494_950),
                    None,
                    Some(-90_100),
                    Some(0),
                    Some(i64::MAX as i128),
                ],
                15,
                2,
            )
        };
        let discount = || decimals(&[Some(4), Some(10), None, Some(0), Some(-7)], 15, 2);
        let one = || ColumnarValue::Scalar(ScalarValue::Decimal128(Some(1), 20, 0));
        for op in [Operator::Plus, Operator::Minus, Operator::Multiply] {
            for (l, r) in [
                (price(), discount()),
                (one(), discount()),
                (price(), one()),
                (discount(), price()),
            ] {
                let f = NumericArithmetic::new(op, &l.data_type(), &r.data_type()).unwrap();
                let ty = f.return_type(&[l.data_type(), r.data_type()]).unwrap();
                assert!(f.narrow_result(&l, &r, &ty).is_some(), "{op}: narrow");
                let ours = call(op, l.clone(), r.clone()).unwrap();
                let theirs = arrow(op, l, r).unwrap();
                assert_eq!(ours.data_type(), theirs.data_type(), "{op}");
                assert_eq!(ours.as_ref(), theirs.as_ref(), "{op}");
            }
        }
        // 10^20 does not fit in 64 bits: Arrow's kernel, which refuses the product's overflow.
        let wide = || decimals(&[Some(10i128.pow(20)), Some(1)], 38, 0);
        let f = NumericArithmetic::new(Operator::Plus, &wide().data_type(), &wide().data_type());
        let ty = DataType::Decimal128(38, 0);
        assert!(f.unwrap().narrow_result(&wide(), &wide(), &ty).is_none());
        let err = call(Operator::Multiply, wide(), wide()).unwrap_err();
        assert!(err.to_string().contains("Overflow"), "{err}");
        let sum = call(Operator::Plus, wide(), wide()).unwrap();
        assert_eq!(
            sum.as_primitive::<datafusion::arrow::datatypes::Decimal128Type>()
                .value(0),
            2 * 10i128.pow(20)
        );
    }
}
