//! EXPLAIN rendering of a staged plan: one block per stage, root first, with its task count, output
//! partitioning and inputs, then the fragment's operators (DataFusion's indented physical plan).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::display::DisplayableExecutionPlan;
use datafusion::physical_plan::metrics::MetricsSet;

use crate::fragment::StagePlan;

/// The one column of `EXPLAIN` output (text, one row per line), as PostgreSQL names it.
pub const QUERY_PLAN_COLUMN: &str = "QUERY PLAN";

/// Renders `plan` as lines of text (Postgres returns EXPLAIN as one `QUERY PLAN` row per line).
/// With `metrics`, each operator shows the metrics gathered while it ran here (EXPLAIN ANALYZE),
/// summed over the stage's tasks.
pub fn render(plan: &StagePlan, metrics: bool) -> Vec<String> {
    let remote = HashMap::new();
    render_stages(plan, metrics.then_some(&remote))
}

/// EXPLAIN ANALYZE: like [`render`] with metrics, adding to each operator's own metrics (gathered
/// by the tasks that ran here) those its stage's instances gathered on other nodes: `remote[&stage]`
/// holds `(operator name, metrics)` per operator of the stage plan in pre-order (an entry whose name
/// is not the operator's is ignored). Metrics display as DataFusion's `metrics=[...]`.
pub fn render_analyzed(
    plan: &StagePlan,
    remote: &HashMap<usize, Vec<(String, MetricsSet)>>,
) -> Vec<String> {
    render_stages(plan, Some(remote))
}

fn render_stages(
    plan: &StagePlan,
    remote: Option<&HashMap<usize, Vec<(String, MetricsSet)>>>,
) -> Vec<String> {
    let mut lines = Vec::new();
    for stage in &plan.stages {
        let inputs = if stage.inputs.is_empty() {
            "splits".to_string()
        } else {
            let ids: Vec<String> = stage.inputs.iter().map(|i| format!("stage {i}")).collect();
            ids.join(", ")
        };
        let place = if stage.id == 0 {
            "coordinator"
        } else {
            "workers"
        };
        let broadcast = if stage.broadcast { ", broadcast" } else { "" };
        lines.push(format!(
            "Stage {} [{place}, tasks: {}, output: {}{broadcast}, input: {inputs}]",
            stage.id, stage.tasks, stage.output
        ));
        match remote {
            None => {
                let shown = DisplayableExecutionPlan::new(stage.plan.as_ref());
                for line in shown.indent(false).to_string().lines() {
                    lines.push(format!("  {line}"));
                }
            }
            Some(remote) => {
                let from_others = remote.get(&stage.id).map_or(&[][..], Vec::as_slice);
                let mut index = 0;
                operator_lines(&stage.plan, from_others, 1, &mut index, &mut lines);
            }
        }
    }
    lines
}

/// One line per operator of `plan` (pre-order, two spaces per level) with its local metrics plus
/// `remote[index]`'s, as DataFusion's `DisplayableExecutionPlan::with_metrics` shows them.
fn operator_lines(
    plan: &Arc<dyn ExecutionPlan>,
    remote: &[(String, MetricsSet)],
    depth: usize,
    index: &mut usize,
    lines: &mut Vec<String>,
) {
    let local = plan.metrics();
    let from_others = remote
        .get(*index)
        .filter(|(name, _)| name == plan.name())
        .map(|(_, set)| set);
    *index += 1;
    let shown = if local.is_none() && from_others.is_none() {
        String::new()
    } else {
        let mut all = MetricsSet::new();
        for set in local.iter().chain(from_others) {
            for metric in set.iter() {
                all.push(metric.clone());
            }
        }
        all.aggregate_by_name()
            .sorted_for_display()
            .timestamps_removed()
            .to_string()
    };
    let operator = DisplayableExecutionPlan::new(plan.as_ref())
        .one_line()
        .to_string();
    lines.push(format!(
        "{:indent$}{}, metrics=[{shown}]",
        "",
        operator.trim_end(),
        indent = depth * 2
    ));
    for child in plan.children() {
        operator_lines(child, remote, depth + 1, index, lines);
    }
}
