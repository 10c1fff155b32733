//! Which DataFusion filters keep their meaning at PostgreSQL, and the literals they are written
//! with; the translation itself is shared ([`crate::sql_filter`]).
//!
//! Pushed (and reported `Exact`):
//! - `column <op> literal` (either order) with `=`, `<>`, `<`, `<=`, `>`, `>=` on int2/int4/int8 and
//!   numeric(p, s) columns against integer or decimal literals, on date, timestamp and timestamptz
//!   columns against literals of the same kind (years 1 to 9999, whole microseconds);
//! - `=` / `<>` on bool columns, and a bool column alone as a predicate;
//! - `=` / `<>` on text, varchar and name columns under a deterministic collation against a string
//!   literal (never `<`, `>`: collations may order strings differently; never char(n), whose
//!   comparisons ignore trailing blanks);
//! - `[NOT] BETWEEN` and `[NOT] IN (list)` with the same column / literal rules;
//! - `IS [NOT] NULL` on any column; `AND`, `OR`, `NOT` of pushed filters.
//!
//! Not pushed: float columns (NaN and -0 compare differently), columns cast to text at the source
//! (uuid, json, enums: their own comparison rules), string ranges, anything with a function or a cast.

use datafusion::common::ScalarValue;

use super::types::PgType;
use crate::sql_filter::{date_sql, number_sql, timestamp_micros, timestamp_text, timestamp_tz};

/// Years PostgreSQL literals are written for (its `date` goes further, Arrow's and chrono's not).
const YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

/// The SQL literal of `value` compared with a column of type `ty`, if the comparison (ordered: `<`,
/// `>`, BETWEEN; else `=`, `<>`, IN) means the same at the source. NULL literals are never pushed.
pub(super) fn literal_sql(ty: &PgType, value: &ScalarValue, ordered: bool) -> Option<String> {
    match ty {
        PgType::Int2 | PgType::Int4 | PgType::Int8 | PgType::Numeric { .. } => number_sql(value),
        PgType::Bool if !ordered => match value {
            ScalarValue::Boolean(Some(b)) => Some(if *b { "TRUE" } else { "FALSE" }.to_string()),
            _ => None,
        },
        PgType::Text {
            eq_pushable: true, ..
        } if !ordered => match value {
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)) => string_literal(s),
            _ => None,
        },
        PgType::Date => match value {
            ScalarValue::Date32(Some(days)) => date_sql(*days, YEARS),
            _ => None,
        },
        PgType::Timestamp => match value {
            v if timestamp_tz(v) == Some(None) => {
                timestamp_micros(v).and_then(|m| timestamp_sql(m, false))
            }
            _ => None,
        },
        PgType::Timestamptz => match value {
            v if matches!(timestamp_tz(v), Some(Some(_))) => {
                timestamp_micros(v).and_then(|m| timestamp_sql(m, true))
            }
            _ => None,
        },
        _ => None,
    }
}

/// A PostgreSQL string literal that means `s` whatever the session's
/// `standard_conforming_strings`: `'...'` with quotes doubled, or, when `s` holds a backslash,
/// an escape string `E'...'` with backslashes doubled too (a plain literal's backslash would be an
/// escape with the setting off, turning a user's value into other text or SQL). None for strings
/// PostgreSQL cannot hold (NUL).
pub(super) fn string_literal(s: &str) -> Option<String> {
    if s.contains('\0') {
        return None;
    }
    let quoted = s.replace('\'', "''");
    Some(if s.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    })
}

/// `TIMESTAMP '...'` (or `TIMESTAMPTZ '...+00'` with `with_tz`) of `micros` since the epoch.
pub(super) fn timestamp_sql(micros: i64, with_tz: bool) -> Option<String> {
    let text = timestamp_text(micros, YEARS)?;
    Some(if with_tz {
        format!("TIMESTAMPTZ '{text}+00'")
    } else {
        format!("TIMESTAMP '{text}'")
    })
}

/// The `DATE '...'` literal of a date, within the years PostgreSQL literals are written for.
pub(super) fn pg_date_sql(days: i32) -> Option<String> {
    date_sql(days, YEARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings() {
        assert_eq!(string_literal("it's").as_deref(), Some("'it''s'"));
        assert_eq!(string_literal("a\0b"), None);
        assert_eq!(
            string_literal("a\\' OR TRUE --").as_deref(),
            Some("E'a\\\\'' OR TRUE --'")
        );
    }

    #[test]
    fn timestamps() {
        assert_eq!(
            timestamp_sql(1_000_001, true).as_deref(),
            Some("TIMESTAMPTZ '1970-01-01 00:00:01.000001+00'")
        );
    }
}
