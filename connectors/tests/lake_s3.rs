//! The lake connector over S3, against a local moto server (`pip install 'moto[server]'`).
//! Skipped, with a message, when `moto_server` is not on the PATH.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::SessionContext;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tributary_connectors::build_connector;

/// Kills the moto server this test started when dropped.
struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_moto(port: u16) -> Option<Moto> {
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let moto = Moto(child);
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Some(moto);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("moto_server did not listen on port {port}");
}

/// Creates a bucket with a bare, unsigned `PUT /bucket` (moto accepts any credentials).
async fn create_bucket(port: u16, bucket: &str) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let request = format!(
        "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

fn parquet_bytes(values: &[i64]) -> Vec<u8> {
    let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![Arc::new(Int64Array::from(values.to_vec()))],
    )
    .expect("batch");
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, schema, None).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
    bytes
}

#[tokio::test]
async fn reads_a_lake_on_s3() {
    let port = 19_500 + (std::process::id() % 400) as u16;
    let Some(_moto) = start_moto(port).await else {
        eprintln!("skipping: moto_server not found (pip install 'moto[server]')");
        return;
    };
    create_bucket(port, "lakebucket").await;
    let endpoint = format!("http://127.0.0.1:{port}");

    let mut config = toml::Table::new();
    for (key, value) in [
        ("connector", "lake"),
        ("location", "s3://lakebucket/warehouse"),
        ("endpoint", endpoint.as_str()),
        ("access_key_id", "testing"),
        ("secret_access_key", "testing-secret"),
    ] {
        config.insert(key.into(), toml::Value::String(value.into()));
    }

    // Write the data through OpenDAL with the same settings the connector uses.
    let lake_config = tributary_connectors::lake::LakeConfig::from_toml(&config).expect("config");
    let op = lake_config.operator("s3lake").expect("operator");
    op.write("shop/numbers.parquet", parquet_bytes(&[1, 2, 3]))
        .await
        .expect("write parquet");
    op.write(
        "shop/sales/year=2024/part-0.parquet",
        parquet_bytes(&[10, 20]),
    )
    .await
    .expect("write partition");
    op.write("shop/sales/year=2023/part-0.parquet", parquet_bytes(&[5]))
        .await
        .expect("write partition");

    let connector = build_connector("s3lake", &config)
        .await
        .expect("lake on s3");
    let ctx = SessionContext::new();
    for (url, store) in connector.object_stores() {
        ctx.runtime_env().register_object_store(&url, store);
    }
    ctx.register_catalog("s3lake", connector.catalog());
    let batches = ctx
        .sql("SELECT sum(v) AS total FROM s3lake.shop.numbers")
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .expect("format")
        .to_string();
    assert!(text.contains("| 6 "), "{text}");

    let batches = ctx
        .sql("SELECT sum(v) FROM s3lake.shop.sales WHERE year = '2024'")
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .expect("format")
        .to_string();
    assert!(text.contains("| 30 "), "{text}");
}
