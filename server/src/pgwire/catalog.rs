//! PostgreSQL catalog emulation: a `pg_catalog` schema in every catalog, the `pg_*` functions clients
//! call, and the SQL rewrites that make their catalog queries plannable by DataFusion.
//!
//! Built on `datafusion-pg-catalog` (static PostgreSQL 17 rows for `pg_type`, `pg_proc`, `pg_am`, ...,
//! most UDFs, the oid type planner and the rewrite rules). What depends on our catalogs is ours:
//! `pg_namespace`, `pg_class`, `pg_attribute` and `pg_tables` list the schemas, tables and columns of
//! the session's catalog only (a PostgreSQL database shows its own objects), with OIDs from one
//! server-wide registry so they stay the same for the server's lifetime and across sessions.
//! `pg_table_is_visible` follows the session's schema, as `search_path` does in PostgreSQL.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::catalog::{CatalogProvider, CatalogProviderList, SchemaProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, SessionStateBuilder, TaskContext};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::SessionContext;
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::pg_catalog::{
    self as pgc, PgCatalogSchemaProvider, PgCatalogStaticTables,
};
use parking_lot::Mutex;

use super::session::SERVER_VERSION;

mod functions;
mod settings;
mod shapes;

/// The `pg_catalog` namespace OID every PostgreSQL cluster uses (the static rows reference it).
const PG_CATALOG_OID: u32 = 11;
const INFORMATION_SCHEMA_OID: u32 = 13_000;
/// The bootstrap superuser's OID, owner of everything.
const OWNER_OID: i32 = 10;
const PG_CATALOG: &str = "pg_catalog";
const INFORMATION_SCHEMA: &str = "information_schema";
/// Tables whose rows come from our catalogs; every other `pg_catalog` table is the library's.
const DYNAMIC_TABLES: &[&str] = &[
    "pg_namespace",
    "pg_class",
    "pg_attribute",
    "pg_tables",
    "pg_settings",
];

/// Server-wide catalog emulation state: OIDs and the library's static tables.
#[derive(Debug)]
pub struct PgCatalog {
    /// The registry's catalogs, as mounted (without `pg_catalog`).
    catalogs: Arc<dyn CatalogProviderList>,
    oids: Mutex<Oids>,
    /// The library's provider per catalog (static tables, `pg_settings`, `pg_roles`, `pg_database`...).
    library: Mutex<HashMap<String, Arc<dyn SchemaProvider>>>,
    static_tables: Arc<PgCatalogStaticTables>,
    /// Static tables rebuilt in PostgreSQL's shapes (vector columns as arrays), by name.
    reshaped: HashMap<&'static str, Arc<dyn TableProvider>>,
}

#[derive(Debug, Default)]
struct Oids {
    /// (catalog, schema, table or "") -> OID.
    by_key: HashMap<(String, String, String), u32>,
    /// OID -> (catalog, schema).
    namespace_of: HashMap<u32, (String, String)>,
    next: u32,
}

impl PgCatalog {
    pub fn new(catalogs: Arc<dyn CatalogProviderList>) -> Result<Arc<Self>> {
        let static_tables = Arc::new(PgCatalogStaticTables::try_new()?);
        let mut reshaped = HashMap::new();
        for (name, table) in [
            ("pg_index", &static_tables.pg_index),
            ("pg_constraint", &static_tables.pg_constraint),
        ] {
            if let Some(provider) = shapes::reshape_static(name, table.schema(), table.data())? {
                reshaped.insert(name, provider);
            }
        }
        Ok(Arc::new(Self {
            catalogs,
            oids: Mutex::new(Oids {
                next: 16_384,
                ..Default::default()
            }),
            library: Mutex::new(HashMap::new()),
            static_tables,
            reshaped,
        }))
    }

    /// The OID of a schema (`table` empty) or table, assigned on first sight and kept for the
    /// server's lifetime.
    fn oid(&self, catalog: &str, schema: &str, table: &str) -> u32 {
        if table.is_empty() {
            match schema {
                PG_CATALOG => return PG_CATALOG_OID,
                INFORMATION_SCHEMA => return INFORMATION_SCHEMA_OID,
                _ => {}
            }
        }
        let mut oids = self.oids.lock();
        let key = (catalog.to_string(), schema.to_string(), table.to_string());
        if let Some(oid) = oids.by_key.get(&key) {
            return *oid;
        }
        let oid = oids.next;
        oids.next += 1;
        oids.by_key.insert(key, oid);
        oids.namespace_of
            .insert(oid, (catalog.to_string(), schema.to_string()));
        oid
    }

    /// The schema of a table or namespace OID, if it is one of ours.
    fn schema_of(&self, oid: u32) -> Option<String> {
        match oid {
            PG_CATALOG_OID => Some(PG_CATALOG.into()),
            INFORMATION_SCHEMA_OID => Some(INFORMATION_SCHEMA.into()),
            _ => self
                .oids
                .lock()
                .namespace_of
                .get(&oid)
                .map(|(_, s)| s.clone()),
        }
    }

    fn library(&self, catalog: &str) -> Result<Arc<dyn SchemaProvider>> {
        let mut library = self.library.lock();
        if let Some(provider) = library.get(catalog) {
            return Ok(provider.clone());
        }
        let provider: Arc<dyn SchemaProvider> = Arc::new(PgCatalogSchemaProvider::try_new(
            self.catalogs.clone(),
            self.static_tables.clone(),
            EmptyContextProvider,
        )?);
        library.insert(catalog.to_string(), provider.clone());
        Ok(provider)
    }

    /// Installs the emulation into a session's context: `pg_catalog` in every catalog, the `pg_*`
    /// functions (with `catalog`, `schema` and `user` of this session), the oid type planner.
    pub fn install(
        self: &Arc<Self>,
        ctx: &SessionContext,
        catalog: &str,
        schema: &str,
        user: &str,
    ) {
        let state = ctx.state();
        let list = Arc::new(WithPgCatalogList {
            inner: state.catalog_list().clone(),
            pg: self.clone(),
        });
        let new_state = SessionStateBuilder::new_from_existing(state)
            .with_catalog_list(list)
            .with_type_planner(Arc::new(pgc::oid_type_planner::PgOidTypePlanner))
            .build();
        *ctx.state_ref().write() = new_state;

        for udf in library_udfs(catalog) {
            ctx.register_udf(udf);
        }
        ctx.register_udtf(
            "pg_get_keywords",
            self.static_tables.pg_get_keywords.clone(),
        );
        pgc::generate_series_arg_coercion::CoerceIntArgsToBigInt::widen(ctx);
        for udf in self.session_udfs(schema, user) {
            ctx.register_udf(udf);
        }
        for udf in functions::udfs(self.static_tables.pg_type.data()) {
            ctx.register_udf(udf);
        }
    }

    fn session_udfs(self: &Arc<Self>, schema: &str, user: &str) -> Vec<ScalarUDF> {
        let mut udfs = vec![
            constant_text("version", postgres_version()),
            constant_text("current_schema", schema.to_string()),
            constant_text("session_user", user.to_string()),
            constant_text("current_user", user.to_string()),
            constant_text("user", user.to_string()),
        ];
        let search = vec![schema.to_string()];
        udfs.push(current_schemas(search));
        let visible_schema = schema.to_string();
        let pg = self.clone();
        udfs.push(oid_predicate("pg_table_is_visible", move |oid| {
            pg.schema_of(oid)
                .is_some_and(|s| s == visible_schema || s == PG_CATALOG)
        }));
        for name in [
            "pg_type_is_visible",
            "pg_function_is_visible",
            "pg_operator_is_visible",
            "pg_opclass_is_visible",
            "pg_collation_is_visible",
            "pg_conversion_is_visible",
            "pg_ts_config_is_visible",
        ] {
            udfs.push(oid_predicate(name, |_| true));
        }
        let owner = user.to_string();
        udfs.push(oid_text("pg_get_userbyid", move |_| Some(owner.clone())));
        for name in [
            "pg_get_function_result",
            "pg_get_function_arguments",
            "pg_get_function_identity_arguments",
            "pg_get_viewdef",
            "pg_get_triggerdef",
            "pg_get_indexdef",
            "pg_get_ruledef",
        ] {
            udfs.push(oid_text(name, |_| Some(String::new())));
        }
        udfs.push(description("obj_description"));
        udfs.push(description("col_description"));
        udfs.push(description("shobj_description"));
        udfs.push(size_udf("pg_table_size"));
        udfs.push(size_udf("pg_indexes_size"));
        udfs.push(size_udf("pg_relation_size"));
        udfs.push(size_udf("pg_total_relation_size"));
        udfs.push(size_pretty());
        udfs
    }
}

/// The library's UDFs we keep as they are.
fn library_udfs(catalog: &str) -> Vec<ScalarUDF> {
    use pgc::{array_bounds_udf, format_type, has_privilege_udf, pg_get_expr_udf, quote_ident_udf};
    let mut udfs = vec![
        pgc::create_current_database_udf(catalog),
        pgc::create_pg_get_partkeydef_udf(),
        pgc::create_pg_relation_is_publishable_udf(),
        pgc::create_pg_get_statisticsobjdef_columns_udf(),
        pgc::create_pg_encoding_to_char_udf(),
        pgc::create_pg_stat_get_numscans(),
        pgc::create_pg_get_constraintdef(),
        pgc::create_pg_get_partition_ancestors_udf(),
        format_type::create_format_type_udf(),
        pg_get_expr_udf::create_pg_get_expr_udf(),
        quote_ident_udf::create_quote_ident_udf(),
        quote_ident_udf::create_parse_ident_udf(),
        array_bounds_udf::create_array_upper_udf(),
        array_bounds_udf::create_array_lower_udf(),
    ];
    for name in [
        "has_table_privilege",
        "has_schema_privilege",
        "has_database_privilege",
        "has_any_column_privilege",
        "has_column_privilege",
        "has_function_privilege",
    ] {
        udfs.push(has_privilege_udf::create_has_privilege_udf(name));
    }
    udfs
}

/// `version()` as PostgreSQL words it (clients parse the leading `PostgreSQL 15.0`).
pub fn postgres_version() -> String {
    format!(
        "PostgreSQL {SERVER_VERSION} on {}-{}, compiled by rustc, 64-bit",
        std::env::consts::ARCH,
        std::env::consts::OS
    )
}

fn constant_text(name: &str, value: String) -> ScalarUDF {
    create_udf(
        name,
        vec![],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(move |_args: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
                value.clone(),
            ))))
        }),
    )
}

fn current_schemas(schemas: Vec<String>) -> ScalarUDF {
    create_udf(
        "current_schemas",
        vec![DataType::Boolean],
        DataType::new_list(DataType::Utf8, true),
        Volatility::Stable,
        Arc::new(move |args: &[ColumnarValue]| {
            let implicit = matches!(
                &args[0],
                ColumnarValue::Scalar(ScalarValue::Boolean(Some(true)))
            );
            let mut values: Vec<&str> = Vec::new();
            if implicit {
                values.push(PG_CATALOG);
            }
            values.extend(schemas.iter().map(String::as_str));
            let list = ScalarValue::new_list_nullable(
                &values
                    .iter()
                    .map(|v| ScalarValue::Utf8(Some(v.to_string())))
                    .collect::<Vec<_>>(),
                &DataType::Utf8,
            );
            Ok(ColumnarValue::Scalar(ScalarValue::List(list)))
        }),
    )
}

/// The first argument as OIDs (any integer type, or text holding a number).
fn oids_of(args: &[ColumnarValue]) -> Result<(Vec<Option<u32>>, bool)> {
    let scalar = matches!(args[0], ColumnarValue::Scalar(_));
    let array = args[0].to_array(1)?;
    let array = cast(&array, &DataType::Int64)?;
    let ints = array
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Int64Array>()
        .ok_or_else(|| DataFusionError::Internal("oid argument".into()))?;
    Ok((
        ints.iter()
            .map(|v| v.and_then(|v| u32::try_from(v).ok()))
            .collect(),
        scalar,
    ))
}

fn finish(array: ArrayRef, scalar: bool) -> Result<ColumnarValue> {
    if scalar {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
            &array, 0,
        )?))
    } else {
        Ok(ColumnarValue::Array(array))
    }
}

fn oid_predicate(name: &str, f: impl Fn(u32) -> bool + Send + Sync + 'static) -> ScalarUDF {
    create_udf(
        name,
        vec![DataType::Int64],
        DataType::Boolean,
        Volatility::Stable,
        Arc::new(move |args: &[ColumnarValue]| {
            let (oids, scalar) = oids_of(args)?;
            let array: BooleanArray = oids.iter().map(|o| o.map(&f)).collect();
            finish(Arc::new(array), scalar)
        }),
    )
}

/// A text function of an oid, with the optional arguments PostgreSQL's variants take
/// (`pg_get_viewdef(oid, pretty)`, `pg_get_indexdef(oid, column, pretty)`), which do not change ours.
fn oid_text(name: &str, f: impl Fn(u32) -> Option<String> + Send + Sync + 'static) -> ScalarUDF {
    use datafusion::logical_expr::{Signature, TypeSignature};
    let variants = [
        vec![DataType::Int64],
        vec![DataType::Int64, DataType::Boolean],
        vec![DataType::Int64, DataType::Int64],
        vec![DataType::Int64, DataType::Int64, DataType::Boolean],
    ];
    simple_udf(
        name,
        Signature::one_of(
            variants.into_iter().map(TypeSignature::Exact).collect(),
            Volatility::Stable,
        ),
        DataType::Utf8,
        move |args: &[ColumnarValue]| {
            let (oids, scalar) = oids_of(args)?;
            let array: StringArray = oids.iter().map(|o| o.and_then(&f)).collect();
            finish(Arc::new(array), scalar)
        },
    )
}

/// `obj_description(oid [, catalog])`, `col_description(oid, column)`: no comments are kept, NULL.
fn description(name: &str) -> ScalarUDF {
    use datafusion::logical_expr::{Signature, TypeSignature};
    let signature = Signature::one_of(
        vec![
            TypeSignature::Exact(vec![DataType::Int64]),
            TypeSignature::Exact(vec![DataType::Int64, DataType::Utf8]),
            TypeSignature::Exact(vec![DataType::Int64, DataType::Int64]),
        ],
        Volatility::Stable,
    );
    simple_udf(name, signature, DataType::Utf8, |args| {
        let (oids, scalar) = oids_of(args)?;
        let array: StringArray = oids.iter().map(|_| None::<&str>).collect();
        finish(Arc::new(array), scalar)
    })
}

fn size_udf(name: &str) -> ScalarUDF {
    create_udf(
        name,
        vec![DataType::Int64],
        DataType::Int64,
        Volatility::Stable,
        Arc::new(move |args: &[ColumnarValue]| {
            let (oids, scalar) = oids_of(args)?;
            let array: datafusion::arrow::array::Int64Array =
                oids.iter().map(|o| o.map(|_| 0)).collect();
            finish(Arc::new(array), scalar)
        }),
    )
}

fn size_pretty() -> ScalarUDF {
    create_udf(
        "pg_size_pretty",
        vec![DataType::Int64],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            let scalar = matches!(args[0], ColumnarValue::Scalar(_));
            let array = cast(&args[0].to_array(1)?, &DataType::Int64)?;
            let ints = array
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Int64Array>()
                .ok_or_else(|| DataFusionError::Internal("pg_size_pretty argument".into()))?;
            let out: StringArray = ints.iter().map(|v| v.map(pretty_size)).collect();
            finish(Arc::new(out), scalar)
        }),
    )
}

/// PostgreSQL's `pg_size_pretty`: bytes up to 10239, then kB, MB, GB, TB (rounded halves up).
fn pretty_size(bytes: i64) -> String {
    let mut size = bytes;
    for unit in ["bytes", "kB", "MB", "GB", "TB"] {
        if size.abs() < 10 * 1024 || unit == "TB" {
            return format!("{size} {unit}");
        }
        size = (size + 512) / 1024;
    }
    format!("{size} PB")
}

pub(crate) fn simple_udf(
    name: &str,
    signature: datafusion::logical_expr::Signature,
    returns: DataType,
    f: impl Fn(&[ColumnarValue]) -> Result<ColumnarValue> + Send + Sync + 'static,
) -> ScalarUDF {
    use datafusion::logical_expr::{ScalarFunctionArgs, ScalarUDFImpl, Signature};
    struct Udf<F> {
        name: String,
        signature: Signature,
        returns: DataType,
        f: F,
    }
    impl<F> std::fmt::Debug for Udf<F> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.name)
        }
    }
    impl<F> PartialEq for Udf<F> {
        fn eq(&self, other: &Self) -> bool {
            self.name == other.name
        }
    }
    impl<F> Eq for Udf<F> {}
    impl<F> std::hash::Hash for Udf<F> {
        fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
            self.name.hash(state)
        }
    }
    impl<F> ScalarUDFImpl for Udf<F>
    where
        F: Fn(&[ColumnarValue]) -> Result<ColumnarValue> + Send + Sync + 'static,
    {
        fn name(&self) -> &str {
            &self.name
        }
        fn signature(&self) -> &Signature {
            &self.signature
        }
        fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
            Ok(self.returns.clone())
        }
        fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
            (self.f)(&args.args)
        }
    }
    ScalarUDF::new_from_impl(Udf {
        name: name.to_string(),
        signature,
        returns,
        f,
    })
}

/// The session's catalog list with `pg_catalog` added to every catalog.
#[derive(Debug)]
struct WithPgCatalogList {
    inner: Arc<dyn CatalogProviderList>,
    pg: Arc<PgCatalog>,
}

impl CatalogProviderList for WithPgCatalogList {
    fn register_catalog(
        &self,
        name: String,
        catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        self.inner.register_catalog(name, catalog)
    }

    fn catalog_names(&self) -> Vec<String> {
        self.inner.catalog_names()
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        let inner = self.inner.catalog(name)?;
        Some(Arc::new(WithPgCatalog {
            name: name.to_string(),
            inner,
            pg: self.pg.clone(),
        }))
    }
}

#[derive(Debug)]
struct WithPgCatalog {
    name: String,
    inner: Arc<dyn CatalogProvider>,
    pg: Arc<PgCatalog>,
}

impl CatalogProvider for WithPgCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names = self.inner.schema_names();
        if !names.iter().any(|n| n == PG_CATALOG) {
            names.push(PG_CATALOG.to_string());
        }
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name == PG_CATALOG {
            return Some(Arc::new(PgCatalogSchema {
                catalog: self.name.clone(),
                pg: self.pg.clone(),
            }));
        }
        self.inner.schema(name)
    }

    fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        self.inner.register_schema(name, schema)
    }
}

/// `pg_catalog` of one catalog.
#[derive(Debug)]
struct PgCatalogSchema {
    catalog: String,
    pg: Arc<PgCatalog>,
}

#[async_trait]
impl SchemaProvider for PgCatalogSchema {
    fn table_names(&self) -> Vec<String> {
        pgc::PG_CATALOG_TABLES
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let library = self.pg.library(&self.catalog)?;
        let lower = name.to_ascii_lowercase();
        if DYNAMIC_TABLES.contains(&lower.as_str()) {
            // The library's table gives the shape (and oid column metadata); the rows are ours.
            let Some(shape) = library.table(&lower).await? else {
                return Ok(None);
            };
            let stream = Arc::new(DynamicTable {
                schema: shapes::complete_shape(&lower, shape.schema()),
                table: lower,
                catalog: self.catalog.clone(),
                pg: self.pg.clone(),
            });
            let table = StreamingTable::try_new(stream.schema.clone(), vec![stream])?;
            return Ok(Some(Arc::new(table)));
        }
        if let Some(table) = self.pg.reshaped.get(lower.as_str()) {
            return Ok(Some(table.clone()));
        }
        library.table(&lower).await
    }

    fn table_exist(&self, name: &str) -> bool {
        pgc::PG_CATALOG_TABLES.contains(&name.to_ascii_lowercase().as_str())
    }
}

/// One of [`DYNAMIC_TABLES`], computed from the catalog when scanned.
#[derive(Debug)]
struct DynamicTable {
    schema: SchemaRef,
    table: String,
    catalog: String,
    pg: Arc<PgCatalog>,
}

type Row = HashMap<&'static str, ScalarValue>;

fn text(s: &str) -> ScalarValue {
    ScalarValue::Utf8(Some(s.to_string()))
}

fn int(v: i64) -> ScalarValue {
    ScalarValue::Int64(Some(v))
}

impl PartitionStream for DynamicTable {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let schema = self.schema.clone();
        let table = self.table.clone();
        let catalog = self.catalog.clone();
        let pg = self.pg.clone();
        let out = schema.clone();
        Box::pin(RecordBatchStreamAdapter::new(
            out,
            futures::stream::once(async move {
                let rows = rows(&pg, &catalog, &table).await?;
                build_batch(&schema, &rows)
            }),
        ))
    }
}

/// The relations of one catalog: (schema, table, provider), `pg_catalog`'s own tables included.
async fn relations(
    pg: &Arc<PgCatalog>,
    catalog: &str,
) -> Result<Vec<(String, String, Arc<dyn TableProvider>)>> {
    let Some(cat) = pg.catalogs.catalog(catalog) else {
        return Ok(vec![]);
    };
    let mut schemas = cat.schema_names();
    schemas.sort();
    let mut out = Vec::new();
    for schema in schemas.iter().filter(|s| *s != PG_CATALOG) {
        let Some(provider) = cat.schema(schema) else {
            continue;
        };
        let mut names = provider.table_names();
        names.sort();
        for name in names {
            if let Some(table) = provider.table(&name).await? {
                out.push((schema.clone(), name, table));
            }
        }
    }
    let own = PgCatalogSchema {
        catalog: catalog.to_string(),
        pg: pg.clone(),
    };
    let library = pg.library(catalog)?;
    for name in own.table_names() {
        if let Some(table) = library.table(&name).await? {
            out.push((PG_CATALOG.to_string(), name, table));
        }
    }
    Ok(out)
}

async fn rows(pg: &Arc<PgCatalog>, catalog: &str, table: &str) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    match table {
        "pg_namespace" => {
            let mut schemas = pg
                .catalogs
                .catalog(catalog)
                .map(|c| c.schema_names())
                .unwrap_or_default();
            schemas.retain(|s| s != PG_CATALOG && s != INFORMATION_SCHEMA);
            schemas.sort();
            schemas.insert(0, INFORMATION_SCHEMA.to_string());
            schemas.insert(0, PG_CATALOG.to_string());
            for schema in schemas {
                let oid = pg.oid(catalog, &schema, "");
                rows.push(Row::from([
                    ("oid", int(oid.into())),
                    ("nspname", text(&schema)),
                    ("nspowner", int(OWNER_OID.into())),
                ]));
            }
        }
        "pg_class" => {
            for (schema, name, provider) in relations(pg, catalog).await? {
                let view = provider.table_type() == TableType::View;
                let oid = pg.oid(catalog, &schema, &name);
                rows.push(Row::from([
                    ("oid", int(oid.into())),
                    ("relname", text(&name)),
                    ("relnamespace", int(pg.oid(catalog, &schema, "").into())),
                    ("relowner", int(OWNER_OID.into())),
                    ("relam", int(if view { 0 } else { 2 })),
                    ("relfilenode", int(oid.into())),
                    ("reltuples", ScalarValue::Float64(Some(-1.0))),
                    ("relpersistence", text("p")),
                    ("relkind", text(if view { "v" } else { "r" })),
                    ("relnatts", int(provider.schema().fields().len() as i64)),
                    ("relispopulated", ScalarValue::Boolean(Some(true))),
                    ("relreplident", text(if view { "n" } else { "d" })),
                    ("relpartbound", ScalarValue::Utf8(None)),
                ]));
            }
        }
        "pg_attribute" => {
            for (schema, name, provider) in relations(pg, catalog).await? {
                let relid = pg.oid(catalog, &schema, &name);
                for (i, field) in provider.schema().fields().iter().enumerate() {
                    let ty = pg_type(field.data_type());
                    rows.push(Row::from([
                        ("attrelid", int(relid.into())),
                        ("attname", text(field.name())),
                        ("atttypid", int(ty.oid.into())),
                        ("attstattarget", int(-1)),
                        ("attlen", int(ty.len.into())),
                        ("attnum", int(i as i64 + 1)),
                        ("attndims", int(i64::from(ty.array))),
                        ("attcacheoff", int(-1)),
                        ("atttypmod", int(ty.typmod.into())),
                        ("attbyval", ScalarValue::Boolean(Some(ty.len > 0))),
                        ("attalign", text(ty.align)),
                        ("attstorage", text(if ty.len > 0 { "p" } else { "x" })),
                        (
                            "attnotnull",
                            ScalarValue::Boolean(Some(!field.is_nullable())),
                        ),
                        ("attislocal", ScalarValue::Boolean(Some(true))),
                        ("attcollation", int(if ty.collatable { 100 } else { 0 })),
                    ]));
                }
            }
        }
        "pg_tables" => {
            for (schema, name, provider) in relations(pg, catalog).await? {
                if provider.table_type() == TableType::View {
                    continue;
                }
                rows.push(Row::from([
                    ("schemaname", text(&schema)),
                    ("tablename", text(&name)),
                    ("tableowner", text("tributary")),
                    ("tablespace", ScalarValue::Utf8(None)),
                ]));
            }
        }
        "pg_settings" => {
            for row in settings::settings(SERVER_VERSION) {
                let [name, setting, unit, vartype, source] = row.map(ScalarValue::Utf8);
                rows.push(Row::from([
                    ("name", name),
                    ("setting", setting.clone()),
                    ("unit", unit),
                    ("vartype", vartype),
                    ("source", source),
                    ("boot_val", setting.clone()),
                    ("reset_val", setting),
                    ("context", text("user")),
                    ("pending_restart", ScalarValue::Boolean(Some(false))),
                ]));
            }
        }
        _ => {}
    }
    Ok(rows)
}

/// Builds a batch of `schema` from rows naming some of its columns; the others get PostgreSQL's
/// neutral value for their type (NULL when nullable, else 0 / false / '').
fn build_batch(schema: &SchemaRef, rows: &[Row]) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| column(field, rows))
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &datafusion::arrow::record_batch::RecordBatchOptions::new()
            .with_row_count(Some(rows.len())),
    )?)
}

fn column(field: &Field, rows: &[Row]) -> Result<ArrayRef> {
    let fallback = if field.is_nullable() {
        ScalarValue::try_from(field.data_type())?
    } else {
        ScalarValue::new_default(field.data_type())?
    };
    let values = rows.iter().map(|row| {
        row.get(field.name().as_str())
            .cloned()
            .unwrap_or_else(|| fallback.clone())
    });
    if rows.is_empty() {
        return Ok(datafusion::arrow::array::new_empty_array(field.data_type()));
    }
    let array = ScalarValue::iter_to_array(values)?;
    let array = if array.data_type() == field.data_type() {
        array
    } else if let (DataType::List(_), true) = (field.data_type(), array.null_count() == array.len())
    {
        datafusion::arrow::array::new_null_array(field.data_type(), array.len())
    } else {
        cast(&array, field.data_type())?
    };
    Ok(array)
}

/// How an Arrow type appears in `pg_type`.
struct PgType {
    oid: u32,
    len: i16,
    typmod: i32,
    align: &'static str,
    collatable: bool,
    array: bool,
}

fn pg_type(data_type: &DataType) -> PgType {
    let fixed = |oid, len: i16, align| PgType {
        oid,
        len,
        typmod: -1,
        align,
        collatable: false,
        array: false,
    };
    let varlen = |oid, collatable| PgType {
        oid,
        len: -1,
        typmod: -1,
        align: "i",
        collatable,
        array: false,
    };
    match data_type {
        DataType::Boolean => fixed(16, 1, "c"),
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => fixed(21, 2, "s"),
        DataType::Int32 | DataType::UInt16 => fixed(23, 4, "i"),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => fixed(20, 8, "d"),
        DataType::Float16 | DataType::Float32 => fixed(700, 4, "i"),
        DataType::Float64 => fixed(701, 8, "d"),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => PgType {
            typmod: ((i32::from(*p) << 16) | i32::from(*s as u8)) + 4,
            ..varlen(1700, false)
        },
        DataType::Date32 | DataType::Date64 => fixed(1082, 4, "i"),
        DataType::Time32(_) | DataType::Time64(_) => fixed(1083, 8, "d"),
        DataType::Timestamp(_, None) => fixed(1114, 8, "d"),
        DataType::Timestamp(_, Some(_)) => fixed(1184, 8, "d"),
        DataType::Interval(_) | DataType::Duration(_) => fixed(1186, 16, "d"),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => varlen(17, false),
        DataType::FixedSizeBinary(16) => fixed(2950, 16, "c"),
        DataType::FixedSizeBinary(_) => varlen(17, false),
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::ListView(f)
        | DataType::FixedSizeList(f, _) => {
            let element = pg_type(f.data_type());
            let oid = match element.oid {
                16 => 1000,
                21 => 1005,
                23 => 1007,
                20 => 1016,
                700 => 1021,
                701 => 1022,
                1700 => 1231,
                1082 => 1182,
                1114 => 1115,
                1184 => 1185,
                17 => 1001,
                _ => 1009,
            };
            PgType {
                array: true,
                align: "d",
                ..varlen(oid, element.collatable)
            }
        }
        DataType::Struct(_) | DataType::Map(_, _) => varlen(114, false),
        _ => varlen(25, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::TimeUnit;

    #[test]
    fn sizes_read_like_postgres() {
        assert_eq!(pretty_size(0), "0 bytes");
        assert_eq!(pretty_size(10_239), "10239 bytes");
        assert_eq!(pretty_size(10_240), "10 kB");
        assert_eq!(pretty_size(5 * 1024 * 1024 * 1024), "5120 MB");
    }

    #[test]
    fn types_map_to_pg_oids() {
        assert_eq!(pg_type(&DataType::Int64).oid, 20);
        assert_eq!(pg_type(&DataType::Utf8View).oid, 25);
        let numeric = pg_type(&DataType::Decimal128(15, 2));
        assert_eq!((numeric.oid, numeric.typmod), (1700, (15 << 16 | 2) + 4));
        assert_eq!(
            pg_type(&DataType::Timestamp(
                TimeUnit::Microsecond,
                Some("UTC".into())
            ))
            .oid,
            1184
        );
    }
}
