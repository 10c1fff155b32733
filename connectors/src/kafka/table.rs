//! The [`TableProvider`] of one Kafka table, and split planning.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};

use super::description::TableDescription;
use super::pushdown::{self, PARTITION_ID, PARTITION_OFFSET, RangeSet};
use super::scan::{KafkaScanExec, KafkaSplit, Output, ReadPlan};
use super::{INTERNAL_COLUMNS, Shared};
use crate::ConnectorError;
use crate::sqlstate;

/// The Arrow type of internal column `name`.
fn internal_type(name: &str) -> DataType {
    match name {
        "_partition_id" | "_partition_offset" | "_key_length" | "_message_length" => {
            DataType::Int64
        }
        "_timestamp" => DataType::Timestamp(TimeUnit::Millisecond, None),
        "_key_corrupt" | "_message_corrupt" => DataType::Boolean,
        _ => DataType::Utf8,
    }
}

/// A Kafka topic as a table: described columns (key, then message) and the internal columns.
#[derive(Debug)]
pub(crate) struct KafkaTable {
    shared: Arc<Shared>,
    schema_name: String,
    description: Arc<TableDescription>,
    schema: SchemaRef,
}

impl KafkaTable {
    pub(crate) fn new(
        shared: Arc<Shared>,
        schema_name: &str,
        description: Arc<TableDescription>,
    ) -> Self {
        let mut fields = Vec::new();
        for codec in [&description.key, &description.message]
            .into_iter()
            .flatten()
        {
            for c in &codec.columns {
                fields.push(Field::new(&c.name, c.ty.arrow_type(), true));
            }
        }
        for name in INTERNAL_COLUMNS {
            let nullable = matches!(name, "_timestamp" | "_key" | "_message");
            fields.push(Field::new(name, internal_type(name), nullable));
        }
        KafkaTable {
            shared,
            schema_name: schema_name.to_string(),
            description,
            schema: Arc::new(Schema::new(fields)),
        }
    }

    /// The output of table column `index`.
    fn output(&self, index: usize) -> Output {
        let key_len = self.description.key.as_ref().map_or(0, |c| c.columns.len());
        let msg_len = self
            .description
            .message
            .as_ref()
            .map_or(0, |c| c.columns.len());
        if index < key_len {
            Output::Key(index)
        } else if index < key_len + msg_len {
            Output::Message(index - key_len)
        } else {
            Output::Internal(index - key_len - msg_len)
        }
    }

    fn table_label(&self) -> String {
        format!(
            "table {}.{} (topic \"{}\")",
            self.schema_name, self.description.table, self.description.topic
        )
    }
}

/// What the filters of a scan select.
#[derive(Debug, Default, Clone)]
pub(crate) struct Selection {
    pub partitions: Option<RangeSet>,
    pub offsets: Option<RangeSet>,
    pub timestamp_from: Option<i64>,
}

impl Selection {
    fn from_filters(filters: &[Expr]) -> Selection {
        let mut s = Selection::default();
        for f in filters {
            if let Some(r) = pushdown::int_ranges(f, PARTITION_ID) {
                s.partitions = Some(match &s.partitions {
                    Some(p) => p.intersect(&r),
                    None => r,
                });
            }
            if let Some(r) = pushdown::int_ranges(f, PARTITION_OFFSET) {
                s.offsets = Some(match &s.offsets {
                    Some(p) => p.intersect(&r),
                    None => r,
                });
            }
            if let Some(t) = pushdown::timestamp_lower_bound(f) {
                s.timestamp_from = Some(s.timestamp_from.map_or(t, |u| u.max(t)));
            }
        }
        s
    }
}

/// The chosen partitions, each with the offset ranges `[start, end)` to read.
pub(crate) type Plan = Vec<(i32, Vec<(i64, i64)>)>;

impl Shared {
    /// Reads the topic's partitions and end offsets (once) and chooses what to read. Blocking.
    fn plan_reads(
        &self,
        topic: &str,
        label: &str,
        selection: &Selection,
    ) -> Result<Plan, ConnectorError> {
        let client = self.client()?;
        let timeout = self.request_timeout;
        let error = |e: &rdkafka::error::KafkaError, what: &str| {
            let mut err = self.kafka_error(e, Some(topic), what);
            if let ConnectorError::Remote { message, .. } = &mut err {
                *message =
                    message.replacen(&format!("topic \"{topic}\":"), &format!("{label}:"), 1);
            }
            err
        };
        let metadata = client
            .fetch_metadata(None, timeout)
            .map_err(|e| error(&e, "metadata request"))?;
        let Some(meta) = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
        else {
            return Err(ConnectorError::Remote {
                sqlstate: sqlstate::UNDEFINED_TABLE.into(),
                message: format!(
                    "catalog \"{}\": {label}: the topic does not exist on the Kafka cluster at {}",
                    self.name, self.bootstrap
                ),
            });
        };
        let mut partitions: Vec<i32> = meta
            .partitions()
            .iter()
            .map(|p| p.id())
            .filter(|p| {
                selection
                    .partitions
                    .as_ref()
                    .is_none_or(|r| r.contains(i64::from(*p)))
            })
            .collect();
        partitions.sort_unstable();
        let mut bounds = Vec::with_capacity(partitions.len());
        for &p in &partitions {
            let (low, high) = client
                .fetch_watermarks(topic, p, timeout)
                .map_err(|e| error(&e, &format!("end offsets request of partition {p}")))?;
            bounds.push((p, low.max(0), high.max(0)));
        }
        if let Some(ts) = selection.timestamp_from
            && !bounds.is_empty()
        {
            let mut tpl = TopicPartitionList::new();
            for &(p, _, _) in &bounds {
                tpl.add_partition_offset(topic, p, Offset::Offset(ts))
                    .map_err(|e| error(&e, "offsets-for-times request"))?;
            }
            let found = client
                .offsets_for_times(tpl, timeout)
                .map_err(|e| error(&e, "offsets-for-times request"))?;
            for (p, low, high) in bounds.iter_mut() {
                let offset = found
                    .find_partition(topic, *p)
                    .map(|e| e.offset())
                    .unwrap_or(Offset::Invalid);
                match offset {
                    Offset::Offset(o) => *low = (*low).max(o).min(*high),
                    // No message at or after the timestamp.
                    Offset::End => *low = *high,
                    _ => {}
                }
            }
        }
        Ok(bounds
            .into_iter()
            .map(|(p, low, high)| {
                let ranges = match &selection.offsets {
                    Some(r) => r.clip(low, high),
                    None if low < high => vec![(low, high)],
                    None => Vec::new(),
                };
                (p, ranges)
            })
            .collect())
    }
}

#[async_trait]
impl TableProvider for KafkaTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if pushdown::is_pushable(f) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let indices: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let schema = Arc::new(self.schema.project(&indices)?);
        let outputs: Vec<Output> = indices.iter().map(|&i| self.output(i)).collect();
        let selection = Selection::from_filters(filters);
        let shared = Arc::clone(&self.shared);
        let topic = self.description.topic.clone();
        let label = self.table_label();
        let sel = selection.clone();
        let plan = tokio::task::spawn_blocking(move || shared.plan_reads(&topic, &label, &sel))
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let mut splits = Vec::new();
        for (partition, ranges) in &plan {
            for &(start, end) in ranges {
                let mut s = start;
                while s < end {
                    let e = s.saturating_add(self.shared.messages_per_split).min(end);
                    splits.push(KafkaSplit {
                        partition: *partition,
                        start: s,
                        end: e,
                    });
                    s = e;
                }
            }
        }
        let read = ReadPlan {
            shared: Arc::clone(&self.shared),
            table: format!("{}.{}", self.schema_name, self.description.table),
            description: Arc::clone(&self.description),
            outputs,
        };
        Ok(Arc::new(KafkaScanExec::new(
            Arc::new(read),
            schema,
            plan,
            splits,
            selection.timestamp_from,
            limit,
        )))
    }
}
