//! How `INSERT` writes into PostgreSQL ([`crate::sql_write`]): a writer fills an unlogged staging
//! table with `COPY ... FROM STDIN` (text format: PostgreSQL parses each value as the column's
//! type), the commit copies the staging tables into the target in one transaction.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::FormatOptions;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use futures::{SinkExt, StreamExt};

use super::pool::Pool;
use super::quote_ident;
use crate::pool::PooledSource;
use crate::sql_write::{ColumnText, SqlWriteSpec, SqlWriter, commit_unknown};

/// PostgreSQL's [`SqlWriter`].
#[derive(Debug)]
pub(crate) struct PgWriter;

/// The error of statement `sql` sent through `pool`.
fn query_error(pool: &Pool, e: &tokio_postgres::Error, sql: &str) -> DataFusionError {
    pool.source().query_error(e, sql).into()
}

#[async_trait]
impl SqlWriter for PgWriter {
    const KIND: crate::ConnectorKind = super::KIND;
    const LABEL: &'static str = "Postgres";
    type Pool = Pool;

    fn quote(name: &str) -> String {
        quote_ident(name)
    }

    async fn write_stage(
        pool: &Arc<Pool>,
        spec: &SqlWriteSpec,
        stage: &str,
        mut input: SendableRecordBatchStream,
    ) -> Result<u64> {
        // A connection of its own (see `crate::sql_write`), closed when the writer ends.
        let client = pool.source().connect().await?;
        let stage = spec.stage::<Self>(stage);
        let create = format!(
            "CREATE UNLOGGED TABLE {stage} (LIKE {})",
            spec.target::<Self>()
        );
        client
            .batch_execute(&create)
            .await
            .map_err(|e| query_error(pool, &e, &create))?;
        let copy = format!("COPY {stage} ({}) FROM STDIN", spec.column_list::<Self>());
        let sink = client
            .copy_in::<_, Bytes>(copy.as_str())
            .await
            .map_err(|e| query_error(pool, &e, &copy))?;
        futures::pin_mut!(sink);
        while let Some(batch) = input.next().await {
            let text = copy_text(&batch?)?;
            sink.send(text)
                .await
                .map_err(|e| query_error(pool, &e, &copy))?;
        }
        let rows = sink
            .as_mut()
            .finish()
            .await
            .map_err(|e| query_error(pool, &e, &copy))?;
        Ok(rows)
    }

    async fn commit(pool: &Arc<Pool>, spec: &SqlWriteSpec, stages: &[String]) -> Result<u64> {
        let mut client = pool.get().await?;
        client.set_reusable(false);
        let columns = spec.column_list::<Self>();
        let target = spec.target::<Self>();
        let tx = client
            .transaction()
            .await
            .map_err(|e| query_error(pool, &e, "BEGIN"))?;
        let mut rows = 0;
        for stage in stages {
            let sql = format!(
                "INSERT INTO {target} ({columns}) SELECT {columns} FROM {}",
                spec.stage::<Self>(stage)
            );
            rows += tx
                .execute(sql.as_str(), &[])
                .await
                .map_err(|e| query_error(pool, &e, &sql))?;
        }
        tx.commit().await.map_err(|e| match e.as_db_error() {
            Some(_) => query_error(pool, &e, "COMMIT"),
            None => commit_unknown(pool.catalog(), &e.to_string()),
        })?;
        client.set_reusable(true);
        Ok(rows)
    }

    async fn tables_like(pool: &Arc<Pool>, schema: &str, prefix: &str) -> Result<Vec<String>> {
        let client = pool.get().await?;
        let sql = "SELECT tablename::text FROM pg_catalog.pg_tables \
                   WHERE schemaname = $1 AND left(tablename, length($2)) = $2";
        let rows = client
            .query(sql, &[&schema, &prefix])
            .await
            .map_err(|e| query_error(pool, &e, sql))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn drop_tables(pool: &Arc<Pool>, schema: &str, names: &[String]) -> Result<()> {
        let client = pool.get().await?;
        let list: Vec<String> = names
            .iter()
            .map(|n| format!("{}.{}", quote_ident(schema), quote_ident(n)))
            .collect();
        let sql = format!("DROP TABLE IF EXISTS {}", list.join(", "));
        client
            .batch_execute(&sql)
            .await
            .map_err(|e| query_error(pool, &e, &sql))
    }
}

/// `batch` in `COPY`'s text format: a line per row, tab-separated values, `\N` for NULL, and
/// backslash, tab, newline and carriage return escaped with a backslash. Values are formatted into
/// one reused buffer, not a string each.
fn copy_text(batch: &RecordBatch) -> Result<Bytes> {
    let options = FormatOptions::default();
    let columns = batch
        .columns()
        .iter()
        .map(|c| ColumnText::new(c, &options))
        .collect::<Result<Vec<_>>>()?;
    let mut out = String::new();
    let mut value = String::new();
    for row in 0..batch.num_rows() {
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                out.push('\t');
            }
            value.clear();
            if !column.write(row, &mut value)? {
                out.push_str("\\N");
                continue;
            }
            for c in value.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\t' => out.push_str("\\t"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    c => out.push(c),
                }
            }
        }
        out.push('\n');
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};

    use super::copy_text;

    #[test]
    fn rows_are_escaped_for_copy() {
        let batch = RecordBatch::try_from_iter([
            (
                "a",
                Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef,
            ),
            (
                "b",
                Arc::new(StringArray::from(vec![Some("x\ty\\z\n"), Some("")])) as ArrayRef,
            ),
        ])
        .unwrap();
        assert_eq!(copy_text(&batch).unwrap(), "1\tx\\ty\\\\z\\n\n\\N\t\n");
    }
}
