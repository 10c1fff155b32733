//! PostgreSQL catalog emulation: a `pg_catalog` schema in every catalog, the `pg_*` functions clients
//! call, and the SQL rewrites that make their catalog queries plannable by DataFusion.
//!
//! Built on `datafusion-pg-catalog` (static PostgreSQL 17 rows for `pg_type`, `pg_proc`, `pg_am`, ...,
//! most UDFs, the oid type planner and the rewrite rules). What depends on our catalogs is ours:
//! `pg_namespace`, `pg_class`, `pg_attribute`, `pg_tables`, `pg_index`, `pg_constraint`,
//! `pg_description` and `information_schema` list the schemas, tables, columns, keys and comments of
//! the session's catalog only (a PostgreSQL database shows its own objects), with OIDs from one
//! server-wide registry so they stay the same for the server's lifetime and across sessions (see
//! [`relations`] for what a connector's tables tell). `pg_table_is_visible` follows the session's
//! schema, as `search_path` does in PostgreSQL.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::catalog::{CatalogProvider, CatalogProviderList, SchemaProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::{MemTable, TableProvider};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::prelude::SessionContext;
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::pg_catalog::{
    self as pgc, PgCatalogSchemaProvider, PgCatalogStaticTables,
};
use parking_lot::Mutex;

use super::session::SERVER_VERSION;

pub mod activity;
mod functions;
mod information_schema;
mod procedures;
mod relations;
mod settings;
mod shapes;
mod system_columns;
mod tables;
pub(crate) mod types;

/// The `pg_catalog` namespace OID every PostgreSQL cluster uses (the static rows reference it).
const PG_CATALOG_OID: u32 = 11;
const INFORMATION_SCHEMA_OID: u32 = 13_000;
/// The tables of `pg_catalog` with their OIDs, the same in every PostgreSQL 15 cluster: what clients
/// name by OID (`'pg_class'::regclass` as a `pg_description.classoid`) and each table's `tableoid`.
const WELL_KNOWN_TABLES: &[(&str, u32)] = &[
    ("pg_aggregate", 2600),
    ("pg_am", 2601),
    ("pg_amop", 2602),
    ("pg_amproc", 2603),
    ("pg_attrdef", 2604),
    ("pg_attribute", 1249),
    ("pg_auth_members", 1261),
    ("pg_authid", 1260),
    ("pg_cast", 2605),
    ("pg_class", 1259),
    ("pg_collation", 3456),
    ("pg_constraint", 2606),
    ("pg_conversion", 2607),
    ("pg_database", 1262),
    ("pg_db_role_setting", 2964),
    ("pg_default_acl", 826),
    ("pg_depend", 2608),
    ("pg_description", 2609),
    ("pg_enum", 3501),
    ("pg_event_trigger", 3466),
    ("pg_extension", 3079),
    ("pg_foreign_data_wrapper", 2328),
    ("pg_foreign_server", 1417),
    ("pg_foreign_table", 3118),
    ("pg_index", 2610),
    ("pg_inherits", 2611),
    ("pg_init_privs", 3394),
    ("pg_language", 2612),
    ("pg_largeobject", 2613),
    ("pg_largeobject_metadata", 2995),
    ("pg_namespace", 2615),
    ("pg_opclass", 2616),
    ("pg_operator", 2617),
    ("pg_opfamily", 2753),
    ("pg_parameter_acl", 6243),
    ("pg_partitioned_table", 3350),
    ("pg_policy", 3256),
    ("pg_proc", 1255),
    ("pg_publication", 6104),
    ("pg_publication_namespace", 6237),
    ("pg_publication_rel", 6106),
    ("pg_range", 3541),
    ("pg_replication_origin", 6000),
    ("pg_rewrite", 2618),
    ("pg_seclabel", 3596),
    ("pg_sequence", 2224),
    ("pg_shdepend", 1214),
    ("pg_shdescription", 2396),
    ("pg_shseclabel", 3592),
    ("pg_statistic", 2619),
    ("pg_statistic_ext", 3381),
    ("pg_statistic_ext_data", 3429),
    ("pg_subscription", 6100),
    ("pg_subscription_rel", 6102),
    ("pg_tablespace", 1213),
    ("pg_transform", 3576),
    ("pg_trigger", 2620),
    ("pg_ts_config", 3602),
    ("pg_ts_config_map", 3603),
    ("pg_ts_dict", 3600),
    ("pg_ts_parser", 3601),
    ("pg_ts_template", 3764),
    ("pg_type", 1247),
    ("pg_user_mapping", 1418),
];
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
    "pg_index",
    "pg_constraint",
    "pg_description",
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
    /// The library's rows of [`DYNAMIC_TABLES`] that have some (ours are added to them) and of the
    /// static tables with array columns it keeps as text (served as they are), in PostgreSQL's
    /// shapes (vector and ACL columns as arrays), by name.
    static_rows: HashMap<&'static str, (SchemaRef, Vec<RecordBatch>)>,
    /// The static functions, for `regprocin` and `pg_get_functiondef`.
    procedures: Arc<procedures::Procedures>,
    /// Comments and keys by OID, for the functions taking an OID.
    known: Mutex<relations::Known>,
    /// The live sessions (`pg_stat_activity`, `pg_cancel_backend`), set by the front end.
    activity: std::sync::OnceLock<Arc<dyn activity::Activity>>,
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
        let mut static_rows = HashMap::new();
        let t = &static_tables;
        for (name, table) in [
            ("pg_index", &t.pg_index),
            ("pg_constraint", &t.pg_constraint),
            ("pg_description", &t.pg_description),
            ("pg_policy", &t.pg_policy),
            ("pg_event_trigger", &t.pg_event_trigger),
            ("pg_statistic_ext", &t.pg_statistic_ext),
            ("pg_language", &t.pg_language),
            ("pg_proc", &t.pg_proc),
            ("pg_type", &t.pg_type),
            ("pg_default_acl", &t.pg_default_acl),
            ("pg_foreign_data_wrapper", &t.pg_foreign_data_wrapper),
            ("pg_foreign_server", &t.pg_foreign_server),
            ("pg_tablespace", &t.pg_tablespace),
            ("pg_largeobject_metadata", &t.pg_largeobject_metadata),
            ("pg_init_privs", &t.pg_init_privs),
            ("pg_collation", &t.pg_collation),
        ] {
            static_rows.insert(
                name,
                shapes::reshape_static(name, table.schema(), table.data())?,
            );
        }
        let procedures = Arc::new(procedures::Procedures::new(
            t.pg_proc.data(),
            t.pg_type.data(),
            t.pg_language.data(),
        )?);
        Ok(Arc::new(Self {
            catalogs,
            oids: Mutex::new(Oids {
                next: 16_384,
                ..Default::default()
            }),
            library: Mutex::new(HashMap::new()),
            static_tables,
            static_rows,
            procedures,
            known: Mutex::new(relations::Known::default()),
            activity: std::sync::OnceLock::new(),
        }))
    }

    /// Gives `pg_stat_activity` and `pg_cancel_backend` the server's sessions (once, at startup).
    pub fn set_activity(&self, activity: Arc<dyn activity::Activity>) {
        let _ = self.activity.set(activity);
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
        if schema == PG_CATALOG
            && let Some((_, oid)) = WELL_KNOWN_TABLES.iter().find(|(name, _)| *name == table)
        {
            return *oid;
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

    /// The OID of a relation, if it exists.
    fn relation_oid(&self, catalog: &str, schema: &str, table: &str) -> Option<u32> {
        let exists = if schema == PG_CATALOG {
            is_pg_catalog_table(table)
        } else {
            self.catalogs
                .catalog(catalog)
                .and_then(|c| c.schema(schema))
                .is_some_and(|s| s.table_exist(table))
        };
        exists.then(|| self.oid(catalog, schema, table))
    }

    /// The schema of a table or namespace OID, if it is one of ours.
    fn schema_of(&self, oid: u32) -> Option<String> {
        match oid {
            PG_CATALOG_OID => Some(PG_CATALOG.into()),
            INFORMATION_SCHEMA_OID => Some(INFORMATION_SCHEMA.into()),
            _ if WELL_KNOWN_TABLES.iter().any(|(_, o)| *o == oid) => Some(PG_CATALOG.into()),
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
            user: Arc::from(user),
        });
        // Our `information_schema` (in every catalog, PostgreSQL's shapes) replaces DataFusion's,
        // which the session state would otherwise answer before asking the catalog.
        let mut config = state.config().clone();
        config.options_mut().catalog.information_schema = false;
        let new_state = SessionStateBuilder::new_from_existing(state)
            .with_config(config)
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
        for udf in self.session_udfs(catalog, schema, user) {
            ctx.register_udf(udf);
        }
        for udf in functions::udfs(self.static_tables.pg_type.data()) {
            ctx.register_udf(udf);
        }
        for udf in procedures::udfs(self.procedures.clone()) {
            ctx.register_udf(udf);
        }
    }

    fn session_udfs(self: &Arc<Self>, catalog: &str, schema: &str, user: &str) -> Vec<ScalarUDF> {
        let mut udfs = Vec::new();
        if let Some(sessions) = self.activity.get() {
            udfs.push(activity::cancel_backend(
                Arc::clone(sessions),
                user.to_string(),
            ));
            udfs.push(activity::terminate_backend(
                Arc::clone(sessions),
                user.to_string(),
            ));
        }
        udfs.extend([
            constant_text("version", postgres_version()),
            constant_text("current_schema", schema.to_string()),
            constant_text("session_user", user.to_string()),
            constant_text("current_user", user.to_string()),
            constant_text("user", user.to_string()),
        ]);
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
            "pg_ts_dict_is_visible",
            "pg_ts_parser_is_visible",
            "pg_ts_template_is_visible",
            "pg_opfamily_is_visible",
            "pg_statistics_obj_is_visible",
        ] {
            udfs.push(oid_predicate(name, |_| true));
        }
        let owner = user.to_string();
        udfs.push(oid_text("pg_get_userbyid", move |_, _| Some(owner.clone())));
        for name in [
            "pg_get_function_result",
            "pg_get_function_arguments",
            "pg_get_function_identity_arguments",
            "pg_get_viewdef",
            "pg_get_triggerdef",
            "pg_get_ruledef",
            "pg_get_function_sqlbody",
            "pg_tablespace_location",
        ] {
            udfs.push(oid_text(name, |_, _| Some(String::new())));
        }
        let pg = self.clone();
        udfs.push(oid_text("pg_get_indexdef", move |oid, column| {
            let key = pg.known.lock().key(oid);
            Some(
                key.and_then(|k| k.indexdef(column.unwrap_or(0)))
                    .unwrap_or_default(),
            )
        }));
        let pg = self.clone();
        udfs.push(oid_text("pg_get_constraintdef", move |oid, _| {
            pg.known.lock().key(oid).map(|k| k.constraintdef())
        }));
        let pg = self.clone();
        udfs.push(oid_text("obj_description", move |oid, _| {
            pg.known.lock().comment(oid, 0)
        }));
        let pg = self.clone();
        udfs.push(oid_text("col_description", move |oid, column| {
            let column = i32::try_from(column?).ok()?;
            pg.known.lock().comment(oid, column).filter(|_| column > 0)
        }));
        udfs.push(oid_text("shobj_description", |_, _| None));
        udfs.push(to_regclass(self.clone(), catalog, schema));
        udfs.push(size_udf("pg_table_size"));
        udfs.push(size_udf("pg_database_size"));
        udfs.push(size_udf("pg_tablespace_size"));
        udfs.push(size_udf("pg_indexes_size"));
        udfs.push(size_udf("pg_relation_size"));
        udfs.push(size_udf("pg_total_relation_size"));
        udfs.push(size_pretty());
        udfs.push(constant_text("getdatabaseencoding", "UTF8".to_string()));
        udfs.push(char_to_encoding());
        udfs
    }
}

/// The library's UDFs we keep as they are.
fn library_udfs(catalog: &str) -> Vec<ScalarUDF> {
    use pgc::{array_bounds_udf, format_type, has_privilege_udf, quote_ident_udf};
    let mut udfs = vec![
        pgc::create_current_database_udf(catalog),
        pgc::create_pg_get_partkeydef_udf(),
        pgc::create_pg_relation_is_publishable_udf(),
        pgc::create_pg_get_statisticsobjdef_columns_udf(),
        pgc::create_pg_encoding_to_char_udf(),
        pgc::create_pg_stat_get_numscans(),
        pgc::create_pg_get_partition_ancestors_udf(),
        format_type::create_format_type_udf(),
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

/// `pg_char_to_encoding(name)`: the number of an encoding name (`UTF8`, any case, with or without
/// dashes, is 6; `SQL_ASCII` 0), -1 for names the server does not know. Every catalog is UTF8.
fn char_to_encoding() -> ScalarUDF {
    create_udf(
        "pg_char_to_encoding",
        vec![DataType::Utf8],
        DataType::Int32,
        Volatility::Stable,
        Arc::new(|args: &[ColumnarValue]| {
            let scalar = matches!(args[0], ColumnarValue::Scalar(_));
            let names = cast(&args[0].to_array(rows_of(args))?, &DataType::Utf8)?;
            let names = names
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| DataFusionError::Internal("pg_char_to_encoding argument".into()))?;
            let numbers: datafusion::arrow::array::Int32Array = names
                .iter()
                .map(|name| {
                    let name = name?.replace(['-', '_'], "").to_ascii_uppercase();
                    Some(match name.as_str() {
                        "UTF8" | "UNICODE" => 6,
                        "SQLASCII" => 0,
                        _ => -1,
                    })
                })
                .collect();
            finish(Arc::new(numbers), scalar)
        }),
    )
}

/// The first argument as OIDs (any integer type, or text holding a number).
fn oids_of(args: &[ColumnarValue]) -> Result<(Vec<Option<u32>>, bool)> {
    let scalar = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
    let rows = rows_of(args);
    let array = args[0].to_array(rows)?;
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

/// The second argument of an oid function as integers (a column number), when it is one.
fn second_ints(args: &[ColumnarValue], rows: usize) -> Result<Vec<Option<i64>>> {
    let Some(arg) = args.get(1) else {
        return Ok(vec![None; rows]);
    };
    let array = arg.to_array(rows)?;
    if !array.data_type().is_integer() {
        return Ok(vec![None; rows]);
    }
    let ints = cast(&array, &DataType::Int64)?;
    let ints = ints
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Int64Array>()
        .ok_or_else(|| DataFusionError::Internal("integer argument".into()))?;
    Ok(ints.iter().collect())
}

/// A text function of an oid and an optional second argument (a column number, or a `pretty` flag
/// or catalog name, which change nothing here): `pg_get_indexdef(oid [, column, pretty])`,
/// `pg_get_viewdef(oid, pretty)`, `obj_description(oid [, catalog])`, `col_description(oid, column)`
/// (comments are the ones the catalog's connector reported, else NULL).
fn oid_text(
    name: &str,
    f: impl Fn(u32, Option<i64>) -> Option<String> + Send + Sync + 'static,
) -> ScalarUDF {
    use datafusion::logical_expr::{Signature, TypeSignature};
    let signature = Signature::one_of(
        vec![
            TypeSignature::Any(1),
            TypeSignature::Any(2),
            TypeSignature::Any(3),
        ],
        Volatility::Stable,
    );
    simple_udf(
        name,
        signature,
        DataType::Utf8,
        move |args: &[ColumnarValue]| {
            let (oids, scalar) = oids_of(args)?;
            let seconds = second_ints(args, oids.len())?;
            let array: StringArray = oids
                .iter()
                .zip(seconds)
                .map(|(o, second)| o.and_then(|o| f(o, second)))
                .collect();
            finish(Arc::new(array), scalar)
        },
    )
}

/// `to_regclass(text)`: the OID of the relation named `[catalog.][schema.]table` (unqualified: in
/// `pg_catalog`, else the session's schema, as PostgreSQL's search path finds it), NULL when there
/// is none. The catalog rewrite turns casts of text to `regclass` into calls of it.
fn to_regclass(pg: Arc<PgCatalog>, catalog: &str, schema: &str) -> ScalarUDF {
    let (catalog, schema) = (catalog.to_string(), schema.to_string());
    simple_udf(
        "to_regclass",
        datafusion::logical_expr::Signature::exact(vec![DataType::Utf8], Volatility::Stable),
        DataType::Int32,
        move |args| {
            let rows = match &args[0] {
                ColumnarValue::Array(a) => a.len(),
                ColumnarValue::Scalar(_) => 1,
            };
            let names = cast(&args[0].to_array(rows)?, &DataType::Utf8)?;
            let names = names
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| DataFusionError::Internal("to_regclass argument".into()))?;
            let out: datafusion::arrow::array::Int32Array = names
                .iter()
                .map(|name| {
                    let parts = parse_identifier(name?)?;
                    let oid = match parts.as_slice() {
                        [t] => pg
                            .relation_oid(&catalog, PG_CATALOG, t)
                            .or_else(|| pg.relation_oid(&catalog, &schema, t)),
                        [s, t] => pg.relation_oid(&catalog, s, t),
                        [c, s, t] => pg.relation_oid(c, s, t),
                        _ => None,
                    }?;
                    i32::try_from(oid).ok()
                })
                .collect();
            finish(Arc::new(out), matches!(args[0], ColumnarValue::Scalar(_)))
        },
    )
}

/// A possibly qualified name as PostgreSQL reads it: parts split on dots, double-quoted parts kept
/// as written, others lower-cased. `None` when malformed.
fn parse_identifier(name: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut chars = name.trim().chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    '"' => break,
                    c => part.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied().filter(|c| *c != '.') {
                part.push(c.to_ascii_lowercase());
                chars.next();
            }
        }
        if part.is_empty() {
            return None;
        }
        parts.push(part);
        match chars.next() {
            None => return Some(parts),
            Some('.') => continue,
            Some(_) => return None,
        }
    }
}

/// `pg_table_size(oid)`, `pg_database_size(name or oid)`, ...: sources keep their sizes, 0.
fn size_udf(name: &str) -> ScalarUDF {
    simple_udf(
        name,
        datafusion::logical_expr::Signature::any(1, Volatility::Stable),
        DataType::Int64,
        |args| {
            let scalar = matches!(args[0], ColumnarValue::Scalar(_));
            let input = args[0].to_array(1)?;
            let sizes: datafusion::arrow::array::Int64Array = (0..input.len())
                .map(|i| input.is_valid(i).then_some(0))
                .collect();
            finish(Arc::new(sizes), scalar)
        },
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

/// The number of rows a function call's arguments describe (1 when all are scalars).
pub(crate) fn rows_of(args: &[ColumnarValue]) -> usize {
    args.iter()
        .find_map(|a| match a {
            ColumnarValue::Array(a) => Some(a.len()),
            ColumnarValue::Scalar(_) => None,
        })
        .unwrap_or(1)
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
    /// The session's user (`pg_stat_activity` shows only its own sessions' queries).
    user: Arc<str>,
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
            catalogs: self.inner.clone(),
            user: self.user.clone(),
        }))
    }
}

#[derive(Debug)]
struct WithPgCatalog {
    name: String,
    inner: Arc<dyn CatalogProvider>,
    pg: Arc<PgCatalog>,
    /// The session's catalogs (for DataFusion's `information_schema` tables).
    catalogs: Arc<dyn CatalogProviderList>,
    /// The session's user.
    user: Arc<str>,
}

impl CatalogProvider for WithPgCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names = self.inner.schema_names();
        for own in [PG_CATALOG, INFORMATION_SCHEMA] {
            if !names.iter().any(|n| n == own) {
                names.push(own.to_string());
            }
        }
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        match name {
            PG_CATALOG => Some(Arc::new(PgCatalogSchema {
                catalog: self.name.clone(),
                pg: self.pg.clone(),
                user: Some(self.user.clone()),
            })),
            INFORMATION_SCHEMA => Some(Arc::new(information_schema::InformationSchema {
                catalog: self.name.clone(),
                pg: self.pg.clone(),
                catalogs: self.catalogs.clone(),
            })),
            _ => self.inner.schema(name),
        }
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
    /// The session's user, for `pg_stat_activity` (`None`: no session, only listings).
    user: Option<Arc<str>>,
}

#[async_trait]
impl SchemaProvider for PgCatalogSchema {
    fn table_names(&self) -> Vec<String> {
        pgc::PG_CATALOG_TABLES
            .iter()
            .map(|s| s.to_string())
            .chain(std::iter::once("pg_stat_activity".to_string()))
            .collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let lower = name.to_ascii_lowercase();
        if lower == "pg_stat_activity"
            && let Some(sessions) = self.pg.activity.get()
        {
            return Ok(Some(activity::table(
                sessions.as_ref(),
                self.user.as_deref().unwrap_or(""),
            )?));
        }
        let library = self.pg.library(&self.catalog)?;
        let table_oid = WELL_KNOWN_TABLES
            .iter()
            .find(|(name, _)| *name == lower)
            .map(|(_, oid)| *oid);
        // PostgreSQL's tables (not its views) have the system column `tableoid`.
        let with_table_oid = |table: Arc<dyn TableProvider>| match table_oid {
            Some(oid) => system_columns::WithTableOid::wrap(table, oid),
            None => Ok(table),
        };
        if !DYNAMIC_TABLES.contains(&lower.as_str()) {
            let table: Option<Arc<dyn TableProvider>> =
                match self.pg.static_rows.get(lower.as_str()) {
                    Some((schema, rows)) => Some(Arc::new(MemTable::try_new(
                        schema.clone(),
                        vec![rows.clone()],
                    )?)),
                    None => library.table(&lower).await?,
                };
            return table.map(with_table_oid).transpose();
        }
        // The library's table (or its rows reshaped) gives the shape, with the oid columns'
        // metadata; the rows are ours, then the library's static ones.
        let (schema, static_rows) = match self.pg.static_rows.get(lower.as_str()) {
            Some((schema, rows)) => (schema.clone(), rows.clone()),
            None => match library.table(&lower).await? {
                Some(shape) => (shapes::complete_shape(&lower, shape.schema())?, vec![]),
                None => return Ok(None),
            },
        };
        let stream = Arc::new(tables::DynamicTable {
            schema: schema.clone(),
            namespace: tables::Namespace::PgCatalog,
            table: lower,
            catalog: self.catalog.clone(),
            pg: self.pg.clone(),
            static_rows,
        });
        let table = Arc::new(StreamingTable::try_new(schema, vec![stream])?);
        with_table_oid(table).map(Some)
    }

    fn table_exist(&self, name: &str) -> bool {
        is_pg_catalog_table(&name.to_ascii_lowercase())
    }
}

/// Whether `name` (lower case) is a table of `pg_catalog`: the library's, or `pg_stat_activity`.
fn is_pg_catalog_table(name: &str) -> bool {
    name == "pg_stat_activity" || pgc::PG_CATALOG_TABLES.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_parse_like_postgres() {
        assert_eq!(
            parse_identifier("tiny.Nation"),
            Some(vec!["tiny".to_string(), "nation".to_string()])
        );
        assert_eq!(
            parse_identifier("\"My \"\"Schema\"\"\".t"),
            Some(vec!["My \"Schema\"".to_string(), "t".to_string()])
        );
        assert_eq!(parse_identifier("a..b"), None);
    }

    #[test]
    fn sizes_read_like_postgres() {
        assert_eq!(pretty_size(0), "0 bytes");
        assert_eq!(pretty_size(10_239), "10239 bytes");
        assert_eq!(pretty_size(10_240), "10 kB");
        assert_eq!(pretty_size(5 * 1024 * 1024 * 1024), "5120 MB");
    }
}
