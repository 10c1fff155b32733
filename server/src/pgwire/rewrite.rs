//! Client-compatibility rewrites of catalog queries (psql, JDBC, SQLAlchemy...), from
//! datafusion-pg-catalog, applied only to statements that touch Postgres's catalogs.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::sync::LazyLock;

use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, DataType, Expr, ObjectName, ObjectNamePart, visit_expressions, visit_relations,
};
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;

mod planning;

/// Client-compatibility rewrites, built once (the library pre-parses its patterns).
static COMPAT: LazyLock<PostgresCompatibilityParser> =
    LazyLock::new(PostgresCompatibilityParser::new);

/// Applies the client-compatibility rewrites (`OPERATOR(pg_catalog.~)`, `COLLATE`, `::regclass`,
/// `= ANY(...)`, `pg_catalog.`-qualified functions, unqualified `pg_*` tables, ...) to parsed
/// statements. When the whole string is plain SQL statements, the library's parser also replaces the
/// few client queries it knows DataFusion cannot plan (psql's policy, statistics and publication
/// lookups of `\d TABLE`) with empty results of the same shape.
///
/// Only statements that look like client catalog queries are rewritten: some rules change the meaning
/// of ordinary SQL (one replaces correlated subqueries in a SELECT list with NULL, another adds
/// `LIMIT 1` to scalar subqueries, hiding Postgres's "more than one row" error), which must never reach
/// a user's query.
pub fn rewrite(sql: &str, statements: &mut VecDeque<DfStatement>) {
    if !statements.iter().any(is_catalog_query) {
        return;
    }
    // The library's parser replaces whole queries it knows DataFusion cannot plan; any other statement
    // gets our rewrites around the library's rules.
    let replaced: Option<Vec<_>> = if statements
        .iter()
        .all(|s| matches!(s, DfStatement::Statement(_)))
        && let Ok(parsed) = COMPAT.parse(sql)
        && parsed.len() == statements.len()
    {
        Some(parsed.into_iter().map(Some).collect())
    } else {
        None
    };
    for (i, statement) in statements.iter_mut().enumerate() {
        if let DfStatement::Statement(inner) = statement {
            let library_only = COMPAT.rewrite(inner.as_ref().clone());
            let mut ours = inner.as_ref().clone();
            planning::before_library(&mut ours);
            let mut rewritten = COMPAT.rewrite(ours);
            if let Some(Some(parsed)) = replaced.as_ref().and_then(|r| r.get(i))
                && *parsed != library_only
            {
                rewritten = parsed.clone();
            }
            planning::rewrite(&mut rewritten);
            **inner = rewritten;
        }
    }
}

/// Functions only client catalog queries call (besides every `pg_*` function).
const CATALOG_FUNCTIONS: &[&str] = &[
    "current_user",
    "session_user",
    "current_schema",
    "current_schemas",
    "current_database",
    "version",
    "format_type",
    "obj_description",
    "col_description",
    "shobj_description",
    "has_table_privilege",
    "has_schema_privilege",
    "has_database_privilege",
    "has_column_privilege",
    "has_function_privilege",
    "to_regtype",
    "to_regclass",
    "quote_ident",
    "array_to_string",
    "_pg_expandarray",
];

/// Whether `statement` reads a Postgres catalog or uses what only catalog queries use: a relation in
/// `pg_catalog` or `information_schema` or named `pg_*`, a `pg_*` or catalog function, a `reg*` cast,
/// `OPERATOR(...)` or `COLLATE`. Decided on the parsed statement, so a user's string literal or column
/// that merely contains "pg_" does not count.
pub fn is_catalog_query(statement: &DfStatement) -> bool {
    let DfStatement::Statement(statement) = statement else {
        return false;
    };
    let statement = statement.as_ref();
    let relation = visit_relations(statement, |name: &ObjectName| {
        if names_catalog_object(name) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    if relation.is_break() {
        return true;
    }
    visit_expressions(statement, |expr: &Expr| {
        let catalog_only = match expr {
            Expr::Function(f) => match f.name.0.last() {
                Some(ObjectNamePart::Identifier(id)) => {
                    let name = id.value.to_ascii_lowercase();
                    name.starts_with("pg_") || CATALOG_FUNCTIONS.contains(&name.as_str())
                }
                _ => false,
            },
            Expr::Cast {
                data_type: DataType::Custom(name, _),
                ..
            } => name
                .0
                .last()
                .and_then(ObjectNamePart::as_ident)
                .is_some_and(|id| id.value.to_ascii_lowercase().starts_with("reg")),
            Expr::Cast {
                data_type: DataType::Regclass,
                ..
            } => true,
            Expr::BinaryOp { op, .. } => matches!(op, BinaryOperator::PGCustomBinaryOperator(_)),
            Expr::Collate { .. } => true,
            _ => false,
        };
        if catalog_only {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .is_break()
}

fn names_catalog_object(name: &ObjectName) -> bool {
    let parts: Vec<String> = name
        .0
        .iter()
        .filter_map(ObjectNamePart::as_ident)
        .map(|id| id.value.to_ascii_lowercase())
        .collect();
    parts
        .iter()
        .any(|p| p == "pg_catalog" || p == "information_schema")
        || parts.last().is_some_and(|t| t.starts_with("pg_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(sql: &str) -> bool {
        let statements = super::super::statement::parse(sql).unwrap();
        statements.iter().any(is_catalog_query)
    }

    #[test]
    fn only_catalog_queries_are_rewritten() {
        assert!(catalog("select relname from pg_catalog.pg_class"));
        assert!(catalog(
            "select * from pg_class c where c.relname OPERATOR(pg_catalog.~) '^t$'"
        ));
        assert!(catalog("select 'x'::regclass"));
        assert!(catalog("select pg_get_userbyid(10)"));
        assert!(catalog("select * from information_schema.tables"));
        // A user's query that merely contains the text is left alone.
        assert!(!catalog("select name from files where name like '%.jpg_%'"));
        assert!(!catalog("select jpg_count, (select max(a) from t) from u"));
    }
}
