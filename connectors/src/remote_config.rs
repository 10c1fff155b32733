//! The catalog file of a connector whose source is a remote database server (`postgres`, `mysql`):
//! the keys they share (server, credentials, pool, schema lists, splits, TLS), read once here, with
//! each connector's own defaults; a connector reads only its own extra keys. The typed key getters
//! serve every connector's catalog file (`kafka` too).

use std::time::Duration;

use crate::ConnectorError;

/// The error of key `key` of the catalog file.
pub(crate) fn config_error(key: &str, reason: impl Into<String>) -> ConnectorError {
    ConnectorError::Config {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// A string key (`None` when absent).
pub(crate) fn get_str(config: &toml::Table, key: &str) -> Result<Option<String>, ConnectorError> {
    match config.get(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(config_error(key, "must be a string")),
    }
}

/// A string key that must be there.
pub(crate) fn required_str(config: &toml::Table, key: &str) -> Result<String, ConnectorError> {
    get_str(config, key)?.ok_or_else(|| config_error(key, "missing"))
}

/// An integer key from `min` to `max`, `default` when absent.
pub(crate) fn get_int(
    config: &toml::Table,
    key: &str,
    default: i64,
    min: i64,
    max: i64,
) -> Result<i64, ConnectorError> {
    match config.get(key) {
        None => Ok(default),
        Some(toml::Value::Integer(i)) if (min..=max).contains(i) => Ok(*i),
        Some(_) => Err(config_error(
            key,
            format!("must be an integer from {min} to {max}"),
        )),
    }
}

/// A list-of-strings key (`None` when absent).
pub(crate) fn get_list(
    config: &toml::Table,
    key: &str,
) -> Result<Option<Vec<String>>, ConnectorError> {
    match config.get(key) {
        None => Ok(None),
        Some(toml::Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| config_error(key, "must be a list of strings"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(config_error(key, "must be a list of strings")),
    }
}

/// The keys every remote database catalog reads.
const SHARED_KEYS: [&str; 14] = [
    "connector",
    "host",
    "port",
    "database",
    "user",
    "password",
    "pool_size",
    "schemas",
    "exclude_schemas",
    "splits",
    "connect_timeout_secs",
    "pool_timeout_secs",
    "ssl_mode",
    "ssl_root_cert",
];

/// What differs between the connectors in reading the shared keys.
pub(crate) struct SourceDefaults {
    /// The server's usual port.
    pub port: u16,
    /// Whether `database` must be given (else it is optional, an empty one meaning none).
    pub database_required: bool,
    /// Schemas left out when no `schemas` include list is given; `*` at the end matches a prefix.
    pub excluded: &'static [&'static str],
    /// The connector's own keys besides [`SHARED_KEYS`] (others are warned about and ignored).
    pub own_keys: &'static [&'static str],
}

/// The shared keys of a remote database's catalog file.
pub(crate) struct RemoteSettings {
    pub host: String,
    pub port: u16,
    pub database: Option<String>,
    pub user: String,
    pub password: Option<String>,
    pub pool_size: usize,
    /// `schemas`, if given.
    pub include: Option<Vec<String>>,
    /// `exclude_schemas`, or the connector's default.
    pub exclude: Vec<String>,
    /// Max splits per table scan.
    pub splits: usize,
    pub connect_timeout: Duration,
    pub pool_timeout: Duration,
    pub tls: TlsSettings,
}

impl RemoteSettings {
    /// Reads the shared keys of catalog `name`'s file, warning about keys neither shared nor in
    /// `defaults.own_keys`.
    pub(crate) fn from_config(
        name: &str,
        config: &toml::Table,
        defaults: &SourceDefaults,
    ) -> Result<RemoteSettings, ConnectorError> {
        for key in config.keys() {
            let key = key.as_str();
            if !SHARED_KEYS.contains(&key) && !defaults.own_keys.contains(&key) && key != "name" {
                tracing::warn!("catalog \"{name}\": unknown key `{key}` ignored");
            }
        }
        let host = required_str(config, "host")?;
        let port = get_int(config, "port", i64::from(defaults.port), 1, 65535)?;
        let database = if defaults.database_required {
            Some(required_str(config, "database")?)
        } else {
            get_str(config, "database")?.filter(|d| !d.is_empty())
        };
        let user = required_str(config, "user")?;
        let password = get_str(config, "password")?;
        let pool_size = get_int(config, "pool_size", 4, 1, 1024)?;
        let splits = get_int(config, "splits", 4, 1, 4096)?;
        let connect_timeout = get_int(config, "connect_timeout_secs", 10, 1, 3600)?;
        let pool_timeout = get_int(config, "pool_timeout_secs", 60, 1, 86_400)?;
        let include = get_list(config, "schemas")?;
        let exclude = get_list(config, "exclude_schemas")?
            .unwrap_or_else(|| defaults.excluded.iter().map(|s| s.to_string()).collect());
        let tls = TlsSettings::from_config(config, SslMode::Prefer)?;
        // The ranges were checked above, so the conversions cannot fail.
        let as_usize = |v: i64| usize::try_from(v).unwrap_or(1);
        Ok(RemoteSettings {
            host,
            port: u16::try_from(port).unwrap_or(defaults.port),
            database,
            user,
            password,
            pool_size: as_usize(pool_size),
            include,
            exclude,
            splits: as_usize(splits),
            connect_timeout: Duration::from_secs(connect_timeout.unsigned_abs()),
            pool_timeout: Duration::from_secs(pool_timeout.unsigned_abs()),
            tls,
        })
    }
}

/// How a connection to the source uses TLS (`ssl_mode` in the catalog file), as libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    /// Plain TCP only.
    Disable,
    /// TLS when the server offers it, else plain TCP; the certificate is not checked.
    Prefer,
    /// TLS or fail; the certificate is not checked.
    Require,
    /// TLS with a certificate signed by `ssl_root_cert`, for any host name.
    VerifyCa,
    /// TLS with a certificate signed by `ssl_root_cert` and issued for the configured host.
    VerifyFull,
}

/// TLS settings of a catalog: `ssl_mode` and, for the verifying modes, the PEM file of the
/// certificate authorities to trust (`ssl_root_cert`).
#[derive(Debug, Clone)]
pub(crate) struct TlsSettings {
    pub(crate) mode: SslMode,
    pub(crate) root_cert: Option<std::path::PathBuf>,
}

impl TlsSettings {
    /// Reads `ssl_mode` (default `default_mode`) and `ssl_root_cert` from a catalog file. The
    /// verifying modes need `ssl_root_cert`; the file must exist.
    pub(crate) fn from_config(
        config: &toml::Table,
        default_mode: SslMode,
    ) -> Result<TlsSettings, ConnectorError> {
        let mode = match config.get("ssl_mode") {
            None => default_mode,
            Some(toml::Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "disable" | "disabled" => SslMode::Disable,
                "prefer" | "preferred" => SslMode::Prefer,
                "require" | "required" => SslMode::Require,
                "verify-ca" | "verify_ca" => SslMode::VerifyCa,
                "verify-full" | "verify_full" | "verify_identity" => SslMode::VerifyFull,
                _ => {
                    return Err(config_error(
                        "ssl_mode",
                        "must be one of \"disable\", \"prefer\", \"require\", \"verify-ca\", \
                         \"verify-full\"",
                    ));
                }
            },
            Some(_) => return Err(config_error("ssl_mode", "must be a string")),
        };
        let root_cert = match config.get("ssl_root_cert") {
            None => None,
            Some(toml::Value::String(s)) => {
                let path = std::path::PathBuf::from(s);
                if !path.is_file() {
                    return Err(config_error("ssl_root_cert", format!("no such file: {s}")));
                }
                Some(path)
            }
            Some(_) => {
                return Err(config_error(
                    "ssl_root_cert",
                    "must be a string (a PEM file)",
                ));
            }
        };
        if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && root_cert.is_none() {
            return Err(config_error(
                "ssl_root_cert",
                "required with ssl_mode \"verify-ca\" or \"verify-full\" (the PEM file of the \
                 certificate authorities to trust)",
            ));
        }
        Ok(TlsSettings { mode, root_cert })
    }
}
