//! `tributary`: a PostgreSQL-wire federated query server.
//!
//! This binary owns the CLI (its flags become `Overrides` of the one `config.toml` model,
//! `tributary_planner::config`, which the engine takes as is) and the PostgreSQL wire front end
//! (`pgwire/`). It turns protocol messages into calls on [`tributary_exec::Engine`] and Arrow batches
//! back into rows; it does not plan distributed execution or touch sources itself.

mod auth;
mod config;
mod http;
mod pgwire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use tokio::net::TcpListener;

use tributary_exec::Engine;

use crate::auth::Security;
use crate::config::{AuthMethod, Config, LogFormat, NodeRole, Overrides};

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
    #[arg(
        long,
        value_parser = PossibleValuesParser::new(NodeRole::NAMES).try_map(|name| name.parse::<NodeRole>())
    )]
    role: Option<NodeRole>,

    /// Node RPC (Arrow Flight) address of a coordinator or worker, overriding `[node] rpc_listen`.
    #[arg(long, value_name = "HOST:PORT")]
    rpc_listen: Option<String>,

    /// A worker's coordinator (its RPC address), overriding `[node] coordinator`.
    #[arg(long, value_name = "HOST:PORT")]
    coordinator: Option<String>,

    /// This node's id, overriding `[node] id`.
    #[arg(long, value_name = "ID")]
    node_id: Option<String>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Reads a password from the first line of stdin and prints the `password_hash` value for a
    /// `[[user]]` of the users file (`[auth] users_file`).
    ///
    /// Example: `printf '%s\n' "$PW" | tributary hash-password` prints
    /// `SCRAM-SHA-256-SALTED$4096:<salt>$<salted password>`.
    HashPassword {
        /// The `[auth] method` the hash is for.
        #[arg(long, value_enum, default_value = "scram-sha-256")]
        method: HashMethod,
        /// The user name (required for md5, whose hash includes it).
        #[arg(long)]
        user: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum HashMethod {
    #[value(name = "scram-sha-256")]
    ScramSha256,
    Md5,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::HashPassword { method, user }) = &cli.command {
        let method = match method {
            HashMethod::ScramSha256 => AuthMethod::ScramSha256,
            HashMethod::Md5 => AuthMethod::Md5,
        };
        return match auth::hash_password_command(method, user.as_deref()) {
            Ok(hash) => {
                println!("{hash}");
                ExitCode::SUCCESS
            }
            Err(message) => fail(&message),
        };
    }
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

/// Logs to standard error at `RUST_LOG`'s levels (default `info`), as `[log] format` says: text,
/// or one JSON object per line carrying the fields of the spans it happened in (session `pid` and
/// `user`, `query` id, task ids).
fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}

/// Loads the config, starts the engine and serves until Ctrl-C. Errors are one-line messages.
async fn run(cli: Cli) -> Result<(), String> {
    let dir = cli
        .config
        .clone()
        .or_else(|| Some(PathBuf::from("etc")).filter(|d| d.is_dir()));
    let overrides = Overrides {
        listen: cli.listen,
        role: cli.role,
        rpc_listen: cli.rpc_listen,
        coordinator: cli.coordinator,
        node_id: cli.node_id,
    };
    let config = Config::resolve(dir.as_deref(), overrides).map_err(|e| e.to_string())?;
    init_tracing(config.log.format);
    tracing::info!(
        config_dir = %dir.as_deref().map_or("(none: built-in catalogs)".into(), |d| d.display().to_string()),
        role = ?config.node.role,
        "starting"
    );

    let security = Arc::new(Security::load(&config).map_err(|e| e.to_string())?);

    let engine = Engine::start_with(config.clone(), pgwire::errors::classifier())
        .await
        .map_err(|e| e.to_string())?;

    if config.node.role == NodeRole::Worker {
        if let Some(http_listener) = bind_http(&config, "/metrics, /v1/info").await? {
            tokio::spawn(http::serve_worker(
                http_listener,
                engine.clone(),
                security.clone(),
            ));
        }
        tracing::info!(
            node = engine.node_id(),
            rpc = engine.rpc_address(),
            "worker running; announcing to the coordinator"
        );
        println!(
            "tributary worker {} ready on {}",
            engine.node_id(),
            engine.rpc_address()
        );
        match shutdown_signal().await? {
            Shutdown::Graceful => {
                engine.drain(config.node.shutdown_timeout()).await;
            }
            Shutdown::Now => tracing::info!("shutting down"),
        }
        return Ok(());
    }
    if config.node.role == NodeRole::Coordinator {
        println!("tributary coordinator RPC on {}", engine.rpc_address());
    }

    // Bound before the client listener, so that the HTTP API answers once clients can connect.
    let http_listener = bind_http(&config, "/ui/, /metrics, /v1/info, /v1/query").await?;
    let listen = &config.server.listen;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
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
    check_trust(&config, addr)?;
    log_security(&security);
    let frontend = Arc::new(pgwire::Frontend::new(engine.clone(), security));
    if let Some(http_listener) = http_listener {
        tokio::spawn(http::serve(http_listener, engine.clone(), frontend.clone()));
    }
    tracing::info!(%addr, catalogs = %catalogs.join(", "), "listening (PostgreSQL wire protocol)");
    println!("tributary ready on {addr}; connect with:");
    println!("  psql -h {host} -p {} -U $USER -d {database}", addr.port());

    let signal = tokio::select! {
        () = pgwire::serve(listener, frontend) => return Ok(()),
        signal = shutdown_signal() => signal?,
    };
    // The listener is closed now: no new sessions. Sessions already connected keep running.
    if signal == Shutdown::Graceful {
        let timeout = config.node.shutdown_timeout();
        tracing::info!(
            ?timeout,
            "shutting down: no new sessions; waiting for running queries"
        );
        let left = engine.wait_for_queries(timeout).await;
        if left > 0 {
            tracing::warn!(left, "shutdown timeout: ending with queries still running");
        }
    }
    tracing::info!("shutting down");
    Ok(())
}

/// How the process was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shutdown {
    /// SIGTERM (what Kubernetes and systemd send): a worker drains, a coordinator lets running
    /// queries finish, both within `[node] shutdown_timeout_ms`.
    Graceful,
    /// SIGINT (Ctrl-C): stop now.
    Now,
}

/// Waits for SIGTERM or SIGINT.
async fn shutdown_signal() -> Result<Shutdown, String> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot wait for SIGTERM: {e}"))?;
    tokio::select! {
        _ = term.recv() => Ok(Shutdown::Graceful),
        interrupt = tokio::signal::ctrl_c() => {
            interrupt.map_err(|e| format!("cannot wait for Ctrl-C: {e}"))?;
            Ok(Shutdown::Now)
        }
    }
}

/// Trust without `[auth] method = "trust"` is only for a listener on a loopback address.
fn check_trust(config: &Config, addr: SocketAddr) -> Result<(), String> {
    if config.auth.method.is_none() && !addr.ip().is_loopback() {
        return Err(format!(
            "listening on {addr} (not a loopback address) without `[auth]` in config.toml: configure \
             `[auth] method` and `users_file`, or set `[auth] method = \"trust\"` to let anyone connect \
             as any user"
        ));
    }
    Ok(())
}

/// The `[http] listen` listener, bound now (`None` when the key is absent); `serves` names what it
/// will answer, for the log line.
async fn bind_http(config: &Config, serves: &str) -> Result<Option<TcpListener>, String> {
    let Some(http) = &config.http.listen else {
        return Ok(None);
    };
    let listener = TcpListener::bind(http)
        .await
        .map_err(|e| format!("[http] listen: cannot listen on {http}: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the HTTP listen address: {e}"))?;
    tracing::info!(%addr, "listening (HTTP: {serves})");
    Ok(Some(listener))
}

fn log_security(security: &Security) {
    match (&security.users, security.method) {
        (Some(users), method) => tracing::info!(
            method = method.name(),
            users = users.len(),
            "password authentication"
        ),
        (None, _) => tracing::warn!(
            "authentication: trust (any user connects without a password); configure `[auth]` in \
             config.toml to require passwords"
        ),
    }
    match (&security.tls, security.tls_required) {
        (Some(_), true) => tracing::info!("TLS: on, required"),
        (Some(_), false) => tracing::info!("TLS: on (clients may connect without it)"),
        (None, _) => tracing::info!("TLS: off (SSLRequest answered N)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_by_default_only_on_loopback() {
        let config = Config::default();
        assert!(check_trust(&config, "127.0.0.1:7432".parse().unwrap()).is_ok());
        assert!(check_trust(&config, "[::1]:7432".parse().unwrap()).is_ok());
        let msg = check_trust(&config, "0.0.0.0:7432".parse().unwrap()).unwrap_err();
        assert!(msg.contains("[auth]"), "{msg}");
        let mut config = Config::default();
        config.auth.method = Some(AuthMethod::Trust);
        assert!(check_trust(&config, "0.0.0.0:7432".parse().unwrap()).is_ok());
    }
}
