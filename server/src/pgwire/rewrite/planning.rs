//! Our rewrites of catalog queries (after the library's), turning PostgreSQL constructs clients'
//! catalog queries use into ones DataFusion plans with the same result.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    AccessExpr, BinaryOperator, DataType, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArgumentList, FunctionArguments, GroupByExpr, Ident, ObjectName, ObjectNamePart, Query,
    SelectItem, SetExpr, Statement, Subscript, Value, visit_expressions_mut,
};

use super::subqueries;

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

/// Before the library's rules (which would turn them into lookups in `pg_class` / `pg_proc`):
/// - `'name'::regproc` cast on to `oid` (or an integer), as psql's `\sf name` asks for a function's
///   OID, becomes `regprocin('name')`, and `'name(types)'::regprocedure` becomes
///   `regprocedurein('name(types)')`: the function's OID, or PostgreSQL's error when there is no
///   such function or, for `regproc`, more than one;
/// - any other `'name'::regproc` becomes `'name'` (without `pg_catalog.`), since our catalog's
///   regproc columns (`pg_type.typinput`, ...) hold function names;
/// - a cast of text to `regclass` (a literal, or text computed as in Metabase's
///   `format('%I.%I', schema, table)::regclass`) becomes `to_regclass(text)`, which resolves an
///   unqualified name as PostgreSQL does, in `pg_catalog` first (`'pg_class'::regclass`), then the
///   session's schema.
pub fn before_library(statement: &mut Statement) {
    // First, as the other rewrite would strip the `regproc` casts these look for.
    let _ = visit_expressions_mut(statement, |expr: &mut Expr| {
        if let Some(oid) = function_oid(expr) {
            *expr = oid;
        }
        ControlFlow::<()>::Continue(())
    });
    let _ = visit_expressions_mut(statement, |expr: &mut Expr| {
        match expr {
            Expr::Cast {
                expr: inner,
                data_type,
                ..
            } if is_regclass(data_type) && names_relation(inner) => {
                *expr = function("to_regclass", vec![inner.as_ref().clone()]);
            }
            Expr::Cast {
                data_type,
                expr: inner,
                ..
            } if is_reg_type(data_type, "regproc") => {
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
/// - an array literal of numbers written as a string and compared with something other than a
///   string (`polroles <> '{0}'` in psql's `\dp`), which PostgreSQL types after the other side (an
///   `oid[]` or `int2[]` column), becomes `ARRAY[...]`;
/// - a call of a [`SET_RETURNING`] function `f(a)` becomes `unnest(f(a))` (ours return lists; several
///   in one SELECT list unnest in step, as PostgreSQL runs them);
/// - a CASE holding a scalar subquery becomes nested `pg_case_when(condition, then, else)` calls
///   (see that function);
/// - `ARRAY(subquery)` and scalar subqueries whose SELECT list reads outer columns become forms
///   DataFusion decorrelates (see [`subqueries`]);
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
                *expr = Expr::Function(Function {
                    name: ObjectName::from(vec![Ident::new("unnest")]),
                    args: FunctionArguments::List(FunctionArgumentList {
                        duplicate_treatment: None,
                        args: vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Function(
                            inner,
                        )))],
                        clauses: vec![],
                    }),
                    ..f.clone()
                });
            }
            Expr::Function(f) => {
                if let Some(array) = subqueries::array_subquery(f) {
                    *expr = array;
                }
            }
            Expr::Subquery(query) => {
                let guard = if empty_gives_null(query) {
                    subqueries::take_outer_conjuncts(query)
                } else {
                    None
                };
                let mut value = match subqueries::split_outer_references(query) {
                    Some(split) => split,
                    None => {
                        aggregate_scalar_subquery(query);
                        expr.clone()
                    }
                };
                if let Some(guard) = guard {
                    value = function("pg_case_when", vec![guard, value, Expr::value(Value::Null)]);
                }
                *expr = value;
            }
            Expr::Case { .. } if contains_subquery(expr) => *expr = eager_case(expr.clone()),
            Expr::BinaryOp { left, op, right } if compares_arrays(op) => {
                if !is_string(right)
                    && let Some(array) = array_literal(left)
                {
                    **left = array;
                }
                if !is_string(left)
                    && let Some(array) = array_literal(right)
                {
                    **right = array;
                }
            }
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

/// `name(args)`.
pub(super) fn function(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
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

/// The single item of a plain scalar subquery's SELECT list.
fn single_item(query: &mut Query) -> Option<&mut Expr> {
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    let grouped = match &select.group_by {
        GroupByExpr::All(_) => true,
        GroupByExpr::Expressions(exprs, _) => !exprs.is_empty(),
    };
    if grouped || select.having.is_some() || select.distinct.is_some() {
        return None;
    }
    match select.projection.as_mut_slice() {
        [SelectItem::UnnamedExpr(item) | SelectItem::ExprWithAlias { expr: item, .. }] => {
            Some(item)
        }
        _ => None,
    }
}

fn is_aggregate(expr: &Expr) -> bool {
    matches!(expr, Expr::Function(f) if function_name(f).is_some_and(|n| AGGREGATES.contains(&n.as_str())))
}

/// Whether a scalar subquery is NULL when it finds no row: it projects one aggregate other than
/// `count`, or an expression without aggregates (which [`aggregate_scalar_subquery`] wraps).
fn empty_gives_null(query: &mut Query) -> bool {
    let Some(item) = single_item(query) else {
        return false;
    };
    if let Expr::Function(f) = &*item
        && is_aggregate(item)
    {
        return function_name(f).is_some_and(|n| n != "count");
    }
    datafusion::sql::sqlparser::ast::visit_expressions(&*item, |e: &Expr| {
        if is_aggregate(e) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .is_continue()
}

fn aggregate_scalar_subquery(query: &mut Query) {
    let Some(item) = single_item(query) else {
        return;
    };
    if !is_aggregate(item) {
        *item = function("first_value", vec![item.clone()]);
    }
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
        result = function("pg_case_when", vec![condition, when.result, result]);
    }
    result
}

/// `regprocin(text)` or `regprocedurein(text)` for a function named by a string literal cast to
/// `regprocedure`, or to `regproc` and then to an OID or integer.
fn function_oid(expr: &Expr) -> Option<Expr> {
    let literal = |e: &Expr| match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(text) => Some(e.clone()).filter(|_| !text.is_empty()),
            _ => None,
        },
        _ => None,
    };
    let Expr::Cast {
        expr: inner,
        data_type,
        ..
    } = expr
    else {
        return None;
    };
    if is_reg_type(data_type, "regprocedure") {
        return Some(function("regprocedurein", vec![literal(inner)?]));
    }
    let to_oid = is_reg_type(data_type, "oid")
        || matches!(
            data_type,
            DataType::Int(_)
                | DataType::Integer(_)
                | DataType::BigInt(_)
                | DataType::Int4(_)
                | DataType::Int8(_)
        );
    match inner.as_ref() {
        Expr::Cast {
            expr: name,
            data_type: reg,
            ..
        } if to_oid && is_reg_type(reg, "regproc") => {
            Some(function("regprocin", vec![literal(name)?]))
        }
        Expr::Cast {
            expr: name,
            data_type: reg,
            ..
        } if to_oid && is_reg_type(reg, "regprocedure") => {
            Some(function("regprocedurein", vec![literal(name)?]))
        }
        _ => None,
    }
}

/// Whether `data_type` is the type `name` (`pg_catalog.` or not), written as a custom type.
fn is_reg_type(data_type: &DataType, name: &str) -> bool {
    matches!(data_type, DataType::Custom(type_name, _) if type_name
        .0
        .last()
        .and_then(ObjectNamePart::as_ident)
        .is_some_and(|id| id.value.eq_ignore_ascii_case(name)))
}

fn is_regclass(data_type: &DataType) -> bool {
    match data_type {
        DataType::Regclass => true,
        DataType::Custom(name, _) => name
            .0
            .last()
            .and_then(ObjectNamePart::as_ident)
            .is_some_and(|id| id.value.eq_ignore_ascii_case("regclass")),
        _ => false,
    }
}

/// Whether `expr` is text naming a relation when cast to `regclass`: a string literal, a function
/// call, a concatenation, a cast to text. (A column cast to `regclass` is an OID already.)
fn names_relation(expr: &Expr) -> bool {
    match expr {
        Expr::Value(v) => matches!(v.value, Value::SingleQuotedString(_)),
        Expr::Function(_) => true,
        Expr::BinaryOp {
            op: datafusion::sql::sqlparser::ast::BinaryOperator::StringConcat,
            ..
        } => true,
        Expr::Cast { data_type, .. } => matches!(
            data_type,
            DataType::Text | DataType::Varchar(_) | DataType::CharacterVarying(_)
        ),
        Expr::Nested(inner) => names_relation(inner),
        _ => false,
    }
}

/// Operators PostgreSQL applies to two arrays: equality and containment.
fn compares_arrays(op: &BinaryOperator) -> bool {
    matches!(
        op,
        BinaryOperator::Eq
            | BinaryOperator::NotEq
            | BinaryOperator::AtArrow
            | BinaryOperator::ArrowAt
            | BinaryOperator::PGOverlap
    )
}

fn is_string(expr: &Expr) -> bool {
    matches!(expr, Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_)))
}

/// `ARRAY[...]` for a string in PostgreSQL's array syntax with at least one element, all numbers
/// (`'{0}'`, `'{1,2}'`). Strings of other elements are left alone: the library keeps many text
/// array columns as text, which such a string may be compared with.
fn array_literal(expr: &Expr) -> Option<Expr> {
    let Expr::Value(v) = expr else {
        return None;
    };
    let Value::SingleQuotedString(text) = &v.value else {
        return None;
    };
    let inner = text.trim().strip_prefix('{')?.strip_suffix('}')?;
    let elements: Vec<&str> = inner
        .split(',')
        .map(|e| e.trim().trim_matches('"'))
        .collect();
    if !elements.iter().all(|e| e.parse::<i64>().is_ok()) {
        return None;
    }
    let elem = elements
        .into_iter()
        .map(|e| Expr::value(Value::Number(e.to_string(), false)))
        .collect();
    Some(Expr::Array(datafusion::sql::sqlparser::ast::Array {
        elem,
        named: true,
    }))
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
