//! PostgreSQL's limit on the size of one value, for the functions whose result size a user chooses:
//! `repeat(text, n)` and `lpad`/`rpad(text, n [, fill])` fail with `54000` (program_limit_exceeded,
//! "requested length too large") when the value would pass 1 GiB, as PostgreSQL's do, instead of
//! allocating it (a few `repeat('x', 2000000000)` at once exhausted the machine's memory).
//!
//! Each is DataFusion's own function wrapped by [`LengthLimited`], which checks the arguments of a
//! call and then runs the function unchanged.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::compute::kernels::length::length;
use datafusion::arrow::datatypes::FieldRef;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature,
};
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
}

/// DataFusion's `repeat`, `lpad` and `rpad`, refusing a result value past [`MAX_VALUE_BYTES`]
/// with SQLSTATE 54000 before computing it.
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
    ]
    .into_iter()
    .map(|(inner, rule)| ScalarUDF::new_from_impl(LengthLimited { inner, rule }))
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

impl LengthLimited {
    fn check(&self, args: &[ColumnarValue]) -> Result<()> {
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
        ] {
            let err = ctx.sql(sql).await.unwrap().collect().await.unwrap_err();
            assert!(
                err.to_string().contains("requested length too large"),
                "{sql}: {err}"
            );
        }
    }
}
