//! Small client-compatibility pieces outside `pg_catalog`: SQL rewrites for what DataFusion spells
//! differently, and the session functions drivers call on connect.
//!
//! - `x LIKE p ESCAPE 'c'` with an escape other than backslash (SQLAlchemy's `ESCAPE '/'`) becomes
//!   `x LIKE <p with c turned into backslash escapes>`, which DataFusion supports;
//! - `current_setting(name [, missing_ok])` and `set_config(name, value, is_local)` read and write the
//!   session's parameters (asyncpg turns `jit` off this way, SQLAlchemy reads
//!   `default_table_access_method`);
//! - `format(fmt, args...)` with PostgreSQL's `%s`, `%I` (identifier, quoted when needed), `%L`
//!   (literal) and `%%` (Metabase quotes table names with it);
//! - `pg_get_serial_sequence(table, column)`: sources have no sequences, NULL.
//! - `to_char(timestamp, 'YYYY-MM-DD HH24:MI:SS')`: PostgreSQL's template patterns, when the
//!   template is a literal of patterns with a strftime equivalent, become the strftime format
//!   DataFusion's `to_char` takes (it printed `YYYY-MM` as written).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{ColumnarValue, Signature, TypeSignature, Volatility};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident,
    ObjectName, ObjectNamePart, Value, ValueWithSpan, visit_expressions_mut,
};

use super::catalog::simple_udf;
use super::session::Settings;

/// The function the LIKE rewrite calls.
const LIKE_ESCAPE: &str = "tributary_like_escape";

/// Settings PostgreSQL has that clients read but the session does not keep.
const FIXED_SETTINGS: &[(&str, &str)] = &[
    ("default_table_access_method", "heap"),
    ("max_index_keys", "32"),
    ("block_size", "8192"),
    ("server_version_num", "150000"),
    ("data_directory_mode", "0700"),
    ("max_connections", "100"),
];

/// Rewrites parsed statements in place (see the module docs).
pub fn rewrite(statements: &mut std::collections::VecDeque<DfStatement>) {
    for statement in statements.iter_mut() {
        if let DfStatement::Statement(inner) = statement {
            let _ = visit_expressions_mut(inner.as_mut(), |expr| {
                rewrite_like_escape(expr);
                rewrite_to_char(expr);
                std::ops::ControlFlow::<()>::Continue(())
            });
        }
    }
}

fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName(vec![ObjectNamePart::Identifier(Ident::new(name))]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|a| FunctionArg::Unnamed(FunctionArgExpr::Expr(a)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

/// `to_char(x, 'template')` with a PostgreSQL date/time template literal turned into strftime.
fn rewrite_to_char(expr: &mut Expr) {
    let Expr::Function(function) = expr else {
        return;
    };
    let is_to_char = matches!(function.name.0.as_slice(),
        [ObjectNamePart::Identifier(id)] if id.value.eq_ignore_ascii_case("to_char"));
    let FunctionArguments::List(FunctionArgumentList { args, .. }) = &mut function.args else {
        return;
    };
    if !is_to_char {
        return;
    }
    let [
        _,
        FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(template))),
    ] = args.as_mut_slice()
    else {
        return;
    };
    let Value::SingleQuotedString(text) = &template.value else {
        return;
    };
    if let Some(format) = strftime_of(text) {
        template.value = Value::SingleQuotedString(format);
    }
}

/// The strftime format of PostgreSQL date/time template `template` (`YYYY-MM-DD HH24:MI:SS` is
/// `%Y-%m-%d %H:%M:%S`), or `None` when it holds a pattern without an equivalent (PostgreSQL pads
/// `Month` and `Day` to nine characters; `FMMonth` is taken) or looks like a number template
/// (`999D99`).
fn strftime_of(template: &str) -> Option<String> {
    // Longest first where one pattern starts another.
    const PATTERNS: &[(&str, &str)] = &[
        ("FMMonth", "%B"),
        ("FMDay", "%A"),
        ("FMDD", "%-d"),
        ("FMMM", "%-m"),
        ("FMHH24", "%-H"),
        ("FMHH12", "%-I"),
        ("HH24", "%H"),
        ("HH12", "%I"),
        ("YYYY", "%Y"),
        ("HH", "%I"),
        ("MI", "%M"),
        ("SS", "%S"),
        ("MS", "%3f"),
        ("US", "%6f"),
        ("YY", "%y"),
        ("MM", "%m"),
        ("DDD", "%j"),
        ("DD", "%d"),
        ("Mon", "%b"),
        ("Dy", "%a"),
        ("AM", "%p"),
        ("PM", "%p"),
        ("TZ", "%Z"),
    ];
    if template.contains(['9', '0']) {
        return None;
    }
    let mut out = String::new();
    let mut rest = template;
    let mut any = false;
    while let Some(c) = rest.chars().next() {
        if let Some((pattern, format)) = PATTERNS.iter().find(|(p, _)| rest.starts_with(p)) {
            out.push_str(format);
            rest = &rest[pattern.len()..];
            any = true;
        } else if c == '"' {
            // A quoted literal.
            let end = rest[1..].find('"')? + 1;
            out.push_str(&rest[1..end].replace('%', "%%"));
            rest = &rest[end + 1..];
        } else if c.is_ascii_alphabetic() {
            return None;
        } else {
            if c == '%' {
                out.push('%');
            }
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    any.then_some(out)
}

fn rewrite_like_escape(expr: &mut Expr) {
    let (Expr::Like {
        pattern,
        escape_char,
        ..
    }
    | Expr::ILike {
        pattern,
        escape_char,
        ..
    }) = expr
    else {
        return;
    };
    let Some(escape) = escape_char.as_ref().and_then(|v| match &v.value {
        Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) => Some(s.clone()),
        _ => None,
    }) else {
        return;
    };
    if escape == "\\" {
        *escape_char = None;
        return;
    }
    let call = call(
        LIKE_ESCAPE,
        vec![
            pattern.as_ref().clone(),
            Expr::Value(ValueWithSpan::from(Value::SingleQuotedString(escape))),
        ],
    );
    **pattern = call;
    *escape_char = None;
}

/// A LIKE pattern with escape character `escape` as a backslash-escaped pattern (empty `escape`: no
/// escape character at all).
fn to_backslash_pattern(pattern: &str, escape: &str) -> String {
    let escape = escape.chars().next();
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            match chars.next() {
                Some(next) => {
                    out.push('\\');
                    out.push(next);
                }
                None => out.push('\\'),
            }
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    out
}

/// Registers the session functions of this module in a session's context; `pid` is the session's
/// (for `pg_backend_pid()`).
pub fn install(ctx: &SessionContext, settings: &Settings, pid: i32) {
    let text = DataType::Utf8;
    // pg_backend_pid(): the session's pid, as BackendKeyData and pg_stat_activity show it.
    ctx.register_udf(datafusion::logical_expr::create_udf(
        "pg_backend_pid",
        vec![],
        DataType::Int32,
        Volatility::Stable,
        Arc::new(move |_: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(ScalarValue::Int32(Some(pid))))
        }),
    ));
    ctx.register_udf(simple_udf(
        LIKE_ESCAPE,
        Signature::exact(vec![text.clone(), text.clone()], Volatility::Immutable),
        text.clone(),
        |args| {
            map_text(args, |row| {
                Some(to_backslash_pattern(row[0].as_deref()?, row[1].as_deref()?))
            })
        },
    ));
    let read = settings.clone();
    ctx.register_udf(simple_udf(
        "current_setting",
        Signature::one_of(
            vec![
                TypeSignature::Exact(vec![text.clone()]),
                TypeSignature::Exact(vec![text.clone(), DataType::Boolean]),
            ],
            Volatility::Stable,
        ),
        text.clone(),
        move |args| {
            let missing_ok = matches!(
                args.get(1),
                Some(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))))
            );
            let settings = read.lock();
            let mut missing = None;
            let result = map_text(&args[..1], |row| {
                let name = row[0].as_deref()?.to_lowercase();
                let found = settings.get(&name).map(|(_, v)| v.clone()).or_else(|| {
                    FIXED_SETTINGS
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, v)| v.to_string())
                });
                if found.is_none() && !missing_ok {
                    missing = Some(name);
                }
                found
            })?;
            match missing {
                Some(name) => Err(super::errors::CatalogError::new(
                    super::errors::sqlstate::UNDEFINED_OBJECT,
                    format!("unrecognized configuration parameter \"{name}\""),
                )
                .into_datafusion()),
                None => Ok(result),
            }
        },
    ));
    let write = settings.clone();
    ctx.register_udf(simple_udf(
        "set_config",
        Signature::exact(
            vec![text.clone(), text.clone(), DataType::Boolean],
            Volatility::Volatile,
        ),
        text.clone(),
        move |args| {
            let mut settings = write.lock();
            map_text(&args[..2], |row| {
                let name = row[0].as_deref()?;
                let value = row[1].clone().unwrap_or_default();
                let key = name.to_lowercase();
                let display = settings
                    .get(&key)
                    .map_or_else(|| key.clone(), |(d, _)| d.clone());
                settings.insert(key, (display, value.clone()));
                Some(value)
            })
        },
    ));
    ctx.register_udf(simple_udf(
        "json_build_object",
        Signature::variadic_any(Volatility::Stable),
        text.clone(),
        json_build_object,
    ));
    ctx.register_udf(simple_udf(
        "format",
        Signature::variadic_any(Volatility::Stable),
        text.clone(),
        format,
    ));
    ctx.register_udf(simple_udf(
        "pg_get_serial_sequence",
        Signature::exact(vec![text.clone(), text.clone()], Volatility::Stable),
        text,
        |args| map_text(args, |_| None),
    ));
}

/// `format(fmt, args...)`: `%s` the argument's text (empty for NULL), `%I` it quoted as an identifier,
/// `%L` as a literal (`NULL` for NULL), `%%` a percent sign. NULL format, NULL result.
fn format(args: &[ColumnarValue]) -> Result<ColumnarValue> {
    map_text(args, |row| {
        let template = row.first()?.as_deref()?;
        let mut values = row[1..].iter();
        let mut out = String::with_capacity(template.len());
        let mut chars = template.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('%') => out.push('%'),
                Some('s') => out.push_str(values.next()?.as_deref().unwrap_or("")),
                Some('I') => out.push_str(&quote_identifier(values.next()?.as_deref()?)),
                Some('L') => match values.next()? {
                    Some(v) => out.push_str(&format!("'{}'", v.replace('\'', "''"))),
                    None => out.push_str("NULL"),
                },
                _ => return None,
            }
        }
        Some(out)
    })
}

/// An identifier as `quote_ident` writes it: bare when lower-case and plain, else double-quoted.
pub(crate) fn quote_identifier(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// `json_build_object(k1, v1, ...)` as JSON text (values as JSON strings, numbers, booleans or null).
fn json_build_object(args: &[ColumnarValue]) -> Result<ColumnarValue> {
    let rows = super::catalog::rows_of(args);
    let arrays = args
        .iter()
        .map(|a| a.to_array(rows))
        .collect::<Result<Vec<_>>>()?;
    let out: StringArray = (0..rows)
        .map(|i| {
            let mut parts = Vec::new();
            for pair in arrays.chunks(2) {
                let key = ScalarValue::try_from_array(&pair[0], i)?;
                let value = match pair.get(1) {
                    Some(v) => ScalarValue::try_from_array(v, i)?,
                    None => ScalarValue::Null,
                };
                let value = if value.is_null() {
                    "null".to_string()
                } else if value.data_type().is_numeric() || value.data_type() == DataType::Boolean {
                    value.to_string()
                } else {
                    json_string(&value.to_string())
                };
                parts.push(format!("{} : {value}", json_string(&key.to_string())));
            }
            Ok(Some(format!("{{{}}}", parts.join(", "))))
        })
        .collect::<Result<_>>()?;
    if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
    } else {
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Applies `f` row by row to text arguments (scalars broadcast), giving a text result.
fn map_text(
    args: &[ColumnarValue],
    mut f: impl FnMut(&[Option<String>]) -> Option<String>,
) -> Result<ColumnarValue> {
    let rows = super::catalog::rows_of(args);
    let columns = args
        .iter()
        .map(|a| {
            let array = a.to_array(rows)?;
            let array: ArrayRef = cast(&array, &DataType::Utf8)?;
            Ok(array)
        })
        .collect::<Result<Vec<_>>>()?;
    let strings: Vec<&StringArray> = columns
        .iter()
        .map(|c| {
            c.as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| DataFusionError::Internal("text argument".into()))
        })
        .collect::<Result<_>>()?;
    let mut row = vec![None; strings.len()];
    let out: StringArray = (0..rows)
        .map(|i| {
            for (slot, column) in row.iter_mut().zip(&strings) {
                *slot = (!column.is_null(i)).then(|| column.value(i).to_string());
            }
            f(&row)
        })
        .collect();
    if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
    } else {
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn to_char_templates_become_strftime() {
        assert_eq!(
            super::strftime_of("YYYY-MM-DD HH24:MI:SS").as_deref(),
            Some("%Y-%m-%d %H:%M:%S")
        );
        assert_eq!(
            super::strftime_of("Dy, DD Mon YYYY \"at\" HH12 AM").as_deref(),
            Some("%a, %d %b %Y at %I %p")
        );
        assert_eq!(super::strftime_of("999D99"), None);
        assert_eq!(super::strftime_of("Month"), None);
        assert_eq!(super::strftime_of("Q"), None);
    }

    use super::*;

    #[test]
    fn format_follows_postgres() {
        let args = ["%I.%I: %s %L %L 100%%", "tiny", "Mixed Case", "x", "it's"]
            .map(|s| ColumnarValue::Scalar(ScalarValue::Utf8(Some(s.to_string()))));
        let mut args = args.to_vec();
        args.push(ColumnarValue::Scalar(ScalarValue::Utf8(None)));
        let ColumnarValue::Scalar(ScalarValue::Utf8(Some(out))) = format(&args).unwrap() else {
            panic!("not text")
        };
        assert_eq!(out, "tiny.\"Mixed Case\": x 'it''s' NULL 100%");
    }

    #[test]
    fn like_escape_becomes_backslash() {
        assert_eq!(to_backslash_pattern("pg/_%", "/"), "pg\\_%");
        assert_eq!(to_backslash_pattern("a\\b//c", "/"), "a\\\\b\\/c");
        assert_eq!(to_backslash_pattern("x_", ""), "x_");
    }

    #[test]
    fn rewrites_like_with_escape() {
        let mut statements =
            super::super::statement::parse("select 1 where 'a' not like 'pg/_' || '%' escape '/'")
                .unwrap();
        rewrite(&mut statements);
        let sql = statements[0].to_string();
        assert!(sql.contains("tributary_like_escape"), "{sql}");
        assert!(!sql.to_lowercase().contains("escape '/'"), "{sql}");
    }
}
