//! Running queries with every value as text, and comparing result sets.
//!
//! Comparison rules (see [`Kind`]):
//! - integers, dates, timestamps, booleans, other types: the text must be identical;
//! - strings: identical after removing trailing blanks (PostgreSQL pads `char(n)` values);
//! - numeric / float: parsed as f64 on both sides and equal when
//!   `|a - b| <= REL_TOL * max(|a|, |b|)` or `|a - b| <= ABS_TOL`. The absolute part covers
//!   averages and ratios that one engine computes at a decimal scale of 6 and the other at 16+
//!   digits; money sums are exact decimals in both engines and fall under the relative part;
//! - NULL equals only NULL;
//! - row order is compared only when the query has a top-level `ORDER BY`; otherwise both sides
//!   are sorted first (numbers by value, so `1.50` and `1.5` sort alike).

use std::cmp::Ordering;
use std::fmt::Write as _;

use tokio_postgres::types::Type;
use tokio_postgres::{Client, SimpleQueryMessage};

/// Relative tolerance for numeric and float values.
pub const REL_TOL: f64 = 1e-6;
/// Absolute tolerance for numeric and float values.
pub const ABS_TOL: f64 = 1e-5;

/// A result set with every value as text (`None` = NULL), as the simple query protocol gives it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TextRows {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// Rows, each with one value per column.
    pub rows: Vec<Vec<Option<String>>>,
}

impl TextRows {
    /// The rows with NULL as `"NULL"`, convenient for `assert_eq!` against literals.
    pub fn strings(&self) -> Vec<Vec<String>> {
        self.rows
            .iter()
            .map(|r| {
                r.iter()
                    .map(|v| v.clone().unwrap_or_else(|| "NULL".into()))
                    .collect()
            })
            .collect()
    }
}

/// Runs `sql` (one or more statements) with the simple query protocol and returns the rows of the
/// last statement that returned a row description.
pub async fn query_text(client: &Client, sql: &str) -> Result<TextRows, tokio_postgres::Error> {
    let messages = client.simple_query(sql).await?;
    let mut out = TextRows::default();
    let mut current = TextRows::default();
    for message in messages {
        match message {
            SimpleQueryMessage::RowDescription(columns) => {
                current = TextRows {
                    columns: columns.iter().map(|c| c.name().to_string()).collect(),
                    rows: Vec::new(),
                };
            }
            SimpleQueryMessage::Row(row) => {
                if current.columns.is_empty() {
                    current.columns = row.columns().iter().map(|c| c.name().to_string()).collect();
                }
                current.rows.push(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_string))
                        .collect(),
                );
            }
            SimpleQueryMessage::CommandComplete(_) if !current.columns.is_empty() => {
                out = std::mem::take(&mut current);
            }
            _ => {}
        }
    }
    if !current.columns.is_empty() {
        out = current;
    }
    Ok(out)
}

/// Every row of every result set of `sql` (one or more statements, simple query protocol), each
/// value as text (`None` = NULL). Panics with the statement and the error if it fails.
pub async fn all_rows(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(String::from))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// How a column's values are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Exact text.
    Exact,
    /// Exact after trimming trailing blanks.
    Text,
    /// f64 with [`REL_TOL`] / [`ABS_TOL`].
    Number,
}

impl Kind {
    /// The comparison kind for a PostgreSQL result column type.
    pub fn of(ty: &Type) -> Kind {
        match *ty {
            Type::NUMERIC | Type::FLOAT4 | Type::FLOAT8 => Kind::Number,
            Type::BPCHAR | Type::VARCHAR | Type::TEXT | Type::NAME => Kind::Text,
            _ => Kind::Exact,
        }
    }
}

/// The comparison kinds of `sql`'s result columns, from PostgreSQL's own description of it
/// (prepares the statement on `client`).
pub async fn kinds_from_postgres(
    client: &Client,
    sql: &str,
) -> Result<Vec<Kind>, tokio_postgres::Error> {
    let statement = client.prepare(sql).await?;
    Ok(statement
        .columns()
        .iter()
        .map(|c| Kind::of(c.type_()))
        .collect())
}

/// Numbers equal under the stated tolerance (see module docs).
pub fn numbers_close(a: f64, b: f64) -> bool {
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    diff <= ABS_TOL || diff <= REL_TOL * a.abs().max(b.abs())
}

fn values_equal(kind: Kind, a: &Option<String>, b: &Option<String>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => match kind {
            Kind::Exact => a == b,
            Kind::Text => a.trim_end_matches(' ') == b.trim_end_matches(' '),
            Kind::Number => match (a.trim().parse::<f64>(), b.trim().parse::<f64>()) {
                (Ok(x), Ok(y)) => numbers_close(x, y),
                _ => a == b,
            },
        },
        _ => false,
    }
}

fn compare_values(kind: Kind, a: &Option<String>, b: &Option<String>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(a), Some(b)) => match kind {
            Kind::Number => match (a.trim().parse::<f64>(), b.trim().parse::<f64>()) {
                (Ok(x), Ok(y)) => x.total_cmp(&y),
                _ => a.cmp(b),
            },
            Kind::Text => a.trim_end_matches(' ').cmp(b.trim_end_matches(' ')),
            Kind::Exact => a.cmp(b),
        },
    }
}

fn sort_rows(kinds: &[Kind], rows: &mut [Vec<Option<String>>]) {
    rows.sort_by(|x, y| {
        for (i, kind) in kinds.iter().enumerate() {
            let ord = compare_values(*kind, &x[i], &y[i]);
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    });
}

/// True when `sql` has an `ORDER BY` outside parentheses (so the outermost result is ordered).
pub fn has_top_level_order_by(sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut depth = 0i32;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'(' => depth += 1,
            b')' => depth -= 1,
            b'\'' => {
                // Skip a string literal.
                i += 1;
                while i < bytes.len() && bytes[i] != b'\'' {
                    i += 1;
                }
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'o' if depth == 0 && lower[i..].starts_with("order") => {
                let before_ok = i == 0 || !is_word(bytes[i - 1]);
                let rest = lower[i + 5..].trim_start();
                if before_ok && rest.starts_with("by") && !rest[2..].starts_with(is_word_char) {
                    return true;
                }
            }
            _ => {}
        }
        i += 1;
    }
    false
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Compares `actual` with `expected` under the rules in the module docs. `ordered`: compare row
/// order too. Returns a readable report of the differences (at most `max_diffs` rows), or `Ok`.
pub fn compare(
    expected: &TextRows,
    actual: &TextRows,
    kinds: &[Kind],
    ordered: bool,
    max_diffs: usize,
) -> Result<(), String> {
    let mut report = String::new();
    if expected.columns.len() != actual.columns.len() {
        return Err(format!(
            "column count differs: expected {} {:?}, got {} {:?}",
            expected.columns.len(),
            expected.columns,
            actual.columns.len(),
            actual.columns
        ));
    }
    let width = expected.columns.len();
    let kinds: Vec<Kind> = (0..width)
        .map(|i| kinds.get(i).copied().unwrap_or(Kind::Exact))
        .collect();
    if let Some(bad) = actual.rows.iter().find(|r| r.len() != width) {
        return Err(format!(
            "a result row has {} values, expected {width}: {bad:?}",
            bad.len()
        ));
    }
    let (mut exp, mut act) = (expected.rows.clone(), actual.rows.clone());
    if !ordered {
        sort_rows(&kinds, &mut exp);
        sort_rows(&kinds, &mut act);
    }
    if exp.len() != act.len() {
        let _ = writeln!(
            report,
            "row count differs: expected {}, got {}",
            exp.len(),
            act.len()
        );
    }
    let mut diffs = 0;
    for i in 0..exp.len().max(act.len()) {
        let (e, a) = (exp.get(i), act.get(i));
        let same = match (e, a) {
            (Some(e), Some(a)) => (0..width).all(|c| values_equal(kinds[c], &e[c], &a[c])),
            _ => false,
        };
        if !same {
            diffs += 1;
            if diffs <= max_diffs {
                let _ = writeln!(
                    report,
                    "row {i}{}:\n  expected {}\n  actual   {}",
                    if ordered { "" } else { " (after sorting)" },
                    show_row(e),
                    show_row(a)
                );
            }
        }
    }
    if diffs > max_diffs {
        let _ = writeln!(report, "... {} more differing rows", diffs - max_diffs);
    }
    if report.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{diffs} differing rows (columns {:?}, compared as {kinds:?}, {}):\n{report}",
            expected.columns,
            if ordered {
                "in order"
            } else {
                "as sorted multisets"
            }
        ))
    }
}

fn show_row(row: Option<&Vec<Option<String>>>) -> String {
    match row {
        None => "(no row)".into(),
        Some(r) => {
            let cells: Vec<String> = r
                .iter()
                .map(|v| match v {
                    None => "NULL".into(),
                    Some(s) => s.clone(),
                })
                .collect();
            format!("[{}]", cells.join(" | "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(r: &[&[&str]]) -> TextRows {
        TextRows {
            columns: (0..r.first().map_or(0, |x| x.len()))
                .map(|i| format!("c{i}"))
                .collect(),
            rows: r
                .iter()
                .map(|x| x.iter().map(|v| Some(v.to_string())).collect())
                .collect(),
        }
    }

    #[test]
    fn order_by_detection() {
        assert!(has_top_level_order_by("select a from t order by a"));
        assert!(has_top_level_order_by("select a from t ORDER\n  BY a;"));
        assert!(!has_top_level_order_by(
            "select * from (select a from t order by a) x"
        ));
        assert!(!has_top_level_order_by("select 'order by' from t"));
        assert!(!has_top_level_order_by("select border_by from t"));
    }

    #[test]
    fn tolerances() {
        let kinds = [Kind::Text, Kind::Number, Kind::Exact];
        let a = rows(&[&["x  ", "1.50", "3"], &["y", "0.0499852", "4"]]);
        let b = rows(&[&["x", "1.5", "3"], &["y", "0.049985", "4"]]);
        assert!(compare(&a, &b, &kinds, true, 5).is_ok());
        let c = rows(&[&["x", "1.5", "3"], &["y", "0.06", "4"]]);
        assert!(compare(&a, &c, &kinds, true, 5).is_err());
        let d = rows(&[&["y", "0.049985", "4"], &["x", "1.5", "3"]]);
        assert!(compare(&a, &d, &kinds, true, 5).is_err());
        assert!(compare(&a, &d, &kinds, false, 5).is_ok());
        let e = rows(&[&["x", "1.5", "3.0"], &["y", "0.049985", "4"]]);
        assert!(compare(&a, &e, &kinds, true, 5).is_err());
    }
}
