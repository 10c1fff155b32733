//! `tributary`: a PostgreSQL-wire federated query server.
//!
//! This binary owns the CLI, config loading and the PostgreSQL wire front end (`pgwire/`). It turns
//! protocol messages into calls on [`tributary_exec::Engine`] and Arrow batches back into rows; it does
//! not plan distributed execution or touch sources itself.

mod config;
mod pgwire;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tokio::net::TcpListener;
use tributary_exec::{Engine, EngineConfig};

use crate::config::{Role, ServerConfig};

/// Tributary: a PostgreSQL-wire-compatible federated query server.
///
/// Connect with any PostgreSQL client; the database name selects the default catalog.
#[derive(Debug, Parser)]
#[command(name = "tributary", version, about, long_about)]
struct Cli {
    /// Config directory holding `config.toml` and `catalog/NAME.toml` (one file per catalog).
    /// Defaults to `./etc` when that directory exists; without one, only the built-in `tpch` and
    /// `system` catalogs are served.
    #[arg(long, value_name = "DIR")]
    config: Option<PathBuf>,

    /// Address of the PostgreSQL-wire listener, overriding `[server] listen` of config.toml
    /// [default: 127.0.0.1:7432].
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,

    /// Node role, overriding `[node] role` of config.toml. `single` runs the coordinator and the
    /// workers in this one process.
    #[arg(long, value_enum)]
    role: Option<Role>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("tributary: {message}");
    ExitCode::FAILURE
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Loads the config, starts the engine and serves until Ctrl-C. Errors are one-line messages.
async fn run(cli: Cli) -> Result<(), String> {
    let dir = cli
        .config
        .clone()
        .or_else(|| Some(PathBuf::from("etc")).filter(|d| d.is_dir()));
    let mut config = match &dir {
        Some(dir) => ServerConfig::load(dir).map_err(|e| e.to_string())?,
        None => ServerConfig::default(),
    };
    if let Some(listen) = cli.listen {
        config::validate_listen(&listen).map_err(|reason| format!("--listen: {reason}"))?;
        config.listen = listen;
    }
    if let Some(role) = cli.role {
        config.role = role;
    }
    tracing::info!(
        config_dir = %dir.as_deref().map_or("(none: built-in catalogs)".into(), |d| d.display().to_string()),
        role = ?config.role,
        "starting"
    );

    let engine = Engine::start(EngineConfig {
        catalog_dir: config.catalog_dir.clone(),
        workers: config.workers,
        hash_partitions: config.hash_partitions,
    })
    .await
    .map_err(|e| e.to_string())?;

    let listener = TcpListener::bind(&config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listen address: {e}"))?;
    let catalogs = engine.registry().names();
    let database = if catalogs.iter().any(|c| c == "tpch") {
        "tpch".to_string()
    } else {
        catalogs.first().cloned().unwrap_or_default()
    };
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    tracing::info!(%addr, catalogs = %catalogs.join(", "), "listening (PostgreSQL wire protocol)");
    println!("tributary ready on {addr}; connect with:");
    println!("  psql -h {host} -p {} -U $USER -d {database}", addr.port());

    tokio::select! {
        () = pgwire::serve(listener, engine) => Ok(()),
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("shutting down");
            Ok(())
        }
    }
}
