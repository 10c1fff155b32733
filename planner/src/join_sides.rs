//! The build side of partitioned semi and anti hash joins, by estimated rows.
//!
//! DataFusion's `JoinSelection` puts the side with fewer estimated *bytes* on the build (left)
//! side. Its byte estimates are not scaled by a join's selectivity: in TPC-H q21 the semi join
//! `l1 ⋉ l2` is estimated at 60,000 rows yet 95 MB (the byte sizes of the columns it scanned), so
//! the anti join `... ▷ l3` built its hash table from the 3.8 million filtered rows of `l3` (340
//! MB) to probe 73,000. [`SemiJoinSides`] runs right after `JoinSelection` and swaps a
//! partitioned semi or anti join back when its build side has more than twice the probe side's
//! estimated rows (row estimates are scaled through joins and filters). Inner and outer joins are
//! left to `JoinSelection` and to [`crate::join_order`]. Off with DataFusion's
//! `datafusion.optimizer.join_reordering`.

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::logical_expr::JoinType;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};

/// The physical optimizer rule; see the module docs.
#[derive(Debug, Default)]
pub struct SemiJoinSides;

impl PhysicalOptimizerRule for SemiJoinSides {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !config.optimizer.join_reordering {
            return Ok(plan);
        }
        plan.transform_up(|node| {
            let Some(join) = node.downcast_ref::<HashJoinExec>() else {
                return Ok(Transformed::no(node));
            };
            let semi_or_anti = matches!(
                join.join_type(),
                JoinType::LeftSemi | JoinType::LeftAnti | JoinType::RightSemi | JoinType::RightAnti
            );
            if !semi_or_anti
                || *join.partition_mode() != PartitionMode::Partitioned
                || join.null_aware
            {
                return Ok(Transformed::no(node));
            }
            let rows = |side: &Arc<dyn ExecutionPlan>| {
                StatisticsContext::new()
                    .compute(side.as_ref(), &StatisticsArgs::new())
                    .ok()
                    .and_then(|s| s.num_rows.get_value().copied())
            };
            match (rows(join.left()), rows(join.right())) {
                // (`swap_inputs` refuses a join already given a dynamic filter: none is this early.)
                (Some(build), Some(probe)) if build > probe.saturating_mul(2) => {
                    match join.swap_inputs(PartitionMode::Partitioned) {
                        Ok(swapped) => Ok(Transformed::yes(swapped)),
                        Err(_) => Ok(Transformed::no(node)),
                    }
                }
                _ => Ok(Transformed::no(node)),
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "semi_join_sides"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `rules` (a physical optimizer's, in order) with [`SemiJoinSides`] right after DataFusion's
/// `join_selection` (at the end when there is none).
pub fn after_join_selection(
    rules: Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>>,
) -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
    let at = rules
        .iter()
        .position(|r| r.name() == "join_selection")
        .map_or(rules.len(), |i| i + 1);
    let mut rules = rules;
    rules.insert(at, Arc::new(SemiJoinSides));
    rules
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::common::NullEquality;
    use datafusion::datasource::memory::MemorySourceConfig;
    use datafusion::physical_plan::expressions::Column;

    /// A scan of `rows` keys `0..rows` in column `name`.
    fn keys(name: &str, rows: i64) -> Arc<dyn ExecutionPlan> {
        let schema = Arc::new(Schema::new(vec![Field::new(name, DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from_iter_values(0..rows))],
        )
        .unwrap();
        MemorySourceConfig::try_new_exec(&[vec![batch]], schema, None).unwrap()
    }

    fn join(
        left: Arc<dyn ExecutionPlan>,
        right: Arc<dyn ExecutionPlan>,
        join_type: JoinType,
    ) -> Arc<dyn ExecutionPlan> {
        let on = vec![(
            Arc::new(Column::new(left.schema().field(0).name(), 0)) as _,
            Arc::new(Column::new(right.schema().field(0).name(), 0)) as _,
        )];
        Arc::new(
            HashJoinExec::try_new(
                left,
                right,
                on,
                None,
                &join_type,
                None,
                PartitionMode::Partitioned,
                NullEquality::NullEqualsNothing,
                false,
            )
            .unwrap(),
        )
    }

    fn optimized(plan: Arc<dyn ExecutionPlan>) -> (JoinType, usize) {
        let plan = SemiJoinSides
            .optimize(plan, &ConfigOptions::default())
            .unwrap();
        let join = plan.downcast_ref::<HashJoinExec>().expect("a hash join");
        let build = StatisticsContext::new()
            .compute(join.left().as_ref(), &StatisticsArgs::new())
            .unwrap();
        (*join.join_type(), *build.num_rows.get_value().unwrap())
    }

    /// q21's shape: an anti join whose build side has many more rows than its probe side is
    /// turned around; one whose build side is already the smaller one, or an inner join, is not.
    #[test]
    fn builds_on_fewer_rows() {
        assert_eq!(
            optimized(join(
                keys("l3", 10_000),
                keys("l1", 100),
                JoinType::RightAnti
            )),
            (JoinType::LeftAnti, 100)
        );
        assert_eq!(
            optimized(join(
                keys("l1", 100),
                keys("l3", 10_000),
                JoinType::LeftSemi
            )),
            (JoinType::LeftSemi, 100)
        );
        assert_eq!(
            optimized(join(keys("l3", 150), keys("l1", 100), JoinType::RightSemi)),
            (JoinType::RightSemi, 150)
        );
        assert_eq!(
            optimized(join(keys("a", 10_000), keys("b", 100), JoinType::Inner)),
            (JoinType::Inner, 10_000)
        );
    }
}
