//! Trino catalog files, `catalog/NAME.properties`, read next to Tributary's TOML ones: the
//! properties of the connectors Tributary has are translated into the TOML keys of the same
//! catalog, so a Trino `etc/catalog` directory can be mounted as it is.
//!
//! | `connector.name` | properties | Tributary kind |
//! |---|---|---|
//! | `postgresql` | `connection-url=jdbc:postgresql://host:port/db[?sslmode=...]`, `connection-user`, `connection-password`, `join-pushdown.enabled`, `join-pushdown.strategy` | `postgres` |
//! | `mysql`, `mariadb` | `connection-url=jdbc:mysql://host:port[/db]` (or `jdbc:mariadb:`), `connection-user`, `connection-password`, `join-pushdown.enabled`, `join-pushdown.strategy` | `mysql` |
//! | `kafka` | `kafka.nodes`, `kafka.default-schema`, `kafka.table-description-dir`, `kafka.table-names` (accepted: every topic is a table here) | `kafka` |
//! | `tpch` | none | `tpch` |
//! | `iceberg` | `iceberg.catalog.type=jdbc`, `iceberg.jdbc-catalog.connection-url=jdbc:postgresql://...`, `iceberg.jdbc-catalog.connection-user`, `iceberg.jdbc-catalog.connection-password`, `iceberg.jdbc-catalog.catalog-name`, `iceberg.jdbc-catalog.default-warehouse-dir`, `iceberg.file-format=PARQUET`, `fs.native-s3.enabled`, `s3.endpoint`, `s3.region`, `s3.aws-access-key`, `s3.aws-secret-key`, `s3.path-style-access` | `iceberg` |
//!
//! Values may use Trino's `${ENV:NAME}` (the environment variable `NAME`). Any other property, or
//! another connector, is an error naming it: a property that silently did nothing would be a
//! misconfiguration nobody sees.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::{ConfigError, substitute_env};

/// Reads the Trino catalog file at `path` as the TOML table of the same catalog (see the module
/// docs). Errors name the file and the property (unknown property or connector, bad URL, unset
/// environment variable); a password is never part of a message.
pub fn read_properties(path: &Path) -> Result<toml::Table, ConfigError> {
    let err = |reason: String| ConfigError {
        file: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let raw = java_properties::read(std::io::BufReader::new(file))
        .map_err(|e| err(format!("not a properties file: {e}")))?;
    let mut properties = BTreeMap::new();
    for (key, value) in raw {
        let value = substitute_env(&value.replace("${ENV:", "${"))
            .map_err(|reason| err(format!("property `{key}`: {reason}")))?;
        properties.insert(key.trim().to_string(), value.trim().to_string());
    }
    translate(properties).map_err(err)
}

/// The properties still to translate; each is taken once, and what is left at the end is unknown.
struct Properties(BTreeMap<String, String>);

impl Properties {
    fn take(&mut self, key: &str) -> Option<String> {
        self.0.remove(key)
    }

    fn require(&mut self, key: &str) -> Result<String, String> {
        self.take(key)
            .ok_or_else(|| format!("property `{key}` is required"))
    }

    /// Errors naming the first property nobody took.
    fn finish(self, connector: &str) -> Result<(), String> {
        match self.0.keys().next() {
            Some(key) => Err(format!(
                "property `{key}` is not supported for connector.name={connector}"
            )),
            None => Ok(()),
        }
    }
}

fn translate(properties: BTreeMap<String, String>) -> Result<toml::Table, String> {
    let mut p = Properties(properties);
    let connector = p.require("connector.name")?;
    let mut table = toml::Table::new();
    let mut put = |key: &str, value: toml::Value| {
        table.insert(key.to_string(), value);
    };
    match connector.as_str() {
        "postgresql" | "mysql" | "mariadb" => {
            let kind = if connector == "postgresql" {
                "postgres"
            } else {
                "mysql"
            };
            put("connector", kind.into());
            let url = jdbc_url("connection-url", &p.require("connection-url")?)?;
            put("host", url.host.into());
            if let Some(port) = url.port {
                put("port", i64::from(port).into());
            }
            if let Some(database) = url.database {
                put("database", database.into());
            }
            for (name, value) in url.params {
                match (kind, name.as_str()) {
                    ("postgres", "sslmode") => put("ssl_mode", value.into()),
                    ("postgres", "ssl") if value == "true" => put("ssl_mode", "require".into()),
                    ("mysql", "sslMode") => put("ssl_mode", value.to_lowercase().into()),
                    _ => {
                        return Err(format!(
                            "property `connection-url`: parameter `{name}` is not supported"
                        ));
                    }
                }
            }
            if let Some(user) = p.take("connection-user") {
                put("user", user.into());
            }
            if let Some(password) = p.take("connection-password") {
                put("password", password.into());
            }
            // Trino's join pushdown switch and strategy (`AUTOMATIC`, `EAGER`).
            let strategy = p.take("join-pushdown.strategy");
            match p.take("join-pushdown.enabled").as_deref() {
                Some("false") => put("join_pushdown", "never".into()),
                _ => {
                    if let Some(strategy) = strategy {
                        put("join_pushdown", strategy.to_lowercase().into());
                    }
                }
            }
        }
        "kafka" => {
            put("connector", "kafka".into());
            let nodes: Vec<toml::Value> = p
                .require("kafka.nodes")?
                .split(',')
                .map(|n| toml::Value::from(n.trim()))
                .collect();
            put("bootstrap_servers", toml::Value::Array(nodes));
            if let Some(schema) = p.take("kafka.default-schema") {
                put("default_schema", schema.into());
            }
            if let Some(dir) = p.take("kafka.table-description-dir") {
                put("table_description_dir", dir.into());
            }
            // Trino lists the topics a catalog shows; here every topic is a table already.
            if p.take("kafka.table-names").is_some() {
                tracing::info!(
                    "kafka.table-names: every topic of the cluster is a table of this catalog"
                );
            }
        }
        "tpch" => put("connector", "tpch".into()),
        "iceberg" => {
            put("connector", "iceberg".into());
            let catalog_type = p.take("iceberg.catalog.type").unwrap_or_default();
            if !catalog_type.eq_ignore_ascii_case("jdbc") {
                return Err(format!(
                    "property `iceberg.catalog.type` = `{catalog_type}` is not supported: only the \
                     JDBC catalog (`jdbc`, on PostgreSQL) is"
                ));
            }
            let url = jdbc_url(
                "iceberg.jdbc-catalog.connection-url",
                &p.require("iceberg.jdbc-catalog.connection-url")?,
            )?;
            if url.scheme != "postgresql" {
                return Err(
                    "property `iceberg.jdbc-catalog.connection-url`: the JDBC catalog must be on \
                     PostgreSQL (jdbc:postgresql://...)"
                        .into(),
                );
            }
            let user = p.take("iceberg.jdbc-catalog.connection-user");
            let password = p.take("iceberg.jdbc-catalog.connection-password");
            let mut uri = url::Url::parse(&format!("postgres://{}", url.host))
                .map_err(|e| format!("property `iceberg.jdbc-catalog.connection-url`: {e}"))?;
            let _ = uri.set_port(url.port);
            uri.set_path(url.database.as_deref().unwrap_or(""));
            if let Some(user) = &user {
                let _ = uri.set_username(user);
            }
            if let Some(password) = &password {
                let _ = uri.set_password(Some(password));
            }
            put("catalog_uri", uri.to_string().into());
            if let Some(name) = p.take("iceberg.jdbc-catalog.catalog-name") {
                put("catalog_name", name.into());
            }
            let warehouse = p.require("iceberg.jdbc-catalog.default-warehouse-dir")?;
            let warehouse = match warehouse.strip_prefix("s3a://") {
                Some(rest) => format!("s3://{rest}"),
                None if warehouse.starts_with('/') => format!("file://{warehouse}"),
                None => warehouse,
            };
            put("warehouse", warehouse.into());
            if let Some(format) = p.take("iceberg.file-format")
                && !format.eq_ignore_ascii_case("parquet")
            {
                return Err(format!(
                    "property `iceberg.file-format` = `{format}` is not supported: tables are \
                     written as PARQUET"
                ));
            }
            // Trino's switches for its S3 file system; this one is always native.
            p.take("fs.native-s3.enabled");
            p.take("s3.path-style-access");
            for (property, key) in [
                ("s3.endpoint", "endpoint"),
                ("s3.region", "region"),
                ("s3.aws-access-key", "access_key_id"),
                ("s3.aws-secret-key", "secret_access_key"),
            ] {
                if let Some(value) = p.take(property) {
                    put(key, value.into());
                }
            }
        }
        other => {
            return Err(format!(
                "property `connector.name` = `{other}` is not supported: Trino catalog files are \
                 read for postgresql, mysql, mariadb, kafka, tpch and iceberg (write a TOML catalog \
                 file for the others, e.g. `connector = \"lake\"` for files on disk or S3)"
            ));
        }
    }
    p.finish(&connector)?;
    Ok(table)
}

/// The parts of a JDBC URL (`jdbc:SCHEME://host[:port][/database][?k=v&...]`).
struct JdbcUrl {
    scheme: String,
    host: String,
    port: Option<u16>,
    database: Option<String>,
    params: Vec<(String, String)>,
}

fn jdbc_url(property: &str, text: &str) -> Result<JdbcUrl, String> {
    let bad = |reason: &str| format!("property `{property}`: {reason}");
    let rest = text
        .strip_prefix("jdbc:")
        .ok_or_else(|| bad("expected a JDBC URL (jdbc:postgresql://host:port/database)"))?;
    let url = url::Url::parse(rest).map_err(|e| bad(&e.to_string()))?;
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("the URL names no host"))?
        .to_string();
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "credentials in the URL are not supported: use connection-user and connection-password",
        ));
    }
    let database = Some(url.path().trim_matches('/').to_string()).filter(|d| !d.is_empty());
    Ok(JdbcUrl {
        scheme: url.scheme().to_string(),
        host,
        port: url.port(),
        database,
        params: url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<toml::Table, String> {
        let raw = java_properties::read(text.as_bytes()).unwrap();
        translate(raw.into_iter().collect())
    }

    #[test]
    fn trino_files_translate_to_catalog_keys() {
        let pg = parse(
            "connector.name=postgresql\nconnection-url=jdbc:postgresql://db.example:5433/shop?sslmode=require\n\
             connection-user=trino\nconnection-password=s3cret\n",
        )
        .unwrap();
        assert_eq!(pg["connector"].as_str(), Some("postgres"));
        assert_eq!(pg["host"].as_str(), Some("db.example"));
        assert_eq!(pg["port"].as_integer(), Some(5433));
        assert_eq!(pg["database"].as_str(), Some("shop"));
        assert_eq!(pg["ssl_mode"].as_str(), Some("require"));
        assert_eq!(pg["password"].as_str(), Some("s3cret"));
        let eager = parse(
            "connector.name=mysql\nconnection-url=jdbc:mysql://m:3306\n\
             join-pushdown.enabled=true\njoin-pushdown.strategy=EAGER\n",
        )
        .unwrap();
        assert_eq!(eager["join_pushdown"].as_str(), Some("eager"));
        let off = parse(
            "connector.name=postgresql\nconnection-url=jdbc:postgresql://p:5432/d\n\
             join-pushdown.enabled=false\n",
        )
        .unwrap();
        assert_eq!(off["join_pushdown"].as_str(), Some("never"));

        let kafka =
            parse("connector.name=kafka\nkafka.nodes=a:9092, b:9092\nkafka.table-names=t1,t2\n")
                .unwrap();
        assert_eq!(kafka["bootstrap_servers"].as_array().unwrap().len(), 2);

        let ice = parse(
            "connector.name=iceberg\niceberg.catalog.type=jdbc\n\
             iceberg.jdbc-catalog.connection-url=jdbc:postgresql://pg:5432/meta\n\
             iceberg.jdbc-catalog.connection-user=u\niceberg.jdbc-catalog.connection-password=p w\n\
             iceberg.jdbc-catalog.catalog-name=prod\n\
             iceberg.jdbc-catalog.default-warehouse-dir=s3a://bucket/wh\nfs.native-s3.enabled=true\n\
             s3.endpoint=http://minio:9000\ns3.aws-secret-key=k\n",
        )
        .unwrap();
        assert_eq!(
            ice["catalog_uri"].as_str(),
            Some("postgres://u:p%20w@pg:5432/meta")
        );
        assert_eq!(ice["warehouse"].as_str(), Some("s3://bucket/wh"));
        assert_eq!(ice["secret_access_key"].as_str(), Some("k"));

        let unknown = parse("connector.name=tpch\ntpch.splits-per-node=4\n").unwrap_err();
        assert!(unknown.contains("tpch.splits-per-node"), "{unknown}");
        let hive = parse("connector.name=hive\n").unwrap_err();
        assert!(hive.contains("hive"), "{hive}");
        let no_url = parse("connector.name=postgresql\n").unwrap_err();
        assert!(no_url.contains("connection-url"), "{no_url}");
        let param =
            parse("connector.name=postgresql\nconnection-url=jdbc:postgresql://h/d?foo=1\n")
                .unwrap_err();
        assert!(param.contains("foo"), "{param}");
    }
}
