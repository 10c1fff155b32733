//! Built-in `tpch` connector (placeholder, being written).
#[derive(Debug, Default)]
pub struct TpchConnector;
impl TpchConnector { pub fn new() -> Self { Self } }
impl crate::Connector for TpchConnector {
    fn kind(&self) -> &'static str { "tpch" }
    fn catalog(&self) -> std::sync::Arc<dyn datafusion::catalog::CatalogProvider> {
        std::sync::Arc::new(datafusion::catalog::MemoryCatalogProvider::new())
    }
}
