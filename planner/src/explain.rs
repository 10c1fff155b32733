//! EXPLAIN rendering of a staged plan: one block per stage, root first, with its task count, output
//! partitioning and inputs, then the fragment's operators (DataFusion's indented physical plan).

use datafusion::physical_plan::display::DisplayableExecutionPlan;

use crate::fragment::StagePlan;

/// Renders `plan` as lines of text (Postgres returns EXPLAIN as one `QUERY PLAN` row per line).
/// With `metrics`, each operator shows the metrics gathered while it ran (EXPLAIN ANALYZE), summed
/// over the stage's tasks.
pub fn render(plan: &StagePlan, metrics: bool) -> Vec<String> {
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
        let shown = if metrics {
            DisplayableExecutionPlan::with_metrics(stage.plan.as_ref())
        } else {
            DisplayableExecutionPlan::new(stage.plan.as_ref())
        };
        for line in shown.indent(false).to_string().lines() {
            lines.push(format!("  {line}"));
        }
    }
    lines
}
