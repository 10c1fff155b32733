//! Subqueries of client catalog queries that DataFusion cannot decorrelate, rewritten into forms it
//! plans with the same result:
//!
//! - `ARRAY(SELECT e FROM unnest(a) x [WHERE p])` (psql's `\d+` lists a table's options this way)
//!   becomes `coalesce(array_transform(array_filter(a, x -> p), x -> e), [])`: the subquery reads an
//!   outer column in its FROM, which no decorrelation handles, while the lambdas need no subquery;
//! - any other `ARRAY(SELECT e FROM ... [ORDER BY o])` becomes the aggregate scalar subquery
//!   `coalesce((SELECT array_agg(e ORDER BY o) FROM ...), [])` (psql's `\du` role memberships);
//! - a scalar subquery whose SELECT list reads outer columns, `(SELECT f(o, i1, i2) FROM t WHERE w)`
//!   (SQLAlchemy's `get_columns` builds `json_build_object` of an outer and inner columns), becomes
//!   `pg_case_when(found, f(o, (s).i1, (s).i2), NULL)` where `s` is the subquery projecting only
//!   its own columns, `first_value(named_struct('found', true, 'i1', i1, 'i2', i2))`, repeated where
//!   a field is read. No row gives NULL as before; outer columns are read outside the subquery. A
//!   WHERE conjunct comparing own and outer columns other than by equality moves out the same way,
//!   and relations of the FROM that are looked up independently get a subquery each (psql's `\d`
//!   would otherwise cross-join `pg_collation` and `pg_type`);
//! - conjuncts of a scalar subquery's WHERE that read outer columns only become a condition around
//!   it (see [`take_outer_conjuncts`]).

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentClause,
    FunctionArguments, GroupByExpr, Ident, LambdaFunction, LambdaFunctionParameter, LambdaSyntax,
    ObjectName, ObjectNamePart, OneOrManyWithParens, OrderByKind, Query, SelectItem, SetExpr,
    TableFactor, TableWithJoins, Value, visit_expressions, visit_expressions_mut,
};

/// The name of the struct field that tells a split subquery found a row.
const FOUND: &str = "found";

/// `ARRAY(subquery)` as an expression DataFusion plans, if `f` is one.
pub fn array_subquery(f: &Function) -> Option<Expr> {
    if !is_named(f, "array") {
        return None;
    }
    let FunctionArguments::Subquery(query) = &f.args else {
        return None;
    };
    if reads_empty_table(query) {
        return Some(call("make_array", vec![]));
    }
    let array = unnest_as_lambdas(query).or_else(|| aggregated(query))?;
    Some(call("coalesce", vec![array, call("make_array", vec![])]))
}

/// `pg_catalog` tables that have no rows on this server (no row security policies, event triggers,
/// extended statistics, triggers or publications): an `ARRAY(SELECT ...)` reading one is empty.
/// psql's `\dp` lists each table's policies with a subquery DataFusion cannot decorrelate (a role
/// lookup by `oid = ANY(polroles)` nested in it), which this way needs no planning.
const EMPTY_TABLES: &[&str] = &[
    "pg_policy",
    "pg_event_trigger",
    "pg_statistic_ext",
    "pg_trigger",
    "pg_publication",
    "pg_publication_rel",
];

/// Whether `query` is a plain SELECT whose FROM starts with one of the [`EMPTY_TABLES`] and joins
/// nothing that could add rows without it (no RIGHT or FULL joins), so it returns no row.
fn reads_empty_table(query: &Query) -> bool {
    use datafusion::sql::sqlparser::ast::JoinOperator;
    let SetExpr::Select(select) = query.body.as_ref() else {
        return false;
    };
    let [TableWithJoins { relation, joins }] = select.from.as_slice() else {
        return false;
    };
    let TableFactor::Table { name, .. } = relation else {
        return false;
    };
    let in_pg_catalog = match name.0.len() {
        1 => true,
        n => name.0[n - 2]
            .as_ident()
            .is_some_and(|s| s.value.eq_ignore_ascii_case("pg_catalog")),
    };
    in_pg_catalog
        && last_part(name).is_some_and(|t| EMPTY_TABLES.contains(&t.as_str()))
        && joins.iter().all(|j| {
            !matches!(
                j.join_operator,
                JoinOperator::Right(_) | JoinOperator::RightOuter(_) | JoinOperator::FullOuter(_)
            )
        })
}

/// `SELECT e FROM unnest(a) x [WHERE p]` as `array_transform(array_filter(a, x -> p), x -> e)`.
fn unnest_as_lambdas(query: &Query) -> Option<Expr> {
    let select = plain_select(query)?;
    if query.order_by.is_some() || query.limit_clause.is_some() {
        return None;
    }
    let [
        TableWithJoins {
            relation,
            joins: no_joins,
        },
    ] = select.from.as_slice()
    else {
        return None;
    };
    if !no_joins.is_empty() {
        return None;
    }
    let (array, alias) = match relation {
        TableFactor::UNNEST {
            alias,
            array_exprs,
            with_offset: false,
            with_ordinality: false,
            ..
        } if array_exprs.len() == 1 => (array_exprs[0].clone(), alias),
        TableFactor::Table {
            name,
            alias,
            args: Some(args),
            with_ordinality: false,
            ..
        } if last_part(name).is_some_and(|n| n == "unnest") && args.args.len() == 1 => {
            let FunctionArg::Unnamed(FunctionArgExpr::Expr(array)) = &args.args[0] else {
                return None;
            };
            (array.clone(), alias)
        }
        _ => return None,
    };
    // PostgreSQL names the element column after the alias's column, else the alias, else `unnest`.
    let table = alias.as_ref().map(|a| a.name.value.clone());
    let param = alias
        .as_ref()
        .and_then(|a| a.columns.first().map(|c| c.name.value.clone()))
        .or_else(|| table.clone())
        .unwrap_or_else(|| "unnest".to_string());
    let element = |expr: &Expr| {
        let mut expr = expr.clone();
        let _ = visit_expressions_mut(&mut expr, |e: &mut Expr| {
            if let Expr::CompoundIdentifier(parts) = e
                && let [qualifier, column] = parts.as_slice()
                && table
                    .as_deref()
                    .is_some_and(|t| qualifier.value.eq_ignore_ascii_case(t))
                && column.value.eq_ignore_ascii_case(&param)
            {
                *e = Expr::Identifier(Ident::new(param.clone()));
            }
            ControlFlow::<()>::Continue(())
        });
        expr
    };
    let mut array = array;
    if let Some(predicate) = &select.selection {
        array = call(
            "array_filter",
            vec![array, lambda(&param, element(predicate))],
        );
    }
    Some(call(
        "array_transform",
        vec![array, lambda(&param, element(single_item(select)?))],
    ))
}

/// `SELECT e FROM ... [ORDER BY o]` as `(SELECT array_agg(e ORDER BY o) FROM ...)`.
fn aggregated(query: &Query) -> Option<Expr> {
    let select = plain_select(query)?;
    if query.limit_clause.is_some() || query.fetch.is_some() {
        return None;
    }
    let item = single_item(select)?.clone();
    let mut clauses = vec![];
    if let Some(order_by) = &query.order_by {
        let OrderByKind::Expressions(exprs) = &order_by.kind else {
            return None;
        };
        // `ORDER BY 1` names the (only) output column, which inside the aggregate is `e` itself.
        let exprs = exprs
            .iter()
            .map(|o| {
                let mut o = o.clone();
                if matches!(&o.expr, Expr::Value(v) if v.value == Value::Number("1".into(), false))
                {
                    o.expr = item.clone();
                }
                o
            })
            .collect();
        clauses.push(FunctionArgumentClause::OrderBy(exprs));
    }
    let mut aggregate = call("array_agg", vec![item]);
    if let Expr::Function(Function {
        args: FunctionArguments::List(list),
        ..
    }) = &mut aggregate
    {
        list.clauses = clauses;
    }
    let mut query = query.clone();
    query.order_by = None;
    if let SetExpr::Select(select) = query.body.as_mut() {
        select.projection = vec![SelectItem::UnnamedExpr(aggregate)];
    }
    Some(Expr::Subquery(Box::new(query)))
}

/// What an expression of a subquery reads: columns of its own relations (qualified by one of them,
/// or unqualified, which PostgreSQL resolves in the subquery first) and of the outer query.
struct Reads {
    own: Vec<Expr>,
    outer: bool,
}

fn reads(expr: &Expr, own_relations: &HashSet<String>) -> Reads {
    let mut out = Reads {
        own: Vec::new(),
        outer: false,
    };
    let _ = visit_expressions(expr, |e: &Expr| {
        let own = match e {
            Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                own_relations.contains(&parts[parts.len() - 2].value.to_ascii_lowercase())
            }
            Expr::Identifier(_) => true,
            _ => return ControlFlow::<()>::Continue(()),
        };
        if !own {
            out.outer = true;
        } else if !out.own.contains(e) {
            out.own.push(e.clone());
        }
        ControlFlow::Continue(())
    });
    out
}

/// Whether a WHERE conjunct correlates by equality of an own and an outer expression (what
/// decorrelation turns into a join key).
fn correlates_by_equality(conjunct: &Expr, own_relations: &HashSet<String>) -> bool {
    let Expr::BinaryOp {
        left,
        op: BinaryOperator::Eq,
        right,
    } = conjunct
    else {
        return false;
    };
    let (l, r) = (reads(left, own_relations), reads(right, own_relations));
    (l.own.is_empty() && l.outer && !r.outer) || (r.own.is_empty() && r.outer && !l.outer)
}

/// A scalar subquery DataFusion cannot decorrelate because its SELECT list reads outer columns, or
/// a WHERE conjunct compares own and outer columns other than by equality (psql's
/// `a.attcollation <> t.typcollation`), as an expression reading them outside it (see the module
/// docs): such conjuncts become part of the condition outside, on the row the subquery found. Like
/// `first_value` for catalog lookups, this assumes the subquery finds at most one row without them.
/// `None` when neither applies or the query is not a plain SELECT.
///
/// Relations of a comma-separated FROM that no remaining conjunct links to each other (psql's
/// `FROM pg_collation c, pg_type t WHERE c.oid = a.attcollation AND t.oid = a.atttypid`) are looked
/// up by separate subqueries, so none of them is a cross join of the catalogs.
pub fn split_outer_references(query: &Query) -> Option<Expr> {
    let select = plain_select(query)?;
    let item = single_item(select)?;
    if contains_subquery(item) {
        return None;
    }
    let own = relation_names(&select.from);
    let (mut kept, mut after) = (Vec::new(), Vec::new());
    for conjunct in select.selection.clone().map(conjuncts).unwrap_or_default() {
        let read = reads(&conjunct, &own);
        let mixed = read.outer && !read.own.is_empty();
        if mixed && !correlates_by_equality(&conjunct, &own) && !contains_subquery(&conjunct) {
            after.push(conjunct);
        } else {
            kept.push(conjunct);
        }
    }
    let item_reads = reads(item, &own);
    if !item_reads.outer && after.is_empty() {
        return None;
    }
    let mut columns = item_reads.own;
    for conjunct in &after {
        for column in reads(conjunct, &own).own {
            if !columns.contains(&column) {
                columns.push(column);
            }
        }
    }
    let lookups = lookups(query, kept, &columns);
    // Column i is field `c{i+1}` of the lookup holding its relation.
    let field = |column: usize| {
        let lookup = lookups
            .iter()
            .find(|l| l.columns.contains(&column))
            .unwrap_or(&lookups[0]);
        call(
            "get_field",
            vec![lookup.subquery(), string(&format!("c{}", column + 1))],
        )
    };
    let outside = |expr: &Expr| {
        let mut expr = expr.clone();
        let _ = visit_expressions_mut(&mut expr, |e: &mut Expr| {
            if let Some(i) = columns.iter().position(|column| column == e) {
                *e = field(i);
            }
            ControlFlow::<()>::Continue(())
        });
        expr
    };
    let found = lookups
        .iter()
        .map(|l| call("get_field", vec![l.subquery(), string(FOUND)]));
    let condition = found
        .chain(after.iter().map(|c| Expr::Nested(Box::new(outside(c)))))
        .reduce(|a, b| Expr::BinaryOp {
            left: Box::new(a),
            op: BinaryOperator::And,
            right: Box::new(b),
        })?;
    Some(call(
        "pg_case_when",
        vec![condition, outside(item), Expr::value(Value::Null)],
    ))
}

/// One subquery of a split: `first_value(named_struct('found', true, 'c<i+1>', column_i, ...))`
/// over some of the original relations, for some of the split's columns (indices).
struct Lookup {
    query: Query,
    columns: Vec<usize>,
}

/// A lookup per relation of `query`'s comma-separated FROM when each of the `kept` conjuncts reads
/// at most one of them; else one lookup over the whole FROM. `columns` are the own columns to
/// project (each in the lookup of its relation).
fn lookups(query: &Query, kept: Vec<Expr>, columns: &[Expr]) -> Vec<Lookup> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return vec![];
    };
    let single = |kept: Vec<Expr>| {
        let all: Vec<usize> = (0..columns.len()).collect();
        vec![Lookup::new(query, select.from.clone(), kept, columns, all)]
    };
    let separable = select.from.len() > 1 && select.from.iter().all(|t| t.joins.is_empty());
    if !separable {
        return single(kept);
    }
    let names: Vec<HashSet<String>> = select
        .from
        .iter()
        .map(|t| relation_names(std::slice::from_ref(t)))
        .collect();
    // The relation an expression reads, `Some(None)` for none, `None` for several or unknown.
    let relation_of = |expr: &Expr| -> Option<Option<usize>> {
        let mut found: Option<usize> = None;
        let unknown = visit_expressions(expr, |e: &Expr| {
            let Expr::CompoundIdentifier(parts) = e else {
                return if matches!(e, Expr::Identifier(_)) {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                };
            };
            let qualifier = parts[parts.len().saturating_sub(2)]
                .value
                .to_ascii_lowercase();
            match names.iter().position(|n| n.contains(&qualifier)) {
                Some(i) if found.is_some_and(|f| f != i) => ControlFlow::Break(()),
                Some(i) => {
                    found = Some(i);
                    ControlFlow::Continue(())
                }
                None => ControlFlow::Continue(()),
            }
        });
        (!unknown.is_break()).then_some(found)
    };
    let mut per_relation: Vec<Vec<Expr>> = vec![vec![]; select.from.len()];
    for conjunct in &kept {
        match relation_of(conjunct) {
            Some(Some(i)) => per_relation[i].push(conjunct.clone()),
            _ => return single(kept),
        }
    }
    let mut per_column: Vec<Vec<usize>> = vec![vec![]; select.from.len()];
    for (c, column) in columns.iter().enumerate() {
        match relation_of(column) {
            Some(Some(i)) => per_column[i].push(c),
            _ => return single(kept),
        }
    }
    select
        .from
        .iter()
        .zip(per_relation)
        .zip(per_column)
        .map(|((from, conjuncts), own_columns)| {
            Lookup::new(query, vec![from.clone()], conjuncts, columns, own_columns)
        })
        .collect()
}

impl Lookup {
    fn subquery(&self) -> Expr {
        Expr::Subquery(Box::new(self.query.clone()))
    }

    fn new(
        query: &Query,
        from: Vec<TableWithJoins>,
        conjuncts: Vec<Expr>,
        all_columns: &[Expr],
        columns: Vec<usize>,
    ) -> Self {
        let mut struct_args = vec![string(FOUND), Expr::value(Value::Boolean(true))];
        for &c in &columns {
            struct_args.push(string(&format!("c{}", c + 1)));
            struct_args.push(all_columns[c].clone());
        }
        let mut query = query.clone();
        if let SetExpr::Select(select) = query.body.as_mut() {
            select.projection = vec![SelectItem::UnnamedExpr(call(
                "first_value",
                vec![call("named_struct", struct_args)],
            ))];
            select.from = from;
            select.selection = and_all(conjuncts);
        }
        Lookup { query, columns }
    }
}

/// Takes the conjuncts of `query`'s WHERE that read outer columns only (SQLAlchemy's
/// `CASE WHEN c THEN (SELECT ... WHERE c AND p)` repeats its guard `c` there), returning them as one
/// condition: `(SELECT e ... WHERE c AND p)` is `pg_case_when(c, (SELECT e ... WHERE p), NULL)`
/// when no row makes `e` NULL, which the caller checks. DataFusion does not decorrelate a condition
/// on outer columns alone once the subquery is a function argument.
pub fn take_outer_conjuncts(query: &mut Query) -> Option<Expr> {
    plain_select(query)?;
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    let own = relation_names(&select.from);
    let selection = select.selection.take()?;
    let (outer, kept): (Vec<Expr>, Vec<Expr>) = conjuncts(selection)
        .into_iter()
        .partition(|c| reads_outer_only(c, &own));
    select.selection = and_all(kept);
    and_all(outer)
}

/// Whether `expr` reads at least one outer column and nothing of the subquery's own relations.
fn reads_outer_only(expr: &Expr, own: &HashSet<String>) -> bool {
    let mut outer = false;
    let own_or_unknown = visit_expressions(expr, |e: &Expr| match e {
        Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
            if own.contains(&parts[parts.len() - 2].value.to_ascii_lowercase()) {
                ControlFlow::Break(())
            } else {
                outer = true;
                ControlFlow::Continue(())
            }
        }
        Expr::Identifier(_) | Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => {
            ControlFlow::Break(())
        }
        _ => ControlFlow::Continue(()),
    });
    outer && own_or_unknown.is_continue()
}

fn conjuncts(expr: Expr) -> Vec<Expr> {
    match expr {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            let mut out = conjuncts(*left);
            out.extend(conjuncts(*right));
            out
        }
        Expr::Nested(inner)
            if matches!(
                *inner,
                Expr::BinaryOp {
                    op: BinaryOperator::And,
                    ..
                }
            ) =>
        {
            conjuncts(*inner)
        }
        other => vec![other],
    }
}

fn and_all(exprs: Vec<Expr>) -> Option<Expr> {
    exprs.into_iter().reduce(|a, b| Expr::BinaryOp {
        left: Box::new(a),
        op: BinaryOperator::And,
        right: Box::new(b),
    })
}

/// The SELECT of `query` when it is a plain one (no set operation, grouping, DISTINCT or CTE).
fn plain_select(query: &Query) -> Option<&datafusion::sql::sqlparser::ast::Select> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let grouped = match &select.group_by {
        GroupByExpr::All(_) => true,
        GroupByExpr::Expressions(exprs, _) => !exprs.is_empty(),
    };
    if grouped || select.having.is_some() || select.distinct.is_some() || query.with.is_some() {
        return None;
    }
    Some(select)
}

fn single_item(select: &datafusion::sql::sqlparser::ast::Select) -> Option<&Expr> {
    match select.projection.as_slice() {
        [SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }] => Some(e),
        _ => None,
    }
}

/// The names a subquery's own relations are referred to by: aliases, else table names.
fn relation_names(from: &[TableWithJoins]) -> HashSet<String> {
    let mut names = HashSet::new();
    let mut add = |factor: &TableFactor| match factor {
        TableFactor::Table { name, alias, .. } => match alias {
            Some(alias) => {
                names.insert(alias.name.value.to_ascii_lowercase());
            }
            None => {
                if let Some(last) = last_part(name) {
                    names.insert(last);
                }
            }
        },
        TableFactor::Derived {
            alias: Some(alias), ..
        }
        | TableFactor::UNNEST {
            alias: Some(alias), ..
        } => {
            names.insert(alias.name.value.to_ascii_lowercase());
        }
        _ => {}
    };
    for table in from {
        add(&table.relation);
        for join in &table.joins {
            add(&join.relation);
        }
    }
    names
}

fn contains_subquery(expr: &Expr) -> bool {
    visit_expressions(expr, |e: &Expr| {
        if matches!(
            e,
            Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. }
        ) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .is_break()
}

fn last_part(name: &ObjectName) -> Option<String> {
    name.0
        .last()
        .and_then(ObjectNamePart::as_ident)
        .map(|id| id.value.to_ascii_lowercase())
}

fn is_named(f: &Function, name: &str) -> bool {
    f.name.0.len() == 1 && last_part(&f.name).is_some_and(|n| n == name)
}

fn string(s: &str) -> Expr {
    Expr::value(Value::SingleQuotedString(s.to_string()))
}

fn lambda(param: &str, body: Expr) -> Expr {
    Expr::Lambda(LambdaFunction {
        params: OneOrManyWithParens::One(LambdaFunctionParameter {
            name: Ident::new(param),
            data_type: None,
        }),
        body: Box::new(body),
        syntax: LambdaSyntax::Arrow,
    })
}

fn call(name: &str, args: Vec<Expr>) -> Expr {
    super::planning::function(name, args)
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::ast::Statement;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn rewritten(sql: &str) -> String {
        let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
        let _ = visit_expressions_mut(&mut statements[0], |e: &mut Expr| {
            let replacement = match e {
                Expr::Function(f) => array_subquery(f),
                Expr::Subquery(q) => split_outer_references(q),
                _ => None,
            };
            if let Some(r) = replacement {
                *e = r;
            }
            ControlFlow::<()>::Continue(())
        });
        let Statement::Query(query) = &statements[0] else {
            panic!("not a query")
        };
        query.to_string()
    }

    #[test]
    fn arrays_of_empty_catalog_tables_are_empty() {
        let sql = rewritten(
            "SELECT array_to_string(ARRAY(SELECT polname || (SELECT max(rolname) FROM \
             pg_catalog.pg_roles WHERE oid = ANY (polroles)) FROM pg_catalog.pg_policy pol \
             WHERE polrelid = c.oid), ',') FROM pg_catalog.pg_class c",
        );
        assert!(sql.contains("array_to_string(make_array(), ',')"), "{sql}");
        // Another table, or one that a RIGHT JOIN keeps rows of, is not empty.
        let sql = rewritten("SELECT ARRAY(SELECT relname FROM pg_catalog.pg_class)");
        assert!(sql.contains("array_agg"), "{sql}");
        let sql = rewritten(
            "SELECT ARRAY(SELECT relname FROM pg_policy RIGHT JOIN pg_class ON polrelid = oid)",
        );
        assert!(sql.contains("array_agg"), "{sql}");
    }

    #[test]
    fn empty_tables_have_no_static_rows() {
        let tables = datafusion_pg_catalog::pg_catalog::PgCatalogStaticTables::try_new().unwrap();
        for (name, table) in [
            ("pg_policy", &tables.pg_policy),
            ("pg_event_trigger", &tables.pg_event_trigger),
            ("pg_statistic_ext", &tables.pg_statistic_ext),
            ("pg_trigger", &tables.pg_trigger),
            ("pg_publication", &tables.pg_publication),
            ("pg_publication_rel", &tables.pg_publication_rel),
        ] {
            assert!(EMPTY_TABLES.contains(&name), "{name}");
            let rows: usize = table.data().iter().map(|b| b.num_rows()).sum();
            assert_eq!(rows, 0, "{name} has rows");
        }
        assert_eq!(EMPTY_TABLES.len(), 6);
    }

    #[test]
    fn array_of_unnest_becomes_lambdas() {
        assert_eq!(
            rewritten(
                "SELECT c.reloptions || array(select 'toast.' || x from pg_catalog.unnest(tc.reloptions) x) FROM t"
            ),
            "SELECT c.reloptions || coalesce(array_transform(tc.reloptions, x -> 'toast.' || x), make_array()) FROM t"
        );
        assert_eq!(
            rewritten("SELECT ARRAY(SELECT u.v * 2 FROM unnest(t.a) AS u(v) WHERE u.v > 1) FROM t"),
            "SELECT coalesce(array_transform(array_filter(t.a, v -> v > 1), v -> v * 2), make_array()) FROM t"
        );
    }

    #[test]
    fn array_of_query_becomes_array_agg() {
        assert_eq!(
            rewritten(
                "SELECT ARRAY(SELECT b.rolname FROM m JOIN b ON m.roleid = b.oid WHERE m.member = r.oid ORDER BY 1) FROM r"
            ),
            "SELECT coalesce((SELECT array_agg(b.rolname ORDER BY b.rolname) FROM m JOIN b ON m.roleid = b.oid \
             WHERE m.member = r.oid), make_array()) FROM r"
        );
    }

    #[test]
    fn outer_columns_leave_the_subquery() {
        let sql = rewritten(
            "SELECT (SELECT json_build_object('always', a.ident = 'a', 'start', s.start) FROM pg_sequence AS s \
             WHERE s.relid = a.relid) FROM a",
        );
        let subquery = "(SELECT first_value(named_struct('found', true, 'c1', s.start)) FROM pg_sequence AS s \
                        WHERE s.relid = a.relid)";
        assert_eq!(
            sql,
            format!(
                "SELECT pg_case_when(get_field({subquery}, 'found'), \
                 json_build_object('always', a.ident = 'a', 'start', get_field({subquery}, 'c1')), NULL) FROM a"
            )
        );
        // A condition comparing own and outer columns other than by equality is checked outside;
        // relations looked up independently get a subquery each (no cross join).
        let sql = rewritten(
            "SELECT (SELECT c.collname FROM pg_collation c, pg_type t WHERE c.oid = a.attcollation \
             AND t.oid = a.atttypid AND a.attcollation <> t.typcollation) FROM a",
        );
        let collation = "(SELECT first_value(named_struct('found', true, 'c1', c.collname)) \
                         FROM pg_collation c WHERE c.oid = a.attcollation)";
        let ty = "(SELECT first_value(named_struct('found', true, 'c2', t.typcollation)) \
                  FROM pg_type t WHERE t.oid = a.atttypid)";
        assert_eq!(
            sql,
            format!(
                "SELECT pg_case_when(get_field({collation}, 'found') AND get_field({ty}, 'found') \
                 AND (a.attcollation <> get_field({ty}, 'c2')), get_field({collation}, 'c1'), NULL) FROM a"
            )
        );
        // A subquery reading only its own relations is left alone.
        let own = "SELECT (SELECT max(s.start) FROM pg_sequence s WHERE s.relid = a.relid) FROM a";
        assert_eq!(rewritten(own), own);
    }
}
