//! The `[exchange]` section of `config.toml`: where the spool lives and how it is written.
//!
//! ```toml
//! [exchange]
//! base_directories = ["file:///var/spool/tributary", "s3://bucket/prefix"]
//! endpoint = "http://127.0.0.1:9000"   # S3 settings, used for every s3:// base (Trino's flat keys)
//! region = "us-east-1"
//! access_key_id = "..."
//! secret_access_key = "${SPOOL_SECRET}"
//! compression = "lz4"                   # or "zstd", "none"; unset: lz4 on s3://, none on file://
//! max_age_s = 86400
//! ```
//!
//! Every value is checked while the file is read (so the planner's config loader reports
//! `key `exchange.KEY`: REASON`), and again by [`crate::spool::Spool::new`] for configs built in
//! code. Errors never quote a value given to the secret key, nor a string given where a non-string
//! was expected.

use std::path::PathBuf;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

use super::SpoolError;
use crate::Secret;

/// The `[exchange]` section: spool locations, S3 credentials, compression and the TTL of spool
/// data. `Default` is the empty section (no base directory, compression by base, one day).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "ExchangeFile")]
pub struct ExchangeConfig {
    /// `base_directories = ["file:///var/spool/tributary", "s3://bucket/prefix"]`: `file://`
    /// absolute paths (created when missing) or `s3://bucket/prefix` URLs; empty = none configured.
    pub base_directories: Vec<String>,
    /// The S3 settings used for every `s3://` base (flat keys of `[exchange]`: `endpoint`,
    /// `region`, `access_key_id`, `secret_access_key`).
    pub s3: S3Settings,
    /// `compression = "lz4" | "zstd" | "none"`: Arrow IPC's own buffer compression of every base.
    /// Unset (`None`), each base gets [`SpoolCompression::default_for`] its kind: LZ4 on `s3://`,
    /// none on `file://`. On a local disk LZ4 costs more than it saves: with the spool on the
    /// 2-core bench machine's disk, LZ4 took a third of a worker's CPU in TPC-H q05 (compressing
    /// 27%, decompressing 9%) and TASK ran 1.33x NONE against 1.20x without it. Trino's
    /// `exchange.compression-codec` defaults to NONE everywhere.
    pub compression: Option<SpoolCompression>,
    /// `max_age_s`: seconds after which the TTL sweep deletes a query's spool data (counted from
    /// its newest object), >= 1 (default 86400 = one day).
    pub max_age_s: u64,
}

impl Default for ExchangeConfig {
    fn default() -> Self {
        Self {
            base_directories: Vec::new(),
            s3: S3Settings::default(),
            compression: None,
            max_age_s: 86_400,
        }
    }
}

/// How every `s3://` base directory is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// `endpoint`: an `http://` or `https://` URL of an S3-compatible server; AWS when absent.
    pub endpoint: Option<String>,
    /// `region` (default `us-east-1`).
    pub region: String,
    /// `access_key_id`; when absent OpenDAL looks at the environment (`AWS_ACCESS_KEY_ID`, profiles,
    /// instance metadata).
    pub access_key_id: Option<String>,
    /// `secret_access_key`; never printed.
    pub secret_access_key: Option<Secret>,
}

impl Default for S3Settings {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: "us-east-1".into(),
            access_key_id: None,
            secret_access_key: None,
        }
    }
}

/// The compression of spooled Arrow IPC buffers (`compression` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum SpoolCompression {
    /// Uncompressed buffers.
    None,
    /// LZ4 frame (fast; the default on `s3://` bases).
    #[default]
    Lz4,
    /// Zstandard (smaller, slower).
    Zstd,
}

impl SpoolCompression {
    /// The compression of a base when `[exchange] compression` is unset: LZ4 on an object store
    /// (bytes cost network time and money), none on a local directory (see
    /// [`ExchangeConfig::compression`]).
    pub(crate) fn default_for(base: &BaseUrl) -> SpoolCompression {
        match base {
            BaseUrl::Fs(_) => SpoolCompression::None,
            BaseUrl::S3 { .. } => SpoolCompression::Lz4,
        }
    }

    /// The name used in `config.toml` and manifests.
    pub fn name(self) -> &'static str {
        match self {
            SpoolCompression::None => "none",
            SpoolCompression::Lz4 => "lz4",
            SpoolCompression::Zstd => "zstd",
        }
    }
}

impl TryFrom<String> for SpoolCompression {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        match name.to_ascii_lowercase().as_str() {
            "none" => Ok(SpoolCompression::None),
            "lz4" => Ok(SpoolCompression::Lz4),
            "zstd" => Ok(SpoolCompression::Zstd),
            _ => Err(format!(
                "unsupported compression \"{name}\"; expected \"lz4\", \"zstd\" or \"none\""
            )),
        }
    }
}

/// One parsed entry of `base_directories`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BaseUrl {
    /// A local directory.
    Fs(PathBuf),
    /// A bucket and a key prefix (without leading or trailing `/`).
    S3 { bucket: String, prefix: String },
}

impl BaseUrl {
    /// Parses entry `index` of `base_directories`. The reason names the entry and never quotes
    /// credentials (URLs with a user or password are refused).
    pub(crate) fn parse(index: usize, text: &str) -> Result<BaseUrl, String> {
        let url = url::Url::parse(text).map_err(|e| {
            format!(
                "entry {index} is not a URL ({e}); expected file:///abs/path or s3://bucket/prefix"
            )
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "entry {index} carries credentials; use access_key_id and secret_access_key"
            ));
        }
        match url.scheme() {
            "file" => match url.to_file_path() {
                Ok(path) => Ok(BaseUrl::Fs(path)),
                Err(()) => Err(format!(
                    "entry {index} (\"{url}\") is not an absolute local path"
                )),
            },
            "s3" | "s3a" => match url.host_str().filter(|b| !b.is_empty()) {
                Some(bucket) => Ok(BaseUrl::S3 {
                    bucket: bucket.to_string(),
                    prefix: url.path().trim_matches('/').to_string(),
                }),
                None => Err(format!(
                    "entry {index} (\"{url}\") names no bucket; expected s3://bucket/prefix"
                )),
            },
            other => Err(format!(
                "entry {index} has unsupported scheme \"{other}\"; expected file:///abs/path or \
                 s3://bucket/prefix"
            )),
        }
    }

    /// The base as a URL, for messages.
    pub(crate) fn display(&self) -> String {
        match self {
            BaseUrl::Fs(path) => format!("file://{}", path.display()),
            BaseUrl::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
            BaseUrl::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        }
    }
}

impl ExchangeConfig {
    /// Parses every base directory and checks the other keys. Errors: [`SpoolError::Config`]
    /// naming the key; [`SpoolError::Config`] on `base_directories` when it is empty.
    pub(crate) fn bases(&self) -> Result<Vec<BaseUrl>, SpoolError> {
        if self.base_directories.is_empty() {
            return Err(SpoolError::config(
                "base_directories",
                "no spool directory configured; set e.g. base_directories = \
                 [\"file:///var/spool/tributary\"]",
            ));
        }
        if let Some(endpoint) = &self.s3.endpoint {
            check_endpoint(endpoint).map_err(|r| SpoolError::config("endpoint", r))?;
        }
        if self.max_age_s == 0 {
            return Err(SpoolError::config("max_age_s", "expected an integer >= 1"));
        }
        self.base_directories
            .iter()
            .enumerate()
            .map(|(i, text)| {
                BaseUrl::parse(i, text).map_err(|r| SpoolError::config("base_directories", r))
            })
            .collect()
    }
}

fn check_endpoint(endpoint: &str) -> Result<(), String> {
    match url::Url::parse(endpoint) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.password().is_none() => Ok(()),
        _ => Err("expected an http:// or https:// URL".into()),
    }
}

/// The keys as written in `[exchange]`, with their defaults: the one place they are read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ExchangeFile {
    #[serde(deserialize_with = "de::base_directories")]
    base_directories: Vec<String>,
    #[serde(deserialize_with = "de::endpoint")]
    endpoint: Option<String>,
    #[serde(deserialize_with = "de::string")]
    region: String,
    #[serde(deserialize_with = "de::optional_string")]
    access_key_id: Option<String>,
    secret_access_key: Option<Secret>,
    compression: Option<SpoolCompression>,
    #[serde(deserialize_with = "de::positive")]
    max_age_s: u64,
}

impl Default for ExchangeFile {
    fn default() -> Self {
        let ExchangeConfig {
            base_directories,
            s3,
            compression,
            max_age_s,
        } = ExchangeConfig::default();
        Self {
            base_directories,
            endpoint: s3.endpoint,
            region: s3.region,
            access_key_id: s3.access_key_id,
            secret_access_key: s3.secret_access_key,
            compression,
            max_age_s,
        }
    }
}

impl From<ExchangeFile> for ExchangeConfig {
    fn from(file: ExchangeFile) -> Self {
        Self {
            base_directories: file.base_directories,
            s3: S3Settings {
                endpoint: file.endpoint,
                region: file.region,
                access_key_id: file.access_key_id,
                secret_access_key: file.secret_access_key,
            },
            compression: file.compression,
            max_age_s: file.max_age_s,
        }
    }
}

/// Field deserializers that check values and never echo a string given where another type was
/// expected (it may be a substituted secret). Read through `toml::Value`, as the planner's are.
mod de {
    use super::*;

    fn value<'de, D: Deserializer<'de>>(d: D) -> Result<toml::Value, D::Error> {
        toml::Value::deserialize(d)
    }

    pub fn base_directories<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        let toml::Value::Array(items) = value(d)? else {
            return Err(D::Error::custom(
                "expected an array of URLs, e.g. [\"file:///var/spool/tributary\"]",
            ));
        };
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                toml::Value::String(s) => BaseUrl::parse(i, &s).map(|_| s),
                other => Err(format!(
                    "entry {i} must be a string, found a {}",
                    other.type_str()
                )),
            })
            .collect::<Result<_, _>>()
            .map_err(D::Error::custom)
    }

    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        match value(d)? {
            toml::Value::String(s) if !s.is_empty() => Ok(s),
            _ => Err(D::Error::custom("expected a non-empty string")),
        }
    }

    pub fn optional_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        string(d).map(Some)
    }

    pub fn endpoint<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        let endpoint = string(d)?;
        check_endpoint(&endpoint).map_err(D::Error::custom)?;
        Ok(Some(endpoint))
    }

    pub fn positive<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        match value(d)?.as_integer() {
            Some(n) if n >= 1 => Ok(n as u64),
            _ => Err(D::Error::custom("expected an integer >= 1")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_parse_into_local_paths_and_buckets() {
        assert_eq!(
            BaseUrl::parse(0, "file:///var/spool/t").unwrap(),
            BaseUrl::Fs("/var/spool/t".into())
        );
        let s3 = BaseUrl::parse(0, "s3://bucket/a/b/").unwrap();
        assert_eq!(
            s3,
            BaseUrl::S3 {
                bucket: "bucket".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(s3.display(), "s3://bucket/a/b");
        assert_eq!(
            BaseUrl::parse(0, "s3a://bucket").unwrap().display(),
            "s3://bucket"
        );
        for (text, reason) in [
            ("relative/dir", "entry 3 is not a URL"),
            ("file://host/x", "not an absolute local path"),
            ("s3:///x", "names no bucket"),
            ("gs://b/x", "unsupported scheme \"gs\""),
            ("s3://key:hunter2@b/x", "carries credentials"),
        ] {
            let err = BaseUrl::parse(3, text).unwrap_err();
            assert!(err.contains(reason), "{text}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn compression_names() {
        for c in [
            SpoolCompression::None,
            SpoolCompression::Lz4,
            SpoolCompression::Zstd,
        ] {
            assert_eq!(SpoolCompression::try_from(c.name().to_string()), Ok(c));
        }
        assert_eq!(
            SpoolCompression::try_from("LZ4".to_string()),
            Ok(SpoolCompression::Lz4)
        );
    }
}
