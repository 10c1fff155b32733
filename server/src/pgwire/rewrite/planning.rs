//! Our rewrites of catalog queries (after the library's), turning PostgreSQL constructs clients'
//! catalog queries use into ones DataFusion plans with the same result.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    AccessExpr, DataType, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList,
    FunctionArguments, GroupByExpr, Ident, ObjectName, ObjectNamePart, Query, SelectItem, SetExpr,
    Statement, Subscript, Value, visit_expressions_mut,
};

/// Set-returning functions we implement as functions returning a list, unnested where called.
const SET_RETURNING: &[&str] = &["_pg_expandarray", "generate_subscripts"];

/// Aggregates: a scalar subquery projecting one of these needs no wrapping.
const AGGREGATES: &[&str] = &[
    "count",
    "max",
    "min",
    "sum",
    "avg",
    "array_agg",
    "string_agg",
    "bool_and",
    "bool_or",
    "every",
    "first_value",
    "last_value",
];

/// Before the library's rules (which would turn it into an oid lookup): `'name'::regproc` becomes
/// `'name'` (without `pg_catalog.`), since our catalog's regproc columns (`pg_type.typinput`, ...)
/// hold function names.
pub fn before_library(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |expr: &mut Expr| {
        match expr {
            Expr::Cast {
                data_type: DataType::Custom(name, _),
                expr: inner,
                ..
            } if name
                .0
                .last()
                .and_then(ObjectNamePart::as_ident)
                .is_some_and(|id| id.value.eq_ignore_ascii_case("regproc")) =>
            {
                if let Expr::Value(v) = inner.as_ref()
                    && let Value::SingleQuotedString(text) = &v.value
                {
                    let bare = text.strip_prefix("pg_catalog.").unwrap_or(text);
                    *expr = Expr::value(Value::SingleQuotedString(bare.to_string()));
                }
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
}

/// Rewrites a catalog query so DataFusion plans it:
/// - `(expr).field` (composite field access) becomes `(expr)['field']`;
/// - a call of a [`SET_RETURNING`] function `f(a)` becomes `unnest(f(a))` (ours return lists; several
///   in one SELECT list unnest in step, as PostgreSQL runs them);
/// - a CASE holding a scalar subquery becomes nested `pg_case_when(condition, then, else)` calls
///   (see that function);
/// - a scalar subquery projecting a non-aggregate `e` projects `first_value(e)`: the same value when
///   it finds at most one row (catalog lookups by oid do), and DataFusion only plans correlated
///   scalar subqueries that aggregate.
pub fn rewrite(statement: &mut Statement) {
    if let Statement::Query(query) = statement {
        alias_repeated_items(query);
    }
    let _ = visit_expressions_mut(statement, |expr: &mut Expr| {
        match expr {
            Expr::CompoundFieldAccess { root, access_chain } if !is_identifier(root) => {
                for access in access_chain.iter_mut() {
                    if let AccessExpr::Dot(Expr::Identifier(field)) = access {
                        let index = Expr::value(Value::SingleQuotedString(field.value.clone()));
                        *access = AccessExpr::Subscript(Subscript::Index { index });
                    }
                }
            }
            Expr::Function(f)
                if function_name(f).is_some_and(|n| SET_RETURNING.contains(&n.as_str())) =>
            {
                let mut inner = f.clone();
                let name = function_name(f).unwrap_or_default();
                inner.name = ObjectName::from(vec![Ident::new(name)]);
                *expr = call("unnest", Expr::Function(inner), f);
            }
            Expr::Subquery(query) => aggregate_scalar_subquery(query),
            Expr::Case { .. } if contains_subquery(expr) => *expr = eager_case(expr.clone()),
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
}

/// PostgreSQL allows a SELECT list to repeat an unaliased expression (pgjdbc's `getProcedures`
/// selects `NULL, NULL, NULL`); DataFusion requires unique names, so the repeats get aliases
/// (`NULL_2`, `NULL_3`; clients read those columns by position).
fn alias_repeated_items(query: &mut Query) {
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for item in select.projection.iter_mut() {
        let SelectItem::UnnamedExpr(expr) = item else {
            continue;
        };
        if is_identifier(expr) {
            continue;
        }
        let display = expr.to_string();
        let count = seen.entry(display.clone()).or_insert(0);
        *count += 1;
        if *count > 1 {
            *item = SelectItem::ExprWithAlias {
                expr: expr.clone(),
                alias: Ident::with_quote('"', format!("{display}_{count}")),
            };
        }
    }
}

fn call(name: &str, arg: Expr, like: &Function) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(arg))],
            clauses: vec![],
        }),
        ..like.clone()
    })
}

fn aggregate_scalar_subquery(query: &mut Query) {
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    let grouped = match &select.group_by {
        GroupByExpr::All(_) => true,
        GroupByExpr::Expressions(exprs, _) => !exprs.is_empty(),
    };
    if grouped
        || select.having.is_some()
        || select.distinct.is_some()
        || select.projection.len() != 1
    {
        return;
    }
    let (SelectItem::UnnamedExpr(item) | SelectItem::ExprWithAlias { expr: item, .. }) =
        &mut select.projection[0]
    else {
        return;
    };
    if let Expr::Function(f) = &*item
        && function_name(f).is_some_and(|n| AGGREGATES.contains(&n.as_str()))
    {
        return;
    }
    let template = Function {
        name: ObjectName::from(vec![Ident::new("first_value")]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::None,
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    };
    *item = call("first_value", item.clone(), &template);
}

fn contains_subquery(expr: &Expr) -> bool {
    datafusion::sql::sqlparser::ast::visit_expressions(expr, |e: &Expr| {
        if matches!(e, Expr::Subquery(_)) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .is_break()
}

/// `CASE [operand] WHEN c THEN r ... ELSE e END` as nested `pg_case_when` calls.
fn eager_case(case: Expr) -> Expr {
    let Expr::Case {
        operand,
        conditions,
        else_result,
        ..
    } = case
    else {
        return case;
    };
    let mut result = else_result.map_or(Expr::value(Value::Null), |e| *e);
    for when in conditions.into_iter().rev() {
        let condition = match &operand {
            Some(operand) => Expr::BinaryOp {
                left: operand.clone(),
                op: datafusion::sql::sqlparser::ast::BinaryOperator::Eq,
                right: Box::new(when.condition),
            },
            None => when.condition,
        };
        let mut then = when.result;
        drop_guard(&mut then, &condition);
        result = Expr::Function(Function {
            name: ObjectName::from(vec![Ident::new("pg_case_when")]),
            uses_odbc_syntax: false,
            parameters: FunctionArguments::None,
            args: FunctionArguments::List(FunctionArgumentList {
                duplicate_treatment: None,
                args: [condition, then, result]
                    .into_iter()
                    .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                    .collect(),
                clauses: vec![],
            }),
            filter: None,
            null_treatment: None,
            over: None,
            within_group: vec![],
        });
    }
    result
}

/// `CASE WHEN c THEN (SELECT ... WHERE c AND p)` (SQLAlchemy repeats the guard): the subquery's
/// value only matters where `c` holds, so its `c` conjunct goes, which DataFusion cannot decorrelate
/// once the subquery is a function argument.
fn drop_guard(then: &mut Expr, condition: &Expr) {
    let Expr::Subquery(query) = unnest_parens(then) else {
        return;
    };
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    let Some(selection) = select.selection.take() else {
        return;
    };
    let guard = unnest_parens_ref(condition);
    let kept: Vec<Expr> = conjuncts(selection)
        .into_iter()
        .filter(|c| unnest_parens_ref(c) != guard)
        .collect();
    select.selection = kept.into_iter().reduce(|a, b| Expr::BinaryOp {
        left: Box::new(a),
        op: datafusion::sql::sqlparser::ast::BinaryOperator::And,
        right: Box::new(b),
    });
}

fn conjuncts(expr: Expr) -> Vec<Expr> {
    match expr {
        Expr::BinaryOp {
            left,
            op: datafusion::sql::sqlparser::ast::BinaryOperator::And,
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
                    op: datafusion::sql::sqlparser::ast::BinaryOperator::And,
                    ..
                }
            ) =>
        {
            conjuncts(*inner)
        }
        other => vec![other],
    }
}

fn unnest_parens(expr: &mut Expr) -> &mut Expr {
    match expr {
        Expr::Nested(inner) => unnest_parens(inner),
        other => other,
    }
}

fn unnest_parens_ref(expr: &Expr) -> &Expr {
    match expr {
        Expr::Nested(inner) => unnest_parens_ref(inner),
        other => other,
    }
}

fn is_identifier(expr: &Expr) -> bool {
    matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
}

fn function_name(f: &Function) -> Option<String> {
    match f.name.0.last() {
        Some(ObjectNamePart::Identifier(id)) => Some(id.value.to_ascii_lowercase()),
        _ => None,
    }
}
