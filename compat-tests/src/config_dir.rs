//! Tributary config directories: `config.toml` plus `catalog/NAME.toml` files.

use std::path::Path;

use crate::TempDir;

/// A Tributary config directory: `config.toml` plus `catalog/NAME.toml` files.
///
/// ```no_run
/// # use compat_tests::{ConfigDir, Tributary};
/// let dir = ConfigDir::new()
///     .catalog("tpch", r#"connector = "tpch""#)
///     .catalog("lake", r#"connector = "lake"
/// location = "file:///data/lake""#);
/// let server = Tributary::start(Some(dir.path()));
/// ```
#[derive(Debug)]
pub struct ConfigDir {
    dir: TempDir,
}

impl Default for ConfigDir {
    fn default() -> Self {
        Self::new()
    }
}

impl ConfigDir {
    /// An empty config directory (no `config.toml`, no catalogs).
    pub fn new() -> ConfigDir {
        ConfigDir {
            dir: TempDir::new("config"),
        }
    }

    /// The directory (what `--config` takes).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `config.toml`.
    pub fn config(self, toml: &str) -> ConfigDir {
        self.dir.write("config.toml", toml);
        self
    }

    /// Writes `catalog/{name}.toml`.
    pub fn catalog(self, name: &str, toml: &str) -> ConfigDir {
        self.dir.write(format!("catalog/{name}.toml"), toml);
        self
    }

    /// Writes any file relative to the config directory (e.g. a users file).
    pub fn file(self, relative: &str, contents: impl AsRef<[u8]>) -> ConfigDir {
        self.dir.write(relative, contents);
        self
    }
}
