//! The catalog registry: every mounted catalog by name, built from `DIR/catalog/*.toml` (and Trino's
//! `DIR/catalog/*.properties`, see [`crate::trino_catalog`]) plus the built-in `tpch` and `system`
//! catalogs.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use datafusion::catalog::{CatalogProviderList, MemoryCatalogProviderList};
use tributary_connectors::system::{RuntimeInfo, SystemConnector};
use tributary_connectors::tpch::TpchConnector;
use tributary_connectors::{Connector, build_connector};

use crate::config::{ConfigError, read_toml};

/// All catalogs of this server, by name. Immutable once built; shared by every session.
#[derive(Debug, Clone)]
pub struct CatalogRegistry {
    connectors: BTreeMap<String, Arc<dyn Connector>>,
    list: Arc<MemoryCatalogProviderList>,
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
        let mut connectors: BTreeMap<String, Arc<dyn Connector>> = BTreeMap::new();
        connectors.insert("tpch".into(), Arc::new(TpchConnector::new()));
        connectors.insert("system".into(), Arc::new(SystemConnector::new(runtime)));
        if let Some(dir) = catalog_dir.filter(|d| d.is_dir()) {
            let mut files: Vec<_> = std::fs::read_dir(dir)
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
            files.sort();
            let mut seen: BTreeMap<String, std::path::PathBuf> = BTreeMap::new();
            for file in files {
                let name = file
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default()
                    .to_string();
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(ConfigError {
                        file,
                        reason: "catalog name (the file name) must be letters, digits and `_`"
                            .into(),
                    });
                }
                if let Some(other) = seen.insert(name.clone(), file.clone()) {
                    return Err(ConfigError {
                        file,
                        reason: format!(
                            "catalog `{name}` is also defined by {}: keep one of the two files",
                            other.display()
                        ),
                    });
                }
                let table = if file.extension().is_some_and(|x| x == "properties") {
                    crate::trino_catalog::read_properties(&file)?
                } else {
                    read_toml(&file)?
                };
                let connector = build_connector(&name, &table)
                    .await
                    .map_err(|e| ConfigError {
                        file: file.clone(),
                        reason: e.to_string(),
                    })?;
                connectors.insert(name, connector);
            }
        }
        let list = Arc::new(MemoryCatalogProviderList::new());
        for (name, connector) in &connectors {
            list.register_catalog(name.clone(), connector.catalog());
        }
        Ok(Self { connectors, list })
    }

    /// Catalog names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.connectors.keys().cloned().collect()
    }

    /// The connector mounted as `name`, if any.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Connector>> {
        self.connectors.get(name)
    }

    /// Every connector, by catalog name.
    pub fn connectors(&self) -> impl Iterator<Item = (&String, &Arc<dyn Connector>)> {
        self.connectors.iter()
    }

    /// The catalogs as DataFusion sees them.
    pub fn catalog_list(&self) -> Arc<dyn CatalogProviderList> {
        self.list.clone()
    }
}
