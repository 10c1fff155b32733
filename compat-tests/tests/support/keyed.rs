//! A `postgres` catalog whose tables have what connectors report beyond columns: primary keys (one
//! single-column, one composite), a table comment and a column comment, a `varchar(20)` column.
//! Included by the test files that check clients see them.

use compat_tests::{ConfigDir, Postgres};

/// The catalog's name (also the PostgreSQL database's).
pub const CATALOG: &str = "keyed";

/// Creates the database and tables on the shared PostgreSQL (once per test process) and returns a
/// config directory mounting it as catalog [`CATALOG`].
pub async fn catalog() -> ConfigDir {
    static CREATED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    let pg = Postgres::shared();
    CREATED.get_or_init(|| create(pg)).await;
    ConfigDir::new().catalog(
        CATALOG,
        &format!(
            "connector = \"postgres\"\nhost = \"127.0.0.1\"\nport = {}\ndatabase = \"{CATALOG}\"\nuser = \"postgres\"\n",
            pg.port()
        ),
    )
}

async fn create(pg: &Postgres) {
    pg.create_database(CATALOG).await;
    let client = pg.connect(CATALOG).await;
    client
        .batch_execute(
            "create table if not exists orders (id int primary key, code varchar(20), \
               total numeric(10,2), note text);
             comment on table orders is 'Customer orders';
             comment on column orders.total is 'Total in EUR';
             create table if not exists lines (order_id int, line int, qty int, \
               primary key (order_id, line));
             truncate orders, lines;
             insert into orders values (1, 'A-1', 10.50, 'first'), (2, 'B-2', 3.25, null);
             insert into lines values (1, 1, 5), (1, 2, 7), (2, 1, 1);",
        )
        .await
        .unwrap_or_else(|e| panic!("create the {CATALOG} tables: {e}"));
}
