//! Sizing for fault-tolerant execution (`retry_policy = TASK`): the bytes each split of a scan
//! reads, and the hash partition count that follows from the bytes a query scans (Trino sizes its
//! fault-tolerant partitions and tasks from source input sizes the same way).

use std::sync::Arc;

use datafusion::arrow::datatypes::Schema;
use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};

/// How many hash partitions a query gets under `retry_policy = TASK`: enough for each to take
/// about `target_bytes` of what the query scans, between `min` and `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionSizing {
    /// The fewest partitions (the session's `target_partitions`, from `[engine] hash_partitions`).
    pub min: usize,
    /// The most partitions (`[query] task_hash_partitions`); below `min`, `min` wins.
    pub max: usize,
    /// Scanned bytes per partition (`[query] task_target_input_mb`).
    pub target_bytes: u64,
}

impl PartitionSizing {
    /// The partition count for a query scanning `scanned` bytes: `ceil(scanned / target_bytes)`
    /// within `[min, max]`.
    pub fn partitions(&self, scanned: u64) -> usize {
        let min = self.min.max(1);
        let wanted = scanned.div_ceil(self.target_bytes.max(1));
        usize::try_from(wanted)
            .unwrap_or(usize::MAX)
            .clamp(min, self.max.max(min))
    }
}

/// The most splits a file scan is cut into (as many as a `tpch` scan may have).
const MAX_FILE_SPLITS: usize = 4096;

/// Cuts each file scan of `plan` into splits of about `target_bytes` (byte ranges of its files, by
/// DataFusion's own file scan repartitioning) when its splits are larger: under `retry_policy =
/// TASK` a source task's size follows its input bytes however few hash partitions the query has
/// (`[query] task_hash_partitions` caps those). Scans DataFusion cannot cut (compressed CSV or
/// JSON) stay as they are.
///
/// Errors: DataFusion's, rebuilding the operators above a scan it cut.
pub fn split_file_scans(
    plan: Arc<dyn ExecutionPlan>,
    target_bytes: u64,
    config: &ConfigOptions,
) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        let is_file_scan = node.downcast_ref::<DataSourceExec>().is_some_and(|exec| {
            exec.data_source()
                .downcast_ref::<FileScanConfig>()
                .is_some()
        });
        let Some(sizes) = is_file_scan.then(|| split_bytes(node.as_ref())).flatten() else {
            return Ok(Transformed::no(node));
        };
        let total: u64 = sizes.iter().sum();
        let wanted = usize::try_from(total.div_ceil(target_bytes.max(1)))
            .unwrap_or(usize::MAX)
            .min(MAX_FILE_SPLITS);
        if wanted <= sizes.len() {
            return Ok(Transformed::no(node));
        }
        Ok(match node.repartitioned(wanted, config)? {
            Some(split) => Transformed::yes(split),
            None => Transformed::no(node),
        })
    })
    .map(|t| t.data)
}

/// Bytes `plan`'s scans read: the sum of [`split_bytes`] over its leaves, a leaf of unknown size
/// counting 0.
pub fn scanned_bytes(plan: &Arc<dyn ExecutionPlan>) -> u64 {
    let mut total = 0u64;
    let _ = plan.apply(|node| {
        if node.children().is_empty() {
            let bytes: u64 = split_bytes(node.as_ref()).map_or(0, |s| s.iter().sum());
            total = total.saturating_add(bytes);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    total
}

/// Bytes of each split (partition) of a scan: a file scan's byte ranges per file group, else the
/// scan's per-partition `total_byte_size` statistic, else its row count times [`row_width`];
/// `None` when any is unknown.
pub fn split_bytes(scan: &dyn ExecutionPlan) -> Option<Vec<u64>> {
    if let Some(config) = scan
        .downcast_ref::<DataSourceExec>()
        .and_then(|exec| exec.data_source().downcast_ref::<FileScanConfig>())
    {
        return Some(
            config
                .file_groups
                .iter()
                .map(|group| {
                    group
                        .iter()
                        .map(|f| match &f.range {
                            Some(r) => u64::try_from(r.end - r.start).unwrap_or(0),
                            None => f.object_meta.size,
                        })
                        .sum()
                })
                .collect(),
        );
    }
    let context = StatisticsContext::new();
    (0..scan.output_partitioning().partition_count())
        .map(|p| {
            let args = StatisticsArgs::new().with_partition(Some(p));
            let stats = context.compute(scan, &args).ok()?;
            match stats.total_byte_size.get_value() {
                Some(&bytes) => Some(bytes as u64),
                None => stats
                    .num_rows
                    .get_value()
                    .map(|&rows| (rows as u64).saturating_mul(row_width(&scan.schema()))),
            }
        })
        .collect()
}

/// Estimated Arrow bytes of a row of `schema`: each fixed-width column's width, 32 bytes for any
/// other (strings, binaries, nested values).
pub fn row_width(schema: &Schema) -> u64 {
    schema
        .fields()
        .iter()
        .map(|f| f.data_type().primitive_width().unwrap_or(32) as u64)
        .sum::<u64>()
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::PartitionSizing;

    #[test]
    fn partitions_follow_scanned_bytes_within_bounds() {
        let sizing = PartitionSizing {
            min: 4,
            max: 16,
            target_bytes: 100,
        };
        assert_eq!(sizing.partitions(0), 4);
        assert_eq!(sizing.partitions(401), 5);
        assert_eq!(sizing.partitions(1_000), 10);
        assert_eq!(sizing.partitions(u64::MAX), 16);
        let narrow = PartitionSizing { max: 2, ..sizing };
        assert_eq!(narrow.partitions(1_000), 4);
    }
}
