//! What a client sees when a catalog's source fails (wrong password, nothing listening): its
//! query fails with a SQLSTATE that names the catalog and leaks no secret, and the server keeps
//! answering queries on other catalogs.

use tokio_postgres::Client;

use crate::results::query_text;

/// Runs `sql` (which reads catalog `catalog`) and asserts that it fails with an ErrorResponse of
/// SQLSTATE `code` whose message names the catalog (`catalog "NAME"`) and does not contain
/// `secret`.
pub async fn assert_catalog_error(
    client: &Client,
    sql: &str,
    code: &str,
    catalog: &str,
    secret: &str,
) {
    let err = client.simple_query(sql).await.unwrap_err();
    let db = err.as_db_error().expect("an ErrorResponse");
    assert_eq!(db.code().code(), code, "{}", db.message());
    assert!(
        db.message().contains(&format!("catalog \"{catalog}\"")),
        "{}",
        db.message()
    );
    assert!(!db.message().contains(secret), "{}", db.message());
}

/// Asserts that the server still answers on the built-in `tpch` catalog (`tpch.tiny.region` has
/// 5 rows).
pub async fn assert_tpch_still_served(client: &Client) {
    let rows = query_text(client, "select count(*) from tpch.tiny.region")
        .await
        .unwrap();
    assert_eq!(rows.rows, vec![vec![Some("5".into())]]);
}
