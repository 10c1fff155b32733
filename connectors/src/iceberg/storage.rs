//! The iceberg crate's file access (`iceberg::io::Storage`) over the warehouse's OpenDAL operator, so
//! Iceberg metadata, manifests and data files go through the same store (fs or S3, same
//! credentials) as everything else of the catalog. Iceberg names files by absolute URI
//! (`file:///warehouse/s/t/metadata/00001-….metadata.json`, `s3://bucket/warehouse/...`); a URI is
//! mapped to the operator's path by removing the warehouse location in front of it, so every file of
//! a table must live under the warehouse (tables elsewhere are refused with a clear error).

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use iceberg::io::{
    FileMetadata, FileRead, FileWrite, InputFile, OutputFile, Storage, StorageConfig,
    StorageFactory,
};
use iceberg::{Error, ErrorKind, Result};
use opendal::Operator;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Files of one warehouse: URIs under `root` (`file:///abs/path` or `s3://bucket/prefix`, no
/// trailing `/`), read and written through `operator` (rooted at that location).
#[derive(Debug, Clone)]
pub struct WarehouseStorage {
    root: String,
    operator: Operator,
}

impl WarehouseStorage {
    /// Storage for the warehouse at `root` (as [`crate::lake::LakeConfig::display_location`] gives
    /// it) through `operator`.
    pub fn new(root: String, operator: Operator) -> Self {
        Self {
            root: root.trim_end_matches('/').to_string(),
            operator,
        }
    }

    /// The URI of operator path `path` (`s/t/data/x.parquet` -> `ROOT/s/t/data/x.parquet`).
    pub fn uri(&self, path: &str) -> String {
        format!("{}/{}", self.root, path.trim_start_matches('/'))
    }

    /// The operator path of URI `uri`, `None` when it is not under the warehouse. `s3a://` and
    /// `s3://` name the same objects; a local path may come with or without `file://`.
    pub fn relative(&self, uri: &str) -> Option<String> {
        let normalized = if let Some(rest) = uri.strip_prefix("s3a://") {
            format!("s3://{rest}")
        } else if uri.starts_with('/') {
            format!("file://{uri}")
        } else {
            uri.to_string()
        };
        let rest = normalized.strip_prefix(&self.root)?;
        if !rest.is_empty() && !rest.starts_with('/') {
            return None;
        }
        Some(rest.trim_start_matches('/').to_string())
    }

    fn path(&self, uri: &str) -> Result<String> {
        self.relative(uri).ok_or_else(|| {
            Error::new(
                ErrorKind::FeatureUnsupported,
                format!(
                    "{uri} is outside the catalog's warehouse {}: only files under the warehouse \
                     can be read or written",
                    self.root
                ),
            )
        })
    }
}

fn io_error(e: opendal::Error) -> Error {
    Error::new(ErrorKind::Unexpected, "warehouse storage error").with_source(e)
}

// The iceberg crate serializes storages (to ship them between processes); ours is never shipped:
// it serializes to its root only and cannot be deserialized.
impl Serialize for WarehouseStorage {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.root)
    }
}

impl<'de> Deserialize<'de> for WarehouseStorage {
    fn deserialize<D: Deserializer<'de>>(_deserializer: D) -> std::result::Result<Self, D::Error> {
        Err(serde::de::Error::custom(
            "a warehouse storage cannot be rebuilt from its serialized form",
        ))
    }
}

#[async_trait]
#[typetag::serde(name = "tributary_warehouse")]
impl Storage for WarehouseStorage {
    async fn exists(&self, path: &str) -> Result<bool> {
        self.operator
            .exists(&self.path(path)?)
            .await
            .map_err(io_error)
    }

    async fn metadata(&self, path: &str) -> Result<FileMetadata> {
        let meta = self
            .operator
            .stat(&self.path(path)?)
            .await
            .map_err(io_error)?;
        Ok(FileMetadata {
            size: meta.content_length(),
        })
    }

    async fn read(&self, path: &str) -> Result<Bytes> {
        let buffer = self
            .operator
            .read(&self.path(path)?)
            .await
            .map_err(io_error)?;
        Ok(buffer.to_bytes())
    }

    async fn reader(&self, path: &str) -> Result<Box<dyn FileRead>> {
        Ok(Box::new(RangeReader {
            operator: self.operator.clone(),
            path: self.path(path)?,
        }))
    }

    async fn write(&self, path: &str, bs: Bytes) -> Result<()> {
        self.operator
            .write(&self.path(path)?, bs)
            .await
            .map(|_| ())
            .map_err(io_error)
    }

    async fn writer(&self, path: &str) -> Result<Box<dyn FileWrite>> {
        let writer = self
            .operator
            .writer(&self.path(path)?)
            .await
            .map_err(io_error)?;
        Ok(Box::new(Writer(writer)))
    }

    async fn delete(&self, path: &str) -> Result<()> {
        self.operator
            .delete(&self.path(path)?)
            .await
            .map_err(io_error)
    }

    async fn delete_prefix(&self, path: &str) -> Result<()> {
        let mut dir = self.path(path)?;
        if !dir.ends_with('/') {
            dir.push('/');
        }
        match self.operator.delete_with(&dir).recursive(true).await {
            Err(e) if e.kind() != opendal::ErrorKind::NotFound => Err(io_error(e)),
            _ => Ok(()),
        }
    }

    async fn delete_stream(&self, mut paths: BoxStream<'static, String>) -> Result<()> {
        while let Some(path) = paths.next().await {
            self.delete(&path).await?;
        }
        Ok(())
    }

    fn new_input(&self, path: &str) -> Result<InputFile> {
        Ok(InputFile::new(Arc::new(self.clone()), path.to_string()))
    }

    fn new_output(&self, path: &str) -> Result<OutputFile> {
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_string()))
    }
}

/// Ranged reads of one file.
struct RangeReader {
    operator: Operator,
    path: String,
}

#[async_trait]
impl FileRead for RangeReader {
    async fn read(&self, range: Range<u64>) -> Result<Bytes> {
        let buffer = self
            .operator
            .read_with(&self.path)
            .range(range)
            .await
            .map_err(io_error)?;
        Ok(buffer.to_bytes())
    }
}

/// A streaming write of one file.
struct Writer(opendal::Writer);

#[async_trait]
impl FileWrite for Writer {
    async fn write(&mut self, bs: Bytes) -> Result<()> {
        self.0.write(bs).await.map_err(io_error)
    }

    async fn close(&mut self) -> Result<()> {
        self.0.close().await.map(|_| ()).map_err(io_error)
    }
}

/// Hands the iceberg crate our [`WarehouseStorage`] whatever configuration it asks with (its
/// catalogs build their storage through a factory).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WarehouseStorageFactory {
    storage: WarehouseStorage,
}

impl WarehouseStorageFactory {
    /// A factory that always returns `storage`.
    pub fn new(storage: WarehouseStorage) -> Self {
        Self { storage }
    }
}

#[typetag::serde(name = "tributary_warehouse_factory")]
impl StorageFactory for WarehouseStorageFactory {
    fn build(&self, _config: &StorageConfig) -> Result<Arc<dyn Storage>> {
        Ok(Arc::new(self.storage.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_map_to_paths_under_the_warehouse_only() {
        let root = std::env::temp_dir();
        let op =
            Operator::new(opendal::services::Fs::default().root(&root.to_string_lossy())).unwrap();
        let s3 = WarehouseStorage::new("s3://b/wh/".into(), op.clone());
        assert_eq!(s3.relative("s3://b/wh/s/t/x").as_deref(), Some("s/t/x"));
        assert_eq!(s3.relative("s3a://b/wh/s/t/x").as_deref(), Some("s/t/x"));
        assert_eq!(s3.relative("s3://b/wh2/s"), None);
        assert_eq!(s3.relative("s3://other/wh/s"), None);
        assert_eq!(s3.uri("s/t/x"), "s3://b/wh/s/t/x");
        let fs = WarehouseStorage::new("file:///data/wh".into(), op);
        assert_eq!(
            fs.relative("/data/wh/s/m.json").as_deref(),
            Some("s/m.json")
        );
        assert_eq!(fs.relative("file:///data/wh/s").as_deref(), Some("s"));
    }
}
