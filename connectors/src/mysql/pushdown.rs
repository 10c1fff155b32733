//! Translation of DataFusion filters into MySQL SQL, for the filters whose meaning is the same at the
//! source.
//!
//! Pushed (and reported `Exact`):
//! - `column <op> literal` (either order) with `=`, `<>`, `<`, `<=`, `>`, `>=` on integer columns
//!   (signed and unsigned) and decimal(p, s) columns against integer or decimal literals; on date,
//!   datetime and timestamp columns against literals of the same kind (years 1000 to 9999, whole
//!   microseconds; `timestamp` compares in UTC, the sessions' time zone);
//! - `[NOT] BETWEEN` and `[NOT] IN (list)` with the same column / literal rules;
//! - `IS [NOT] NULL` on any column (sessions set `sql_auto_is_null = 0`); `AND`, `OR`, `NOT` of
//!   pushed filters.
//!
//! Not pushed: every string comparison, even `=` (MariaDB's default collations are case- and
//! accent-insensitive and ignore trailing spaces: `'a' = 'A '` is true there), enum / set columns
//! (compared by index with numbers), float / double (approximate; NaN), year (two-digit numbers are
//! converted to years), bit, binary, columns cast to text at the source, anything with a function or
//! a cast.

use chrono::{DateTime, Datelike, NaiveDate};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::expr::{Between, InList};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};

use super::quote_ident;
use super::table::{ColumnMeta, TableMeta};
use super::types::MyType;

/// The MySQL SQL of `expr`, if it can be evaluated at the source with the same result.
pub(crate) fn filter_to_sql(expr: &Expr, table: &TableMeta) -> Option<String> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And | Operator::Or => {
                let l = filter_to_sql(left, table)?;
                let r = filter_to_sql(right, table)?;
                let word = if *op == Operator::And { "AND" } else { "OR" };
                Some(format!("({l} {word} {r})"))
            }
            Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq => {
                let (column, value, op) = match (left.as_ref(), right.as_ref()) {
                    (Expr::Column(c), Expr::Literal(v, _)) => (c, v, *op),
                    (Expr::Literal(v, _), Expr::Column(c)) => (c, v, op.swap()?),
                    _ => return None,
                };
                let column = table.column(&column.name)?;
                let literal = literal_sql(column, value)?;
                let symbol = match op {
                    Operator::Eq => "=",
                    Operator::NotEq => "<>",
                    Operator::Lt => "<",
                    Operator::LtEq => "<=",
                    Operator::Gt => ">",
                    _ => ">=",
                };
                Some(format!(
                    "({} {symbol} {literal})",
                    quote_ident(&column.name)
                ))
            }
            _ => None,
        },
        Expr::Not(inner) => Some(format!("(NOT {})", filter_to_sql(inner, table)?)),
        Expr::IsNull(inner) => Some(format!("({} IS NULL)", column_sql(inner, table)?)),
        Expr::IsNotNull(inner) => Some(format!("({} IS NOT NULL)", column_sql(inner, table)?)),
        Expr::Between(Between {
            expr,
            negated,
            low,
            high,
        }) => {
            let Expr::Column(c) = expr.as_ref() else {
                return None;
            };
            let column = table.column(&c.name)?;
            let (Expr::Literal(low, _), Expr::Literal(high, _)) = (low.as_ref(), high.as_ref())
            else {
                return None;
            };
            let low = literal_sql(column, low)?;
            let high = literal_sql(column, high)?;
            let not = if *negated { "NOT " } else { "" };
            Some(format!(
                "({} {not}BETWEEN {low} AND {high})",
                quote_ident(&column.name)
            ))
        }
        Expr::InList(InList {
            expr,
            list,
            negated,
        }) => {
            let Expr::Column(c) = expr.as_ref() else {
                return None;
            };
            let column = table.column(&c.name)?;
            if list.is_empty() {
                return None;
            }
            let items = list
                .iter()
                .map(|e| match e {
                    Expr::Literal(v, _) => literal_sql(column, v),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?;
            let not = if *negated { "NOT " } else { "" };
            Some(format!(
                "({} {not}IN ({}))",
                quote_ident(&column.name),
                items.join(", ")
            ))
        }
        _ => None,
    }
}

fn column_sql(expr: &Expr, table: &TableMeta) -> Option<String> {
    match expr {
        Expr::Column(c) => table.column(&c.name).map(|c| quote_ident(&c.name)),
        _ => None,
    }
}

/// The SQL literal of `value` compared with `column`, if the comparison means the same at the
/// source. NULL literals are never pushed.
fn literal_sql(column: &ColumnMeta, value: &ScalarValue) -> Option<String> {
    match &column.ty {
        MyType::Int { .. } | MyType::UBigint | MyType::Decimal { .. } => number_sql(value),
        MyType::Date => match value {
            ScalarValue::Date32(Some(days)) => {
                let date = NaiveDate::from_ymd_opt(1970, 1, 1)?
                    .checked_add_signed(chrono::Duration::days(i64::from(*days)))?;
                (1000..=9999)
                    .contains(&date.year())
                    .then(|| format!("DATE '{}'", date.format("%Y-%m-%d")))
            }
            _ => None,
        },
        MyType::Datetime => match value {
            v if timestamp_tz(v) == Some(None) => timestamp_micros(v).and_then(timestamp_sql),
            _ => None,
        },
        MyType::Timestamp => match value {
            v if matches!(timestamp_tz(v), Some(Some(_))) => {
                timestamp_micros(v).and_then(timestamp_sql)
            }
            _ => None,
        },
        _ => None,
    }
}

pub(super) fn number_sql(value: &ScalarValue) -> Option<String> {
    Some(match value {
        ScalarValue::Int8(Some(v)) => v.to_string(),
        ScalarValue::Int16(Some(v)) => v.to_string(),
        ScalarValue::Int32(Some(v)) => v.to_string(),
        ScalarValue::Int64(Some(v)) => v.to_string(),
        ScalarValue::UInt8(Some(v)) => v.to_string(),
        ScalarValue::UInt16(Some(v)) => v.to_string(),
        ScalarValue::UInt32(Some(v)) => v.to_string(),
        ScalarValue::UInt64(Some(v)) => v.to_string(),
        ScalarValue::Decimal128(Some(v), _, scale) => decimal_sql(*v, *scale),
        _ => return None,
    })
}

/// `v * 10^-scale` written out exactly (`-12.340`): an exact-value (DECIMAL) literal in MySQL.
pub(super) fn decimal_sql(v: i128, scale: i8) -> String {
    let digits = v.unsigned_abs().to_string();
    let sign = if v < 0 { "-" } else { "" };
    if scale <= 0 {
        let zeros = "0".repeat(usize::from(scale.unsigned_abs()));
        return format!("{sign}{digits}{zeros}");
    }
    let scale = usize::from(scale.unsigned_abs());
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

/// The time zone of a timestamp literal: `Some(None)` for a naive timestamp, `None` if not one.
pub(super) fn timestamp_tz(value: &ScalarValue) -> Option<Option<&str>> {
    match value {
        ScalarValue::TimestampSecond(Some(_), tz)
        | ScalarValue::TimestampMillisecond(Some(_), tz)
        | ScalarValue::TimestampMicrosecond(Some(_), tz)
        | ScalarValue::TimestampNanosecond(Some(_), tz) => Some(tz.as_deref()),
        _ => None,
    }
}

/// The literal in whole microseconds since the epoch; none when it has a sub-microsecond part.
pub(super) fn timestamp_micros(value: &ScalarValue) -> Option<i64> {
    match value {
        ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1_000_000),
        ScalarValue::TimestampMillisecond(Some(v), _) => v.checked_mul(1_000),
        ScalarValue::TimestampMicrosecond(Some(v), _) => Some(*v),
        ScalarValue::TimestampNanosecond(Some(v), _) => (v % 1_000 == 0).then_some(v / 1_000),
        _ => None,
    }
}

/// `TIMESTAMP 'YYYY-MM-DD HH:MM:SS.ffffff'` (a DATETIME literal in MySQL; UTC for timestamps,
/// the sessions' time zone).
pub(super) fn timestamp_sql(micros: i64) -> Option<String> {
    let t = DateTime::from_timestamp_micros(micros)?.naive_utc();
    if !(1000..=9999).contains(&t.year()) {
        return None;
    }
    Some(format!("TIMESTAMP '{}'", t.format("%Y-%m-%d %H:%M:%S%.6f")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals() {
        assert_eq!(decimal_sql(12340, 3), "12.340");
        assert_eq!(decimal_sql(-5, 2), "-0.05");
        assert_eq!(decimal_sql(7, 0), "7");
        assert_eq!(decimal_sql(7, -2), "700");
    }

    #[test]
    fn timestamps() {
        assert_eq!(
            timestamp_sql(1_000_001).as_deref(),
            Some("TIMESTAMP '1970-01-01 00:00:01.000001'")
        );
        assert_eq!(timestamp_sql(-62_135_596_800_000_000), None);
    }
}
