//! `lake` connector (placeholder, being written).
#[derive(Debug)]
pub struct LakeConnector;
impl LakeConnector {
    pub async fn from_config(_name: &str, _c: &toml::Table) -> Result<Self, crate::ConnectorError> { Ok(Self) }
}
impl crate::Connector for LakeConnector {
    fn kind(&self) -> &'static str { "lake" }
    fn catalog(&self) -> std::sync::Arc<dyn datafusion::catalog::CatalogProvider> {
        std::sync::Arc::new(datafusion::catalog::MemoryCatalogProvider::new())
    }
}
