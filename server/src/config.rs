//! `DIR/config.toml`: the server's own settings (listen address, node role, engine sizing,
//! authentication and TLS).
//!
//! Catalog files (`DIR/catalog/NAME.toml`) are read by the engine, not here. Every error names the file,
//! the key and the reason; unknown keys are errors so a typo never silently falls back to a default.

use std::path::{Path, PathBuf};

use tributary_exec::NodeSecret;
use tributary_planner::config::{ConfigError, read_toml};

/// The PostgreSQL-wire port when neither `--listen` nor `[server] listen` says otherwise (not 5432, so a
/// local PostgreSQL keeps its port).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7432";

/// What this process does in a cluster (`[node] role`, or `--role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Coordinator and in-process workers in one process.
    Single,
    /// Serves clients, plans and schedules; tasks run on workers that announce themselves.
    Coordinator,
    /// Runs tasks for the coordinator named by `[node] coordinator`; serves no clients.
    Worker,
}

/// `[node]`: cluster membership of this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// `[node] id`: the node id shown in `system.runtime.nodes` (default `coordinator`, or
    /// `worker-PORT` for a worker).
    pub id: Option<String>,
    /// `[node] rpc_listen`: the node RPC (Arrow Flight) address, `HOST:PORT` (default
    /// `127.0.0.1:0`, any free port; a coordinator's workers need a fixed one).
    pub rpc_listen: String,
    /// `[node] coordinator`: a worker's coordinator, as the coordinator's `rpc_listen`.
    pub coordinator: Option<String>,
    /// `[node] include_coordinator`: whether a coordinator runs tasks too (Trino's
    /// `node-scheduler.include-coordinator`; default false).
    pub include_coordinator: bool,
    /// `[node] heartbeat_interval_ms`: how often a worker announces itself (default 1000).
    pub heartbeat_interval_ms: u64,
    /// `[node] heartbeat_timeout_ms`: silence after which the coordinator marks a worker dead
    /// (default 5000).
    pub heartbeat_timeout_ms: u64,
    /// `[node] shared_secret`: the secret every node of the cluster shares (Trino's
    /// `internal-communication.shared-secret`; use `${ENV}` to keep it out of the file). When set,
    /// node RPC without it is refused. Never printed.
    pub shared_secret: Option<NodeSecret>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            id: None,
            rpc_listen: "127.0.0.1:0".into(),
            coordinator: None,
            include_coordinator: false,
            heartbeat_interval_ms: 1000,
            heartbeat_timeout_ms: 5000,
            shared_secret: None,
        }
    }
}

/// Most in-process workers or hash partitions `config.toml` accepts (beyond it, per-task overhead
/// dominates on any machine).
pub const MAX_PARALLELISM: usize = 256;

/// The settings of `config.toml`, with defaults for what the file leaves out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// `[server] listen`: the PostgreSQL-wire address, `HOST:PORT`.
    pub listen: String,
    /// `[node] role`.
    pub role: Role,
    /// `[node]`: the rest of the node's cluster settings.
    pub node: NodeConfig,
    /// `[engine] workers`: in-process workers in `single` mode.
    pub workers: usize,
    /// `[engine] hash_partitions`: partitions of a repartitioned stage.
    pub hash_partitions: usize,
    /// `[engine] max_memory_mb`: memory all queries on this node may use together (unbounded when
    /// absent); operators that can spill do so past it.
    pub max_memory_mb: Option<usize>,
    /// `[engine] query_max_memory_per_node_mb`: memory one query may use on this node (Trino's
    /// `query.max-memory-per-node`; unbounded when absent).
    pub query_max_memory_per_node_mb: Option<usize>,
    /// `[engine] task_threads`: threads of the runtime tasks run on (Trino's
    /// `task.max-worker-threads`; one per available core when absent).
    pub task_threads: Option<usize>,
    /// `DIR/catalog`, when a config directory is used.
    pub catalog_dir: Option<PathBuf>,
    /// `[auth]`: how clients authenticate.
    pub auth: AuthConfig,
    /// `[tls]`: the server certificate, when TLS is offered.
    pub tls: TlsConfig,
}

/// How clients prove who they are (`[auth] method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// Anyone connects as any user without a password.
    Trust,
    /// SCRAM-SHA-256 (SASL) against the users file's verifiers.
    ScramSha256,
    /// PostgreSQL's `md5` challenge against the users file's `md5…` hashes.
    Md5,
    /// The cleartext password, compared with the users file's `password` (development only).
    Password,
}

impl AuthMethod {
    /// The name used in `config.toml` (and in PostgreSQL's `pg_hba.conf`).
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::Trust => "trust",
            AuthMethod::ScramSha256 => "scram-sha-256",
            AuthMethod::Md5 => "md5",
            AuthMethod::Password => "password",
        }
    }
}

/// `[auth]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthConfig {
    /// `[auth] method`; `None` when the file does not say (trust, allowed on a loopback listener only).
    pub method: Option<AuthMethod>,
    /// `[auth] users_file`, relative paths resolved against the config directory.
    pub users_file: Option<PathBuf>,
}

/// `[tls]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsConfig {
    /// `[tls] cert_file`: PEM certificate chain, server certificate first.
    pub cert_file: Option<PathBuf>,
    /// `[tls] key_file`: PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// `[tls] required`: refuse connections that did not negotiate TLS.
    pub required: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_string(),
            role: Role::Single,
            node: NodeConfig::default(),
            workers: 2,
            hash_partitions: 4,
            max_memory_mb: None,
            query_max_memory_per_node_mb: None,
            task_threads: None,
            catalog_dir: None,
            auth: AuthConfig::default(),
            tls: TlsConfig::default(),
        }
    }
}

impl ServerConfig {
    /// Reads `dir/config.toml` (optional: a directory holding only `catalog/` is fine) and points the
    /// catalog directory at `dir/catalog`.
    pub fn load(dir: &Path) -> Result<Self, ConfigError> {
        if !dir.is_dir() {
            return Err(ConfigError {
                file: dir.to_path_buf(),
                reason: "config directory does not exist".into(),
            });
        }
        let file = dir.join("config.toml");
        let mut config = if file.exists() {
            Self::from_table(&file, &read_toml(&file)?)?
        } else {
            Self::default()
        };
        config.catalog_dir = Some(dir.join("catalog"));
        for path in [
            &mut config.auth.users_file,
            &mut config.tls.cert_file,
            &mut config.tls.key_file,
        ]
        .into_iter()
        .flatten()
        {
            if path.is_relative() {
                *path = dir.join(&*path);
            }
        }
        Ok(config)
    }

    /// Interprets a parsed `config.toml`; `file` is only used in error messages. Relative file
    /// paths are returned as written ([`ServerConfig::load`] resolves them against the directory).
    pub fn from_table(file: &Path, table: &toml::Table) -> Result<Self, ConfigError> {
        let err = |key: &str, reason: String| ConfigError {
            file: file.to_path_buf(),
            reason: format!("key `{key}`: {reason}"),
        };
        let mut config = Self::default();
        for (section, value) in table {
            let toml::Value::Table(entries) = value else {
                return Err(err(section, "expected a table like `[server]`".into()));
            };
            for (key, value) in entries {
                let full = format!("{section}.{key}");
                match (section.as_str(), key.as_str()) {
                    ("server", "listen") => {
                        let listen = value
                            .as_str()
                            .ok_or_else(|| err(&full, "expected a string \"HOST:PORT\"".into()))?;
                        validate_listen(listen).map_err(|reason| err(&full, reason))?;
                        config.listen = listen.to_string();
                    }
                    ("node", "role") => {
                        config.role = match value.as_str() {
                            Some("single") => Role::Single,
                            Some("coordinator") => Role::Coordinator,
                            Some("worker") => Role::Worker,
                            Some(other) => {
                                return Err(err(
                                    &full,
                                    format!(
                                        "unsupported role \"{other}\"; expected \"single\", \
                                         \"coordinator\" or \"worker\""
                                    ),
                                ));
                            }
                            None => return Err(err(&full, "expected a string".into())),
                        };
                    }
                    ("node", "id") => {
                        config.node.id = Some(
                            value
                                .as_str()
                                .filter(|s| !s.is_empty())
                                .ok_or_else(|| err(&full, "expected a non-empty string".into()))?
                                .to_string(),
                        )
                    }
                    ("node", "rpc_listen") | ("node", "coordinator") => {
                        let address = value
                            .as_str()
                            .ok_or_else(|| err(&full, "expected a string \"HOST:PORT\"".into()))?;
                        validate_listen(address).map_err(|reason| err(&full, reason))?;
                        if key == "rpc_listen" {
                            config.node.rpc_listen = address.to_string();
                        } else {
                            config.node.coordinator = Some(address.to_string());
                        }
                    }
                    ("node", "include_coordinator") => {
                        config.node.include_coordinator = value
                            .as_bool()
                            .ok_or_else(|| err(&full, "expected true or false".into()))?
                    }
                    ("node", "heartbeat_interval_ms") => {
                        config.node.heartbeat_interval_ms =
                            positive(value).map_err(|r| err(&full, r))? as u64
                    }
                    ("node", "heartbeat_timeout_ms") => {
                        config.node.heartbeat_timeout_ms =
                            positive(value).map_err(|r| err(&full, r))? as u64
                    }
                    ("node", "shared_secret") => {
                        let secret = value
                            .as_str()
                            .ok_or_else(|| err(&full, "expected a string".into()))?;
                        config.node.shared_secret = Some(
                            NodeSecret::new(secret)
                                .ok_or_else(|| err(&full, "must not be empty".into()))?,
                        )
                    }
                    ("engine", "workers") => {
                        config.workers = bounded(value).map_err(|r| err(&full, r))?
                    }
                    ("engine", "hash_partitions") => {
                        config.hash_partitions = bounded(value).map_err(|r| err(&full, r))?
                    }
                    ("engine", "max_memory_mb") => {
                        config.max_memory_mb = Some(positive(value).map_err(|r| err(&full, r))?)
                    }
                    ("engine", "task_threads") => {
                        config.task_threads = Some(bounded(value).map_err(|r| err(&full, r))?)
                    }
                    ("engine", "query_max_memory_per_node_mb") => {
                        config.query_max_memory_per_node_mb =
                            Some(positive(value).map_err(|r| err(&full, r))?)
                    }
                    ("auth", "method") => {
                        config.auth.method = Some(match value.as_str() {
                            Some("trust") => AuthMethod::Trust,
                            Some("scram-sha-256") => AuthMethod::ScramSha256,
                            Some("md5") => AuthMethod::Md5,
                            Some("password") => AuthMethod::Password,
                            _ => {
                                return Err(err(
                                    &full,
                                    "expected \"trust\", \"scram-sha-256\", \"md5\" or \"password\""
                                        .into(),
                                ));
                            }
                        })
                    }
                    ("auth", "users_file") => {
                        config.auth.users_file = Some(path(value).map_err(|r| err(&full, r))?)
                    }
                    ("tls", "cert_file") => {
                        config.tls.cert_file = Some(path(value).map_err(|r| err(&full, r))?)
                    }
                    ("tls", "key_file") => {
                        config.tls.key_file = Some(path(value).map_err(|r| err(&full, r))?)
                    }
                    ("tls", "required") => {
                        config.tls.required = value
                            .as_bool()
                            .ok_or_else(|| err(&full, "expected true or false".into()))?
                    }
                    _ => return Err(err(&full, "unknown key".into())),
                }
            }
        }
        match (config.auth.method, &config.auth.users_file) {
            (Some(m), None) if m != AuthMethod::Trust => {
                return Err(err(
                    "auth.users_file",
                    format!("required with method \"{}\"", m.name()),
                ));
            }
            (Some(AuthMethod::Trust) | None, Some(_)) => {
                return Err(err(
                    "auth.users_file",
                    "only used with a password method; set `[auth] method`".into(),
                ));
            }
            _ => {}
        }
        match (&config.tls.cert_file, &config.tls.key_file) {
            (Some(_), None) => {
                return Err(err("tls.key_file", "required with tls.cert_file".into()));
            }
            (None, Some(_)) => {
                return Err(err("tls.cert_file", "required with tls.key_file".into()));
            }
            (None, None) if config.tls.required => {
                return Err(err(
                    "tls.required",
                    "needs tls.cert_file and tls.key_file".into(),
                ));
            }
            _ => {}
        }
        Ok(config)
    }
}

fn path(value: &toml::Value) -> Result<PathBuf, String> {
    match value.as_str() {
        Some(s) if !s.is_empty() => Ok(PathBuf::from(s)),
        _ => Err("expected a file path string".into()),
    }
}

/// Checks `HOST:PORT` (a name or an IP, and a port number).
pub fn validate_listen(listen: &str) -> Result<(), String> {
    let (host, port) = listen
        .rsplit_once(':')
        .ok_or_else(|| format!("\"{listen}\" is not HOST:PORT"))?;
    if host.is_empty() {
        return Err(format!("\"{listen}\" has no host"));
    }
    port.parse::<u16>()
        .map_err(|_| format!("\"{port}\" is not a port number"))?;
    Ok(())
}

/// An integer in `1..=MAX_PARALLELISM`.
fn bounded(value: &toml::Value) -> Result<usize, String> {
    match value.as_integer() {
        Some(n) if (1..=MAX_PARALLELISM as i64).contains(&n) => Ok(n as usize),
        _ => Err(format!("expected an integer from 1 to {MAX_PARALLELISM}")),
    }
}

fn positive(value: &toml::Value) -> Result<usize, String> {
    match value.as_integer() {
        Some(n) if n >= 1 => Ok(n as usize),
        _ => Err("expected an integer >= 1".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ServerConfig, ConfigError> {
        ServerConfig::from_table(Path::new("etc/config.toml"), &text.parse().unwrap())
    }

    #[test]
    fn reads_every_key() {
        let config = parse(
            "[server]\nlisten = \"0.0.0.0:9000\"\n[node]\nrole = \"single\"\n[engine]\nworkers = 3\nhash_partitions = 8\ntask_threads = 3\n",
        )
        .unwrap();
        assert_eq!(config.listen, "0.0.0.0:9000");
        assert_eq!(config.workers, 3);
        assert_eq!(config.hash_partitions, 8);
        assert_eq!(config.task_threads, Some(3));
        let config = parse(
            "[node]\nrole = \"worker\"\nid = \"w1\"\nrpc_listen = \"127.0.0.1:7500\"\ncoordinator = \"127.0.0.1:7400\"\ninclude_coordinator = true\nheartbeat_interval_ms = 200\nheartbeat_timeout_ms = 900\nshared_secret = \"s3cret\"\n",
        )
        .unwrap();
        assert_eq!(config.role, Role::Worker);
        assert_eq!(config.node.id.as_deref(), Some("w1"));
        assert_eq!(config.node.rpc_listen, "127.0.0.1:7500");
        assert_eq!(config.node.coordinator.as_deref(), Some("127.0.0.1:7400"));
        assert!(config.node.include_coordinator);
        assert_eq!(config.node.heartbeat_interval_ms, 200);
        assert_eq!(config.node.heartbeat_timeout_ms, 900);
        assert_eq!(config.node.shared_secret, NodeSecret::new("s3cret"));
        assert!(
            !format!("{config:?}").contains("s3cret"),
            "the shared secret must never be printed"
        );
        let msg = parse("[node]\nshared_secret = \"\"\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("node.shared_secret"), "{msg}");
    }

    #[test]
    fn reads_auth_and_tls() {
        let config = parse(
            "[auth]\nmethod = \"scram-sha-256\"\nusers_file = \"users.toml\"\n[tls]\ncert_file = \"a.pem\"\nkey_file = \"k.pem\"\nrequired = true\n",
        )
        .unwrap();
        assert_eq!(config.auth.method, Some(AuthMethod::ScramSha256));
        assert_eq!(config.auth.users_file, Some(PathBuf::from("users.toml")));
        assert_eq!(config.tls.cert_file, Some(PathBuf::from("a.pem")));
        assert!(config.tls.required);
        for (text, key) in [
            ("[auth]\nmethod = \"md5\"\n", "auth.users_file"),
            ("[auth]\nmethod = \"ldap\"\n", "auth.method"),
            ("[auth]\nusers = \"x\"\n", "auth.users"),
            ("[tls]\ncert_file = \"a.pem\"\n", "tls.key_file"),
            ("[tls]\nrequired = true\n", "tls.required"),
            ("[tls]\nrequire = true\n", "tls.require"),
        ] {
            let msg = parse(text).unwrap_err().to_string();
            assert!(msg.contains(key), "{text}: {msg}");
        }
    }

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(parse("").unwrap(), ServerConfig::default());
    }

    #[test]
    fn errors_name_file_and_key() {
        let msg = parse("[server]\nlisten = \"x:1\"\nlistn = 3\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("etc/config.toml"), "{msg}");
        assert!(msg.contains("server.listn"), "{msg}");
        let msg = parse("[engine]\nworkers = 0\n").unwrap_err().to_string();
        assert!(msg.contains("engine.workers"), "{msg}");
        let msg = parse("[node]\nrole = \"leader\"\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("node.role"), "{msg}");
        let msg = parse("[engine]\nworkers = 100000\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("engine.workers"), "{msg}");
        let msg = parse("[node]\ncoordinator = \"nope\"\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("node.coordinator"), "{msg}");
        let msg = parse("[server]\nlisten = \"nope\"\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("server.listen"), "{msg}");
    }
}
