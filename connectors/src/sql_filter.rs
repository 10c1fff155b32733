//! Filters of a table scan written as the WHERE condition of a SQL source's remote SELECT, for the
//! filters whose meaning is the same at the source; and the literals both that and the dialects
//! write.
//!
//! The shape is shared (`AND`, `OR`, `NOT`, `IS [NOT] NULL`, `column <op> literal` in either order,
//! `[NOT] BETWEEN`, `[NOT] IN (list)`); which comparisons keep their meaning is the column type's
//! to say ([`ColumnType::filter_literal`]), so each connector's `pushdown` module lists what it
//! pushes.

use std::ops::RangeInclusive;

use chrono::{DateTime, Datelike, NaiveDate};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::expr::{Between, InList};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};

use crate::remote_catalog::{ColumnMeta, RemoteTable};
use crate::sql_source::SqlDialect;
use crate::sql_table::ColumnType;

/// The SQL of `expr` on `table`, if it can be evaluated at the source with the same result.
pub(crate) fn filter_to_sql<T: ColumnType, X>(
    expr: &Expr,
    table: &RemoteTable<T, X>,
    dialect: &dyn SqlDialect,
) -> Option<String> {
    let quoted = |column: &ColumnMeta<T>| dialect.quote_ident(&column.name);
    let column_of = |e: &Expr| match e {
        Expr::Column(c) => table.column(&c.name),
        _ => None,
    };
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And | Operator::Or => {
                let l = filter_to_sql(left, table, dialect)?;
                let r = filter_to_sql(right, table, dialect)?;
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
                let ordered = !matches!(op, Operator::Eq | Operator::NotEq);
                let literal = column.ty.filter_literal(value, ordered)?;
                let symbol = match op {
                    Operator::Eq => "=",
                    Operator::NotEq => "<>",
                    Operator::Lt => "<",
                    Operator::LtEq => "<=",
                    Operator::Gt => ">",
                    _ => ">=",
                };
                Some(format!("({} {symbol} {literal})", quoted(column)))
            }
            _ => None,
        },
        Expr::Not(inner) => Some(format!("(NOT {})", filter_to_sql(inner, table, dialect)?)),
        Expr::IsNull(inner) => Some(format!("({} IS NULL)", quoted(column_of(inner)?))),
        Expr::IsNotNull(inner) => Some(format!("({} IS NOT NULL)", quoted(column_of(inner)?))),
        Expr::Column(_) => {
            let column = column_of(expr)?;
            column.ty.is_predicate().then(|| quoted(column))
        }
        Expr::Between(Between {
            expr,
            negated,
            low,
            high,
        }) => {
            let column = column_of(expr)?;
            let (Expr::Literal(low, _), Expr::Literal(high, _)) = (low.as_ref(), high.as_ref())
            else {
                return None;
            };
            let low = column.ty.filter_literal(low, true)?;
            let high = column.ty.filter_literal(high, true)?;
            let not = if *negated { "NOT " } else { "" };
            Some(format!(
                "({} {not}BETWEEN {low} AND {high})",
                quoted(column)
            ))
        }
        Expr::InList(InList {
            expr,
            list,
            negated,
        }) => {
            let column = column_of(expr)?;
            if list.is_empty() {
                return None;
            }
            let items = list
                .iter()
                .map(|e| match e {
                    Expr::Literal(v, _) => column.ty.filter_literal(v, false),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?;
            let not = if *negated { "NOT " } else { "" };
            Some(format!(
                "({} {not}IN ({}))",
                quoted(column),
                items.join(", ")
            ))
        }
        _ => None,
    }
}

/// An integer or decimal literal written out exactly (`-12.340`); none for other values and NULL.
pub(crate) fn number_sql(value: &ScalarValue) -> Option<String> {
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

/// `v * 10^-scale` written out exactly (`-12.340`): an exact-value literal in both dialects.
pub(crate) fn decimal_sql(v: i128, scale: i8) -> String {
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

/// `DATE 'YYYY-MM-DD'` of a date literal (days since 1970-01-01), if its year is in `years` (the
/// source's date range).
pub(crate) fn date_sql(days: i32, years: RangeInclusive<i32>) -> Option<String> {
    let date = NaiveDate::from_ymd_opt(1970, 1, 1)?
        .checked_add_signed(chrono::Duration::days(i64::from(days)))?;
    years
        .contains(&date.year())
        .then(|| format!("DATE '{}'", date.format("%Y-%m-%d")))
}

/// The time zone of a timestamp literal: `Some(None)` for a naive timestamp, `None` if not one.
pub(crate) fn timestamp_tz(value: &ScalarValue) -> Option<Option<&str>> {
    match value {
        ScalarValue::TimestampSecond(Some(_), tz)
        | ScalarValue::TimestampMillisecond(Some(_), tz)
        | ScalarValue::TimestampMicrosecond(Some(_), tz)
        | ScalarValue::TimestampNanosecond(Some(_), tz) => Some(tz.as_deref()),
        _ => None,
    }
}

/// The literal in whole microseconds since the epoch; none when it has a sub-microsecond part
/// (the source would compare a truncated value).
pub(crate) fn timestamp_micros(value: &ScalarValue) -> Option<i64> {
    match value {
        ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1_000_000),
        ScalarValue::TimestampMillisecond(Some(v), _) => v.checked_mul(1_000),
        ScalarValue::TimestampMicrosecond(Some(v), _) => Some(*v),
        ScalarValue::TimestampNanosecond(Some(v), _) => (v % 1_000 == 0).then_some(v / 1_000),
        _ => None,
    }
}

/// `YYYY-MM-DD HH:MM:SS.ffffff` (UTC) of `micros` since the epoch, if its year is in `years`.
pub(crate) fn timestamp_text(micros: i64, years: RangeInclusive<i32>) -> Option<String> {
    let t = DateTime::from_timestamp_micros(micros)?.naive_utc();
    if !years.contains(&t.year()) {
        return None;
    }
    Some(t.format("%Y-%m-%d %H:%M:%S%.6f").to_string())
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
    fn dates_and_timestamps() {
        assert_eq!(date_sql(0, 1..=9999).as_deref(), Some("DATE '1970-01-01'"));
        assert_eq!(date_sql(-719_528, 1000..=9999), None);
        assert_eq!(
            timestamp_text(1_000_001, 1..=9999).as_deref(),
            Some("1970-01-01 00:00:01.000001")
        );
        assert_eq!(timestamp_text(-62_135_596_800_000_000, 1000..=9999), None);
    }
}
