//! Postgres's names for unaliased output columns, applied to a query's top-level SELECT list before
//! DataFusion plans it (DataFusion would name `count(*)` "count(*)" and `1` "Int64(1)").
//!
//! Postgres's rule (`FigureColname` in parse_target.c): a column reference is named after the column,
//! a function call after the function, a cast after its operand (or the type if the operand has no
//! name), `CASE` is `case`, a scalar subquery after its own first output column, `EXISTS (...)` is
//! `exists`, and anything else is `?column?`. Postgres allows one name several times (`SELECT a, a`,
//! `SELECT a, (SELECT x.a ...)`, `SELECT 1, 2`), DataFusion refuses duplicate output names (or finds
//! a reference to them ambiguous): a repeat is aliased `name` [`DUPLICATE_MARK`] position, and
//! [`display_name`] gives clients the name without the mark.

use std::collections::HashSet;

use datafusion::sql::sqlparser::ast::{
    Expr, Ident, ObjectNamePart, Query, Select, SelectItem, SetExpr,
};

/// Separates a repeated output name from the suffix that makes it unique for DataFusion (a control
/// character no unquoted identifier holds).
pub const DUPLICATE_MARK: char = '\u{1}';

/// The name a client is told for output column `name`: without a [`DUPLICATE_MARK`] suffix.
pub fn display_name(name: &str) -> &str {
    name.split(DUPLICATE_MARK).next().unwrap_or(name)
}

/// Gives each unaliased expression of `query`'s top-level SELECT list the name Postgres would; for
/// a set operation (`UNION`, `INTERSECT`, `EXCEPT`), of its leftmost SELECT, which names the
/// result's columns in Postgres and in DataFusion.
pub fn apply(query: &mut Query) {
    let Some(select) = leftmost_select(query.body.as_mut()) else {
        return;
    };
    let mut taken: HashSet<String> = select
        .projection
        .iter()
        .filter_map(|item| match item {
            SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.to_lowercase()),
            SelectItem::UnnamedExpr(e) => column_name(e),
            _ => None,
        })
        .collect();
    let mut columns = HashSet::new();
    for (position, item) in select.projection.iter_mut().enumerate() {
        let SelectItem::UnnamedExpr(expr) = item else {
            continue;
        };
        let name = match column_name(expr) {
            // DataFusion already names plain column references after the column.
            Some(name) if columns.insert(name.clone()) => continue,
            Some(name) => name,
            None => figure_name(expr),
        };
        let alias = if taken.insert(name.clone()) {
            name
        } else {
            format!("{name}{DUPLICATE_MARK}{position}")
        };
        *item = SelectItem::ExprWithAlias {
            expr: expr.clone(),
            alias: Ident::with_quote('"', alias),
        };
    }
}

fn leftmost_select(body: &mut SetExpr) -> Option<&mut Select> {
    match body {
        SetExpr::Select(select) => Some(select),
        SetExpr::SetOperation { left, .. } => leftmost_select(left),
        SetExpr::Query(query) => leftmost_select(query.body.as_mut()),
        _ => None,
    }
}

/// The column's name if `expr` is a plain (possibly qualified) column reference.
fn column_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Identifier(id) => Some(id.value.to_lowercase()),
        Expr::CompoundIdentifier(ids) => ids.last().map(|id| id.value.to_lowercase()),
        _ => None,
    }
}

fn figure_name(expr: &Expr) -> String {
    match expr {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => {
            column_name(expr).unwrap_or_else(|| "?column?".into())
        }
        Expr::Function(f) => match f.name.0.last() {
            Some(ObjectNamePart::Identifier(id)) => id.value.to_lowercase(),
            _ => "?column?".into(),
        },
        Expr::Cast {
            expr, data_type, ..
        } => match figure_name(expr).as_str() {
            "?column?" => data_type.to_string().to_lowercase(),
            name => name.to_string(),
        },
        Expr::Nested(inner) => figure_name(inner),
        Expr::Case { .. } => "case".into(),
        Expr::Exists { negated: false, .. } => "exists".into(),
        Expr::Subquery(query) => subquery_name(query),
        _ => "?column?".into(),
    }
}

/// A scalar subquery's name in PostgreSQL: its first output column's (`(SELECT max(a) FROM t)` is
/// `max`, `(SELECT x.b AS y ...)` is `y`), of its leftmost SELECT for a set operation.
fn subquery_name(query: &Query) -> String {
    let mut body = query.body.as_ref();
    loop {
        match body {
            SetExpr::SetOperation { left, .. } => body = left,
            SetExpr::Query(inner) => body = inner.body.as_ref(),
            SetExpr::Select(select) => {
                return match select.projection.first() {
                    Some(SelectItem::ExprWithAlias { alias, .. }) => match alias.quote_style {
                        Some(_) => alias.value.clone(),
                        None => alias.value.to_lowercase(),
                    },
                    Some(SelectItem::UnnamedExpr(e)) => figure_name(e),
                    _ => "?column?".into(),
                };
            }
            _ => return "?column?".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::ast::Statement;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn named(sql: &str) -> String {
        let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
        let Statement::Query(query) = &mut statements[0] else {
            panic!("not a query")
        };
        super::apply(query);
        statements[0].to_string()
    }

    #[test]
    fn follows_postgres_figure_colname() {
        assert_eq!(
            named(
                "SELECT count(*), a, t.b, 1 + 1, CASE WHEN a THEN 1 END, c::TEXT, sum(x) AS s FROM t"
            ),
            "SELECT count(*) AS \"count\", a, t.b, 1 + 1 AS \"?column?\", \
             CASE WHEN a THEN 1 END AS \"case\", c::TEXT AS \"c\", sum(x) AS s FROM t"
        );
        // Repeated names are made unique for DataFusion, then shown without the mark.
        assert_eq!(
            named("SELECT 1, 2, a, t.a, (SELECT x.a FROM t x) FROM t"),
            "SELECT 1 AS \"?column?\", 2 AS \"?column?\u{1}1\", a, t.a AS \"a\u{1}3\", \
             (SELECT x.a FROM t x) AS \"a\u{1}4\" FROM t"
        );
        assert_eq!(super::display_name("a\u{1}3"), "a");
        assert_eq!(super::display_name("?column?"), "?column?");
        // A set operation's columns are named by its leftmost SELECT.
        assert_eq!(
            named("SELECT 1 UNION ALL SELECT 2 UNION SELECT count(*) FROM t"),
            "SELECT 1 AS \"?column?\" UNION ALL SELECT 2 UNION SELECT count(*) FROM t"
        );
        // Subqueries: a scalar one after its first column, EXISTS as `exists`.
        assert_eq!(
            named(
                "SELECT (SELECT max(x.a) FROM t x WHERE x.b < t.b), (SELECT x.c AS Y FROM t x), \
                 (SELECT x.d FROM t x), EXISTS (SELECT 1 FROM t x), (SELECT 1), NOT EXISTS (SELECT 1 FROM t x) FROM t"
            ),
            "SELECT (SELECT max(x.a) FROM t x WHERE x.b < t.b) AS \"max\", \
             (SELECT x.c AS Y FROM t x) AS \"y\", (SELECT x.d FROM t x) AS \"d\", \
             EXISTS (SELECT 1 FROM t x) AS \"exists\", (SELECT 1) AS \"?column?\", \
             NOT EXISTS (SELECT 1 FROM t x) AS \"?column?\u{1}5\" FROM t"
        );
        assert_eq!(
            named("(SELECT max(a) FROM t) EXCEPT SELECT 3"),
            "(SELECT max(a) AS \"max\" FROM t) EXCEPT SELECT 3"
        );
    }
}
