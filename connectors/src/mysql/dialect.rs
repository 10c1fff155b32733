//! MySQL / MariaDB's dialect for pushed statements (the planner's `SqlSource` of a catalog is the
//! shared [`crate::sql_table::RemoteSqlSource`]).
//!
//! Differences from PostgreSQL the dialect covers: backtick quoting; no `NULLS FIRST / LAST`
//! (emulated with a leading `x IS NULL` key); no FULL JOIN; no `SELECT FROM t` without columns;
//! `OFFSET` only after a `LIMIT`; `<=>` for `IS NOT DISTINCT FROM`; `DIV` for truncating division;
//! casts only to `SIGNED`, `DECIMAL(p,s)`, `DOUBLE`, `FLOAT`, `CHAR`, `BINARY`, `DATE`,
//! `DATETIME(6)`, `TIME(6)`. Strings are never compared, grouped or ordered at the source
//! (MariaDB's default collations are case- and accent-insensitive and ignore trailing spaces), and
//! there are no booleans (a pushed statement never returns one).

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::ScalarValue;

use super::pushdown::{my_date_sql, timestamp_sql};
use super::quote_ident;
use super::types::MyType;
use crate::sql_filter::{decimal_sql, number_sql, timestamp_micros, timestamp_tz};
use crate::sql_source::{SqlDialect, SqlKind};

/// The SQL dialect of MySQL 8 and MariaDB 10.4 or later.
#[derive(Debug, Default, Clone, Copy)]
pub struct MySqlDialect;

impl SqlDialect for MySqlDialect {
    fn quote_ident(&self, name: &str) -> String {
        quote_ident(name)
    }

    fn literal(&self, value: &ScalarValue) -> Option<String> {
        match value {
            ScalarValue::Boolean(Some(b)) => Some(if *b { "TRUE" } else { "FALSE" }.into()),
            ScalarValue::Int8(Some(_))
            | ScalarValue::Int16(Some(_))
            | ScalarValue::Int32(Some(_))
            | ScalarValue::Int64(Some(_)) => {
                let text = number_sql(value)?;
                Some(if text.starts_with('-') {
                    format!("({text})")
                } else {
                    text
                })
            }
            ScalarValue::Decimal128(Some(v), p, s) if *s >= 0 && i16::from(*s) <= i16::from(*p) => {
                Some(format!("CAST({} AS DECIMAL({p},{s}))", decimal_sql(*v, *s)))
            }
            ScalarValue::Date32(Some(days)) => my_date_sql(*days),
            // Sessions run with `time_zone = '+00:00'`: a UTC instant is that datetime.
            v => match timestamp_tz(v)? {
                None | Some("UTC" | "+00:00") => timestamp_sql(timestamp_micros(v)?),
                Some(_) => None,
            },
        }
    }

    fn type_name(&self, ty: &DataType) -> Option<String> {
        Some(match ty {
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => "SIGNED".into(),
            DataType::Decimal128(p, s) if *s >= 0 && i16::from(*s) <= i16::from(*p) && *s <= 30 => {
                format!("DECIMAL({p},{s})")
            }
            DataType::Float32 => "FLOAT".into(),
            DataType::Float64 => "DOUBLE".into(),
            DataType::Utf8 => "CHAR".into(),
            DataType::Binary => "BINARY".into(),
            DataType::Date32 => "DATE".into(),
            DataType::Timestamp(TimeUnit::Microsecond, None) => "DATETIME(6)".into(),
            DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) if tz.as_ref() == "UTC" => {
                "DATETIME(6)".into()
            }
            DataType::Time64(TimeUnit::Microsecond) => "TIME(6)".into(),
            _ => return None,
        })
    }

    fn aggregate(&self, name: &str) -> Option<&'static str> {
        Some(match name {
            "count" => "count",
            "sum" => "sum",
            "min" => "min",
            "max" => "max",
            "avg" => "avg",
            _ => return None,
        })
    }

    fn order_item(&self, expr: &str, asc: bool, nulls_first: bool) -> String {
        // `x IS NULL` is 0 / 1: DESC puts the NULLs first.
        format!(
            "({expr} IS NULL) {}, {expr} {}",
            if nulls_first { "DESC" } else { "ASC" },
            if asc { "ASC" } else { "DESC" }
        )
    }

    fn limit(&self, fetch: Option<usize>, skip: usize) -> String {
        match (fetch, skip) {
            (None, 0) => String::new(),
            (Some(n), 0) => format!(" LIMIT {n}"),
            (Some(n), k) => format!(" LIMIT {n} OFFSET {k}"),
            // MySQL has no OFFSET without LIMIT; this is its documented "all rows".
            (None, k) => format!(" LIMIT 18446744073709551615 OFFSET {k}"),
        }
    }

    fn full_join(&self) -> bool {
        false
    }

    fn empty_select(&self) -> bool {
        false
    }

    fn distinct_from(&self, a: &str, b: &str, distinct: bool) -> String {
        if distinct {
            format!("(NOT ({a} <=> {b}))")
        } else {
            format!("({a} <=> {b})")
        }
    }
}

/// What operations on a column of `ty` keep their meaning at MySQL / MariaDB (see [`SqlKind`]).
pub(crate) fn kind_of(ty: &MyType) -> SqlKind {
    match ty {
        // bigint unsigned is Decimal128(20, 0) here, but arithmetic on it fails at the source
        // when negative: only compared, grouped and aggregated.
        MyType::Int { .. } | MyType::UBigint => SqlKind::Integer,
        MyType::Decimal { .. } => SqlKind::Decimal,
        MyType::Float | MyType::Double => SqlKind::Float,
        MyType::Text | MyType::AsText { .. } => SqlKind::Text {
            eq: false,
            group: false,
        },
        // `timestamp` columns compare in the sessions' time zone, UTC.
        MyType::Date | MyType::Datetime | MyType::Timestamp => SqlKind::Temporal,
        // year (two-digit literals), bit, binary (padding), time: only carried.
        MyType::Binary
        | MyType::Bits
        | MyType::Bits64
        | MyType::Year
        | MyType::Time
        | MyType::TimeInterval => SqlKind::Other,
    }
}

/// How a pushed statement's column of Arrow type `ty` is read.
pub(super) fn reader_type(ty: &DataType) -> Option<MyType> {
    Some(match ty {
        DataType::Int8 => MyType::Int {
            bits: 8,
            unsigned: false,
        },
        DataType::Int16 => MyType::Int {
            bits: 16,
            unsigned: false,
        },
        DataType::Int32 => MyType::Int {
            bits: 32,
            unsigned: false,
        },
        DataType::Int64 => MyType::Int {
            bits: 64,
            unsigned: false,
        },
        DataType::Decimal128(p, s) => MyType::Decimal {
            precision: *p,
            scale: *s,
        },
        DataType::Float32 => MyType::Float,
        DataType::Float64 => MyType::Double,
        DataType::Utf8 => MyType::Text,
        DataType::Binary => MyType::Binary,
        DataType::Date32 => MyType::Date,
        DataType::Timestamp(TimeUnit::Microsecond, None) => MyType::Datetime,
        DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) if tz.as_ref() == "UTC" => {
            MyType::Timestamp
        }
        DataType::Time64(TimeUnit::Microsecond) => MyType::Time,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering() {
        let d = MySqlDialect;
        assert_eq!(d.quote_ident("a`b"), "`a``b`");
        assert_eq!(d.order_item("x", true, false), "(x IS NULL) ASC, x ASC");
        assert_eq!(d.order_item("x", false, true), "(x IS NULL) DESC, x DESC");
        assert_eq!(d.limit(None, 3), " LIMIT 18446744073709551615 OFFSET 3");
        assert_eq!(
            d.literal(&ScalarValue::Decimal128(Some(-125), 5, 2))
                .as_deref(),
            Some("CAST(-1.25 AS DECIMAL(5,2))")
        );
        assert_eq!(
            d.literal(&ScalarValue::Int32(Some(-4))).as_deref(),
            Some("(-4)")
        );
        assert_eq!(d.literal(&ScalarValue::Utf8(Some("a".into()))), None);
        assert_eq!(
            d.cast("x", &DataType::Int32).as_deref(),
            Some("CAST(x AS SIGNED)")
        );
        assert_eq!(d.distinct_from("a", "b", true), "(NOT (a <=> b))");
    }
}
