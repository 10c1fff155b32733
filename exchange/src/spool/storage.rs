//! The stores below the spool: one OpenDAL [`Operator`] per base directory, the names of the objects
//! in it, and the process-wide HTTP transport S3 needs.

use std::sync::Arc;

use opendal::Operator;

use datafusion::arrow::ipc::writer::IpcWriteOptions;

use super::config::{BaseUrl, S3Settings};
use super::{SpoolCompression, SpoolError};

/// One base directory: its operator (rooted at the base) and its URL for messages.
#[derive(Clone)]
pub(crate) struct Base {
    pub(crate) op: Operator,
    url: Arc<str>,
    /// A local directory (`file://`): see [`Base::read_whole`].
    local: bool,
    /// How attempts written here compress their buffers (recorded in each manifest).
    pub(crate) compression: SpoolCompression,
    /// Arrow IPC options with that compression.
    pub(crate) ipc_options: IpcWriteOptions,
}

impl std::fmt::Debug for Base {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

impl Base {
    /// The operator of `base` (creating a local directory). Errors: [`SpoolError::Storage`] when
    /// the directory cannot be created or the S3 settings are refused by OpenDAL.
    /// The operator of `base`, writing with `compression` (else the base kind's default).
    pub(crate) fn open(
        base: &BaseUrl,
        s3: &S3Settings,
        compression: Option<SpoolCompression>,
    ) -> Result<Base, SpoolError> {
        let url: Arc<str> = base.display().into();
        let op = match base {
            // OpenDAL creates the directory when missing.
            BaseUrl::Fs(root) => {
                Operator::new(opendal::services::Fs::default().root(&root.to_string_lossy()))
            }
            BaseUrl::S3 { bucket, prefix } => {
                install_http_transport();
                let mut builder = opendal::services::S3::default()
                    .bucket(bucket)
                    .root(&format!("/{prefix}"))
                    .region(&s3.region);
                if let Some(endpoint) = &s3.endpoint {
                    builder = builder.endpoint(endpoint);
                }
                if let Some(key) = &s3.access_key_id {
                    builder = builder.access_key_id(key);
                }
                if let Some(secret) = &s3.secret_access_key {
                    builder = builder.secret_access_key(secret.expose());
                }
                Operator::new(builder)
            }
        }
        .map_err(|source| SpoolError::Storage {
            operation: "open",
            location: url.to_string(),
            source: Box::new(source),
        })?;
        let local = matches!(base, BaseUrl::Fs(_));
        let compression = compression.unwrap_or_else(|| SpoolCompression::default_for(base));
        let ipc_options = super::format::ipc_options(compression)
            .map_err(|e| SpoolError::config("compression", e.to_string()))?;
        Ok(Base {
            op,
            url,
            local,
            compression,
            ipc_options,
        })
    }

    /// The base as a URL (without credentials).
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// `path` (relative to the base) as a URL, for messages.
    pub(crate) fn location(&self, path: &str) -> String {
        format!("{}/{path}", self.url.trim_end_matches('/'))
    }

    /// A [`SpoolError::Storage`] of `operation` on `path`.
    pub(crate) fn error(
        &self,
        operation: &'static str,
        path: &str,
    ) -> impl FnOnce(opendal::Error) -> SpoolError {
        let location = self.location(path);
        move |source| SpoolError::Storage {
            operation,
            location,
            source: Box::new(source),
        }
    }

    /// Deletes `dir` (ending in `/`) and everything under it; a missing directory is fine.
    /// The whole object at `path`. On a local directory its size is asked first: OpenDAL's file
    /// reader reads an object of unknown size in zero-filled 2 MiB buffers until one comes back
    /// short, which cost about a millisecond per small manifest; on S3 a plain GET is one request
    /// where asking the size would be two.
    pub(crate) async fn read_whole(&self, path: &str) -> opendal::Result<opendal::Buffer> {
        if !self.local {
            return self.op.read(path).await;
        }
        let size = self.op.stat(path).await?.content_length();
        if size == 0 {
            return Ok(opendal::Buffer::new());
        }
        self.op.read_with(path).range(0..size).await
    }

    pub(crate) async fn delete_dir(&self, dir: &str) -> Result<(), SpoolError> {
        self.op
            .delete_with(dir)
            .recursive(true)
            .await
            .map_err(self.error("delete", dir))
    }

    /// Best effort, in the background: aborts `writer` (an unfinished multipart upload) and deletes
    /// `dir`. Does nothing outside a tokio runtime.
    pub(crate) fn discard(&self, dir: String, writer: Option<opendal::Writer>) {
        self.discard_inner(dir, writer, false);
    }

    /// [`Base::discard`], then, on a local base, removes the directories above `dir` that it left
    /// empty, innermost first (an object store has no directories): a result buffer's
    /// `{query}/result/` and `{query}/`, which nothing else writes into. A directory that is not
    /// empty stays (removing it fails).
    pub(crate) fn discard_with_parents(&self, dir: String, writer: Option<opendal::Writer>) {
        self.discard_inner(dir, writer, true);
    }

    fn discard_inner(&self, dir: String, writer: Option<opendal::Writer>, parents: bool) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let base = self.clone();
        runtime.spawn(async move {
            if let Some(mut writer) = writer {
                let _ = writer.abort().await;
            }
            if let Err(e) = base.delete_dir(&dir).await {
                tracing::debug!("spool: could not delete abandoned {dir}: {e}");
                return;
            }
            if parents && base.local {
                let segments: Vec<&str> = dir.trim_end_matches('/').split('/').collect();
                for n in (1..segments.len()).rev() {
                    // Not recursive: OpenDAL's Fs removes an empty directory only.
                    let parent = format!("{}/", segments[..n].join("/"));
                    if base.op.delete(&parent).await.is_err() {
                        break;
                    }
                }
            }
        });
    }
}

/// Checks that `name` (a query id or node name) is one plain path segment the spool may use:
/// non-empty, no `/` or `\`, not `.` or `..`, and not starting with `_` (reserved for `_journal`).
pub(crate) fn check_segment(what: &str, name: &str) -> Result<(), SpoolError> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.starts_with('_')
        || name.contains(['/', '\\']);
    if bad {
        return Err(SpoolError::Invalid(format!(
            "{what} \"{name}\" cannot name a spool directory"
        )));
    }
    Ok(())
}

/// A stable hash (FNV-1a) choosing among base directories: the same in every process and build,
/// so readers find what writers wrote without listing.
pub(crate) fn pick(key: &str, bases: usize) -> usize {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (hash % bases.max(1) as u64) as usize
}

/// Installs OpenDAL's process-wide HTTP transport (reqwest over rustls with the ring provider) once.
/// Needed before any S3 request: the workspace builds opendal without its default features, so
/// nothing else installs one. Every OpenDAL user of the process calls it (the spool, the lake
/// connector); a transport or crypto provider installed earlier by someone else is kept (first one
/// wins).
pub fn install_http_transport() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means a provider is already installed, which reqwest will use instead.
        let _ = rustls::crypto::ring::default_provider().install_default();
        opendal::HttpTransporter::install_default(
            opendal_http_transport_reqwest::ReqwestTransport::default(),
        );
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_of_a_key_is_stable_and_spread() {
        // Fixed values: readers in other processes and builds must pick the same base.
        let fixed =
            ["q/1/0", "q/1/1", "q/1/2", "20240101_000000_00001_abcde/2/7"].map(|k| pick(k, 4));
        assert_eq!(fixed, [3, 0, 1, 1]);
        assert_eq!(pick("q/1/0", 1), 0);
        let picks: Vec<usize> = (0..64).map(|t| pick(&format!("q/1/{t}"), 4)).collect();
        for base in 0..4 {
            assert!(picks.contains(&base), "{picks:?}");
        }
        assert_eq!(
            picks,
            (0..64)
                .map(|t| pick(&format!("q/1/{t}"), 4))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn names_must_be_plain_path_segments() {
        for good in [
            "20240101_000000_00001_abcde",
            "q.sq1",
            "q.a2",
            "coordinator",
        ] {
            assert!(check_segment("query id", good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "_journal", "a/b", "a\\b"] {
            let err = check_segment("query id", bad).unwrap_err();
            assert_eq!(err.sqlstate(), "XX000", "{bad}");
        }
    }
}
