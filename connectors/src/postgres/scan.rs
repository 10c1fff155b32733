//! [`PostgresScanExec`]: one remote SELECT per split, streamed into Arrow batches.

use std::pin::Pin;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatchOptions;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::metrics::BaselineMetrics;
use futures::StreamExt;
use tokio_postgres::RowStream;

use super::PostgresConnector;
use super::pool::{Pool, PooledClient};
use super::types::{ColumnBuilder, PgType, RawValue};
use crate::ConnectorError;
use crate::scan_leaf::{BatchReader, batch_stream};
use crate::sql_scan::{SplitRead, SqlReader, SqlScanExec, column_error};
use crate::sql_source::READ_ONLY_MARKER;

/// Physical scan of a PostgreSQL table: output partition `i` runs the remote SQL of split `i` (a
/// ctid page range of the table, or the whole table / view) and streams its rows.
///
/// Rows are read through a streaming portal (binary format) and cut into batches of the session's
/// batch size. Displayed as `PostgresScan: catalog=pg, splits=4, sql="SELECT ..."` with the SQL of
/// the first split, so `EXPLAIN` shows what is pushed to the source.
pub type PostgresScanExec = SqlScanExec<PostgresReader>;

/// How a [`PostgresScanExec`] reads a split: a portal streamed off one pooled connection.
#[derive(Debug)]
pub struct PostgresReader;

impl SqlReader for PostgresReader {
    const KIND: crate::ConnectorKind = super::KIND;
    const NAME: &'static str = "PostgresScanExec";
    const LABEL: &'static str = "PostgresScan";
    type Connector = PostgresConnector;
    type Pool = Pool;
    type Type = PgType;

    fn pool(connector: &PostgresConnector) -> &Arc<Pool> {
        &connector.shared.pool
    }

    fn catalog(pool: &Pool) -> &str {
        pool.catalog()
    }

    fn read(split: SplitRead<Self>) -> SendableRecordBatchStream {
        let schema = Arc::clone(&split.schema);
        let reader = Reader {
            schema: split.schema,
            types: split.types,
            batch_size: split.batch_size,
            metrics: split.metrics,
            state: ReadState::Pending {
                pool: split.pool,
                sql: split.sql,
            },
        };
        batch_stream(schema, reader)
    }
}

enum ReadState {
    /// Not started: connect and send the query on the first poll.
    Pending {
        pool: Arc<Pool>,
        sql: String,
    },
    Reading {
        pool: Arc<Pool>,
        sql: String,
        // Declared before the client so it is dropped first.
        rows: Pin<Box<RowStream>>,
        client: PooledClient,
    },
    Done,
}

struct Reader {
    schema: SchemaRef,
    types: Vec<PgType>,
    batch_size: usize,
    metrics: BaselineMetrics,
    state: ReadState,
}

fn external(e: ConnectorError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

impl BatchReader for Reader {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        if let ReadState::Pending { pool, sql } = &self.state {
            let (pool, sql) = (Arc::clone(pool), sql.clone());
            let mut client = pool.get().await.map_err(external)?;
            // Until the result is read to the end, the connection must not be reused.
            client.set_reusable(false);
            if sql.starts_with(READ_ONLY_MARKER) {
                // A statement as a user wrote it (statement pushdown): in a read-only transaction,
                // rolled back at the end, so whatever it calls can neither write nor leave settings
                // on the pooled connection.
                client
                    .batch_execute("BEGIN READ ONLY")
                    .await
                    .map_err(|e| external(pool.source().query_error(&e, "BEGIN READ ONLY")))?;
            }
            let rows = client
                .query_raw(sql.as_str(), std::iter::empty::<i32>())
                .await
                .map_err(|e| external(pool.source().query_error(&e, &sql)))?;
            self.state = ReadState::Reading {
                pool,
                sql,
                rows: Box::pin(rows),
                client,
            };
        }
        let ReadState::Reading {
            pool,
            sql,
            rows,
            client,
        } = &mut self.state
        else {
            return Ok(None);
        };
        let mut builders = self
            .types
            .iter()
            .map(|t| t.builder(self.batch_size))
            .collect::<Result<Vec<ColumnBuilder>, _>>()?;
        let mut count = 0usize;
        let mut finished = false;
        while count < self.batch_size {
            let row = match rows.next().await {
                Some(Ok(row)) => row,
                Some(Err(e)) => return Err(external(pool.source().query_error(&e, sql))),
                None => {
                    finished = true;
                    break;
                }
            };
            let timer = self.metrics.elapsed_compute().timer();
            for (i, builder) in builders.iter_mut().enumerate() {
                let value: Option<RawValue> = row
                    .try_get(i)
                    .map_err(|e| external(pool.source().query_error(&e, sql)))?;
                builder
                    .append(value.map(|v| v.0))
                    .map_err(|reason| column_error(pool.catalog(), &self.schema, i, reason))?;
            }
            timer.done();
            count += 1;
        }
        if finished {
            if sql.starts_with(READ_ONLY_MARKER) {
                client
                    .batch_execute("ROLLBACK")
                    .await
                    .map_err(|e| external(pool.source().query_error(&e, "ROLLBACK")))?;
            }
            client.set_reusable(true);
        }
        let batch = if count == 0 {
            None
        } else {
            let columns = builders
                .iter_mut()
                .map(ColumnBuilder::finish)
                .collect::<Result<Vec<_>, _>>()?;
            let options = RecordBatchOptions::new().with_row_count(Some(count));
            Some(RecordBatch::try_new_with_options(
                Arc::clone(&self.schema),
                columns,
                &options,
            )?)
        };
        if finished {
            // Returns the connection to the pool now, not when the consumer drops the stream.
            self.state = ReadState::Done;
            self.metrics.done();
        }
        if let Some(b) = &batch {
            self.metrics.record_output(b.num_rows());
        }
        Ok(batch)
    }

    fn stop(&mut self) {
        self.state = ReadState::Done;
    }
}
