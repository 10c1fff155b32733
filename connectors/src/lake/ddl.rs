//! `CREATE SCHEMA`, `DROP SCHEMA`, `CREATE TABLE`, `DROP TABLE` on a lake catalog, and the
//! `CREATE TABLE AS` target.
//!
//! A DDL statement is planned as a scan of a one-row "table" ([`LakeCatalog::ddl`]) whose plan,
//! [`LakeDdlExec`], makes the change when it runs (in the root stage, on the coordinator), so that
//! planning (`Parse` of the extended protocol) changes nothing. Errors carry PostgreSQL's SQLSTATEs:
//! `42P06` duplicate_schema, `42P07` duplicate_table, `3F000` invalid_schema_name, `42P01`
//! undefined_table, `2BP01` dependent_objects_still_exist, `0A000` for a property the lake does not
//! have, `22023` for a bad property value, `58030` for a storage failure.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DataFusionError, Result, internal_err};
use datafusion::datasource::TableType;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};

use super::managed::{self, TableMeta};
use super::table::WriteTarget;
use super::write::{WriteSpec, count_schema};
use super::{LakeCatalog, LakeSchema, discover};
use crate::sqlstate;

/// A table to create: its columns and Trino's table properties.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTable {
    /// The columns; the partition columns must be the last ones, in `partitioned_by` order (Trino's
    /// rule).
    pub columns: SchemaRef,
    /// `format` property; only `PARQUET` (any case) is supported. `None` = Parquet.
    pub format: Option<String>,
    /// `partitioned_by` property: Hive partition columns, outermost first.
    pub partitioned_by: Vec<String>,
}

/// One DDL statement on a lake catalog.
#[derive(Debug, Clone, PartialEq)]
pub enum LakeDdl {
    /// `CREATE SCHEMA [IF NOT EXISTS] name [WITH (location = '...')]`.
    CreateSchema {
        /// Schema name.
        name: String,
        /// `location` property: must be the schema's directory under the catalog location.
        location: Option<String>,
        /// `IF NOT EXISTS`.
        if_not_exists: bool,
    },
    /// `DROP SCHEMA [IF EXISTS] name [CASCADE]`: deletes the directory (with its tables under
    /// CASCADE; a schema with tables is refused otherwise).
    DropSchema {
        /// Schema name.
        name: String,
        /// `IF EXISTS`.
        if_exists: bool,
        /// `CASCADE`.
        cascade: bool,
    },
    /// `CREATE TABLE [IF NOT EXISTS] schema.table (columns) [WITH (...)]`: an empty managed table.
    CreateTable {
        /// Schema name.
        schema: String,
        /// Table name.
        table: String,
        /// Columns and properties.
        new: NewTable,
        /// `IF NOT EXISTS`.
        if_not_exists: bool,
    },
    /// `DROP TABLE [IF EXISTS] schema.table`: deletes the table's files and metadata.
    DropTable {
        /// Schema name.
        schema: String,
        /// Table name.
        table: String,
        /// `IF EXISTS`.
        if_exists: bool,
    },
    /// Nothing to do (`CREATE TABLE IF NOT EXISTS ... AS` of an existing table).
    Nothing,
}

/// An error with a SQLSTATE for the client.
fn sql_error(code: &str, message: String) -> DataFusionError {
    crate::ConnectorError::sql(code, message)
}

impl NewTable {
    /// The managed table's metadata: Parquet, every column nullable.
    /// Errors (`0A000`, `22023`): another format, an unknown or repeated partition column, every
    /// column a partition column, partition columns that are not the last columns in order.
    fn meta(&self) -> Result<TableMeta> {
        if let Some(format) = &self.format
            && !format.eq_ignore_ascii_case("parquet")
        {
            return Err(sql_error(
                sqlstate::FEATURE_NOT_SUPPORTED,
                format!(
                    "table format '{format}' is not supported: lake tables are written as PARQUET"
                ),
            ));
        }
        for (i, name) in self.partitioned_by.iter().enumerate() {
            if self.partitioned_by[..i].contains(name) {
                return Err(sql_error(
                    sqlstate::INVALID_PARAMETER_VALUE,
                    format!("partition column \"{name}\" is listed twice"),
                ));
            }
            if self.columns.field_with_name(name).is_err() {
                return Err(sql_error(
                    sqlstate::INVALID_PARAMETER_VALUE,
                    format!("partition column \"{name}\" is not a column of the table"),
                ));
            }
        }
        let fields = self.columns.fields();
        if self.partitioned_by.len() >= fields.len() {
            return Err(sql_error(
                sqlstate::INVALID_PARAMETER_VALUE,
                "a table cannot be partitioned by all of its columns".into(),
            ));
        }
        // As in Trino: the partition columns are the last columns, in `partitioned_by` order (the
        // order readers see them in, and the order a positional INSERT fills them in).
        let last: Vec<&String> = fields[fields.len() - self.partitioned_by.len()..]
            .iter()
            .map(|f| f.name())
            .collect();
        if last.iter().zip(&self.partitioned_by).any(|(a, b)| *a != b) {
            return Err(sql_error(
                sqlstate::INVALID_PARAMETER_VALUE,
                format!(
                    "partition columns must be the last columns of the table, in partitioned_by \
                     order: expected the columns to end with {}, they end with {}",
                    self.partitioned_by.join(", "),
                    last.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let data: Vec<_> = fields
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        Ok(TableMeta::parquet(
            &Schema::new(data),
            self.partitioned_by.clone(),
        ))
    }
}

/// A catalog that accepts Trino's DDL and `CREATE TABLE AS` (`lake`, `iceberg`): what the planner's
/// write path ([`crate::Connector::writable`]) works with.
#[async_trait]
pub trait WritableCatalog: fmt::Debug + Send + Sync {
    /// The catalog's name.
    fn name(&self) -> &str;

    /// `CREATE SCHEMA [IF NOT EXISTS] name [WITH (location = ...)]`.
    async fn create_schema(
        &self,
        name: &str,
        location: Option<&str>,
        if_not_exists: bool,
    ) -> Result<()>;

    /// `DROP SCHEMA [IF EXISTS] name [CASCADE]`.
    async fn drop_schema(&self, name: &str, if_exists: bool, cascade: bool) -> Result<()>;

    /// `CREATE TABLE [IF NOT EXISTS] schema.table (columns) [WITH (...)]`: an empty table.
    async fn create_table(
        &self,
        schema: &str,
        table: &str,
        new: &NewTable,
        if_not_exists: bool,
    ) -> Result<()>;

    /// `DROP TABLE [IF EXISTS] schema.table`: the table and its files.
    async fn drop_table(&self, schema: &str, table: &str, if_exists: bool) -> Result<()>;

    /// Called after each DDL statement ran, whether it failed or not (the Iceberg catalog refreshes
    /// its cached listing). Nothing by default.
    async fn ddl_done(&self) {}

    /// Makes schema `name`, which another node may have created since this one listed the catalog,
    /// known here when it exists (a worker resolving a table the coordinator named). By default
    /// what [`WritableCatalog::ddl_done`] does. Errors: the storage cannot be listed.
    async fn discover_schema(&self, name: &str) -> Result<()> {
        let _ = name;
        self.ddl_done().await;
        Ok(())
    }

    /// Runs `ddl` (in the root stage, on the coordinator). Errors: see the module docs.
    async fn run_ddl(&self, ddl: &LakeDdl) -> Result<()> {
        let result = match ddl {
            LakeDdl::CreateSchema {
                name,
                location,
                if_not_exists,
            } => {
                self.create_schema(name, location.as_deref(), *if_not_exists)
                    .await
            }
            LakeDdl::DropSchema {
                name,
                if_exists,
                cascade,
            } => self.drop_schema(name, *if_exists, *cascade).await,
            LakeDdl::CreateTable {
                schema,
                table,
                new,
                if_not_exists,
            } => self.create_table(schema, table, new, *if_not_exists).await,
            LakeDdl::DropTable {
                schema,
                table,
                if_exists,
            } => self.drop_table(schema, table, *if_exists).await,
            LakeDdl::Nothing => Ok(()),
        };
        self.ddl_done().await;
        result
    }

    /// The target of `CREATE TABLE schema.table AS ...` with the query's `new.columns`: a provider
    /// whose `insert_into` plans the write and the commit that creates the table, and whose schema
    /// is what the query's columns are cast to first. `Ok(None)` when the table exists and
    /// `if_not_exists`. Errors: `3F000` no such schema, `42P07` the table exists, `0A000` / `22023`
    /// for properties or column types the catalog cannot store.
    async fn create_table_as(
        &self,
        schema: &str,
        table: &str,
        new: &NewTable,
        if_not_exists: bool,
    ) -> Result<Option<Arc<dyn TableProvider>>>;
}

/// A provider whose scan runs `ddl` on `catalog` when executed ([`LakeDdlExec`]); its one column is
/// `count` (UInt64, always 0).
pub fn ddl_provider(catalog: Arc<dyn WritableCatalog>, ddl: LakeDdl) -> Arc<dyn TableProvider> {
    Arc::new(DdlTable { catalog, ddl })
}

#[async_trait]
impl WritableCatalog for LakeCatalog {
    fn name(&self) -> &str {
        &self.lake.catalog
    }

    async fn discover_schema(&self, name: &str) -> Result<()> {
        self.find_schema(name).await.map(|_| ())
    }

    async fn create_schema(
        &self,
        name: &str,
        location: Option<&str>,
        if_not_exists: bool,
    ) -> Result<()> {
        if let Some(location) = location {
            let expected = format!("{}/{name}", self.lake.config.display_location());
            if location.trim_end_matches('/') != expected {
                return Err(sql_error(
                    sqlstate::FEATURE_NOT_SUPPORTED,
                    format!(
                        "schema location '{location}' is not supported: a lake schema is the directory {expected}/"
                    ),
                ));
            }
        }
        if self.find_schema(name).await?.is_some() {
            if if_not_exists {
                return Ok(());
            }
            return Err(sql_error(
                sqlstate::DUPLICATE_SCHEMA,
                format!("schema \"{name}\" already exists"),
            ));
        }
        self.lake
            .operator
            .create_dir(&format!("{name}/"))
            .await
            .map_err(|e| self.storage_error(&format!("cannot create schema `{name}`"), &e))?;
        let schema = LakeSchema::new(Arc::clone(&self.lake), name, Default::default());
        self.schemas
            .write()
            .insert(name.to_string(), Arc::new(schema));
        tracing::info!(
            catalog = self.lake.catalog,
            schema = name,
            "lake: schema created"
        );
        Ok(())
    }

    async fn drop_schema(&self, name: &str, if_exists: bool, cascade: bool) -> Result<()> {
        let Some(schema) = self.find_schema(name).await? else {
            if if_exists {
                return Ok(());
            }
            return Err(sql_error(
                sqlstate::UNDEFINED_SCHEMA,
                format!("schema \"{name}\" does not exist"),
            ));
        };
        schema.refresh().await?;
        if !cascade && !schema.tables.read().is_empty() {
            return Err(sql_error(
                sqlstate::DEPENDENT_OBJECTS_STILL_EXIST,
                format!("cannot drop schema \"{name}\" because it has tables (use CASCADE)"),
            ));
        }
        self.schemas.write().remove(name);
        self.lake
            .operator
            .delete_with(&format!("{name}/"))
            .recursive(true)
            .await
            .map_err(|e| self.storage_error(&format!("cannot delete schema `{name}`"), &e))?;
        tracing::info!(
            catalog = self.lake.catalog,
            schema = name,
            "lake: schema dropped"
        );
        Ok(())
    }

    async fn create_table(
        &self,
        schema_name: &str,
        table: &str,
        new: &NewTable,
        if_not_exists: bool,
    ) -> Result<()> {
        let Some((meta, schema)) = self
            .new_table(schema_name, table, new, if_not_exists)
            .await?
        else {
            return Ok(());
        };
        let json = serde_json::to_vec_pretty(&meta)
            .map_err(|e| DataFusionError::Internal(e.to_string()))?;
        let dir = format!("{schema_name}/{table}/");
        self.lake
            .operator
            .write(&managed::meta_path(&dir), json)
            .await
            .map_err(|e| self.storage_error(&format!("cannot create table `{table}`"), &e))?;
        schema.refresh().await?;
        tracing::info!(
            catalog = self.lake.catalog,
            schema = schema_name,
            table,
            "lake: table created"
        );
        Ok(())
    }

    async fn drop_table(&self, schema_name: &str, table: &str, if_exists: bool) -> Result<()> {
        let missing = || {
            sql_error(
                sqlstate::UNDEFINED_TABLE,
                format!("table \"{schema_name}.{table}\" does not exist"),
            )
        };
        let Some(schema) = self.find_schema(schema_name).await? else {
            return if if_exists { Ok(()) } else { Err(missing()) };
        };
        schema.refresh().await?;
        let Some(entry) = schema.tables.read().get(table).cloned() else {
            return if if_exists { Ok(()) } else { Err(missing()) };
        };
        let op = &self.lake.operator;
        let deleted = async {
            if entry.managed {
                // The metadata first: readers stop seeing the table before its files go.
                op.delete(&managed::meta_path(&entry.path)).await?;
            }
            if entry.path.ends_with('/') {
                op.delete_with(&entry.path).recursive(true).await
            } else {
                op.delete(&entry.path).await
            }
        }
        .await;
        schema.tables.write().remove(table);
        schema.providers.write().remove(table);
        deleted.map_err(|e| self.storage_error(&format!("cannot delete table `{table}`"), &e))?;
        tracing::info!(
            catalog = self.lake.catalog,
            schema = schema_name,
            table,
            "lake: table dropped"
        );
        Ok(())
    }

    async fn create_table_as(
        &self,
        schema: &str,
        table: &str,
        new: &NewTable,
        if_not_exists: bool,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        LakeCatalog::create_table_as(self, schema, table, new, if_not_exists).await
    }
}

impl LakeCatalog {
    /// The target of `CREATE TABLE schema.table AS ...` with the query's `new.columns`: a provider
    /// whose `insert_into` plans the write and the commit that creates the table
    /// ([`super::write`]). `Ok(None)` when the table exists and `if_not_exists`.
    ///
    /// Errors: `3F000` no such schema, `42P07` the table (or its directory) exists, the property
    /// errors of [`NewTable`], `58030` when the storage cannot be listed.
    pub async fn create_table_as(
        &self,
        schema: &str,
        table: &str,
        new: &NewTable,
        if_not_exists: bool,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some((meta, _)) = self.new_table(schema, table, new, if_not_exists).await? else {
            return Ok(None);
        };
        let schema_ref = meta.schema().map_err(DataFusionError::Plan)?;
        Ok(Some(Arc::new(WriteTarget {
            lake: Arc::clone(&self.lake),
            spec: WriteSpec {
                catalog: self.lake.catalog.clone(),
                table_dir: format!("{schema}/{table}/"),
                partitioned_by: meta.partitioned_by.clone(),
                create: Some(meta),
                field_ids: Vec::new(),
                keep_partition_columns: false,
            },
            schema: schema_ref,
            publisher: None,
        })))
    }

    fn storage_error(&self, what: &str, e: &dyn fmt::Display) -> DataFusionError {
        sql_error(sqlstate::IO_ERROR, self.lake.message(what, e))
    }

    /// The schema `name`, re-listing the location when this node does not know it yet.
    async fn find_schema(&self, name: &str) -> Result<Option<Arc<LakeSchema>>> {
        if let Some(schema) = self.schemas.read().get(name) {
            return Ok(Some(Arc::clone(schema)));
        }
        let names = discover::list_schemas(&self.lake.operator)
            .await
            .map_err(|e| self.storage_error("cannot list the location", &e))?;
        if !names.iter().any(|n| n == name) {
            return Ok(None);
        }
        let tables = self
            .lake
            .list_tables(name)
            .await
            .map_err(|e| self.storage_error(&format!("cannot list schema `{name}`"), &e))?;
        let schema = Arc::new(LakeSchema::new(Arc::clone(&self.lake), name, tables));
        self.schemas
            .write()
            .entry(name.to_string())
            .or_insert_with(|| Arc::clone(&schema));
        Ok(Some(schema))
    }

    async fn existing_schema(&self, name: &str) -> Result<Arc<LakeSchema>> {
        self.find_schema(name).await?.ok_or_else(|| {
            sql_error(
                sqlstate::UNDEFINED_SCHEMA,
                format!("schema \"{name}\" does not exist"),
            )
        })
    }

    /// Whether `table` exists in `schema` or its directory holds anything (a half-created table).
    async fn table_taken(&self, schema: &LakeSchema, table: &str) -> Result<bool> {
        schema.refresh().await?;
        if schema.tables.read().contains_key(table) {
            return Ok(true);
        }
        let dir = format!("{}/{table}/", schema.name);
        match self.lake.operator.list(&dir).await {
            Ok(entries) => Ok(entries.iter().any(|e| e.path() != dir)),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.storage_error(&format!("cannot list `{dir}`"), &e)),
        }
    }

    /// What creating `schema.table` from `new` starts with: the table's metadata and its schema's
    /// provider; `Ok(None)` when the table exists and `if_not_exists`.
    /// Errors: [`NewTable::meta`]'s, `3F000` no such schema, `42P07` the table (or its directory)
    /// exists, `58030` when the storage cannot be listed.
    async fn new_table(
        &self,
        schema: &str,
        table: &str,
        new: &NewTable,
        if_not_exists: bool,
    ) -> Result<Option<(TableMeta, Arc<LakeSchema>)>> {
        let meta = new.meta()?;
        let provider = self.existing_schema(schema).await?;
        if self.table_taken(&provider, table).await? {
            if if_not_exists {
                return Ok(None);
            }
            return Err(sql_error(
                sqlstate::DUPLICATE_TABLE,
                format!("relation \"{schema}.{table}\" already exists"),
            ));
        }
        Ok(Some((meta, provider)))
    }
}

/// The one-row "table" a DDL statement is planned as (see the module docs).
#[derive(Debug)]
struct DdlTable {
    catalog: Arc<dyn WritableCatalog>,
    ddl: LakeDdl,
}

#[async_trait]
impl TableProvider for DdlTable {
    fn schema(&self) -> SchemaRef {
        count_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(LakeDdlExec::new(
            Arc::clone(&self.catalog),
            self.ddl.clone(),
        )))
    }
}

/// Runs one [`LakeDdl`] when executed (one partition, one `count` row of 0). Never shipped to a
/// worker (the plan codec has no form for it), so it runs in the root stage on the coordinator,
/// whose catalog it updates.
#[derive(Debug)]
pub struct LakeDdlExec {
    catalog: Arc<dyn WritableCatalog>,
    ddl: LakeDdl,
    properties: Arc<PlanProperties>,
}

impl LakeDdlExec {
    fn new(catalog: Arc<dyn WritableCatalog>, ddl: LakeDdl) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(count_schema()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Self {
            catalog,
            ddl,
            properties,
        }
    }
}

impl DisplayAs for LakeDdlExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "LakeDdl: {}: {:?}", self.catalog.name(), self.ddl)
    }
}

impl ExecutionPlan for LakeDdlExec {
    fn name(&self) -> &'static str {
        "LakeDdlExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    crate::scan_leaf::leaf_exec_methods!();

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return internal_err!("LakeDdlExec has one partition, not {partition}");
        }
        let catalog = Arc::clone(&self.catalog);
        let ddl = self.ddl.clone();
        let future = async move {
            catalog.run_ddl(&ddl).await?;
            Ok(RecordBatch::try_new(
                count_schema(),
                vec![Arc::new(UInt64Array::from(vec![0u64])) as ArrayRef],
            )?)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            count_schema(),
            futures::stream::once(future),
        )))
    }
}
