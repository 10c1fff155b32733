//! Client-compatibility rewrites of catalog queries (psql, JDBC, SQLAlchemy...), from
//! datafusion-pg-catalog, applied only to statements that touch Postgres's catalogs.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::sync::LazyLock;

use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, DataType, Expr, ObjectName, ObjectNamePart, Statement, visit_expressions,
    visit_relations,
};
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use datafusion_pg_catalog::sql::rules::{self, SqlStatementRewriteRule};

mod planning;
mod subqueries;

/// Client-compatibility rewrites, built once (the library pre-parses its patterns).
static COMPAT: LazyLock<PostgresCompatibilityParser> =
    LazyLock::new(PostgresCompatibilityParser::new);

/// The library's rewrite rules we apply, in its order: all but `RemoveSubqueryFromProjection`, which
/// replaces every correlated subquery of a SELECT list with NULL (our [`planning`] rewrites make
/// them plannable instead, with their real values).
static RULES: LazyLock<Vec<Box<dyn SqlStatementRewriteRule>>> = LazyLock::new(|| {
    vec![
        Box::new(rules::AliasDuplicatedProjectionRewrite),
        Box::new(rules::ResolveUnqualifiedIdentifier),
        Box::new(rules::RewriteArrayAnyAllOperation),
        Box::new(rules::PrependUnqualifiedPgTableName),
        Box::new(rules::StripCallableQualifier),
        Box::new(rules::FixArrayLiteral),
        Box::new(rules::CurrentUserVariableToSessionUserFunctionCall),
        Box::new(rules::StripCollate),
        Box::new(rules::RewritePgCatalogOperator),
        Box::new(rules::RewriteRegCastToSubquery::new()),
        Box::new(rules::FixVersionColumnName),
    ]
});

/// Applies the client-compatibility rewrites (`OPERATOR(pg_catalog.~)`, `COLLATE`, `::regclass`,
/// `= ANY(...)`, `pg_catalog.`-qualified functions, unqualified `pg_*` tables, ...) to parsed
/// statements. When the whole string is plain SQL statements, the library's parser also replaces the
/// few client queries it knows DataFusion cannot plan (psql's policy, statistics and publication
/// lookups of `\d TABLE`) with empty results of the same shape.
///
/// Only statements that look like client catalog queries are rewritten: some rules change the meaning
/// of ordinary SQL (scalar subqueries project `first_value(...)`, hiding Postgres's "more than one
/// row" error), which must never reach a user's query.
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
        if !is_catalog_query(statement) {
            continue;
        }
        let replacement = replaced
            .as_ref()
            .and_then(|r| r.get(i))
            .and_then(Option::as_ref);
        match statement {
            DfStatement::Statement(inner) => rewrite_statement(inner, replacement),
            // `EXPLAIN` of a catalog query explains the query as it runs.
            DfStatement::Explain(explain) => {
                if let DfStatement::Statement(inner) = explain.statement.as_mut() {
                    rewrite_statement(inner, None);
                }
            }
            _ => {}
        }
    }
}

/// `pg_catalog` tables of ours that the library's rule does not know (`pg_stat_activity`), qualified
/// with `pg_catalog` when named alone, as PostgreSQL resolves them through the search path.
fn qualify_own_pg_tables(statement: &mut Statement) {
    use datafusion::sql::sqlparser::ast::{Ident, ObjectNamePart, visit_relations_mut};
    let _ = visit_relations_mut(statement, |name| {
        if let [ObjectNamePart::Identifier(table)] = name.0.as_slice()
            && table.quote_style.is_none()
            && table.value.eq_ignore_ascii_case("pg_stat_activity")
        {
            name.0
                .insert(0, ObjectNamePart::Identifier(Ident::new("pg_catalog")));
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
}

/// Our rewrites around the library's rules, or the library's `replacement` of the whole query.
fn rewrite_statement(statement: &mut Statement, replacement: Option<&Statement>) {
    let library_only = COMPAT.rewrite(statement.clone());
    let mut ours = statement.clone();
    planning::before_library(&mut ours);
    let mut rewritten = RULES.iter().fold(ours, |s, rule| rule.rewrite(s));
    if let Some(replacement) = replacement
        && *replacement != library_only
    {
        rewritten = replacement.clone();
    }
    planning::rewrite(&mut rewritten);
    qualify_own_pg_tables(&mut rewritten);
    tracing::debug!(sql = %rewritten, "catalog query rewritten");
    *statement = rewritten;
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
    let statement = match statement {
        DfStatement::Statement(statement) => statement.as_ref(),
        DfStatement::Explain(explain) => return is_catalog_query(&explain.statement),
        _ => return false,
    };
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

    fn rewritten(sql: &str) -> String {
        let mut statements = super::super::statement::parse(sql).unwrap();
        rewrite(sql, &mut statements);
        statements[0].to_string()
    }

    #[test]
    fn function_names_cast_to_oids_are_looked_up() {
        let sql = rewritten("SELECT 'abs'::pg_catalog.regproc::pg_catalog.oid");
        assert!(sql.contains("regprocin('abs')"), "{sql}");
        let sql = rewritten("SELECT 'abs(int)'::pg_catalog.regprocedure::pg_catalog.oid");
        assert!(sql.contains("regprocedurein('abs(int)')"), "{sql}");
        // Compared with a regproc column, a function name stays a name.
        let sql = "SELECT typname FROM pg_type WHERE typinput = 'int4in'::regproc";
        let mut statements = super::super::statement::parse(sql).unwrap();
        let Some(DfStatement::Statement(statement)) = statements.front_mut() else {
            panic!("{sql}");
        };
        planning::before_library(statement);
        assert!(
            statement.to_string().contains("typinput = 'int4in'"),
            "{statement}"
        );
    }

    #[test]
    fn array_literals_compared_with_arrays_become_arrays() {
        let sql = rewritten("SELECT polname FROM pg_catalog.pg_policy WHERE polroles <> '{0}'");
        assert!(sql.contains("polroles <> ARRAY[0]"), "{sql}");
        let sql = rewritten("SELECT 1 FROM pg_catalog.pg_proc WHERE proargmodes = '{o}'");
        assert!(sql.contains("proargmodes = '{o}'"), "{sql}");
        // Two strings stay strings.
        let sql = rewritten("SELECT pg_typeof(1) WHERE '{0}' = '{0}'");
        assert!(sql.contains("'{0}' = '{0}'"), "{sql}");
    }
}
