//! The keys of a `lake` catalog file, and the OpenDAL operator they describe.

use std::path::PathBuf;

use opendal::Operator;
use serde::Deserialize;

use crate::ConnectorError;
pub use crate::catalog_file::Secret;

/// Where a lake's data lives: the parsed `location` key and, for S3, its connection keys.
#[derive(Debug, Clone, PartialEq)]
pub enum LakeLocation {
    /// `location = "file:///abs/path"`: a local directory, which must exist.
    Fs {
        /// Absolute path of the lake's root directory.
        root: PathBuf,
    },
    /// `location = "s3://bucket/prefix"`, read through OpenDAL's S3 service.
    S3 {
        /// Bucket name (the URL's host).
        bucket: String,
        /// Key prefix of the lake's root inside the bucket, without leading or trailing `/`.
        prefix: String,
        /// `endpoint` key: e.g. `http://127.0.0.1:19000` for an S3-compatible server. Optional.
        endpoint: Option<String>,
        /// `region` key; `us-east-1` when absent.
        region: String,
        /// `access_key_id` key. Optional (OpenDAL then looks at the environment).
        access_key_id: Option<String>,
        /// `secret_access_key` key. Optional.
        secret_access_key: Option<Secret>,
        /// `allow_anonymous` key (boolean, default false): send unsigned requests.
        allow_anonymous: bool,
    },
}

/// The keys of a `lake` catalog file as written, with their defaults: the one place they are read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LakeFile {
    /// `connector = "lake"`, checked by [`crate::build_connector`].
    #[allow(dead_code)]
    connector: Option<String>,
    /// The catalog's name, allowed and ignored (the file's name decides), as in other kinds.
    #[allow(dead_code)]
    name: Option<String>,
    /// Required; `Option` so that its absence gets this crate's own reason.
    location: Option<String>,
    endpoint: Option<String>,
    #[serde(default = "default_region")]
    region: String,
    access_key_id: Option<String>,
    secret_access_key: Option<Secret>,
    #[serde(default)]
    allow_anonymous: bool,
    #[serde(default = "default_true")]
    infer_partition_types: bool,
}

fn default_true() -> bool {
    true
}

/// The `region` of an S3 location without one.
fn default_region() -> String {
    "us-east-1".into()
}

/// The parsed keys of a `lake` catalog file.
///
/// Keys: `connector = "lake"`, `location` (`file:///abs/path` or `s3://bucket/prefix`, required), and
/// for S3 `endpoint`, `region` (default `us-east-1`), `access_key_id`, `secret_access_key`,
/// `allow_anonymous`; and `infer_partition_types` (default true).
#[derive(Debug, Clone, PartialEq)]
pub struct LakeConfig {
    /// The data's location.
    pub location: LakeLocation,
    /// `infer_partition_types` key (boolean, default true): type the Hive partition columns of plain
    /// tables from their directory values (integer, date, timestamp, as DuckDB does); `false` reads
    /// them as text. Tables Tributary wrote always have their declared types.
    pub infer_partition_types: bool,
}

impl LakeConfig {
    /// Parses the keys of a catalog file. Errors: [`ConnectorError::Config`] naming the key (missing
    /// or malformed `location`, unknown scheme, a key of the wrong type, a key the lake does not
    /// have).
    pub fn from_toml(config: &toml::Table) -> Result<Self, ConnectorError> {
        let file: LakeFile = crate::catalog_file::parse(config)?;
        let Some(location) = file.location.as_deref() else {
            return Err(ConnectorError::Config {
                key: "location".into(),
                reason: "missing; expected e.g. \"file:///data/lake\" or \"s3://bucket/prefix\""
                    .into(),
            });
        };
        let url = url::Url::parse(location).map_err(|e| ConnectorError::Config {
            key: "location".into(),
            reason: format!(
                "\"{location}\" is not a URL ({e}); expected file:///abs/path or s3://bucket/prefix"
            ),
        })?;
        let location = match url.scheme() {
            "file" => {
                let root = url.to_file_path().map_err(|()| ConnectorError::Config {
                    key: "location".into(),
                    reason: format!("\"{location}\" is not an absolute local path"),
                })?;
                LakeLocation::Fs { root }
            }
            "s3" | "s3a" => {
                let bucket = url.host_str().filter(|b| !b.is_empty()).ok_or_else(|| {
                    ConnectorError::Config {
                        key: "location".into(),
                        reason: format!(
                            "\"{location}\" names no bucket; expected s3://bucket/prefix"
                        ),
                    }
                })?;
                LakeLocation::S3 {
                    bucket: bucket.to_string(),
                    prefix: url.path().trim_matches('/').to_string(),
                    endpoint: file.endpoint,
                    region: file.region,
                    access_key_id: file.access_key_id,
                    secret_access_key: file.secret_access_key,
                    allow_anonymous: file.allow_anonymous,
                }
            }
            other => {
                return Err(ConnectorError::Config {
                    key: "location".into(),
                    reason: format!(
                        "unknown scheme \"{other}\" in \"{location}\"; expected file or s3"
                    ),
                });
            }
        };
        Ok(Self {
            location,
            infer_partition_types: file.infer_partition_types,
        })
    }

    /// The location as the user wrote it, without any credential (for messages).
    pub fn display_location(&self) -> String {
        match &self.location {
            LakeLocation::Fs { root } => format!("file://{}", root.display()),
            LakeLocation::S3 { bucket, prefix, .. } if prefix.is_empty() => {
                format!("s3://{bucket}")
            }
            LakeLocation::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
        }
    }

    /// Removes the secret key from a message about this lake, should a library have echoed it.
    pub(crate) fn redact(&self, message: String) -> String {
        match &self.location {
            LakeLocation::S3 {
                secret_access_key: Some(secret),
                ..
            } if !secret.expose().is_empty() => message.replace(secret.expose(), "***"),
            _ => message,
        }
    }

    /// Builds the OpenDAL operator rooted at the location. A local directory must already exist
    /// (OpenDAL would otherwise create it). Errors: [`ConnectorError::Source`] naming `catalog` and
    /// the location.
    pub fn operator(&self, catalog: &str) -> Result<Operator, ConnectorError> {
        let source_err = |reason: String| {
            ConnectorError::Source(self.redact(format!(
                "lake catalog `{catalog}` at {}: {reason}",
                self.display_location()
            )))
        };
        let op = match &self.location {
            LakeLocation::Fs { root } => {
                match std::fs::metadata(root) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => return Err(source_err("not a directory".into())),
                    Err(e) => return Err(source_err(format!("cannot open directory: {e}"))),
                }
                let root = root.to_string_lossy();
                Operator::new(opendal::services::Fs::default().root(&root))
            }
            LakeLocation::S3 {
                bucket,
                prefix,
                endpoint,
                region,
                access_key_id,
                secret_access_key,
                allow_anonymous,
            } => {
                tributary_exchange::install_http_transport();
                let mut builder = opendal::services::S3::default()
                    .bucket(bucket)
                    .root(&format!("/{prefix}"))
                    .region(region);
                if let Some(endpoint) = endpoint {
                    builder = builder.endpoint(endpoint);
                }
                if let Some(key) = access_key_id {
                    builder = builder.access_key_id(key);
                }
                if let Some(secret) = secret_access_key {
                    builder = builder.secret_access_key(secret.expose());
                }
                if *allow_anonymous {
                    builder = builder.skip_signature();
                }
                Operator::new(builder)
            }
        };
        op.map_err(|e| source_err(format!("cannot configure storage: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<LakeConfig, ConnectorError> {
        LakeConfig::from_toml(&toml::from_str(text).expect("toml"))
    }

    fn key_of(result: Result<LakeConfig, ConnectorError>) -> (String, String) {
        match result {
            Err(ConnectorError::Config { key, reason }) => (key, reason),
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_and_keys() {
        let config = parse("connector = \"lake\"\nlocation = \"s3://b/p/\"").expect("parses");
        match config.location {
            LakeLocation::S3 {
                region,
                prefix,
                allow_anonymous,
                ..
            } => {
                assert_eq!(region, "us-east-1");
                assert_eq!(prefix, "p");
                assert!(!allow_anonymous);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_it() {
        let (key, reason) = key_of(parse("location = \"s3://b/p\"\nregoin = \"eu-west-1\""));
        assert_eq!(key, "regoin");
        assert!(reason.contains("regoin"), "{reason}");
    }

    #[test]
    fn a_bad_value_names_the_key() {
        assert_eq!(
            key_of(parse("location = \"s3://b\"\nallow_anonymous = 1")).0,
            "allow_anonymous"
        );
        assert_eq!(key_of(parse("location = 5")).0, "location");
        assert_eq!(key_of(parse("connector = \"lake\"")).0, "location");
    }

    #[test]
    fn the_secret_key_is_never_shown() {
        let config =
            parse("location = \"s3://b\"\nsecret_access_key = \"wJalrXUtnFEMI\"").expect("parses");
        assert!(!format!("{config:?}").contains("wJalrXUtnFEMI"));
        let (_, reason) = key_of(parse("location = \"s3://b\"\nsecret_access_key = 1234567"));
        assert!(!reason.contains("1234567"), "{reason}");
        let (_, reason) = key_of(parse(
            "location = \"s3://b\"\nsecret_access_key = \"wJalrXUtnFEMI\"\nregion = 3",
        ));
        assert!(!reason.contains("wJalrXUtnFEMI"), "{reason}");
    }
}
