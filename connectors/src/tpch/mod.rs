//! Built-in `tpch` connector, after Trino's: TPC-H data generated on the fly, never stored.
//!
//! Schemas `tiny` (scale factor 0.01), `sf1`, `sf10`, `sf100` and `sf1000` each hold the eight TPC-H
//! tables (`nation`, `region`, `part`, `supplier`, `partsupp`, `customer`, `orders`, `lineitem`), with
//! the TPC-H column names including their prefixes (`l_orderkey`) and the types `tpchgen-arrow`
//! produces (Int64 keys, Decimal128(15, 2) money, Date32 dates, Utf8View text). Unlike Trino's
//! default, column names keep their prefixes. `nation` and `region` are the same in every schema.
//!
//! A scan is a [`TpchScanExec`] with one partition per split; a split is one `tpchgen` generator part.
//! The split count is `ceil(rows / 50_000)` capped at 4096 (see [`TpchTable::split_count`]).

mod scan;
mod table;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{CatalogProvider, SchemaProvider, Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::{DataFusionError, Statistics};
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;

use crate::{ConnectorError, ConnectorFactory, ConnectorKind, ScanSpec};

pub use scan::{TpchScanExec, TpchSplit};
pub use table::{MAX_SPLITS, TARGET_SPLIT_ROWS, TpchTable};

/// This connector's kind, as catalog files name it (`connector = "tpch"`).
pub const KIND: ConnectorKind = ConnectorKind::new("tpch");

/// The `tpch` entry of [`crate::FACTORIES`]: no config keys; encodes [`TpchScanExec`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct Factory;

#[async_trait]
impl ConnectorFactory for Factory {
    fn kind(&self) -> ConnectorKind {
        KIND
    }

    async fn build(
        &self,
        name: &str,
        config: &toml::Table,
    ) -> Result<Arc<dyn crate::Connector>, ConnectorError> {
        let _ = (name, config);
        Ok(Arc::new(TpchConnector::new()))
    }

    fn encode_scan(&self, plan: &dyn ExecutionPlan) -> Option<ScanSpec> {
        plan.downcast_ref::<TpchScanExec>()
            .map(TpchScanExec::to_spec)
    }
}

/// The tpch schemas and their TPC-H scale factors, as in Trino's tpch connector.
pub const SCHEMAS: [(&str, f64); 5] = [
    ("tiny", 0.01),
    ("sf1", 1.0),
    ("sf10", 10.0),
    ("sf100", 100.0),
    ("sf1000", 1000.0),
];

/// The `tpch` connector (kind `tpch`, no config keys): a read-only catalog of generated TPC-H data.
#[derive(Debug, Clone)]
pub struct TpchConnector {
    catalog: Arc<TpchCatalog>,
}

impl TpchConnector {
    /// The connector with all schemas of [`SCHEMAS`]. Cheap: nothing is generated until a scan runs.
    pub fn new() -> Self {
        Self {
            catalog: Arc::new(TpchCatalog),
        }
    }
}

impl Default for TpchConnector {
    fn default() -> Self {
        Self::new()
    }
}

impl crate::Connector for TpchConnector {
    fn kind(&self) -> ConnectorKind {
        KIND
    }

    fn catalog(&self) -> Arc<dyn CatalogProvider> {
        Arc::clone(&self.catalog) as Arc<dyn CatalogProvider>
    }

    /// Any tpch connector rebuilds a tpch scan: its rows are generated from the spec alone.
    fn decode_scan(
        &self,
        spec: &ScanSpec,
        schema: SchemaRef,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(TpchScanExec::from_spec(spec, &schema)?))
    }
}

/// The tpch catalog: one schema per entry of [`SCHEMAS`]. Read-only.
#[derive(Debug, Clone, Copy, Default)]
pub struct TpchCatalog;

impl CatalogProvider for TpchCatalog {
    fn schema_names(&self) -> Vec<String> {
        SCHEMAS
            .iter()
            .map(|(name, _)| (*name).to_string())
            .collect()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        SCHEMAS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, sf)| Arc::new(TpchSchema::new(*n, *sf)) as Arc<dyn SchemaProvider>)
    }
}

/// One tpch schema: the eight TPC-H tables at one scale factor.
#[derive(Debug, Clone)]
pub struct TpchSchema {
    name: String,
    scale_factor: f64,
}

impl TpchSchema {
    /// The schema called `name` (used in plan display) generating data at `scale_factor`.
    pub fn new(name: impl Into<String>, scale_factor: f64) -> Self {
        Self {
            name: name.into(),
            scale_factor,
        }
    }
}

#[async_trait]
impl SchemaProvider for TpchSchema {
    fn table_names(&self) -> Vec<String> {
        TpchTable::ALL
            .iter()
            .map(|t| t.name().to_string())
            .collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        Ok(TpchTable::from_name(name).map(|table| {
            Arc::new(TpchTableProvider::new(&self.name, table, self.scale_factor))
                as Arc<dyn TableProvider>
        }))
    }

    fn table_exist(&self, name: &str) -> bool {
        TpchTable::from_name(name).is_some()
    }
}

/// A tpch table at one scale factor, as a DataFusion table. Supports projection and limit pushdown
/// (filters are applied above the scan) and reports its exact row count.
#[derive(Debug, Clone)]
pub struct TpchTableProvider {
    schema_name: String,
    table: TpchTable,
    scale_factor: f64,
}

impl TpchTableProvider {
    /// `table` at `scale_factor`, planned under schema `schema_name`.
    pub fn new(schema_name: impl Into<String>, table: TpchTable, scale_factor: f64) -> Self {
        Self {
            schema_name: schema_name.into(),
            table,
            scale_factor,
        }
    }
}

#[async_trait]
impl TableProvider for TpchTableProvider {
    fn schema(&self) -> SchemaRef {
        self.table.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(TpchScanExec::try_new(
            self.schema_name.clone(),
            self.table,
            self.scale_factor,
            self.table.split_count(self.scale_factor),
            projection.cloned(),
            limit,
        )?))
    }

    fn statistics(&self) -> Option<Statistics> {
        let (rows, exact) = self.table.row_count(self.scale_factor);
        let rows = usize::try_from(rows).ok()?;
        let rows = if exact {
            Precision::Exact(rows)
        } else {
            Precision::Inexact(rows)
        };
        let schema = self.table.schema();
        let mut statistics = Statistics::new_unknown(&schema).with_num_rows(rows);
        // The key columns' distinct counts, as the TPC-H specification fixes them (a join's
        // estimate divides by them: `c_nationkey` has 25 values however many customers there are).
        for (field, column) in schema
            .fields()
            .iter()
            .zip(&mut statistics.column_statistics)
        {
            let keyed = match field.name().split_once('_').map(|(_, key)| key) {
                Some("nationkey") => TpchTable::Nation,
                Some("regionkey") => TpchTable::Region,
                Some("partkey") => TpchTable::Part,
                Some("suppkey") => TpchTable::Supplier,
                Some("custkey") => TpchTable::Customer,
                Some("orderkey") => TpchTable::Orders,
                _ => continue,
            };
            let (keys, _) = keyed.row_count(self.scale_factor);
            if let Ok(keys) = usize::try_from(keys) {
                column.distinct_count = Precision::Inexact(keys);
            }
        }
        Some(statistics)
    }
}
