//! The lake connector over S3, against a local moto server started by the test kit. A missing
//! `moto_server` fails the test, saying what to install (`scripts/test.sh` installs it).

use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::SessionContext;
use tributary_connectors::build_connector;
use tributary_testkit::Moto;

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
    let moto = Moto::shared();
    moto.create_bucket("lakebucket");
    let endpoint = moto.endpoint();

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
