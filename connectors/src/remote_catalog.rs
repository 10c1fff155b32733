//! The catalog and schema providers shared by connectors whose metadata lives in a remote database
//! (`postgres`, `mysql`): a lazily fetched, cached [`Snapshot`] of schemas and tables, so a catalog whose
//! source is down still loads and its queries fail clearly until the source is back.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider};
use datafusion::datasource::TableProvider;
use datafusion::error::DataFusionError;

use crate::ConnectorError;

/// A snapshot of a source's schemas and, per schema, its tables' metadata `T`.
#[derive(Debug)]
pub(crate) struct Snapshot<T> {
    pub(crate) schemas: BTreeMap<String, BTreeMap<String, Arc<T>>>,
}

impl<T> Default for Snapshot<T> {
    fn default() -> Self {
        Self {
            schemas: BTreeMap::new(),
        }
    }
}

/// What a connector provides so [`RemoteCatalog`] can serve its metadata.
#[async_trait]
pub(crate) trait MetadataSource: Debug + Send + Sync + 'static {
    /// Metadata of one table.
    type Table: Debug + Send + Sync + 'static;
    /// Whether the catalog shows `schema` (include / exclude lists).
    fn schema_included(&self, schema: &str) -> bool;
    /// The cached snapshot, if metadata was loaded.
    fn cached(&self) -> Option<Arc<Snapshot<Self::Table>>>;
    /// Starts a background load when nothing is cached.
    fn prefetch(self: &Arc<Self>);
    /// The snapshot, loading it when none is cached; with `force`, reloading it if it is not recent.
    async fn load(&self, force: bool) -> Result<Arc<Snapshot<Self::Table>>, ConnectorError>;
    /// The table provider for `table`.
    fn table_provider(self: &Arc<Self>, table: Arc<Self::Table>) -> Arc<dyn TableProvider>;
}

/// The catalog of one remote database.
#[derive(Debug)]
pub(crate) struct RemoteCatalog<S> {
    shared: Arc<S>,
}

impl<S> RemoteCatalog<S> {
    pub(crate) fn new(shared: Arc<S>) -> Self {
        Self { shared }
    }
}

impl<S: MetadataSource> CatalogProvider for RemoteCatalog<S> {
    /// The cached schema names; empty (and a fetch started) until metadata was first loaded.
    fn schema_names(&self) -> Vec<String> {
        match self.shared.cached() {
            Some(meta) => meta.schemas.keys().cloned().collect(),
            None => {
                self.shared.prefetch();
                Vec::new()
            }
        }
    }

    /// Any included schema name before metadata is loaded (tables are checked when looked up), else
    /// the schemas of the snapshot.
    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if !self.shared.schema_included(name) {
            return None;
        }
        Some(Arc::new(RemoteSchema {
            shared: Arc::clone(&self.shared),
            name: name.to_string(),
        }))
    }
}

/// One schema of the source.
#[derive(Debug)]
struct RemoteSchema<S> {
    shared: Arc<S>,
    name: String,
}

fn to_df(e: ConnectorError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

#[async_trait]
impl<S: MetadataSource> SchemaProvider for RemoteSchema<S> {
    fn table_names(&self) -> Vec<String> {
        match self.shared.cached() {
            Some(meta) => meta
                .schemas
                .get(&self.name)
                .map(|t| t.keys().cloned().collect())
                .unwrap_or_default(),
            None => {
                self.shared.prefetch();
                Vec::new()
            }
        }
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        let lookup = |meta: &Snapshot<S::Table>| {
            meta.schemas
                .get(&self.name)
                .and_then(|t| t.get(name))
                .cloned()
        };
        let meta = self.shared.load(false).await.map_err(to_df)?;
        let found = match lookup(&meta) {
            Some(t) => Some(t),
            // Unknown table: maybe created since the snapshot.
            None => lookup(&*self.shared.load(true).await.map_err(to_df)?),
        };
        Ok(found.map(|t| self.shared.table_provider(t)))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.shared.cached().is_some_and(|meta| {
            meta.schemas
                .get(&self.name)
                .is_some_and(|t| t.contains_key(name))
        })
    }
}
