//! A scalar subquery is NULL when it returns no rows, whatever its column's nullability (PostgreSQL,
//! SQL standard). DataFusion 55 gives `(SELECT x ...)` the nullability of `x`
//! (apache/datafusion#24513, fixed after 55): over a `NOT NULL` column or a literal its simplifier
//! then folds `(SELECT 1 WHERE false) IS NULL` to false, drops `coalesce((SELECT ...), 'x')` down to
//! the subquery, and an output column declared non-nullable fails with `Column 'a' is declared as
//! non-nullable but contains null values`.
//!
//! [`ScalarSubqueriesNullable`], the session's first analyzer rule, puts a projection over each such
//! subquery's plan whose column is [`NullableMarker`]`(x)`: the value unchanged, typed nullable, and
//! volatile so that the simplifier does not fold it back into a non-nullable literal. Left alone: a
//! subquery whose column is nullable already, and one that always gives a row (an aggregate without
//! GROUP BY, under projections and aliases only), so that `(SELECT count(*) ...)` keeps its
//! non-null type and DataFusion's decorrelation of it (which handles the empty input itself).
//! SQL-source pushdown writes the marker as its argument (`pushdown`).

use std::sync::{Arc, LazyLock};

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Result, internal_err};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, LogicalPlanBuilder, ReturnFieldArgs, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Subquery, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

/// The analyzer rule; see the module docs.
#[derive(Debug, Default)]
pub struct ScalarSubqueriesNullable;

impl AnalyzerRule for ScalarSubqueriesNullable {
    fn name(&self) -> &str {
        "scalar_subqueries_nullable"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        let rewritten = plan.transform_up_with_subqueries(|node| {
            node.map_expressions(|e| {
                e.transform(|e| match e {
                    Expr::ScalarSubquery(s) if needs_marker(&s) => {
                        Ok(Transformed::yes(Expr::ScalarSubquery(marked(s)?)))
                    }
                    other => Ok(Transformed::no(other)),
                })
            })
        })?;
        if !rewritten.transformed {
            return Ok(rewritten.data);
        }
        // The nodes above see the nullable type now (a projection's column, a filter's input).
        rewritten
            .data
            .transform_up_with_subqueries(|node| node.recompute_schema().map(Transformed::yes))
            .map(|t| t.data)
    }
}

/// Whether `s` is typed non-nullable and may give no row.
fn needs_marker(s: &Subquery) -> bool {
    let schema = s.subquery.schema();
    schema.fields().len() == 1 && !schema.field(0).is_nullable() && !always_one_row(&s.subquery)
}

fn always_one_row(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Projection(p) => always_one_row(&p.input),
        LogicalPlan::SubqueryAlias(a) => always_one_row(&a.input),
        LogicalPlan::Aggregate(a) => a.group_expr.is_empty(),
        _ => false,
    }
}

/// `s` with a projection of its column through the marker, keeping its qualifier and name.
fn marked(s: Subquery) -> Result<Subquery> {
    let (qualifier, field) = s.subquery.schema().qualified_field(0);
    let column = Expr::Column(datafusion::common::Column::new(
        qualifier.cloned(),
        field.name(),
    ));
    let call = Expr::ScalarFunction(ScalarFunction::new_udf(Arc::clone(&MARKER), vec![column]));
    let plan = LogicalPlanBuilder::from(s.subquery.as_ref().clone())
        .project(vec![call.alias_qualified(qualifier.cloned(), field.name())])?
        .build()?;
    Ok(Subquery {
        subquery: Arc::new(plan),
        ..s
    })
}

static MARKER: LazyLock<Arc<ScalarUDF>> =
    LazyLock::new(|| Arc::new(ScalarUDF::new_from_impl(NullableMarker::default())));

/// The marker, for the session's function registry (a worker decodes plans holding it by name).
pub fn function() -> ScalarUDF {
    MARKER.as_ref().clone()
}

/// Whether `f` is the marker (whose one argument is the value).
pub fn is_marker(f: &ScalarFunction) -> bool {
    f.func.name() == "__nullable" && f.args.len() == 1
}

/// `__nullable(x)`: `x`, typed nullable; see the module docs.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct NullableMarker {
    signature: Signature,
}

impl Default for NullableMarker {
    fn default() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Volatile),
        }
    }
}

impl ScalarUDFImpl for NullableMarker {
    fn name(&self) -> &str {
        "__nullable"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [ty] => Ok(ty.clone()),
            _ => internal_err!("__nullable takes one argument"),
        }
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        match args.arg_fields {
            // The argument's metadata too (a PostgreSQL type tag, a column comment).
            [field] => Ok(Arc::new(field.as_ref().clone().with_nullable(true))),
            _ => internal_err!("__nullable takes one argument"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match <[ColumnarValue; 1]>::try_from(args.args) {
            Ok([value]) => Ok(value),
            Err(_) => internal_err!("__nullable takes one argument"),
        }
    }
}
