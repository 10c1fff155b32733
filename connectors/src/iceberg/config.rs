//! The keys of an `iceberg` catalog file.

use serde::Deserialize;

use crate::ConnectorError;
use crate::lake::LakeConfig;

/// Where an Iceberg catalog keeps its table list (Iceberg's "catalog"; Trino's `iceberg.catalog.type`).
/// Its `Debug` shows the URI without its password.
#[derive(Clone, PartialEq)]
pub enum CatalogBackend {
    /// `catalog_type = "sql"` (the default): Iceberg's SQL catalog (`iceberg_tables` and
    /// `iceberg_namespace_properties` tables, created when missing) in the PostgreSQL database at
    /// `catalog_uri` (`postgres://user:password@host:port/db`).
    Sql {
        /// The database URL, password included: never shown (see [`IcebergConfig::display_uri`]).
        uri: String,
    },
}

impl std::fmt::Debug for CatalogBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CatalogBackend::Sql { uri } => f
                .debug_struct("Sql")
                .field("uri", &redact_uri(uri))
                .finish(),
        }
    }
}

/// A parsed `iceberg` catalog file.
///
/// ```toml
/// connector = "iceberg"
/// catalog_type = "sql"                      # the only backend built so far
/// catalog_uri = "postgres://iceberg:${ICEBERG_DB_PASSWORD}@127.0.0.1:5432/iceberg"
/// catalog_name = "prod"                     # optional: the name in the backend (default: the file's)
/// warehouse = "s3://bucket/warehouse"       # or file:///abs/path
/// endpoint = "http://127.0.0.1:9000"        # S3 warehouse keys, as a lake catalog's
/// access_key_id = "..."
/// secret_access_key = "${S3_SECRET}"
/// ```
#[derive(Debug, Clone)]
pub struct IcebergConfig {
    /// The catalog backend.
    pub backend: CatalogBackend,
    /// The catalog's name inside the backend (several Tributary or Spark catalogs can share one
    /// database); `None` = the catalog file's name.
    pub catalog_name: Option<String>,
    /// The warehouse: where new tables' metadata and data files go, and the store every table file
    /// is read through (its `location`, S3 keys and secret, as for a `lake` catalog).
    pub warehouse: LakeConfig,
}

/// The iceberg-only keys; the rest are the warehouse's ([`LakeConfig`] keys, `warehouse` for
/// `location`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IcebergKeys {
    catalog_type: Option<String>,
    catalog_uri: Option<String>,
    catalog_name: Option<String>,
}

const OWN_KEYS: [&str; 3] = ["catalog_type", "catalog_uri", "catalog_name"];

impl IcebergConfig {
    /// Parses a catalog file. Errors: [`ConnectorError::Config`] naming the key: a missing
    /// `catalog_uri` or `warehouse`, an unknown `catalog_type`, a URI that is not `postgres://`, or
    /// any key neither an Iceberg nor a warehouse key. No message contains a password.
    pub fn from_toml(config: &toml::Table) -> Result<Self, ConnectorError> {
        let mut own = toml::Table::new();
        let mut warehouse = toml::Table::new();
        for (key, value) in config {
            match key.as_str() {
                k if OWN_KEYS.contains(&k) => {
                    own.insert(key.clone(), value.clone());
                }
                "warehouse" => {
                    warehouse.insert("location".into(), value.clone());
                }
                "location" | "infer_partition_types" => {
                    return Err(ConnectorError::Config {
                        key: key.clone(),
                        reason: "not a key of iceberg catalogs (the warehouse is `warehouse`)"
                            .into(),
                    });
                }
                _ => {
                    warehouse.insert(key.clone(), value.clone());
                }
            }
        }
        let keys: IcebergKeys = crate::catalog_file::parse(&own)?;
        if !warehouse.contains_key("location") {
            return Err(ConnectorError::Config {
                key: "warehouse".into(),
                reason:
                    "missing; expected e.g. \"file:///data/warehouse\" or \"s3://bucket/warehouse\""
                        .into(),
            });
        }
        let warehouse = LakeConfig::from_toml(&warehouse).map_err(|e| match e {
            ConnectorError::Config { key, reason } if key == "location" => ConnectorError::Config {
                key: "warehouse".into(),
                reason,
            },
            other => other,
        })?;
        let backend = match keys.catalog_type.as_deref().unwrap_or("sql") {
            "sql" | "jdbc" => {
                let Some(uri) = keys.catalog_uri else {
                    return Err(ConnectorError::Config {
                        key: "catalog_uri".into(),
                        reason: "missing; expected postgres://user:password@host:port/database"
                            .into(),
                    });
                };
                let scheme_ok = uri.starts_with("postgres://") || uri.starts_with("postgresql://");
                if !scheme_ok {
                    return Err(ConnectorError::Config {
                        key: "catalog_uri".into(),
                        reason: format!(
                            "{} is not a PostgreSQL URL: the SQL catalog is stored in PostgreSQL \
                             (postgres://user:password@host:port/database)",
                            redact_uri(&uri)
                        ),
                    });
                }
                CatalogBackend::Sql { uri }
            }
            other => {
                return Err(ConnectorError::Config {
                    key: "catalog_type".into(),
                    reason: format!(
                        "\"{other}\" is not supported; expected \"sql\" (Iceberg's SQL catalog in \
                         PostgreSQL)"
                    ),
                });
            }
        };
        Ok(Self {
            backend,
            catalog_name: keys.catalog_name,
            warehouse,
        })
    }

    /// The backend's URI without its password (for messages).
    pub fn display_uri(&self) -> String {
        match &self.backend {
            CatalogBackend::Sql { uri } => redact_uri(uri),
        }
    }

    /// Removes the backend's password and the warehouse's secret key from a message, should a
    /// library have echoed them.
    pub(crate) fn redact(&self, message: String) -> String {
        let message = self.warehouse.redact(message);
        match &self.backend {
            CatalogBackend::Sql { uri } => match url::Url::parse(uri) {
                Ok(url) => match url.password() {
                    Some(password) if !password.is_empty() => message.replace(password, "***"),
                    _ => message,
                },
                Err(_) => message.replace(uri.as_str(), "***"),
            },
        }
    }
}

/// `uri` with its password replaced by `***`; a URI that does not parse is not shown at all.
fn redact_uri(uri: &str) -> String {
    match url::Url::parse(uri) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
            }
            url.to_string()
        }
        Err(_) => "the catalog_uri".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<IcebergConfig, ConnectorError> {
        IcebergConfig::from_toml(&text.parse::<toml::Table>().unwrap())
    }

    #[test]
    fn keys_are_split_between_catalog_and_warehouse() {
        let dir = std::env::temp_dir();
        let config = parse(&format!(
            "connector = \"iceberg\"\ncatalog_uri = \"postgres://u:hunter2@h:5/db\"\nwarehouse = \"file://{}\"",
            dir.display()
        ))
        .unwrap();
        assert!(!config.display_uri().contains("hunter2"));
        assert!(!format!("{config:?}").contains("hunter2"));
        assert_eq!(config.redact("x hunter2 y".into()), "x *** y");
        let e = parse("catalog_uri = \"postgres://h/db\"").unwrap_err();
        assert!(e.to_string().contains("warehouse"), "{e}");
        let e = parse("catalog_uri = \"mysql://h/db\"\nwarehouse = \"file:///tmp\"").unwrap_err();
        assert!(e.to_string().contains("catalog_uri"), "{e}");
        let e = parse("catalog_uri = \"postgres://h/db\"\nwarehouse = \"file:///tmp\"\nbogus = 1")
            .unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        let e = parse("catalog_type = \"hive\"\nwarehouse = \"file:///tmp\"").unwrap_err();
        assert!(e.to_string().contains("catalog_type"), "{e}");
    }
}
