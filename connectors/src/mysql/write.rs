//! How `INSERT` writes into MySQL and MariaDB ([`crate::sql_write`]): a writer fills a staging table
//! (`CREATE TABLE ... SELECT` of the target's columns with no rows: their types and `NOT NULL`, but
//! no `AUTO_INCREMENT` handing out values of its own, nor keys) with multi-row `INSERT`s of bound
//! values, the commit copies the staging tables into the target in one transaction (InnoDB).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{TxOpts, Value};

use super::pool::Pool;
use super::quote_ident;
use crate::pool::PooledSource;
use crate::sql_write::{SqlWriteSpec, SqlWriter, column_texts, commit_unknown};

/// MySQL's [`SqlWriter`].
#[derive(Debug)]
pub(crate) struct MyWriter;

/// Placeholders of one statement are at most 65,535; rows of one `INSERT` at most this many.
const ROWS_PER_INSERT: usize = 1000;

/// The error of statement `sql` sent through `pool`.
fn query_error(pool: &Pool, e: &mysql_async::Error, sql: &str) -> DataFusionError {
    pool.source().query_error(e, sql).into()
}

#[async_trait]
impl SqlWriter for MyWriter {
    const KIND: crate::ConnectorKind = super::KIND;
    const LABEL: &'static str = "MySql";
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
        let mut conn = pool.source().connect().await?;
        let stage = spec.stage::<Self>(stage);
        let columns = spec.column_list::<Self>();
        let create = format!(
            "CREATE TABLE {stage} SELECT {columns} FROM {} LIMIT 0",
            spec.target::<Self>()
        );
        conn.query_drop(create.as_str())
            .await
            .map_err(|e| query_error(pool, &e, &create))?;
        let row_marks = format!("({})", vec!["?"; spec.columns.len()].join(", "));
        let per_insert = ROWS_PER_INSERT
            .min(65_535 / spec.columns.len().max(1))
            .max(1);
        let mut rows = 0u64;
        while let Some(batch) = input.next().await {
            let values = row_values(&batch?)?;
            for chunk in values.chunks(per_insert) {
                let sql = format!(
                    "INSERT INTO {stage} ({columns}) VALUES {}",
                    vec![row_marks.as_str(); chunk.len()].join(", ")
                );
                let params: Vec<Value> = chunk.iter().flatten().cloned().collect();
                conn.exec_drop(sql.as_str(), params)
                    .await
                    .map_err(|e| query_error(pool, &e, &sql))?;
                rows += chunk.len() as u64;
            }
        }
        let _ = conn.disconnect().await;
        Ok(rows)
    }

    async fn commit(pool: &Arc<Pool>, spec: &SqlWriteSpec, stages: &[String]) -> Result<u64> {
        let mut conn = pool.get().await?;
        // Back to the pool only once the transaction ended (a dropped one rolls back lazily, holding
        // its locks meanwhile).
        conn.set_reusable(false);
        let columns = spec.column_list::<Self>();
        let target = spec.target::<Self>();
        let mut tx = conn
            .start_transaction(TxOpts::default())
            .await
            .map_err(|e| query_error(pool, &e, "START TRANSACTION"))?;
        let mut rows = 0;
        for stage in stages {
            let sql = format!(
                "INSERT INTO {target} ({columns}) SELECT {columns} FROM {}",
                spec.stage::<Self>(stage)
            );
            if let Err(e) = tx.query_drop(sql.as_str()).await {
                let _ = tx.rollback().await;
                return Err(query_error(pool, &e, &sql));
            }
            rows += tx.affected_rows();
        }
        tx.commit().await.map_err(|e| match e {
            mysql_async::Error::Server(_) => query_error(pool, &e, "COMMIT"),
            other => commit_unknown(pool.catalog(), &other.to_string()),
        })?;
        conn.set_reusable(true);
        Ok(rows)
    }

    async fn tables_like(pool: &Arc<Pool>, schema: &str, prefix: &str) -> Result<Vec<String>> {
        let mut conn = pool.get().await?;
        let sql = "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
                   WHERE table_schema = ? AND LEFT(table_name, CHAR_LENGTH(?)) = ?";
        conn.exec(sql, (schema, prefix, prefix))
            .await
            .map_err(|e| query_error(pool, &e, sql))
    }

    async fn drop_tables(pool: &Arc<Pool>, schema: &str, names: &[String]) -> Result<()> {
        let mut conn = pool.get().await?;
        let list: Vec<String> = names
            .iter()
            .map(|n| format!("{}.{}", quote_ident(schema), quote_ident(n)))
            .collect();
        let sql = format!("DROP TABLE IF EXISTS {}", list.join(", "));
        conn.query_drop(sql.as_str())
            .await
            .map_err(|e| query_error(pool, &e, &sql))
    }
}

/// The values of each row of `batch`, bound as MySQL values: integers and floats as numbers,
/// booleans as 0 and 1, timestamps with a time zone as UTC, anything else as its text (see
/// [`column_texts`]), which the server converts to the column's type.
fn row_values(batch: &RecordBatch) -> Result<Vec<Vec<Value>>> {
    let columns = batch
        .columns()
        .iter()
        .map(column_values)
        .collect::<Result<Vec<_>>>()?;
    Ok((0..batch.num_rows())
        .map(|row| columns.iter().map(|c| c[row].clone()).collect())
        .collect())
}

fn column_values(column: &ArrayRef) -> Result<Vec<Value>> {
    fn each<T>(column: &ArrayRef, f: impl Fn(usize) -> T) -> Vec<Value>
    where
        Value: From<T>,
    {
        (0..column.len())
            .map(|i| {
                if column.is_null(i) {
                    Value::NULL
                } else {
                    Value::from(f(i))
                }
            })
            .collect()
    }
    Ok(match column.data_type() {
        DataType::Boolean => {
            let a = column.as_boolean();
            each(column, |i| i64::from(a.value(i)))
        }
        DataType::Int8 => {
            let a = column.as_primitive::<Int8Type>();
            each(column, |i| a.value(i))
        }
        DataType::Int16 => {
            let a = column.as_primitive::<Int16Type>();
            each(column, |i| a.value(i))
        }
        DataType::Int32 => {
            let a = column.as_primitive::<Int32Type>();
            each(column, |i| a.value(i))
        }
        DataType::Int64 => {
            let a = column.as_primitive::<Int64Type>();
            each(column, |i| a.value(i))
        }
        DataType::UInt8 => {
            let a = column.as_primitive::<UInt8Type>();
            each(column, |i| a.value(i))
        }
        DataType::UInt16 => {
            let a = column.as_primitive::<UInt16Type>();
            each(column, |i| a.value(i))
        }
        DataType::UInt32 => {
            let a = column.as_primitive::<UInt32Type>();
            each(column, |i| a.value(i))
        }
        DataType::UInt64 => {
            let a = column.as_primitive::<UInt64Type>();
            each(column, |i| a.value(i))
        }
        DataType::Float32 => {
            let a = column.as_primitive::<Float32Type>();
            each(column, |i| a.value(i))
        }
        DataType::Float64 => {
            let a = column.as_primitive::<Float64Type>();
            each(column, |i| a.value(i))
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            let bytes = cast(column, &DataType::LargeBinary)?;
            let a = bytes.as_binary::<i64>();
            each(column, |i| a.value(i).to_vec())
        }
        DataType::Timestamp(unit, Some(_)) => {
            // The instant in UTC, as MySQL DATETIME and TIMESTAMP text.
            let naive = cast(column, &DataType::Timestamp(*unit, None))?;
            text_values(&naive)?
        }
        DataType::Interval(_) | DataType::Duration(_) => time_values(column)?,
        _ => text_values(column)?,
    })
}

/// Each value of an interval or duration `column` as MySQL `TIME` text, `[-]H:MM:SS.ffffff` (the
/// catalog's `time_type = "interval"` reads `TIME` as intervals; months cannot be a `TIME`).
fn time_values(column: &ArrayRef) -> Result<Vec<Value>> {
    let micros = cast(
        column,
        &DataType::Duration(datafusion::arrow::datatypes::TimeUnit::Microsecond),
    )
    .map_err(|_| {
        DataFusionError::NotImplemented(format!(
            "writing {} values into MySQL (only intervals of days and time fit a TIME)",
            column.data_type()
        ))
    })?;
    let micros = micros.as_primitive::<datafusion::arrow::datatypes::DurationMicrosecondType>();
    Ok(micros
        .iter()
        .map(|m| match m {
            None => Value::NULL,
            Some(m) => {
                let sign = if m < 0 { "-" } else { "" };
                let m = m.unsigned_abs();
                let (secs, frac) = (m / 1_000_000, m % 1_000_000);
                Value::Bytes(
                    format!(
                        "{sign}{}:{:02}:{:02}.{frac:06}",
                        secs / 3600,
                        secs / 60 % 60,
                        secs % 60
                    )
                    .into_bytes(),
                )
            }
        })
        .collect())
}

/// Each value of `column` as text (`T` between date and time, which MySQL accepts).
fn text_values(column: &ArrayRef) -> Result<Vec<Value>> {
    Ok(column_texts(column)?
        .into_iter()
        .map(|t| t.map_or(Value::NULL, |t| Value::Bytes(t.into_bytes())))
        .collect())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, BooleanArray, Int32Array, RecordBatch, StringArray};
    use mysql_async::Value;

    use super::row_values;

    #[test]
    fn values_are_bound_by_type() {
        let batch = RecordBatch::try_from_iter([
            (
                "a",
                Arc::new(Int32Array::from(vec![Some(7), None])) as ArrayRef,
            ),
            (
                "b",
                Arc::new(BooleanArray::from(vec![true, false])) as ArrayRef,
            ),
            ("c", Arc::new(StringArray::from(vec!["x", "y"])) as ArrayRef),
        ])
        .unwrap();
        let rows = row_values(&batch).unwrap();
        assert_eq!(
            rows[0],
            [Value::Int(7), Value::Int(1), Value::Bytes(b"x".to_vec())]
        );
        assert_eq!(rows[1][0], Value::NULL);
        assert_eq!(rows[1][1], Value::Int(0));
    }

    #[test]
    fn intervals_are_written_as_time() {
        use datafusion::arrow::array::IntervalMonthDayNanoArray;
        use datafusion::arrow::datatypes::IntervalMonthDayNano;
        let column: ArrayRef = Arc::new(IntervalMonthDayNanoArray::from(vec![
            Some(IntervalMonthDayNano::new(0, 0, 5_400_500_000_000)),
            Some(IntervalMonthDayNano::new(0, 0, -61_000_000_000)),
            None,
        ]));
        let batch = RecordBatch::try_from_iter([("t", column)]).unwrap();
        let rows = row_values(&batch).unwrap();
        assert_eq!(rows[0][0], Value::Bytes(b"1:30:00.500000".to_vec()));
        assert_eq!(rows[1][0], Value::Bytes(b"-0:01:01.000000".to_vec()));
        assert_eq!(rows[2][0], Value::NULL);
    }
}
