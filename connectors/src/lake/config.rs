//! The keys of a `lake` catalog file, and the OpenDAL operator they describe.

use std::fmt;
use std::path::PathBuf;

use opendal::Operator;

use crate::ConnectorError;

/// A secret string (an S3 secret key): shown as `***` by `Debug`, never written into an error.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret's value, for handing to the client library only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

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

/// The parsed keys of a `lake` catalog file.
///
/// Keys: `connector = "lake"`, `location` (`file:///abs/path` or `s3://bucket/prefix`, required), and
/// for S3 `endpoint`, `region` (default `us-east-1`), `access_key_id`, `secret_access_key`,
/// `allow_anonymous`.
#[derive(Debug, Clone, PartialEq)]
pub struct LakeConfig {
    /// The data's location.
    pub location: LakeLocation,
}

impl LakeConfig {
    /// Parses the keys of a catalog file. Errors: [`ConnectorError::Config`] naming the key (missing
    /// or malformed `location`, unknown scheme, a key of the wrong type).
    pub fn from_toml(config: &toml::Table) -> Result<Self, ConnectorError> {
        let location = required_str(config, "location")?;
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
                    endpoint: optional_str(config, "endpoint")?.map(str::to_string),
                    region: optional_str(config, "region")?
                        .unwrap_or("us-east-1")
                        .to_string(),
                    access_key_id: optional_str(config, "access_key_id")?.map(str::to_string),
                    secret_access_key: optional_str(config, "secret_access_key")?
                        .map(|s| Secret(s.to_string())),
                    allow_anonymous: optional_bool(config, "allow_anonymous")?.unwrap_or(false),
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
        Ok(Self { location })
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
                install_http_transport();
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

/// Installs OpenDAL's process-wide HTTP transport (reqwest over rustls with the ring provider) once.
/// The workspace builds opendal without its default features, so nothing else installs one; a
/// transport or crypto provider installed earlier by someone else is kept (first one wins).
fn install_http_transport() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means a provider is already installed, which reqwest will use instead.
        let _ = rustls::crypto::ring::default_provider().install_default();
        opendal::HttpTransporter::install_default(
            opendal_http_transport_reqwest::ReqwestTransport::default(),
        );
    });
}

fn required_str<'a>(config: &'a toml::Table, key: &str) -> Result<&'a str, ConnectorError> {
    optional_str(config, key)?.ok_or_else(|| ConnectorError::Config {
        key: key.into(),
        reason: "missing; expected e.g. \"file:///data/lake\" or \"s3://bucket/prefix\"".into(),
    })
}

fn optional_str<'a>(config: &'a toml::Table, key: &str) -> Result<Option<&'a str>, ConnectorError> {
    match config.get(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s.as_str())),
        Some(other) => Err(ConnectorError::Config {
            key: key.into(),
            reason: format!("expected a string, found a {}", other.type_str()),
        }),
    }
}

fn optional_bool(config: &toml::Table, key: &str) -> Result<Option<bool>, ConnectorError> {
    match config.get(key) {
        None => Ok(None),
        Some(toml::Value::Boolean(b)) => Ok(Some(*b)),
        Some(other) => Err(ConnectorError::Config {
            key: key.into(),
            reason: format!("expected true or false, found a {}", other.type_str()),
        }),
    }
}
