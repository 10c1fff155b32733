//! The catalog file of a connector whose source is a remote database server (`postgres`, `mysql`):
//! the keys they share (server, credentials, pool, schema lists, splits, TLS), declared once here
//! ([`remote_catalog_file`], a serde struct per connector that also holds its own keys, any other
//! key being an error naming it) and checked once, with each connector's own defaults; a connector
//! checks only its own extra keys. [`int_in`] serves `kafka`'s catalog file too.

use std::time::Duration;

use crate::ConnectorError;
use crate::catalog_file::Secret;

/// The error of key `key` of the catalog file.
pub(crate) fn config_error(key: &str, reason: impl Into<String>) -> ConnectorError {
    ConnectorError::Config {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// Integer key `key` (`value` as read, `default` when absent), checked to be from `min` to `max`.
pub(crate) fn int_in(
    key: &str,
    value: Option<i64>,
    default: i64,
    min: i64,
    max: i64,
) -> Result<i64, ConnectorError> {
    match value {
        None => Ok(default),
        Some(i) if (min..=max).contains(&i) => Ok(i),
        Some(_) => Err(config_error(
            key,
            format!("must be an integer from {min} to {max}"),
        )),
    }
}

/// Declares the serde struct of a remote database connector's catalog file: the keys every such
/// connector shares ([`RemoteKeys`]) followed by the connector's own, all as written (validated and
/// defaulted by [`RemoteSettings::from_keys`] and the connector), any other key being an error
/// naming it. serde cannot combine `flatten` with `deny_unknown_fields`, hence a macro.
macro_rules! remote_catalog_file {
    (
        $(#[$meta:meta])*
        $file:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty),* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $file {
            /// `connector`, checked by [`crate::build_connector`].
            #[allow(dead_code)]
            connector: Option<String>,
            /// The catalog's name, allowed and ignored (the file's name decides).
            #[allow(dead_code)]
            name: Option<String>,
            host: Option<String>,
            port: Option<i64>,
            database: Option<String>,
            user: Option<String>,
            password: Option<$crate::catalog_file::Secret>,
            pool_size: Option<i64>,
            schemas: Option<Vec<String>>,
            exclude_schemas: Option<Vec<String>>,
            splits: Option<i64>,
            connect_timeout_secs: Option<i64>,
            pool_timeout_secs: Option<i64>,
            ssl_mode: Option<String>,
            ssl_root_cert: Option<String>,
            join_pushdown: Option<String>,
            $($(#[$fmeta])* $field: $ty,)*
        }

        impl $file {
            /// Moves the shared keys out (the connector's own stay).
            fn remote_keys(&mut self) -> $crate::remote_config::RemoteKeys {
                $crate::remote_config::RemoteKeys {
                    host: self.host.take(),
                    port: self.port.take(),
                    database: self.database.take(),
                    user: self.user.take(),
                    password: self.password.take(),
                    pool_size: self.pool_size.take(),
                    schemas: self.schemas.take(),
                    exclude_schemas: self.exclude_schemas.take(),
                    splits: self.splits.take(),
                    connect_timeout_secs: self.connect_timeout_secs.take(),
                    pool_timeout_secs: self.pool_timeout_secs.take(),
                    ssl_mode: self.ssl_mode.take(),
                    ssl_root_cert: self.ssl_root_cert.take(),
                    join_pushdown: self.join_pushdown.take(),
                }
            }
        }
    };
}
pub(crate) use remote_catalog_file;

/// The shared keys of a remote database's catalog file as written (see [`remote_catalog_file`]).
#[derive(Debug)]
pub(crate) struct RemoteKeys {
    pub host: Option<String>,
    pub port: Option<i64>,
    pub database: Option<String>,
    pub user: Option<String>,
    pub password: Option<Secret>,
    pub pool_size: Option<i64>,
    pub schemas: Option<Vec<String>>,
    pub exclude_schemas: Option<Vec<String>>,
    pub splits: Option<i64>,
    pub connect_timeout_secs: Option<i64>,
    pub pool_timeout_secs: Option<i64>,
    pub ssl_mode: Option<String>,
    pub ssl_root_cert: Option<String>,
    pub join_pushdown: Option<String>,
}

/// What differs between the connectors in reading the shared keys.
pub(crate) struct SourceDefaults {
    /// The server's usual port.
    pub port: u16,
    /// Whether `database` must be given (else it is optional, an empty one meaning none).
    pub database_required: bool,
    /// Schemas left out when no `schemas` include list is given; `*` at the end matches a prefix.
    pub excluded: &'static [&'static str],
}

/// The shared keys of a remote database's catalog file.
pub(crate) struct RemoteSettings {
    pub host: String,
    pub port: u16,
    pub database: Option<String>,
    pub user: String,
    /// Handed to the client library only.
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
    /// `join_pushdown`, default `automatic`.
    pub join_pushdown: crate::sql_source::JoinPushdown,
}

impl RemoteSettings {
    /// Checks the shared keys of a catalog file and fills in their defaults (the generic ones here,
    /// the connector's in `defaults`).
    pub(crate) fn from_keys(
        keys: RemoteKeys,
        defaults: &SourceDefaults,
    ) -> Result<RemoteSettings, ConnectorError> {
        let host = keys.host.ok_or_else(|| config_error("host", "missing"))?;
        let port = int_in("port", keys.port, i64::from(defaults.port), 1, 65535)?;
        let database = if defaults.database_required {
            Some(
                keys.database
                    .ok_or_else(|| config_error("database", "missing"))?,
            )
        } else {
            keys.database.filter(|d| !d.is_empty())
        };
        let user = keys.user.ok_or_else(|| config_error("user", "missing"))?;
        let pool_size = int_in("pool_size", keys.pool_size, 4, 1, 1024)?;
        let splits = int_in("splits", keys.splits, 4, 1, 4096)?;
        let connect_timeout = int_in(
            "connect_timeout_secs",
            keys.connect_timeout_secs,
            10,
            1,
            3600,
        )?;
        let pool_timeout = int_in("pool_timeout_secs", keys.pool_timeout_secs, 60, 1, 86_400)?;
        let exclude = keys
            .exclude_schemas
            .unwrap_or_else(|| defaults.excluded.iter().map(|s| s.to_string()).collect());
        let tls = TlsSettings::from_keys(keys.ssl_mode, keys.ssl_root_cert, SslMode::Prefer)?;
        let join_pushdown = match keys.join_pushdown {
            None => crate::sql_source::JoinPushdown::default(),
            Some(name) => crate::sql_source::JoinPushdown::parse(&name).ok_or_else(|| {
                config_error(
                    "join_pushdown",
                    format!("\"{name}\" is not one of automatic, eager, never"),
                )
            })?,
        };
        // The ranges were checked above, so the conversions cannot fail.
        let as_usize = |v: i64| usize::try_from(v).unwrap_or(1);
        Ok(RemoteSettings {
            host,
            port: u16::try_from(port).unwrap_or(defaults.port),
            database,
            user,
            password: keys.password.map(|p| p.expose().to_string()),
            pool_size: as_usize(pool_size),
            include: keys.schemas,
            exclude,
            splits: as_usize(splits),
            connect_timeout: Duration::from_secs(connect_timeout.unsigned_abs()),
            pool_timeout: Duration::from_secs(pool_timeout.unsigned_abs()),
            tls,
            join_pushdown,
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
    /// Checks `ssl_mode` (default `default_mode`) and `ssl_root_cert` of a catalog file. The
    /// verifying modes need `ssl_root_cert`; the file must exist.
    pub(crate) fn from_keys(
        ssl_mode: Option<String>,
        ssl_root_cert: Option<String>,
        default_mode: SslMode,
    ) -> Result<TlsSettings, ConnectorError> {
        let mode = match ssl_mode {
            None => default_mode,
            Some(s) => match s.to_ascii_lowercase().as_str() {
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
        };
        let root_cert = match ssl_root_cert {
            None => None,
            Some(s) => {
                let path = std::path::PathBuf::from(&s);
                if !path.is_file() {
                    return Err(config_error("ssl_root_cert", format!("no such file: {s}")));
                }
                Some(path)
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

/// Catalog files of the SQL source kinds (`postgres`, `mysql`), checked through the kinds' own
/// factories (`build_connector`, which validates everything before any connection is made).
#[cfg(test)]
mod catalog_file_tests {
    use crate::{ConnectorError, build_connector};

    const PASSWORD: &str = "Zq-8uX!secret";

    fn base(kind: &str) -> String {
        format!("connector = \"{kind}\"\nhost = \"h\"\ndatabase = \"d\"\nuser = \"u\"\n")
    }

    /// Builds catalog `c` from `text` as the registry does (no runtime: nothing is fetched).
    fn build(text: &str) -> Result<String, ConnectorError> {
        let table: toml::Table = toml::from_str(text).expect("toml");
        futures::executor::block_on(build_connector("c", &table)).map(|c| format!("{c:?}"))
    }

    fn error(text: &str) -> (String, String) {
        match build(text) {
            Err(ConnectorError::Config { key, reason }) => (key, reason),
            other => panic!("expected a config error for {text:?}, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_file_passes() {
        for kind in ["postgres", "mysql"] {
            build(&format!(
                "{}password = \"{PASSWORD}\"\nname = \"c\"",
                base(kind)
            ))
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        }
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_it() {
        for kind in ["postgres", "mysql"] {
            let (key, reason) = error(&format!("{}pool_sise = 8", base(kind)));
            assert_eq!(key, "pool_sise", "{kind}");
            assert!(reason.contains("unknown key"), "{kind}: {reason}");
        }
    }

    #[test]
    fn a_bad_value_names_the_key() {
        let shared = [
            ("port = 70000", "port"),
            ("port = \"5432\"", "port"),
            ("ssl_mode = \"sometimes\"", "ssl_mode"),
            ("ssl_mode = \"verify-full\"", "ssl_root_cert"),
            ("schemas = \"public\"", "schemas"),
            ("splits = 0", "splits"),
        ];
        let own = [
            ("postgres", "split_min_pages = 0", "split_min_pages"),
            ("mysql", "split_min_rows = -1", "split_min_rows"),
            ("mysql", "time_type = 3", "time_type"),
        ];
        for kind in ["postgres", "mysql"] {
            let cases = shared.iter().map(|&(extra, key)| (kind, extra, key));
            let cases = cases.chain(own.iter().copied().filter(|(k, _, _)| *k == kind));
            for (_, extra, key) in cases {
                assert_eq!(
                    error(&format!("{}{extra}", base(kind))).0,
                    key,
                    "{kind}: {extra}"
                );
            }
            assert_eq!(
                error(&format!("connector = \"{kind}\"\nuser = \"u\"")).0,
                "host"
            );
        }
    }

    #[test]
    fn the_password_is_never_shown() {
        for kind in ["postgres", "mysql"] {
            let text = format!("{}password = \"{PASSWORD}\"", base(kind));
            let shown = build(&text).expect("valid");
            assert!(!shown.contains(PASSWORD), "{kind}: {shown}");
            for extra in ["port = 0", "bogus = 1", "ssl_mode = 3"] {
                let (_, reason) = error(&format!("{text}\n{extra}"));
                assert!(!reason.contains(PASSWORD), "{kind}: {reason}");
            }
            let (key, reason) = error(&format!("{}password = 918273645", base(kind)));
            assert_eq!(key, "password", "{kind}");
            assert!(!reason.contains("918273645"), "{kind}: {reason}");
        }
    }
}
