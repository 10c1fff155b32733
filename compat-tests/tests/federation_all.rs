//! One statement joining every catalog kind: a PostgreSQL table, a MariaDB table, a Parquet file
//! of a `lake` catalog and `tpch`; the single-source parts are still pushed (an aggregate to
//! PostgreSQL, a filter to MariaDB).

use std::path::Path;
use std::sync::Arc;

use compat_tests::results::query_text;
use compat_tests::{ConfigDir, Mariadb, Postgres, TempDir, Tributary, toml_string};
use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;

fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("create parquet dir");
    let batch = RecordBatch::try_from_iter(columns).expect("record batch");
    let file = std::fs::File::create(path).expect("create parquet file");
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None).expect("parquet writer");
    writer.write(&batch).expect("write parquet");
    writer.close().expect("close parquet");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_mariadb_parquet_and_tpch_in_one_statement() {
    let pg = Postgres::shared();
    pg.create_database("fedall").await;
    pg.connect("fedall")
        .await
        .batch_execute(
            "drop table if exists orders_pg;
             create table orders_pg (id int primary key, custkey int, amount numeric(10,2));
             insert into orders_pg values (1, 1, 10.00), (2, 1, 2.50), (3, 2, 7.25),
               (4, 3, 100.00), (5, 4, 1.00), (6, 9, 3.00);",
        )
        .await
        .unwrap();
    let my = Mariadb::shared();
    my.execute(
        "CREATE DATABASE IF NOT EXISTS fedall;
         CREATE OR REPLACE TABLE fedall.customers_my (custkey int PRIMARY KEY, nationkey int,
           name varchar(20));
         INSERT INTO fedall.customers_my VALUES (1, 0, 'Ann'), (2, 1, 'Bob'), (3, 2, 'Cid'),
           (4, 24, 'Dee');",
    );
    let lake = TempDir::new("fed-lake");
    write_parquet(
        &lake.path().join("crm/ratings.parquet"),
        vec![
            (
                "nationkey",
                Arc::new(Int64Array::from(vec![0, 1, 2, 24])) as ArrayRef,
            ),
            (
                "rating",
                Arc::new(Float64Array::from(vec![4.5, 3.25, 5.5, 1.5])),
            ),
        ],
    );
    let config = ConfigDir::new()
        .catalog(
            "pg",
            &format!(
                "connector = \"postgres\"\nhost = \"127.0.0.1\"\nport = {}\ndatabase = \"fedall\"\n\
                 user = \"postgres\"\n",
                pg.port()
            ),
        )
        .catalog("my", &my.catalog_toml("database = \"fedall\"\n"))
        .catalog(
            "lake",
            &format!(
                "connector = \"lake\"\nlocation = {}\n",
                toml_string(&format!("file://{}", lake.path().display()))
            ),
        )
        .catalog("tpch", "connector = \"tpch\"\n");
    let server = Tributary::start(Some(config.path()));
    let client = server.connect("tpch").await;

    let sql = "select n.n_name, c.name, o.total, r.rating \
               from (select custkey, sum(amount) as total from pg.public.orders_pg \
                     group by custkey) o \
               join my.fedall.customers_my c on o.custkey = c.custkey \
               join lake.crm.ratings r on r.nationkey = c.nationkey \
               join tpch.tiny.nation n on n.n_nationkey = c.nationkey \
               where c.nationkey < 20 \
               order by n.n_name";
    let plan = query_text(&client, &format!("explain {sql}"))
        .await
        .unwrap_or_else(|e| panic!("explain: {e:?}"))
        .rows
        .into_iter()
        .map(|r| r[0].clone().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let line = |marker: &str| {
        plan.lines()
            .find(|l| l.contains(marker))
            .unwrap_or_else(|| panic!("no {marker} in the plan:\n{plan}"))
            .to_string()
    };
    assert!(line("PostgresScan").contains("GROUP BY"), "{plan}");
    assert!(line("MySqlScan").contains("`nationkey` < 20"), "{plan}");
    assert!(
        plan.contains("ratings.parquet") || plan.contains("DataSourceExec"),
        "{plan}"
    );

    let rows = query_text(&client, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}\n{}", compat_tests::tail(&server.log(), 20)));
    assert_eq!(
        rows.strings(),
        vec![
            vec!["ALGERIA", "Ann", "12.50", "4.5"],
            vec!["ARGENTINA", "Bob", "7.25", "3.25"],
            vec!["BRAZIL", "Cid", "100.00", "5.5"],
        ]
    );
}
