//! `EXCEPT ALL` and `INTERSECT ALL` as multisets, as in PostgreSQL: a row `m` times on the left and
//! `n` times on the right is in `EXCEPT ALL` `max(m - n, 0)` times and in `INTERSECT ALL`
//! `min(m, n)` times. DataFusion 55 plans them as an anti or semi join on every column (NULLs equal)
//! without the counts: `SELECT x FROM (VALUES (3), (3), (3)) t(x) EXCEPT ALL SELECT 3` is two rows
//! in PostgreSQL and was none here; `INTERSECT ALL` kept every copy on the left.
//!
//! [`SetOperationsAll`] numbers each side's equal rows (`row_number() OVER (PARTITION BY every
//! column)`) and adds the number to the join keys: the k-th copy on the left meets the k-th on the
//! right. The DISTINCT forms (a `Distinct` over the join) are left as they are.

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, NullEquality, Result};
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::{
    Distinct, Expr, ExprFunctionExt, Join, JoinType, LogicalPlan, LogicalPlanBuilder,
};
use datafusion::optimizer::AnalyzerRule;

/// The analyzer rule; see the module docs.
#[derive(Debug, Default)]
pub struct SetOperationsAll;

impl AnalyzerRule for SetOperationsAll {
    fn name(&self) -> &str {
        "set_operations_all"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        rewrite(plan)
    }
}

fn rewrite(plan: LogicalPlan) -> Result<LogicalPlan> {
    plan.transform_down_with_subqueries(|node| match node {
        // `EXCEPT` / `INTERSECT` (DISTINCT): the join stays; what is below it is looked at.
        LogicalPlan::Distinct(Distinct::All(input)) if matches!(input.as_ref(), LogicalPlan::Join(join) if set_join_of(join)) => {
            let input = input
                .as_ref()
                .clone()
                .map_children(|child| rewrite(child).map(Transformed::yes))?
                .data;
            Ok(Transformed::new(
                LogicalPlan::Distinct(Distinct::All(std::sync::Arc::new(input))),
                true,
                TreeNodeRecursion::Jump,
            ))
        }
        // The numbered join would match again: its inputs are rewritten first, then skipped.
        LogicalPlan::Join(join) if set_join_of(&join) => Ok(Transformed::new(
            counted(join)?,
            true,
            TreeNodeRecursion::Jump,
        )),
        other => Ok(Transformed::no(other)),
    })
    .map(|t| t.data)
}

/// Whether `join` is what DataFusion's SQL planner makes of `EXCEPT [ALL]` / `INTERSECT [ALL]`: a
/// left anti or semi join, NULLs equal, on every column of both sides in order, no filter.
fn set_join_of(join: &Join) -> bool {
    let left = join.left.schema().columns();
    let right = join.right.schema().columns();
    matches!(join.join_type, JoinType::LeftAnti | JoinType::LeftSemi)
        && join.null_equality == NullEquality::NullEqualsNull
        && join.filter.is_none()
        && !left.is_empty()
        && join.on.len() == left.len()
        && right.len() == left.len()
        && join.on.iter().zip(left.iter().zip(&right)).all(|((l, r), (lc, rc))| {
            matches!((l, r), (Expr::Column(a), Expr::Column(b)) if a == lc && b == rc)
        })
}

/// `join` with each side's equal rows numbered and the numbers joined too, then the left side's
/// columns.
fn counted(join: Join) -> Result<LogicalPlan> {
    let numbered = |side: LogicalPlan, name: &str| -> Result<LogicalPlan> {
        let columns: Vec<Expr> = side
            .schema()
            .columns()
            .into_iter()
            .map(Expr::Column)
            .collect();
        let number = row_number().partition_by(columns).build()?.alias(name);
        LogicalPlanBuilder::from(side).window(vec![number])?.build()
    };
    let output: Vec<Expr> = join
        .left
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    let (mut left_keys, mut right_keys): (Vec<Column>, Vec<Column>) =
        (join.left.schema().columns(), join.right.schema().columns());
    left_keys.push(Column::from_name("__set_copy_l"));
    right_keys.push(Column::from_name("__set_copy_r"));
    let left = numbered(rewrite(join.left.as_ref().clone())?, "__set_copy_l")?;
    let right = numbered(rewrite(join.right.as_ref().clone())?, "__set_copy_r")?;
    LogicalPlanBuilder::from(left)
        .join_detailed(
            right,
            join.join_type,
            (left_keys, right_keys),
            None,
            NullEquality::NullEqualsNull,
        )?
        .project(output)?
        .build()
}
