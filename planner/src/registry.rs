//! The catalog registry: every mounted catalog by name, built from `DIR/catalog/*.toml` (and Trino's
//! `DIR/catalog/*.properties`, see [`crate::trino_catalog`]) plus the built-in `tpch` and `system`
//! catalogs, and reloaded from the same directory while the server runs
//! ([`CatalogRegistry::reload`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::catalog::{CatalogProviderList, MemoryCatalogProviderList};
use parking_lot::RwLock;
use tributary_connectors::system::{RuntimeInfo, SystemConnector};
use tributary_connectors::tpch::TpchConnector;
use tributary_connectors::{Connector, build_connector};

use crate::config::{ConfigError, read_toml};

/// All catalogs of this server, by name; shared by every session (clones share one registry).
///
/// Sessions resolve names through [`CatalogRegistry::catalog_list`], which a reload changes in
/// place: a statement planned after a reload sees the new catalogs, while a running query keeps the
/// tables it resolved when it was planned.
#[derive(Debug, Clone)]
pub struct CatalogRegistry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: Option<PathBuf>,
    runtime: Arc<dyn RuntimeInfo>,
    mounted: RwLock<BTreeMap<String, Mounted>>,
    list: Arc<MemoryCatalogProviderList>,
    /// One reload at a time.
    reloading: futures::lock::Mutex<()>,
}

/// A mounted catalog and the file it came from (none for a built-in one).
#[derive(Debug, Clone)]
struct Mounted {
    connector: Arc<dyn Connector>,
    source: Option<toml::Table>,
}

/// What a [`CatalogRegistry::reload`] changed. Catalog names, sorted.
#[derive(Debug, Default)]
pub struct ReloadReport {
    /// Catalogs mounted by the reload.
    pub added: Vec<String>,
    /// Catalogs whose file changed and were mounted again.
    pub changed: Vec<String>,
    /// Catalogs whose file is gone (a built-in one comes back in its place).
    pub removed: Vec<String>,
    /// Files that could not be read or mounted; the catalog they name keeps its previous
    /// definition (or stays absent).
    pub errors: Vec<ConfigError>,
}

impl ReloadReport {
    /// Whether the reload changed which catalogs are mounted.
    pub fn changed_anything(&self) -> bool {
        !(self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty())
    }
}

/// Why `CREATE CATALOG` or `DROP CATALOG` was refused ([`CatalogRegistry::create_catalog_file`],
/// [`CatalogRegistry::drop_catalog_file`]); [`CatalogDdlError::sqlstate`] is PostgreSQL's code for it.
#[derive(Debug, thiserror::Error)]
pub enum CatalogDdlError {
    /// `42710`: a catalog (or a file for it) of that name exists.
    #[error("catalog \"{0}\" already exists")]
    Exists(String),
    /// `3D000`: no catalog of that name.
    #[error("catalog \"{0}\" does not exist")]
    Missing(String),
    /// `0A000`: a built-in catalog has no file to drop.
    #[error("catalog \"{0}\" is built in: it has no file to drop")]
    BuiltIn(String),
    /// `0A000`: the server has no config directory to keep catalog files in.
    #[error(
        "catalogs are files of the config directory, and this server has none (start it with --config DIR)"
    )]
    NoDirectory,
    /// `42602`: the name cannot be a catalog file's name.
    #[error("invalid catalog name \"{0}\": use letters, digits and `_`")]
    BadName(String),
    /// `22023`: the connector refused the properties (names the key and reason, never a value).
    #[error("{0}")]
    Invalid(String),
    /// `58030`: the file could not be written or removed.
    #[error("catalog file {0}")]
    Io(String),
}

impl CatalogDdlError {
    /// The SQLSTATE PostgreSQL would report.
    pub fn sqlstate(&self) -> &'static str {
        use tributary_connectors::sqlstate;
        match self {
            CatalogDdlError::Exists(_) => sqlstate::DUPLICATE_OBJECT,
            CatalogDdlError::Missing(_) => sqlstate::INVALID_CATALOG_NAME,
            CatalogDdlError::BuiltIn(_) | CatalogDdlError::NoDirectory => {
                sqlstate::FEATURE_NOT_SUPPORTED
            }
            CatalogDdlError::BadName(_) => sqlstate::INVALID_NAME,
            CatalogDdlError::Invalid(_) => sqlstate::INVALID_PARAMETER_VALUE,
            CatalogDdlError::Io(_) => sqlstate::IO_ERROR,
        }
    }
}

/// How a catalog file names itself: letters, digits and `_`.
fn is_catalog_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A catalog file of the directory: its catalog name, path, and contents (or why it is bad).
struct CatalogFile {
    name: String,
    path: PathBuf,
    table: Result<toml::Table, ConfigError>,
}

/// The catalog files of `dir` (sorted by name; none when `dir` is absent or not a directory). A file
/// whose name is not a catalog name, or whose name another file also defines, carries its error.
fn catalog_files(dir: Option<&Path>) -> Result<Vec<CatalogFile>, ConfigError> {
    let Some(dir) = dir.filter(|d| d.is_dir()) else {
        return Ok(Vec::new());
    };
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| ConfigError {
            file: dir.to_path_buf(),
            reason: e.to_string(),
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x == "toml" || x == "properties")
        })
        .collect();
    paths.sort();
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut files = Vec::new();
    for path in paths {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let bad = |reason: String| {
            Err(ConfigError {
                file: path.clone(),
                reason,
            })
        };
        let table = if !is_catalog_name(&name) {
            bad("catalog name (the file name) must be letters, digits and `_`".into())
        } else if let Some(other) = seen.insert(name.clone(), path.clone()) {
            bad(format!(
                "catalog `{name}` is also defined by {}: keep one of the two files",
                other.display()
            ))
        } else if path.extension().is_some_and(|x| x == "properties") {
            crate::trino_catalog::read_properties(&path)
        } else {
            read_toml(&path)
        };
        files.push(CatalogFile { name, path, table });
    }
    Ok(files)
}

/// Mounts one catalog file's contents.
async fn mount(name: &str, path: &Path, table: toml::Table) -> Result<Mounted, ConfigError> {
    let connector = build_connector(name, &table)
        .await
        .map_err(|e| ConfigError {
            file: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    Ok(Mounted {
        connector,
        source: Some(table),
    })
}

impl CatalogRegistry {
    /// Builds the registry: `tpch` and `system` always, then one catalog per `catalog_dir/NAME.toml`
    /// or `catalog_dir/NAME.properties` (a Trino catalog file; sorted by name; a file named
    /// `tpch.toml` or `system.toml` replaces the built-in one; a name with both files is an error).
    ///
    /// A missing `catalog_dir` is not an error. A bad file fails with its path, the key and the reason.
    pub async fn load(
        catalog_dir: Option<&Path>,
        runtime: Arc<dyn RuntimeInfo>,
    ) -> Result<Self, ConfigError> {
        let mut mounted = Self::built_ins(&runtime);
        for file in catalog_files(catalog_dir)? {
            let table = file.table?;
            mounted.insert(
                file.name.clone(),
                mount(&file.name, &file.path, table).await?,
            );
        }
        let list = Arc::new(MemoryCatalogProviderList::new());
        for (name, m) in &mounted {
            list.register_catalog(name.clone(), m.connector.catalog());
        }
        Ok(Self {
            inner: Arc::new(Inner {
                dir: catalog_dir.map(Path::to_path_buf),
                runtime,
                mounted: RwLock::new(mounted),
                list,
                reloading: futures::lock::Mutex::new(()),
            }),
        })
    }

    fn built_ins(runtime: &Arc<dyn RuntimeInfo>) -> BTreeMap<String, Mounted> {
        let built_in = |connector: Arc<dyn Connector>| Mounted {
            connector,
            source: None,
        };
        BTreeMap::from([
            ("tpch".to_string(), built_in(Arc::new(TpchConnector::new()))),
            (
                "system".to_string(),
                built_in(Arc::new(SystemConnector::new(Arc::clone(runtime)))),
            ),
        ])
    }

    /// Reads the catalog directory again and mounts what changed (Trino's dynamic catalogs, driven by
    /// files): a new file mounts its catalog, a changed one mounts it anew, a removed one unmounts it
    /// (a removed `tpch.toml` or `system.toml` brings the built-in back). An unchanged file keeps its
    /// connector (and its connection pool). A file that cannot be read or mounted is reported in
    /// [`ReloadReport::errors`] and leaves that catalog as it was; the other files still apply.
    ///
    /// Errors: only when the directory itself cannot be listed.
    pub async fn reload(&self) -> Result<ReloadReport, ConfigError> {
        let _one_at_a_time = self.inner.reloading.lock().await;
        let files = catalog_files(self.inner.dir.as_deref())?;
        let before = self.inner.mounted.read().clone();
        let mut after = Self::built_ins(&self.inner.runtime);
        // Built-ins that no file overrides keep their instance (and the queries they hold).
        for (name, m) in &before {
            if m.source.is_none() && after.contains_key(name) {
                after.insert(name.clone(), m.clone());
            }
        }
        let mut report = ReloadReport::default();
        for file in files {
            let previous = before.get(&file.name).filter(|m| m.source.is_some());
            let table = match file.table {
                Ok(table) => table,
                Err(e) => {
                    if let Some(previous) = previous {
                        after.insert(file.name.clone(), previous.clone());
                    }
                    report.errors.push(e);
                    continue;
                }
            };
            if let Some(previous) = previous.filter(|m| m.source.as_ref() == Some(&table)) {
                after.insert(file.name, previous.clone());
                continue;
            }
            match mount(&file.name, &file.path, table).await {
                Ok(m) => {
                    if previous.is_some() {
                        report.changed.push(file.name.clone());
                    } else {
                        report.added.push(file.name.clone());
                    }
                    after.insert(file.name, m);
                }
                Err(e) => {
                    if let Some(previous) = previous {
                        after.insert(file.name.clone(), previous.clone());
                    }
                    report.errors.push(e);
                }
            }
        }
        for (name, m) in &before {
            let overridden_built_in =
                m.source.is_some() && after.get(name).is_some_and(|now| now.source.is_none());
            if !after.contains_key(name) || overridden_built_in {
                report.removed.push(name.clone());
            }
        }
        for name in before.keys() {
            if !after.contains_key(name) {
                self.inner.list.catalogs.remove(name);
            }
        }
        for (name, m) in &after {
            let same = before
                .get(name)
                .is_some_and(|b| Arc::ptr_eq(&b.connector, &m.connector));
            if !same {
                self.inner
                    .list
                    .register_catalog(name.clone(), m.connector.catalog());
            }
        }
        *self.inner.mounted.write() = after;
        Ok(report)
    }

    /// `CREATE CATALOG name USING connector WITH (key = value, ...)` (Trino's dynamic catalogs),
    /// persisted as a file of the catalog directory: `NAME.toml` with `connector = "KIND"` when
    /// `connector` is one of Tributary's kinds (`postgres`, `mysql`, `lake`, ...; keys as in TOML
    /// catalog files), else `NAME.properties` with `connector.name=CONNECTOR` (a Trino catalog,
    /// `postgresql`, `mysql`, `kafka`, `iceberg`, `tpch`, with Trino's property names). Values may
    /// say `${ENV}` as in files. The connector is built from the file before the file takes the
    /// catalog's name, so a refused definition leaves nothing behind; the caller then
    /// [`reload`](CatalogRegistry::reload)s. `Ok(false)`: it exists and `if_not_exists` was given.
    pub async fn create_catalog_file(
        &self,
        name: &str,
        connector: &str,
        properties: &[(String, toml::Value)],
        if_not_exists: bool,
    ) -> Result<bool, CatalogDdlError> {
        let dir = self
            .inner
            .dir
            .as_deref()
            .ok_or(CatalogDdlError::NoDirectory)?;
        if !is_catalog_name(name) {
            return Err(CatalogDdlError::BadName(name.to_string()));
        }
        let exists = self.inner.mounted.read().contains_key(name)
            || ["toml", "properties"]
                .iter()
                .any(|x| dir.join(format!("{name}.{x}")).exists());
        if exists {
            return if if_not_exists {
                Ok(false)
            } else {
                Err(CatalogDdlError::Exists(name.to_string()))
            };
        }
        let io = |e: std::io::Error| CatalogDdlError::Io(format!("in {}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(io)?;
        let ours = tributary_connectors::factory(connector).is_some();
        let (extension, text) = if ours {
            let mut table = toml::Table::new();
            table.insert("connector".into(), toml::Value::String(connector.into()));
            for (key, value) in properties {
                table.insert(key.clone(), value.clone());
            }
            let text = toml::to_string(&table)
                .map_err(|e| CatalogDdlError::Invalid(format!("cannot write the catalog: {e}")))?;
            ("toml", text)
        } else {
            ("properties", properties_text(connector, properties)?)
        };
        // Written under a name the directory's readers skip, checked, then renamed into place.
        let staged = dir.join(format!(".{name}.{extension}.new"));
        let target = dir.join(format!("{name}.{extension}"));
        std::fs::write(&staged, text).map_err(io)?;
        let checked = async {
            let table = if ours {
                read_toml(&staged)
            } else {
                crate::trino_catalog::read_properties(&staged)
            }
            .map_err(|e| CatalogDdlError::Invalid(e.reason))?;
            build_connector(name, &table)
                .await
                .map_err(|e| CatalogDdlError::Invalid(e.to_string()))
        };
        if let Err(e) = checked.await {
            let _ = std::fs::remove_file(&staged);
            return Err(e);
        }
        std::fs::rename(&staged, &target).map_err(io)?;
        Ok(true)
    }

    /// `DROP CATALOG name`: removes the catalog's file (`NAME.toml` or `NAME.properties`); the
    /// caller then [`reload`](CatalogRegistry::reload)s. `Ok(false)`: there was none and
    /// `if_exists` was given. A built-in catalog (no file) cannot be dropped.
    pub fn drop_catalog_file(&self, name: &str, if_exists: bool) -> Result<bool, CatalogDdlError> {
        let dir = self
            .inner
            .dir
            .as_deref()
            .ok_or(CatalogDdlError::NoDirectory)?;
        let files: Vec<PathBuf> = if is_catalog_name(name) {
            ["toml", "properties"]
                .iter()
                .map(|x| dir.join(format!("{name}.{x}")))
                .filter(|p| p.exists())
                .collect()
        } else {
            Vec::new()
        };
        if files.is_empty() {
            if self.inner.mounted.read().contains_key(name) {
                return Err(CatalogDdlError::BuiltIn(name.to_string()));
            }
            return if if_exists {
                Ok(false)
            } else {
                Err(CatalogDdlError::Missing(name.to_string()))
            };
        }
        for file in files {
            std::fs::remove_file(&file)
                .map_err(|e| CatalogDdlError::Io(format!("{}: {e}", file.display())))?;
        }
        Ok(true)
    }

    /// The directory catalogs are read from, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.inner.dir.as_deref()
    }

    /// Catalog names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.inner.mounted.read().keys().cloned().collect()
    }

    /// The connector mounted as `name`, if any.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Connector>> {
        self.inner
            .mounted
            .read()
            .get(name)
            .map(|m| Arc::clone(&m.connector))
    }

    /// Every connector, by catalog name (sorted): a snapshot.
    pub fn connectors(&self) -> Vec<(String, Arc<dyn Connector>)> {
        self.inner
            .mounted
            .read()
            .iter()
            .map(|(name, m)| (name.clone(), Arc::clone(&m.connector)))
            .collect()
    }

    /// The catalogs as DataFusion sees them (one list for the registry's lifetime, changed in place
    /// by [`CatalogRegistry::reload`]).
    pub fn catalog_list(&self) -> Arc<dyn CatalogProviderList> {
        self.inner.list.clone()
    }
}

/// A Trino catalog file's text: `connector.name` then the properties (strings as they are, other
/// values in their SQL form), escaped as Java properties.
fn properties_text(
    connector: &str,
    properties: &[(String, toml::Value)],
) -> Result<String, CatalogDdlError> {
    let invalid = |key: &str, e: java_properties::PropertiesError| {
        CatalogDdlError::Invalid(format!("property `{key}`: {e}"))
    };
    let mut text = Vec::new();
    let mut writer = java_properties::PropertiesWriter::new(&mut text);
    writer
        .write("connector.name", connector)
        .map_err(|e| invalid("connector.name", e))?;
    for (key, value) in properties {
        let value = match value {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        writer.write(key, &value).map_err(|e| invalid(key, e))?;
    }
    writer.finish().map_err(|e| invalid("", e))?;
    drop(writer);
    Ok(String::from_utf8_lossy(&text).into_owned())
}
