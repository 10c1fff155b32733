//! Which DataFusion filters keep their meaning at MySQL / MariaDB, and the literals they are
//! written with; the translation itself is shared ([`crate::sql_filter`]).
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

use datafusion::common::ScalarValue;

use super::types::MyType;
use crate::sql_filter::{date_sql, number_sql, timestamp_micros, timestamp_text, timestamp_tz};

/// Years MySQL's date and datetime types hold.
const YEARS: std::ops::RangeInclusive<i32> = 1000..=9999;

/// The SQL literal of `value` compared with a column of type `ty`, if the comparison means the
/// same at the source (all the types pushed order as DataFusion does, so whether the comparison is
/// ordered does not matter). NULL literals are never pushed.
pub(super) fn literal_sql(ty: &MyType, value: &ScalarValue) -> Option<String> {
    match ty {
        MyType::Int { .. } | MyType::UBigint | MyType::Decimal { .. } => number_sql(value),
        MyType::Date => match value {
            ScalarValue::Date32(Some(days)) => my_date_sql(*days),
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

/// The `DATE '...'` literal of a date MySQL can hold.
pub(super) fn my_date_sql(days: i32) -> Option<String> {
    date_sql(days, YEARS)
}

/// `TIMESTAMP 'YYYY-MM-DD HH:MM:SS.ffffff'` (a DATETIME literal in MySQL; UTC for timestamps,
/// the sessions' time zone).
pub(super) fn timestamp_sql(micros: i64) -> Option<String> {
    Some(format!("TIMESTAMP '{}'", timestamp_text(micros, YEARS)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(
            timestamp_sql(1_000_001).as_deref(),
            Some("TIMESTAMP '1970-01-01 00:00:01.000001'")
        );
        assert_eq!(timestamp_sql(-62_135_596_800_000_000), None);
    }
}
