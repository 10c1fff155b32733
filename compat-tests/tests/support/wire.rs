//! Results exactly as the server sent them: every value's text (simple protocol) or bytes
//! (extended protocol, binary format) and the column type OIDs, for byte-level comparisons.

use tokio_postgres::Client;
use tokio_postgres::types::{FromSql, Type};

/// Any value's bytes as the server sent them (`None` for NULL).
pub struct Raw(pub Option<Vec<u8>>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(
        _ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(Some(raw.to_vec())))
    }

    fn from_sql_null(_ty: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(None))
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }
}

/// Every value of `sql` as text (simple protocol; `None` for NULL).
pub async fn text_values(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    compat_tests::results::all_rows(client, sql).await
}

/// The column type OIDs and every value's bytes of `sql` in binary format (extended protocol).
pub async fn binary_values(client: &Client, sql: &str) -> (Vec<u32>, Vec<Vec<Option<Vec<u8>>>>) {
    let statement = client
        .prepare(sql)
        .await
        .unwrap_or_else(|e| panic!("prepare {sql}: {e:?}"));
    let oids = statement
        .columns()
        .iter()
        .map(|c| c.type_().oid())
        .collect();
    let rows = client
        .query(&statement, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    let values = rows
        .iter()
        .map(|row| (0..row.len()).map(|i| row.get::<_, Raw>(i).0).collect())
        .collect();
    (oids, values)
}
