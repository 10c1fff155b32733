//! Scratch directories and the files written into them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh directory under the system temp dir (`/tmp`), removed on drop unless [`TempDir::keep`]
/// was called. Names carry the pid so leftovers of a crashed run are recognisable.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl TempDir {
    /// Creates `/tmp/tributary-{prefix}-{pid}-{n}` (world-readable, so services running as
    /// another OS user can read files written into it).
    pub fn new(prefix: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "tributary-{prefix}-{}-{n}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("create temp dir {}: {e}", path.display()));
        TempDir { path, keep: false }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `file://` URL of this directory (absolute path).
    pub fn url(&self) -> String {
        format!("file://{}", self.path.display())
    }

    /// Writes `contents` to `relative` (creating parent directories) and returns the full path.
    pub fn write(&self, relative: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> PathBuf {
        write_file(&self.path.join(relative), contents.as_ref())
    }

    /// Creates the subdirectory `relative` and returns its full path.
    pub fn mkdir(&self, relative: impl AsRef<Path>) -> PathBuf {
        let path = self.path.join(relative);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("create dir {}: {e}", path.display()));
        path
    }

    /// For a directory kept in a `static` (never dropped): removes it when the test process
    /// exits.
    pub fn remove_at_exit(self) -> TempDir {
        let command = format!(
            "rm -rf {}",
            crate::cleanup::shell_quote(&self.path.to_string_lossy())
        );
        // The watchdog lives until the process exits; its handle is not needed.
        drop(crate::cleanup::on_exit(&command));
        self
    }

    /// Leaves the directory on disk after drop (for debugging) and returns its path.
    pub fn keep(mut self) -> PathBuf {
        self.keep = true;
        self.path.clone()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Writes `contents` to `path`, creating parent directories; returns `path`. Panics on an I/O
/// error.
pub(crate) fn write_file(path: &Path, contents: &[u8]) -> PathBuf {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .unwrap_or_else(|e| panic!("create dir {}: {e}", parent.display()));
    }
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path.to_path_buf()
}

/// Quotes `s` as a TOML basic string (for paths and URLs in catalog files).
pub fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Every file under `dir`, recursively, sorted (directories themselves are not listed); empty when
/// `dir` does not exist. Unreadable directories are skipped: the callers look at what a server
/// left, while it may still be deleting it.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}
