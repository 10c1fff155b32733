//! Trino's time travel clauses, `t FOR VERSION AS OF 8954597067493422955` and
//! `t FOR TIMESTAMP AS OF TIMESTAMP '2026-12-05 10:00:00 UTC'`, which no sqlparser dialect parses:
//! rewritten in the SQL text, before parsing, into a quoted table name that the `iceberg` connector
//! resolves to that snapshot (see `tributary_connectors::iceberg::version_name`). Text without the
//! clauses is returned as it is.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, Tokenizer, Word};
use tributary_connectors::iceberg::{timestamp_name, version_name};

/// A clause that cannot be applied: its message (SQLSTATE `22007` for a timestamp that does not
/// parse, `42601` for a clause without its table name or value).
#[derive(Debug, Clone, PartialEq)]
pub struct TimeTravelError {
    /// PostgreSQL SQLSTATE.
    pub sqlstate: &'static str,
    /// What is wrong.
    pub message: String,
}

/// `sql` with each `NAME FOR VERSION AS OF n` / `NAME FOR TIMESTAMP AS OF TIMESTAMP 'ts'` replaced
/// by the quoted name `"name@vN"` / `"name@tMICROS"` (an unquoted name lower-cased first, as the
/// planner would). A timestamp without a zone is UTC. Text that does not tokenize is returned
/// unchanged (the parser reports it).
pub fn rewrite(sql: &str) -> Result<Cow<'_, str>, TimeTravelError> {
    if !contains_ignore_case(sql, "AS OF") {
        return Ok(Cow::Borrowed(sql));
    }
    // Only the table name and the clause are replaced, by their byte range in `sql`: every other
    // character stays as written (tokens do not always print back as written: E'' strings).
    let Ok(spanned) = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .with_unescape(false)
        .tokenize_with_location()
    else {
        return Ok(Cow::Borrowed(sql));
    };
    let tokens: Vec<Token> = spanned.iter().map(|t| t.token.clone()).collect();
    let mut replacements: Vec<(usize, usize, String)> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if !is_keyword(&tokens[i], Keyword::FOR) {
            i += 1;
            continue;
        }
        let Some(clause) = clause_at(&tokens, i)? else {
            i += 1;
            continue;
        };
        let Some(name_at) = (0..i)
            .rev()
            .find(|&j| !matches!(tokens[j], Token::Whitespace(_)))
        else {
            return Err(syntax("FOR ... AS OF without a table before it"));
        };
        let Token::Word(word) = &tokens[name_at] else {
            return Err(syntax("FOR ... AS OF must follow a table name"));
        };
        if !follows_table_name(&tokens, name_at) {
            return Err(syntax(
                "FOR ... AS OF must follow the table name directly (before any alias)",
            ));
        }
        let base = if word.quote_style.is_some() {
            word.value.clone()
        } else {
            word.value.to_lowercase()
        };
        let name = match clause.what {
            AsOf::Version(id) => version_name(&base, id),
            AsOf::Micros(micros) => timestamp_name(&base, micros),
        };
        let quoted = Token::Word(Word {
            value: name,
            quote_style: Some('"'),
            keyword: Keyword::NoKeyword,
        });
        let (Some(from), Some(to)) = (
            offset(sql, &spanned[name_at].span.start),
            offset(sql, &spanned[clause.end - 1].span.end),
        ) else {
            return Err(syntax("FOR ... AS OF: cannot locate the clause"));
        };
        replacements.push((from, to, quoted.to_string()));
        i = clause.end;
    }
    if replacements.is_empty() {
        return Ok(Cow::Borrowed(sql));
    }
    let mut out = sql.to_string();
    for (from, to, text) in replacements.into_iter().rev() {
        out.replace_range(from..to, &text);
    }
    Ok(Cow::Owned(out))
}

/// The byte offset in `sql` of a tokenizer location (1-based line and character column).
fn offset(sql: &str, location: &Location) -> Option<usize> {
    let mut line_start = 0;
    for _ in 1..location.line {
        line_start += sql[line_start..].find('\n')? + 1;
    }
    let column = usize::try_from(location.column).ok()?.checked_sub(1)?;
    let line = &sql[line_start..];
    match line.char_indices().nth(column) {
        Some((at, _)) => Some(line_start + at),
        None => (line.chars().count() == column).then_some(line_start + line.len()),
    }
}

enum AsOf {
    Version(i64),
    Micros(i64),
}

struct Clause {
    what: AsOf,
    /// Index one past the clause's last token.
    end: usize,
}

/// The clause starting with the `FOR` at `start`, if the tokens there are one.
fn clause_at(tokens: &[Token], start: usize) -> Result<Option<Clause>, TimeTravelError> {
    let mut words = Vec::new();
    let mut j = start + 1;
    // VERSION|TIMESTAMP AS OF
    while words.len() < 3 && j < tokens.len() {
        match &tokens[j] {
            Token::Whitespace(_) => {}
            Token::Word(w) => words.push(w.value.to_uppercase()),
            _ => return Ok(None),
        }
        j += 1;
    }
    let kind = match words.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["VERSION", "AS", "OF"] => "VERSION",
        ["TIMESTAMP", "AS", "OF"] => "TIMESTAMP",
        _ => return Ok(None),
    };
    let mut next = || -> Option<(usize, &Token)> {
        while j < tokens.len() {
            let at = j;
            j += 1;
            if !matches!(tokens[at], Token::Whitespace(_)) {
                return Some((at, &tokens[at]));
            }
        }
        None
    };
    if kind == "VERSION" {
        return match next() {
            Some((at, Token::Number(n, _))) => {
                let id = n.parse::<i64>().map_err(|_| {
                    syntax(&format!("FOR VERSION AS OF {n}: expected a snapshot id"))
                })?;
                Ok(Some(Clause {
                    what: AsOf::Version(id),
                    end: at + 1,
                }))
            }
            _ => Err(syntax(
                "FOR VERSION AS OF must be followed by a snapshot id",
            )),
        };
    }
    // TIMESTAMP AS OF [TIMESTAMP] 'literal'
    let (mut at, mut token) =
        next().ok_or_else(|| syntax("FOR TIMESTAMP AS OF without a value"))?;
    if is_keyword(token, Keyword::TIMESTAMP) {
        (at, token) = next().ok_or_else(|| syntax("FOR TIMESTAMP AS OF without a value"))?;
    }
    let Token::SingleQuotedString(text) = token else {
        return Err(syntax(
            "FOR TIMESTAMP AS OF must be followed by a literal, e.g. TIMESTAMP '2026-12-05 10:00:00 UTC'",
        ));
    };
    let micros = parse_timestamp(text).ok_or_else(|| TimeTravelError {
        sqlstate: "22007",
        message: format!("invalid input syntax for type timestamp with time zone: \"{text}\""),
    })?;
    Ok(Some(Clause {
        what: AsOf::Micros(micros),
        end: at + 1,
    }))
}

/// `text` (`YYYY-MM-DD[ HH:MM:SS[.f]][ UTC|Z|±HH:MM]`, `T` allowed between date and time) as
/// microseconds since the Unix epoch; no zone is UTC.
fn parse_timestamp(text: &str) -> Option<i64> {
    let mut text = text.trim().to_string();
    if text
        .get(10..11)
        .is_some_and(|c| c.eq_ignore_ascii_case("t"))
    {
        text.replace_range(10..11, " ");
    }
    for zone in [" UTC", " utc", "Z", "z"] {
        if let Some(stripped) = text.strip_suffix(zone) {
            text = format!("{} +00:00", stripped.trim_end());
        }
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f %:z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M %:z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(&text, format) {
            return Some(t.timestamp_micros());
        }
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(&text, format) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    NaiveDate::parse_from_str(&text, "%Y-%m-%d").ok().map(|d| {
        d.and_time(chrono::NaiveTime::MIN)
            .and_utc()
            .timestamp_micros()
    })
}

/// Whether the word at `at` ends a table name in a FROM list: walking back over `a.b.` parts, the
/// token before the name is `FROM`, `JOIN` or `,` (so `t AS x FOR ...`, whose word is an alias, is
/// not taken for a table named `x`).
fn follows_table_name(tokens: &[Token], at: usize) -> bool {
    let previous = |from: usize| {
        (0..from)
            .rev()
            .find(|&j| !matches!(tokens[j], Token::Whitespace(_)))
    };
    let mut start = at;
    loop {
        match previous(start) {
            Some(dot) if tokens[dot] == Token::Period => match previous(dot) {
                Some(part) if matches!(tokens[part], Token::Word(_)) => start = part,
                _ => return false,
            },
            Some(before) => {
                return tokens[before] == Token::Comma
                    || is_keyword(&tokens[before], Keyword::FROM)
                    || is_keyword(&tokens[before], Keyword::JOIN);
            }
            None => return false,
        }
    }
}

fn is_keyword(token: &Token, keyword: Keyword) -> bool {
    matches!(token, Token::Word(w) if w.keyword == keyword && w.quote_style.is_none())
}

fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack.to_ascii_uppercase().contains(needle)
}

fn syntax(message: &str) -> TimeTravelError {
    TimeTravelError {
        sqlstate: "42601",
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clauses_become_quoted_names() {
        assert_eq!(
            rewrite("SELECT * FROM ice.s.T FOR VERSION AS OF 42 WHERE x = 1").unwrap(),
            "SELECT * FROM ice.s.\"t@v42\" WHERE x = 1"
        );
        assert_eq!(
            rewrite("select count(*) from s.\"Tab\" for timestamp as of timestamp '1970-01-01 00:00:01 UTC' a")
                .unwrap(),
            "select count(*) from s.\"Tab@t1000000\" a"
        );
        assert_eq!(
            rewrite("SELECT * FROM t FOR TIMESTAMP AS OF TIMESTAMP '1970-01-01 01:00:00+01:00'")
                .unwrap(),
            "SELECT * FROM \"t@t0\""
        );
        // Everything else prints back as written, quotes doubled inside literals included.
        assert_eq!(
            rewrite(
                r"SELECT * FROM t FOR VERSION AS OF 1 WHERE n = 'x'' OR ''1''=''1' AND m = E'\\'''"
            )
            .unwrap(),
            r#"SELECT * FROM "t@v1" WHERE n = 'x'' OR ''1''=''1' AND m = E'\\'''"#
        );
        assert_eq!(
            rewrite(r#"SELECT 1 FROM a, "q""t" FOR VERSION AS OF 2 JOIN b ON true"#).unwrap(),
            r#"SELECT 1 FROM a, "q""t@v2" JOIN b ON true"#
        );
        let alias = rewrite("SELECT * FROM t AS x FOR VERSION AS OF 1").unwrap_err();
        assert_eq!(alias.sqlstate, "42601");
        let plain = "SELECT 'FOR VERSION AS OF 1' FROM t";
        assert!(matches!(rewrite(plain).unwrap(), Cow::Borrowed(_)));
        let e = rewrite("SELECT * FROM t FOR TIMESTAMP AS OF TIMESTAMP 'yesterday'").unwrap_err();
        assert_eq!(e.sqlstate, "22007");
        let e = rewrite("SELECT * FROM t FOR VERSION AS OF x").unwrap_err();
        assert_eq!(e.sqlstate, "42601");
    }
}
