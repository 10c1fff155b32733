//! Tributary embedded in a program: start an engine on a config directory (or only the built-in
//! `tpch` and `system` catalogs), run SQL, read Arrow batches. No PostgreSQL wire, no server.
//!
//! ```sh
//! cargo run -p tributary-exec --example embedded                       # built-in catalogs
//! cargo run -p tributary-exec --example embedded -- etc "select 1"     # etc/config.toml, etc/catalog/*.toml
//! ```
//!
//! The same path the server takes for a query: the planner turns the SQL into a distributed plan
//! (stages over splits), the engine's scheduler runs its tasks on in-process workers, and the root
//! stage's output streams back as Arrow record batches.

use std::path::Path;

use datafusion::arrow::util::pretty::pretty_format_batches;
use futures::TryStreamExt;
use tributary_exec::{Config, Engine};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let config = match args.next() {
        Some(dir) => Config::load(Path::new(&dir))?,
        None => Config::default(),
    };
    let sql = args.next().unwrap_or_else(|| {
        "select l_returnflag, l_linestatus, count(*) as orders, sum(l_quantity) as quantity \
         from tpch.tiny.lineitem group by 1, 2 order by 1, 2"
            .to_string()
    });

    let engine = Engine::start(config).await?;
    // A session's default catalog and schema resolve unqualified names, as a client's database and
    // search_path do.
    let ctx = engine.new_session_context("tpch", "tiny");
    let plan = ctx.state().create_logical_plan(&sql).await?;
    let result = engine.execute(&ctx, plan, &sql, "example").await?;
    println!("query {}", result.query_id);
    let batches: Vec<_> = result.stream.try_collect().await?;
    println!("{}", pretty_format_batches(&batches)?);
    Ok(())
}
