//! Black-box test harness for Tributary.
//!
//! Everything here talks to real processes over real sockets:
//! - [`Tributary`]: the built `tributary` binary on a free port (killed on drop), with its log.
//! - [`ConfigDir`]: its `config.toml` / `catalog/NAME.toml` files.
//! - The services, from `tributary-testkit` (re-exported here): [`Postgres`], [`Mariadb`],
//!   [`Tansu`], [`Moto`], [`TempDir`], [`free_port`], ...
//! - [`cluster`]: a coordinator and worker processes, with `kill -9` of a worker.
//! - [`results`]: run a query with the simple protocol (every value as text) and compare result
//!   sets with stated tolerances.
//! - [`tpch`]: load TPC-H data (the same `tpchgen` generator the server uses) into PostgreSQL.
//! - [`tpch_compare`]: one TPC-H query on PostgreSQL and on the server, answers compared.
//! - [`pushdown`]: the remote statements EXPLAIN shows for a connector's scans.
//! - [`source_failure`]: what a client sees when a catalog's source fails.
//!
//! Nothing is skipped silently: a missing PostgreSQL, moto or binary is a panic that says what to
//! install (`scripts/test.sh` installs all of it).

pub mod cluster;
mod config_dir;
pub mod http;
pub mod pushdown;
pub mod results;
pub mod source_failure;
pub mod tpch;
pub mod tpch_compare;
mod tributary;

pub use config_dir::ConfigDir;
pub use tributary::{StartFailure, Tributary};
// The services and helpers live in the shared test kit; re-exported so tests name one crate.
pub use tributary_testkit::{
    Mariadb, MariadbOptions, Moto, Postgres, PostgresOptions, Tansu, TempDir, TlsFiles,
    connect_with, files_under, free_port, tail, target_dir, toml_string, try_connect_with, which,
    workspace_root,
};

/// The catalog file of a `lake` catalog over local directory `dir`.
pub fn lake_catalog_toml(dir: &std::path::Path) -> String {
    format!(
        "connector = \"lake\"\nlocation = {}\n",
        toml_string(&format!("file://{}", dir.display()))
    )
}
