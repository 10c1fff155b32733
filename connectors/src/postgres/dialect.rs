//! PostgreSQL's dialect for pushed statements (the planner's [`SqlSource`] of a catalog is the
//! shared [`crate::sql_table::RemoteSqlSource`]).
//!
//! [`SqlSource`]: crate::sql_source::SqlSource

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;

use super::pushdown::{pg_date_sql, string_literal, timestamp_sql};
use super::quote_ident;
use super::types::PgType;
use crate::sql_filter::{number_sql, timestamp_micros, timestamp_tz};
use crate::sql_source::{SqlDialect, SqlKind};
use crate::sql_table::ColumnType;

/// PostgreSQL's SQL dialect (version 11 or later).
#[derive(Debug, Default, Clone, Copy)]
pub struct PostgresDialect;

impl SqlDialect for PostgresDialect {
    fn quote_ident(&self, name: &str) -> String {
        quote_ident(name)
    }

    fn literal(&self, value: &ScalarValue) -> Option<String> {
        let typed = |text: String, ty: &str| {
            let text = if text.starts_with('-') {
                format!("({text})")
            } else {
                text
            };
            Some(format!("CAST({text} AS {ty})"))
        };
        match value {
            ScalarValue::Boolean(Some(b)) => Some(if *b { "TRUE" } else { "FALSE" }.into()),
            ScalarValue::Int16(Some(_)) => typed(number_sql(value)?, "int2"),
            ScalarValue::Int32(Some(_)) => typed(number_sql(value)?, "int4"),
            ScalarValue::Int64(Some(_)) => typed(number_sql(value)?, "int8"),
            ScalarValue::Decimal128(Some(_), p, s) if *s >= 0 && i16::from(*s) <= i16::from(*p) => {
                typed(number_sql(value)?, &format!("numeric({p},{s})"))
            }
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)) => {
                Some(format!("CAST({} AS text)", string_literal(s)?))
            }
            ScalarValue::Date32(Some(days)) => pg_date_sql(*days),
            v => match timestamp_tz(v)? {
                None => timestamp_sql(timestamp_micros(v)?, false),
                Some("UTC" | "+00:00") => timestamp_sql(timestamp_micros(v)?, true),
                Some(_) => None,
            },
        }
    }

    fn type_name(&self, ty: &DataType) -> Option<String> {
        PgType::from_arrow(ty)?.cast_name()
    }

    fn aggregate(&self, name: &str) -> Option<&'static str> {
        Some(match name {
            "count" => "count",
            "sum" => "sum",
            "min" => "min",
            "max" => "max",
            "avg" => "avg",
            "stddev" | "stddev_samp" => "stddev_samp",
            "stddev_pop" => "stddev_pop",
            "var" | "var_samp" | "var_sample" | "variance" => "var_samp",
            "var_pop" | "var_population" => "var_pop",
            _ => return None,
        })
    }

    fn order_item(&self, expr: &str, asc: bool, nulls_first: bool) -> String {
        format!(
            "{expr} {} NULLS {}",
            if asc { "ASC" } else { "DESC" },
            if nulls_first { "FIRST" } else { "LAST" }
        )
    }

    fn limit(&self, fetch: Option<usize>, skip: usize) -> String {
        let mut s = String::new();
        if let Some(n) = fetch {
            s.push_str(&format!(" LIMIT {n}"));
        }
        if skip > 0 {
            s.push_str(&format!(" OFFSET {skip}"));
        }
        s
    }

    fn full_join(&self) -> bool {
        true
    }

    fn correlated_subqueries(&self) -> bool {
        true
    }

    fn hash_joins(&self) -> bool {
        true
    }

    fn integer_arithmetic(&self) -> bool {
        true
    }

    fn empty_select(&self) -> bool {
        true
    }
}

/// What operations on a column of `ty` keep their meaning at PostgreSQL (see [`SqlKind`]).
pub(crate) fn kind_of(ty: &PgType) -> SqlKind {
    match ty {
        PgType::Int2 | PgType::Int4 | PgType::Int8 => SqlKind::Integer,
        PgType::Numeric { .. } => SqlKind::Decimal,
        PgType::Float4 | PgType::Float8 => SqlKind::Float,
        PgType::Bool => SqlKind::Bool,
        // char(n) is read through `::text` (padding dropped): the value read is plain text.
        PgType::Text {
            eq_pushable,
            deterministic,
            padded,
        } => SqlKind::Text {
            eq: *eq_pushable || (*padded && *deterministic),
            group: *deterministic,
        },
        // Read through a cast to text (default collation, deterministic): the value is that text.
        PgType::AsText => SqlKind::Text {
            eq: true,
            group: true,
        },
        PgType::Date | PgType::Timestamp | PgType::Timestamptz => SqlKind::Temporal,
        PgType::Bytea | PgType::Time | PgType::Interval | PgType::List(_) => SqlKind::Other,
    }
}
