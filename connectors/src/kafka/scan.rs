//! [`KafkaScanExec`]: one output partition per split, a split being an offset range of one Kafka
//! partition fixed at planning time.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatchOptions;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::stats::Precision;
use datafusion::common::{DataFusionError, Result, Statistics, internal_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, StatisticsArgs,
};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::decode::{Builder, Value, decode};
use super::description::TableDescription;
use super::{KafkaConnector, Shared};
use crate::scan_leaf::{BatchReader, batch_stream};
use crate::sqlstate;
use crate::{ConnectorError, ScanSpec};

/// Partitions listed in the scan's display before it says "... N more".
const DISPLAY_PARTITIONS: usize = 16;

/// One split: offsets `start..end` (end excluded) of Kafka partition `partition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KafkaSplit {
    /// The Kafka partition.
    pub partition: i32,
    /// First offset read.
    pub start: i64,
    /// One past the last offset read (the end offset read at planning time, or a split boundary).
    pub end: i64,
}

/// Where an output column comes from.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub(crate) enum Output {
    /// Index into the key codec's columns.
    Key(usize),
    /// Index into the message codec's columns.
    Message(usize),
    /// Index into [`super::INTERNAL_COLUMNS`].
    Internal(usize),
}

/// What a scan reads and decodes, shared by its partitions.
#[derive(Debug)]
pub(crate) struct ReadPlan {
    pub shared: Arc<Shared>,
    /// `schema.table`, for messages.
    pub table: String,
    pub description: Arc<TableDescription>,
    pub outputs: Vec<Output>,
}

impl ReadPlan {
    fn needs(&self, internal: usize) -> bool {
        self.outputs
            .iter()
            .any(|o| matches!(o, Output::Internal(i) if *i == internal))
    }
}

/// The [`ScanSpec`] payload of a [`KafkaScanExec`].
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct KafkaScanPayload {
    /// `schema.table` as displayed.
    label: String,
    /// The table's description key, and its topic.
    schema: String,
    table: String,
    topic: String,
    /// Whether a description file defines the table (otherwise it is an undescribed topic).
    described: bool,
    outputs: Vec<Output>,
    plan: Vec<(i32, Vec<(i64, i64)>)>,
    /// (partition, start, end) per split.
    splits: Vec<(i32, i64, i64)>,
    timestamp_from: Option<i64>,
    limit: Option<usize>,
}

/// Physical scan of a Kafka table. Output partition `i` reads split `i`: one offset range of one
/// partition, with the end offsets read once when the scan was planned, so executing a partition
/// twice reads the same messages. A scan with no messages to read has one empty partition.
///
/// Reading assigns the partition at the split's start offset (no consumer group membership, no
/// commits) and stops at the split's end offset, at the end of the partition, or after `limit` rows.
/// Displayed as `KafkaScan: catalog=k, table=default.orders, topic=orders, partitions=[0, 1],
/// offsets={0: 0..5, 1: 2..4}, splits=2, projection=[...]` with `timestamp>=...` when a lower bound
/// on `_timestamp` moved the start offsets.
#[derive(Debug)]
pub struct KafkaScanExec {
    read: Arc<ReadPlan>,
    schema: SchemaRef,
    plan: Vec<(i32, Vec<(i64, i64)>)>,
    splits: Vec<KafkaSplit>,
    timestamp_from: Option<i64>,
    limit: Option<usize>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl KafkaScanExec {
    pub(crate) fn new(
        read: Arc<ReadPlan>,
        schema: SchemaRef,
        plan: Vec<(i32, Vec<(i64, i64)>)>,
        splits: Vec<KafkaSplit>,
        timestamp_from: Option<i64>,
        limit: Option<usize>,
    ) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(splits.len().max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        KafkaScanExec {
            read,
            schema,
            plan,
            splits,
            timestamp_from,
            limit,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// The catalog the scan reads from.
    pub fn catalog(&self) -> &str {
        &self.read.shared.name
    }

    /// The topic read.
    pub fn topic(&self) -> &str {
        &self.read.description.topic
    }

    /// The splits, in output partition order.
    pub fn splits(&self) -> &[KafkaSplit] {
        &self.splits
    }

    /// The scan as plain data: the catalog, the table (its description is looked up again by
    /// name on the receiving side), what each column reads, the offset ranges and splits.
    pub(crate) fn to_spec(&self) -> ScanSpec {
        let shared = &self.read.shared;
        let d = &self.read.description;
        let payload = KafkaScanPayload {
            label: self.read.table.clone(),
            schema: d.schema.clone(),
            table: d.table.clone(),
            topic: d.topic.clone(),
            described: shared
                .descriptions
                .contains_key(&(d.schema.clone(), d.table.clone())),
            outputs: self.read.outputs.clone(),
            plan: self.plan.clone(),
            splits: self
                .splits
                .iter()
                .map(|s| (s.partition, s.start, s.end))
                .collect(),
            timestamp_from: self.timestamp_from,
            limit: self.limit,
        };
        ScanSpec {
            kind: super::KIND,
            catalog: Some(shared.name.clone()),
            payload: serde_json::to_value(payload).unwrap_or_default(),
        }
    }

    /// Rebuilds the scan of [`KafkaScanExec::to_spec`] on `connector`. Errors: a bad payload, or a
    /// described table this catalog does not describe (or describes with another topic).
    pub(crate) fn from_spec(
        connector: &KafkaConnector,
        spec: &ScanSpec,
        schema: SchemaRef,
    ) -> Result<Self> {
        let p: KafkaScanPayload = crate::spec_payload(spec)?;
        let shared = &connector.catalog.shared;
        let description = if p.described {
            match shared
                .descriptions
                .get(&(p.schema.clone(), p.table.clone()))
            {
                Some(Ok(d)) if d.topic == p.topic => Arc::clone(d),
                Some(Err(reason)) => {
                    return Err(DataFusionError::Plan(format!(
                        "catalog \"{}\": table {}.{}: {reason}",
                        shared.name, p.schema, p.table
                    )));
                }
                _ => {
                    return Err(DataFusionError::Plan(format!(
                        "catalog \"{}\": table {}.{} (topic \"{}\") is not described here",
                        shared.name, p.schema, p.table, p.topic
                    )));
                }
            }
        } else {
            Arc::new(TableDescription {
                table: p.table,
                schema: p.schema,
                topic: p.topic,
                key: None,
                message: None,
                file: String::new(),
            })
        };
        if p.outputs.len() != schema.fields().len() {
            return Err(DataFusionError::Plan(format!(
                "bad kafka scan payload: {} outputs for {} columns",
                p.outputs.len(),
                schema.fields().len()
            )));
        }
        let read = ReadPlan {
            shared: Arc::clone(shared),
            table: p.label,
            description,
            outputs: p.outputs,
        };
        let splits = p
            .splits
            .into_iter()
            .map(|(partition, start, end)| KafkaSplit {
                partition,
                start,
                end,
            })
            .collect();
        Ok(Self::new(
            Arc::new(read),
            schema,
            p.plan,
            splits,
            p.timestamp_from,
            p.limit,
        ))
    }

    fn offsets_text(&self) -> String {
        let mut parts: Vec<String> = self
            .plan
            .iter()
            .take(DISPLAY_PARTITIONS)
            .map(|(p, ranges)| {
                let ranges: Vec<String> = ranges.iter().map(|(s, e)| format!("{s}..{e}")).collect();
                if ranges.is_empty() {
                    format!("{p}: none")
                } else {
                    format!("{p}: {}", ranges.join(" "))
                }
            })
            .collect();
        if self.plan.len() > DISPLAY_PARTITIONS {
            parts.push(format!("... {} more", self.plan.len() - DISPLAY_PARTITIONS));
        }
        format!("{{{}}}", parts.join(", "))
    }

    fn partitions_text(&self) -> String {
        let mut ids: Vec<String> = self
            .plan
            .iter()
            .take(DISPLAY_PARTITIONS)
            .map(|(p, _)| p.to_string())
            .collect();
        if self.plan.len() > DISPLAY_PARTITIONS {
            ids.push(format!("... {} more", self.plan.len() - DISPLAY_PARTITIONS));
        }
        format!("[{}]", ids.join(", "))
    }

    fn timestamp_text(&self) -> Option<String> {
        let ms = self.timestamp_from?;
        Some(
            chrono::DateTime::from_timestamp_millis(ms)
                .map(|t| t.naive_utc().format("%Y-%m-%d %H:%M:%S%.3f").to_string())
                .unwrap_or_else(|| ms.to_string()),
        )
    }

    fn statistics_for(&self, partition: Option<usize>) -> Arc<Statistics> {
        let rows: i64 = match partition {
            Some(p) => self.splits.get(p).map_or(0, |s| s.end - s.start),
            None => self.splits.iter().map(|s| s.end - s.start).sum(),
        };
        let mut rows = usize::try_from(rows).unwrap_or(usize::MAX);
        if let Some(limit) = self.limit {
            rows = rows.min(limit.saturating_mul(self.splits.len().max(1)));
        }
        // Compacted topics and transaction markers make the offset count an upper bound.
        Arc::new(Statistics::new_unknown(&self.schema).with_num_rows(Precision::Inexact(rows)))
    }
}

impl DisplayAs for KafkaScanExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let columns: Vec<&str> = self
            .schema
            .fields()
            .iter()
            .map(|c| c.name().as_str())
            .collect();
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(
                    f,
                    "KafkaScan: catalog={}, table={}, topic={}, partitions={}, offsets={}",
                    self.read.shared.name,
                    self.read.table,
                    self.read.description.topic,
                    self.partitions_text(),
                    self.offsets_text()
                )?;
                if let Some(ts) = self.timestamp_text() {
                    write!(f, ", timestamp>={ts}")?;
                }
                write!(
                    f,
                    ", splits={}, projection=[{}]",
                    self.splits.len(),
                    columns.join(", ")
                )?;
                if let Some(limit) = self.limit {
                    write!(f, ", limit={limit}")?;
                }
                Ok(())
            }
            DisplayFormatType::TreeRender => {
                writeln!(f, "catalog={}", self.read.shared.name)?;
                writeln!(f, "topic={}", self.read.description.topic)?;
                writeln!(f, "partitions={}", self.partitions_text())?;
                writeln!(f, "offsets={}", self.offsets_text())?;
                if let Some(ts) = self.timestamp_text() {
                    writeln!(f, "timestamp>={ts}")?;
                }
                writeln!(f, "splits={}", self.splits.len())
            }
        }
    }
}

impl ExecutionPlan for KafkaScanExec {
    fn name(&self) -> &'static str {
        "KafkaScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    crate::scan_leaf::leaf_exec_methods!();

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let split = match self.splits.get(partition) {
            Some(s) => Some(*s),
            None if partition == 0 && self.splits.is_empty() => None,
            None => {
                return internal_err!(
                    "KafkaScanExec: invalid partition {partition}, the scan has {} splits",
                    self.splits.len()
                );
            }
        };
        let reader = Reader {
            read: Arc::clone(&self.read),
            schema: Arc::clone(&self.schema),
            split,
            next_offset: split.map_or(0, |s| s.start),
            remaining: self.limit,
            batch_size: context.session_config().batch_size().max(1),
            metrics: BaselineMetrics::new(&self.metrics, partition),
            consumer: None,
        };
        let source = crate::metrics::Source::new(self.catalog(), super::KIND);
        Ok(source.instrument("fetch", batch_stream(Arc::clone(&self.schema), reader)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn statistics_from_inputs(
        &self,
        _input_stats: &[Arc<Statistics>],
        args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        Ok(self.statistics_for(args.partition()))
    }

    fn partition_statistics(&self, partition: Option<usize>) -> Result<Arc<Statistics>> {
        Ok(self.statistics_for(partition))
    }
}

/// Reads one split. `split` is `None` once the split is read (or for the empty scan).
struct Reader {
    read: Arc<ReadPlan>,
    schema: SchemaRef,
    split: Option<KafkaSplit>,
    next_offset: i64,
    remaining: Option<usize>,
    batch_size: usize,
    metrics: BaselineMetrics,
    consumer: Option<StreamConsumer>,
}

fn external(e: ConnectorError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

impl Reader {
    fn error(&self, sqlstate: &str, what: String) -> DataFusionError {
        let split = self.split.unwrap_or(KafkaSplit {
            partition: -1,
            start: 0,
            end: 0,
        });
        external(ConnectorError::Remote {
            sqlstate: sqlstate.into(),
            message: format!(
                "catalog \"{}\": table {} (topic \"{}\"): partition {} offsets {}..{}: {what}",
                self.read.shared.name,
                self.read.table,
                self.read.description.topic,
                split.partition,
                split.start,
                split.end
            ),
        })
    }

    fn open(&self, split: KafkaSplit) -> Result<StreamConsumer> {
        let shared = &self.read.shared;
        let mut config = shared.client_config();
        // Needed by librdkafka for assign(); the group is never joined (no subscribe) and nothing is
        // committed (auto commit is off, no commit calls).
        config.set("group.id", format!("tributary-{}", shared.name));
        let consumer: StreamConsumer = config.create().map_err(|e| {
            self.error(
                sqlstate::SYSTEM_ERROR,
                format!("cannot create a Kafka consumer: {e}"),
            )
        })?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(
            &self.read.description.topic,
            split.partition,
            Offset::Offset(split.start),
        )
        .map_err(|e| self.error(sqlstate::SYSTEM_ERROR, e.to_string()))?;
        consumer.assign(&tpl).map_err(|e| {
            self.error(
                sqlstate::SYSTEM_ERROR,
                format!("cannot assign the partition: {e}"),
            )
        })?;
        Ok(consumer)
    }

    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let Some(split) = self.split else {
            return Ok(None);
        };
        if self.remaining == Some(0) || self.next_offset >= split.end {
            self.finish();
            return Ok(None);
        }
        if self.consumer.is_none() {
            self.consumer = Some(self.open(split)?);
        }
        let read = Arc::clone(&self.read);
        let mut builders = self
            .schema
            .fields()
            .iter()
            .map(|f| Builder::new(f.data_type(), self.batch_size))
            .collect::<Result<Vec<_>, _>>()
            .map_err(DataFusionError::Internal)?;
        let want_key_corrupt = read.needs(5);
        let want_msg_corrupt = read.needs(8);
        let want_headers = read.needs(9);
        // A key or message is decoded whole (all its columns), so whether it is corrupt does not
        // depend on which columns a query reads.
        let decode_key =
            want_key_corrupt || read.outputs.iter().any(|o| matches!(o, Output::Key(_)));
        let decode_msg =
            want_msg_corrupt || read.outputs.iter().any(|o| matches!(o, Output::Message(_)));
        let mut count = 0usize;
        let mut done = false;
        let timeout = read.shared.read_timeout;
        while count < self.batch_size && self.remaining != Some(0) {
            let Some(consumer) = self.consumer.as_ref() else {
                break;
            };
            let received = tokio::time::timeout(timeout, consumer.recv()).await;
            let message = match received {
                Err(_) => {
                    return Err(self.error(
                        sqlstate::CONNECTION_FAILURE,
                        format!(
                            "no message from the Kafka cluster at {} for {timeout:?} (waiting for \
                             offset {})",
                            read.shared.bootstrap, self.next_offset
                        ),
                    ));
                }
                Ok(Err(KafkaError::PartitionEOF(_))) => {
                    done = true;
                    break;
                }
                Ok(Err(e)) => {
                    return Err(self.error(sqlstate::SYSTEM_ERROR, format!("read failed: {e}")));
                }
                Ok(Ok(m)) => m,
            };
            let offset = message.offset();
            if message.partition() != split.partition || offset < self.next_offset {
                continue;
            }
            if offset >= split.end {
                done = true;
                break;
            }
            let timer = self.metrics.elapsed_compute().timer();
            let key = message.key();
            let payload = message.payload();
            let (key_values, key_corrupt) = decoded(decode_key, read.description.key.as_ref(), key);
            let (msg_values, msg_corrupt) =
                decoded(decode_msg, read.description.message.as_ref(), payload);
            let headers = if want_headers {
                let mut map = serde_json::Map::new();
                if let Some(h) = message.headers() {
                    for header in h.iter() {
                        let value = header.value.map_or(serde_json::Value::Null, |v| {
                            serde_json::Value::String(String::from_utf8_lossy(v).into_owned())
                        });
                        if let serde_json::Value::Array(items) = map
                            .entry(header.key.to_string())
                            .or_insert_with(|| serde_json::Value::Array(Vec::new()))
                        {
                            items.push(value);
                        }
                    }
                }
                serde_json::Value::Object(map).to_string()
            } else {
                String::new()
            };
            for (builder, output) in builders.iter_mut().zip(read.outputs.iter()) {
                let value = match *output {
                    Output::Key(i) => key_values.get(i).cloned().unwrap_or(Value::Null),
                    Output::Message(i) => msg_values.get(i).cloned().unwrap_or(Value::Null),
                    Output::Internal(i) => match i {
                        0 => Value::Int(i64::from(message.partition())),
                        1 => Value::Int(offset),
                        2 => message
                            .timestamp()
                            .to_millis()
                            .map_or(Value::Null, Value::Time),
                        3 => key.map_or(Value::Null, |k| {
                            Value::Text(String::from_utf8_lossy(k).into_owned())
                        }),
                        4 => Value::Int(key.map_or(0, |k| k.len() as i64)),
                        5 => Value::Bool(key_corrupt),
                        6 => payload.map_or(Value::Null, |p| {
                            Value::Text(String::from_utf8_lossy(p).into_owned())
                        }),
                        7 => Value::Int(payload.map_or(0, |p| p.len() as i64)),
                        8 => Value::Bool(msg_corrupt),
                        _ => Value::Text(headers.clone()),
                    },
                };
                builder.append(value);
            }
            timer.done();
            count += 1;
            self.next_offset = offset + 1;
            if let Some(r) = self.remaining.as_mut() {
                *r -= 1;
            }
            if self.next_offset >= split.end {
                done = true;
                break;
            }
        }
        let batch = if count == 0 {
            None
        } else {
            let columns = builders.iter_mut().map(Builder::finish).collect();
            let options = RecordBatchOptions::new().with_row_count(Some(count));
            Some(RecordBatch::try_new_with_options(
                Arc::clone(&self.schema),
                columns,
                &options,
            )?)
        };
        if done || self.remaining == Some(0) {
            self.finish();
        }
        if let Some(b) = &batch {
            self.metrics.record_output(b.num_rows());
        }
        Ok(batch)
    }

    /// Ends the split: drops the consumer now (leaving the partition), not when the stream is dropped.
    fn finish(&mut self) {
        self.split = None;
        self.consumer = None;
        self.metrics.done();
    }
}

impl BatchReader for Reader {
    fn next_batch(&mut self) -> impl Future<Output = Result<Option<RecordBatch>>> + Send {
        Reader::next_batch(self)
    }

    fn stop(&mut self) {
        self.split = None;
        self.consumer = None;
    }
}

/// The decoded values of a key or message and whether it is corrupt. Absent or empty data, or no
/// codec, is not decoded: NULLs, not corrupt.
fn decoded(
    enabled: bool,
    codec: Option<&super::description::Codec>,
    data: Option<&[u8]>,
) -> (Vec<Value>, bool) {
    let (Some(codec), Some(data)) = (codec, data) else {
        return (Vec::new(), false);
    };
    if !enabled || data.is_empty() {
        return (Vec::new(), false);
    }
    let all: Vec<usize> = (0..codec.columns.len()).collect();
    match decode(codec, &all, data) {
        Ok(values) => (values, false),
        Err(_) => (Vec::new(), true),
    }
}
