//! Per-operator metrics of a stage instance that ran on another node, shipped to the coordinator with
//! the instance's last task report so that `EXPLAIN ANALYZE` shows remote operators' metrics as it
//! shows local ones (DataFusion's `metrics=[output_rows=…, elapsed_compute=…]`, summed over all
//! instances of the stage).
//!
//! Counts, times and gauges cross; timestamps (removed from EXPLAIN ANALYZE anyway) and DataFusion's
//! structured values (pruning, ratios, custom) stay on the worker.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::{
    Count, Gauge, Metric, MetricType, MetricValue, MetricsSet, Time,
};

/// The metrics one operator of a stage instance gathered (over node RPC as
/// [`crate::rpc::messages::OperatorMetricsMessage`]).
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorMetrics {
    /// The operator's name (`ExecutionPlan::name`), to check it is the same node on both sides.
    pub operator: String,
    /// Its metrics, one entry per metric and partition.
    pub metrics: Vec<MetricEntry>,
}

/// One metric value of an operator.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricEntry {
    /// DataFusion's metric name, e.g. `output_rows`, `elapsed_compute`.
    pub name: String,
    /// Count, time (nanoseconds) or gauge.
    pub kind: MetricKind,
    /// The value: rows, bytes, nanoseconds...
    pub value: u64,
    /// Whether DataFusion lists it among the summary metrics (else a developer metric).
    pub summary: bool,
}

/// How a [`MetricEntry`]'s value adds up and displays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A counter (rows, batches, bytes, spills).
    Count,
    /// Elapsed time in nanoseconds.
    Time,
    /// A gauge (memory).
    Gauge,
}

/// The metrics of every operator of `plan`, in pre-order (the order [`render`] walks).
///
/// [`render`]: tributary_planner::explain::render_analyzed
pub fn collect(plan: &Arc<dyn ExecutionPlan>) -> Vec<OperatorMetrics> {
    let mut out = Vec::new();
    collect_into(plan, &mut out);
    out
}

fn collect_into(plan: &Arc<dyn ExecutionPlan>, out: &mut Vec<OperatorMetrics>) {
    let metrics = plan
        .metrics()
        .map(|set| set.iter().filter_map(|m| entry(m)).collect())
        .unwrap_or_default();
    out.push(OperatorMetrics {
        operator: plan.name().to_string(),
        metrics,
    });
    for child in plan.children() {
        collect_into(child, out);
    }
}

fn entry(metric: &Metric) -> Option<MetricEntry> {
    let (kind, value) = match metric.value() {
        MetricValue::OutputRows(c)
        | MetricValue::SpillCount(c)
        | MetricValue::SpilledBytes(c)
        | MetricValue::OutputBytes(c)
        | MetricValue::OutputBatches(c)
        | MetricValue::SpilledRows(c)
        | MetricValue::Count { count: c, .. } => (MetricKind::Count, c.value()),
        MetricValue::ElapsedCompute(t) | MetricValue::Time { time: t, .. } => {
            (MetricKind::Time, t.value())
        }
        MetricValue::CurrentMemoryUsage(g) | MetricValue::Gauge { gauge: g, .. } => {
            (MetricKind::Gauge, g.value())
        }
        _ => return None,
    };
    Some(MetricEntry {
        name: metric.value().name().to_string(),
        kind,
        value: value as u64,
        summary: metric.metric_type() == MetricType::Summary,
    })
}

/// Rebuilds DataFusion metrics from `entries` (the well-known names get their own variants, so they
/// display as DataFusion displays them: bytes as `3.1 KB`, times as `1.2ms`).
pub fn to_metrics_set(entries: &[MetricEntry]) -> MetricsSet {
    let mut set = MetricsSet::new();
    for e in entries {
        let value = e.value as usize;
        let count = || {
            let c = Count::new();
            c.add(value);
            c
        };
        let metric = match (e.kind, e.name.as_str()) {
            (MetricKind::Count, "output_rows") => MetricValue::OutputRows(count()),
            (MetricKind::Count, "spill_count") => MetricValue::SpillCount(count()),
            (MetricKind::Count, "spilled_bytes") => MetricValue::SpilledBytes(count()),
            (MetricKind::Count, "output_bytes") => MetricValue::OutputBytes(count()),
            (MetricKind::Count, "output_batches") => MetricValue::OutputBatches(count()),
            (MetricKind::Count, "spilled_rows") => MetricValue::SpilledRows(count()),
            (MetricKind::Count, name) => MetricValue::Count {
                name: Cow::Owned(name.to_string()),
                count: count(),
            },
            (MetricKind::Time, name) => {
                let time = Time::new();
                time.add_duration(Duration::from_nanos(e.value));
                if name == "elapsed_compute" {
                    MetricValue::ElapsedCompute(time)
                } else {
                    MetricValue::Time {
                        name: Cow::Owned(name.to_string()),
                        time,
                    }
                }
            }
            (MetricKind::Gauge, name) => {
                let gauge = Gauge::new();
                gauge.set(value);
                if name == "mem_used" {
                    MetricValue::CurrentMemoryUsage(gauge)
                } else {
                    MetricValue::Gauge {
                        name: Cow::Owned(name.to_string()),
                        gauge,
                    }
                }
            }
        };
        let metric_type = if e.summary {
            MetricType::Summary
        } else {
            MetricType::Dev
        };
        set.push(Arc::new(Metric::new(metric, None).with_type(metric_type)));
    }
    set
}

/// The metrics of a query's remote stage instances, by stage: each instance's operators in
/// pre-order, as their last task reports brought them.
#[derive(Debug, Default)]
pub struct RemoteStageMetrics {
    by_stage: HashMap<usize, Vec<Vec<OperatorMetrics>>>,
}

impl RemoteStageMetrics {
    /// Adds one instance of `stage`'s operator metrics.
    pub fn add(&mut self, stage: usize, operators: Vec<OperatorMetrics>) {
        self.by_stage.entry(stage).or_default().push(operators);
    }

    /// Per stage, each operator's name and its metrics summed over the instances (operators whose
    /// names disagree between instances are left out).
    pub fn merged(&self) -> HashMap<usize, Vec<(String, MetricsSet)>> {
        self.by_stage
            .iter()
            .map(|(stage, instances)| {
                let len = instances.iter().map(Vec::len).max().unwrap_or(0);
                let operators = (0..len)
                    .map(|i| {
                        let name = instances
                            .iter()
                            .find_map(|ops| ops.get(i))
                            .map(|o| o.operator.clone())
                            .unwrap_or_default();
                        let entries: Vec<MetricEntry> = instances
                            .iter()
                            .filter_map(|ops| ops.get(i))
                            .filter(|o| o.operator == name)
                            .flat_map(|o| o.metrics.iter().cloned())
                            .collect();
                        (name, to_metrics_set(&entries))
                    })
                    .collect();
                (*stage, operators)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_cross_and_display_like_datafusion() {
        let rows = Count::new();
        rows.add(1500);
        let time = Time::new();
        time.add_duration(Duration::from_micros(2500));
        let bytes = Count::new();
        bytes.add(4096);
        let mut original = MetricsSet::new();
        for value in [
            MetricValue::OutputRows(rows),
            MetricValue::ElapsedCompute(time),
            MetricValue::OutputBytes(bytes),
        ] {
            original.push(Arc::new(Metric::new(value, Some(0))));
        }
        let entries: Vec<MetricEntry> = original.iter().filter_map(|m| entry(m)).collect();
        let rebuilt = to_metrics_set(&entries);
        let shown = |s: &MetricsSet| s.aggregate_by_name().sorted_for_display().to_string();
        assert_eq!(shown(&rebuilt), shown(&original));
        assert!(
            shown(&rebuilt).contains("output_rows=1.50 K"),
            "{}",
            shown(&rebuilt)
        );

        let mut remote = RemoteStageMetrics::default();
        let op = |v| OperatorMetrics {
            operator: "AggregateExec".into(),
            metrics: vec![MetricEntry {
                name: "output_rows".into(),
                kind: MetricKind::Count,
                value: v,
                summary: true,
            }],
        };
        remote.add(2, vec![op(3)]);
        remote.add(2, vec![op(4)]);
        let merged = remote.merged();
        let (name, set) = &merged[&2][0];
        assert_eq!(name, "AggregateExec");
        assert_eq!(set.output_rows(), Some(7));
    }
}
