//! [`MySqlScanExec`]: one remote SELECT per split, streamed into Arrow batches.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatchOptions;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::metrics::BaselineMetrics;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use tokio::sync::mpsc;

use super::MySqlConnector;
use super::pool::Pool;
use super::types::{ColumnBuilder, MyType};
use crate::ConnectorError;
use crate::sql_scan::{SplitRead, SqlReader, SqlScanExec, column_error};

/// Physical scan of a MySQL table: output partition `i` runs the remote SQL of split `i` (a primary
/// key range of the table, or the whole table / view) and streams its rows.
///
/// Rows are read with the binary protocol (a prepared statement), row by row off the socket, and
/// cut into batches of the session's batch size by a reader task that stays at most two batches
/// ahead of the consumer. Displayed as ``MySqlScan: catalog=my, splits=4, sql="SELECT `id` ..."``
/// with the SQL of the first split, so `EXPLAIN` shows what is pushed to the source.
pub type MySqlScanExec = SqlScanExec<MySqlReader>;

/// How a [`MySqlScanExec`] reads a split: a task streaming a prepared statement's rows.
#[derive(Debug)]
pub struct MySqlReader;

impl SqlReader for MySqlReader {
    const KIND: crate::ConnectorKind = super::KIND;
    const NAME: &'static str = "MySqlScanExec";
    const LABEL: &'static str = "MySqlScan";
    type Connector = MySqlConnector;
    type Pool = Pool;
    type Type = MyType;

    fn pool(connector: &MySqlConnector) -> &Arc<Pool> {
        &connector.shared.pool
    }

    fn catalog(pool: &Pool) -> &str {
        pool.catalog()
    }

    fn read(split: SplitRead<Self>) -> SendableRecordBatchStream {
        let (tx, rx) = mpsc::channel::<Result<RecordBatch>>(2);
        let schema = Arc::clone(&split.schema);
        let reader = Reader {
            pool: split.pool,
            sql: split.sql,
            schema: split.schema,
            types: split.types,
            batch_size: split.batch_size,
        };
        // The reader task ends when the result is read, on the first error, or as soon as the
        // consumer drops the stream (then the connection's running query is killed).
        tokio::spawn(async move {
            let closed = tx.clone();
            tokio::select! {
                _ = closed.closed() => {}
                result = reader.run(&tx) => {
                    if let Err(e) = result {
                        let _ = tx.send(Err(e)).await;
                    }
                }
            }
        });
        let metrics: BaselineMetrics = split.metrics;
        let stream = futures::stream::unfold((rx, metrics), |(mut rx, metrics)| async move {
            match rx.recv().await {
                Some(item) => {
                    if let Ok(batch) = &item {
                        metrics.record_output(batch.num_rows());
                    }
                    Some((item, (rx, metrics)))
                }
                None => {
                    metrics.done();
                    None
                }
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(schema, stream.boxed()))
    }
}

/// Runs one split's SQL and sends its rows as batches.
struct Reader {
    pool: Arc<Pool>,
    sql: String,
    schema: SchemaRef,
    types: Vec<MyType>,
    batch_size: usize,
}

fn external(e: ConnectorError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

impl Reader {
    fn builders(&self) -> Result<Vec<ColumnBuilder>> {
        Ok(self
            .types
            .iter()
            .map(|t| t.builder(self.batch_size))
            .collect::<Result<Vec<_>, _>>()?)
    }

    fn batch(&self, builders: &mut [ColumnBuilder], rows: usize) -> Result<RecordBatch> {
        let columns = builders.iter_mut().map(ColumnBuilder::finish).collect();
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            columns,
            &options,
        )?)
    }

    /// Reads the whole result, sending each batch; returns early (leaving the connection to be
    /// killed) when the consumer is gone.
    async fn run(&self, tx: &mpsc::Sender<Result<RecordBatch>>) -> Result<()> {
        let pool = &self.pool;
        let sql = self.sql.as_str();
        let mut conn = pool.get().await.map_err(external)?;
        // Until the result is read to the end, the connection must not be reused.
        conn.set_reusable(false);
        let mut result = conn
            .exec_iter(sql, ())
            .await
            .map_err(|e| external(pool.source().query_error(&e, sql)))?;
        let mut builders = self.builders()?;
        let mut count = 0usize;
        loop {
            let row = result
                .next()
                .await
                .map_err(|e| external(pool.source().query_error(&e, sql)))?;
            let Some(row) = row else {
                break;
            };
            let values = row.unwrap();
            for (i, builder) in builders.iter_mut().enumerate() {
                let value = values.get(i).unwrap_or(&mysql_async::Value::NULL);
                builder
                    .append(value)
                    .map_err(|reason| column_error(pool.catalog(), &self.schema, i, reason))?;
            }
            count += 1;
            if count == self.batch_size {
                let batch = self.batch(&mut builders, count)?;
                count = 0;
                if tx.send(Ok(batch)).await.is_err() {
                    return Ok(());
                }
            }
        }
        drop(result);
        // Read to the end: the connection goes back to the pool before the last batch is sent.
        conn.set_reusable(true);
        drop(conn);
        if count > 0 {
            let batch = self.batch(&mut builders, count)?;
            let _ = tx.send(Ok(batch)).await;
        }
        Ok(())
    }
}
