//! Write statements on writable catalogs (`lake`), with Trino's syntax: planned here because
//! DataFusion has no plan for them (`WITH (...)` table properties, `CREATE SCHEMA` / `DROP` on a
//! catalog of ours) or would plan `CREATE TABLE AS` as an in-memory table.
//!
//! - `CREATE TABLE c.s.t [WITH (format = 'PARQUET', partitioned_by = ARRAY['col'])] AS query` is an
//!   `INSERT` (a DataFusion `Dml` plan) into the table-to-be ([`LakeCatalog::create_table_as`]),
//!   whose commit creates the table: the same write plan as `INSERT`.
//! - `INSERT INTO c.s.t ...` is DataFusion's own plan; the table's `insert_into` builds the write.
//! - `CREATE SCHEMA`, `DROP SCHEMA`, `CREATE TABLE (columns)`, `DROP TABLE` are scans of a one-row
//!   table that makes the change when it runs ([`LakeCatalog::ddl`]).
//! - `EXPLAIN [ANALYZE]` of any of these explains the same plan (planning has no side effect; the
//!   writers' `creating` marker and files appear only when the statement runs).
//!
//! - `INSERT INTO` a table of a SQL source (`postgres`, `mysql`) is DataFusion's own plan too; the
//!   table's `insert_into` builds the write (`tributary_connectors`' `sql_write`).
//!
//! Statements on other catalogs are left to DataFusion (and refused as read-only).

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{DataFusionError, ResolvedTableReference, TableReference};
use datafusion::datasource::provider_as_source;
use datafusion::execution::SessionState;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{DmlStatement, LogicalPlan, LogicalPlanBuilder, WriteOp};
use datafusion::sql::parser::Statement;
use datafusion::sql::planner::object_name_to_table_reference;
use datafusion::sql::sqlparser::ast::{
    self, CreateTableOptions, Expr, ObjectName, ObjectType, SchemaName, SqlOption, Value,
};
use tributary_connectors::lake::{LakeDdl, NewTable, WritableCatalog, ddl_provider};

use crate::CatalogRegistry;
use crate::plan::PlanError;

/// Plans `statement` if it writes to a writable catalog; `Ok(None)` for any other statement.
///
/// Errors: [`PlanError::DataFusion`] for a bad name, query or property (SQLSTATEs in the wrapped
/// error: `0A000` unsupported property, `22023` bad property value, `42P07`, `3F000`, ...).
pub async fn plan_write(
    state: &SessionState,
    statement: &Statement,
) -> Result<Option<LogicalPlan>, PlanError> {
    let statement = match statement {
        Statement::Statement(statement) => statement,
        // `EXPLAIN [ANALYZE] CREATE TABLE ... AS` and the other writes planned here: the same plan,
        // explained (ANALYZE runs it, as PostgreSQL's and Trino's do).
        Statement::Explain(explain) => {
            let Some(plan) = Box::pin(plan_write(state, &explain.statement)).await? else {
                return Ok(None);
            };
            let options = &explain.options;
            let explained = LogicalPlanBuilder::from(plan)
                .explain(options.verbose, options.analyze)?
                .build()?;
            return Ok(Some(explained));
        }
        _ => return Ok(None),
    };
    match statement.as_ref() {
        ast::Statement::CreateSchema {
            schema_name,
            if_not_exists,
            with,
            ..
        } => {
            let name = match schema_name {
                SchemaName::Simple(name) | SchemaName::NamedAuthorization(name, _) => name,
                SchemaName::UnnamedAuthorization(_) => return Ok(None),
            };
            let Some((catalog, schema)) = lake_schema(state, name)? else {
                return Ok(None);
            };
            let mut location = None;
            for (key, value) in properties(with.as_deref().unwrap_or_default())? {
                match key.as_str() {
                    "location" => location = Some(string_value(&key, &value)?),
                    other => return Err(unknown_property("schema", other)),
                }
            }
            ddl_plan(
                &catalog,
                LakeDdl::CreateSchema {
                    name: schema,
                    location,
                    if_not_exists: *if_not_exists,
                },
            )
        }
        ast::Statement::Drop {
            object_type: object_type @ (ObjectType::Table | ObjectType::Schema),
            if_exists,
            names,
            cascade,
            ..
        } => {
            let [name] = names.as_slice() else {
                return Err(not_supported("DROP of several objects in one statement"));
            };
            if *object_type == ObjectType::Schema {
                let Some((catalog, schema)) = lake_schema(state, name)? else {
                    return Ok(None);
                };
                return ddl_plan(
                    &catalog,
                    LakeDdl::DropSchema {
                        name: schema,
                        if_exists: *if_exists,
                        cascade: *cascade,
                    },
                );
            }
            let Some((catalog, table)) = lake_table(state, name)? else {
                return Ok(None);
            };
            ddl_plan(
                &catalog,
                LakeDdl::DropTable {
                    schema: table.schema.to_string(),
                    table: table.table.to_string(),
                    if_exists: *if_exists,
                },
            )
        }
        ast::Statement::CreateTable(create) => {
            let Some((catalog, table)) = lake_table(state, &create.name)? else {
                return Ok(None);
            };
            if create.or_replace || create.temporary || create.external || create.like.is_some() {
                return Err(not_supported(
                    "CREATE OR REPLACE, TEMPORARY, EXTERNAL or LIKE for lake tables",
                ));
            }
            let options = match &create.table_options {
                CreateTableOptions::None => Vec::new(),
                CreateTableOptions::With(options) => properties(options)?,
                other => {
                    return Err(not_supported(&format!(
                        "table options {other} (use WITH (format = ..., partitioned_by = ARRAY[...]))"
                    )));
                }
            };
            let mut format = None;
            let mut partitioned_by = Vec::new();
            for (key, value) in options {
                match key.as_str() {
                    "format" => format = Some(string_value(&key, &value)?),
                    // `partitioning` is the Iceberg connector's name for it in Trino.
                    "partitioned_by" | "partitioning" => {
                        partitioned_by = string_array(&key, &value)?
                    }
                    other => return Err(unknown_property("table", other)),
                }
            }
            let schema = table.schema.to_string();
            let name = table.table.to_string();
            if let Some(query) = &create.query {
                if !create.columns.is_empty() {
                    return Err(not_supported("a column list with CREATE TABLE AS"));
                }
                let query = Statement::Statement(Box::new(ast::Statement::Query(query.clone())));
                let input = crate::plan::statement_to_plan(state, query).await?;
                let new = NewTable {
                    columns: Arc::new(input.schema().as_arrow().clone()),
                    format,
                    partitioned_by,
                };
                let Some(target) = catalog
                    .create_table_as(&schema, &name, &new, create.if_not_exists)
                    .await?
                else {
                    return ddl_plan(&catalog, LakeDdl::Nothing);
                };
                // The table may store some types otherwise (Iceberg: microsecond timestamps,
                // 32-bit for small integers): the query's columns are cast to them, as INSERT's are.
                let input = cast_to(input, &target.schema())?;
                let dml = DmlStatement::new(
                    TableReference::full(table.catalog, table.schema, table.table),
                    provider_as_source(target),
                    WriteOp::Insert(InsertOp::Append),
                    Arc::new(input),
                );
                return Ok(Some(LogicalPlan::Dml(dml)));
            }
            if create.columns.is_empty() {
                return Err(not_supported("CREATE TABLE without columns"));
            }
            // The columns' Arrow types, as DataFusion maps SQL types in a query.
            let select = create
                .columns
                .iter()
                .map(|c| format!("CAST(NULL AS {}) AS {}", c.data_type, c.name))
                .collect::<Vec<_>>()
                .join(", ");
            let columns = state
                .create_logical_plan(&format!("SELECT {select}"))
                .await?;
            let new = NewTable {
                columns: Arc::new(columns.schema().as_arrow().clone()),
                format,
                partitioned_by,
            };
            ddl_plan(
                &catalog,
                LakeDdl::CreateTable {
                    schema,
                    table: name,
                    new,
                    if_not_exists: create.if_not_exists,
                },
            )
        }
        _ => Ok(None),
    }
}

/// `input` with its columns cast to the types of `schema` (same column count and order), as the
/// rows a `CREATE TABLE AS` writes; `input` itself when the types already agree.
fn cast_to(input: LogicalPlan, schema: &SchemaRef) -> Result<LogicalPlan, PlanError> {
    let same = input
        .schema()
        .fields()
        .iter()
        .zip(schema.fields())
        .all(|(a, b)| a.data_type() == b.data_type());
    if same {
        return Ok(input);
    }
    let exprs: Vec<_> = input
        .schema()
        .columns()
        .into_iter()
        .zip(schema.fields())
        .map(|(column, field)| {
            datafusion::logical_expr::cast(
                datafusion::logical_expr::Expr::Column(column),
                field.data_type().clone(),
            )
            .alias(field.name())
        })
        .collect();
    Ok(LogicalPlanBuilder::from(input).project(exprs)?.build()?)
}

/// Whether `plan` writes to a table that accepts writes (a lake table Tributary manages, one a
/// `CREATE TABLE AS` is creating, or a table of a SQL source: `postgres`, `mysql`).
pub fn is_writable_target(plan: &LogicalPlan) -> bool {
    let LogicalPlan::Dml(dml) = plan else {
        return false;
    };
    if !matches!(dml.op, WriteOp::Insert(InsertOp::Append)) {
        return false;
    }
    let Ok(provider) = datafusion::datasource::source_as_provider(&dml.target) else {
        return false;
    };
    tributary_connectors::is_write_target(provider.as_ref())
}

/// A plan running `ddl` on `catalog` (see the module docs).
fn ddl_plan(
    catalog: &Arc<dyn WritableCatalog>,
    ddl: LakeDdl,
) -> Result<Option<LogicalPlan>, PlanError> {
    let plan = LogicalPlanBuilder::scan(
        format!("{}.ddl", catalog.name()),
        provider_as_source(ddl_provider(Arc::clone(catalog), ddl)),
        None,
    )?
    .build()?;
    Ok(Some(plan))
}

fn normalize(state: &SessionState) -> bool {
    state
        .config()
        .options()
        .sql_parser
        .enable_ident_normalization
}

/// The writable catalogs of a session, looked up by name in the registry when a write is planned (so a
/// catalog mounted by a reload is writable at once): a `SessionConfig` extension set by
/// [`crate::session::new_session_context`] (front ends may wrap the catalog providers the session
/// resolves names with, so the write path does not look for them there).
#[derive(Debug)]
pub struct WritableCatalogs(CatalogRegistry);

impl WritableCatalogs {
    /// The writable catalogs (`lake`, `iceberg`) of `registry`.
    pub fn of(registry: &CatalogRegistry) -> Self {
        Self(registry.clone())
    }
}

/// A writable catalog (`lake`, `iceberg`).
type Catalog = Arc<dyn WritableCatalog>;

/// The writable catalog a name resolves into, if it is one.
fn lake_catalog(state: &SessionState, catalog: &str) -> Option<Arc<dyn WritableCatalog>> {
    state
        .config()
        .get_extension::<WritableCatalogs>()?
        .0
        .get(catalog)?
        .writable()
}

/// `[catalog.]schema` in a lake catalog: the catalog and the schema name.
fn lake_schema(
    state: &SessionState,
    name: &ObjectName,
) -> Result<Option<(Catalog, String)>, PlanError> {
    // A schema name is a table reference one level up: `c.s` parses as (schema c, table s).
    let reference = object_name_to_table_reference(name.clone(), normalize(state))?;
    let default_catalog = &state.config().options().catalog.default_catalog;
    let (catalog, schema) = match reference {
        TableReference::Bare { table } => (default_catalog.clone(), table.to_string()),
        TableReference::Partial { schema, table } => (schema.to_string(), table.to_string()),
        TableReference::Full { .. } => {
            return Err(PlanError::DataFusion(DataFusionError::Plan(format!(
                "schema name {name} has too many parts"
            ))));
        }
    };
    Ok(lake_catalog(state, &catalog).map(|c| (c, schema)))
}

/// `[[catalog.]schema.]table` in a lake catalog: the catalog and the resolved name.
fn lake_table(
    state: &SessionState,
    name: &ObjectName,
) -> Result<Option<(Catalog, ResolvedTableReference)>, PlanError> {
    let reference = object_name_to_table_reference(name.clone(), normalize(state))?;
    let options = state.config().options();
    let resolved = reference.resolve(
        &options.catalog.default_catalog,
        &options.catalog.default_schema,
    );
    Ok(lake_catalog(state, &resolved.catalog).map(|c| (c, resolved)))
}

/// `WITH (key = value, ...)` as (lower-case key, value) pairs.
fn properties(options: &[SqlOption]) -> Result<Vec<(String, Expr)>, PlanError> {
    options
        .iter()
        .map(|option| match option {
            SqlOption::KeyValue { key, value } => Ok((key.value.to_lowercase(), value.clone())),
            other => Err(not_supported(&format!("property {other}"))),
        })
        .collect()
}

fn string_value(key: &str, value: &Expr) -> Result<String, PlanError> {
    match value {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => Ok(s.clone()),
            _ => Err(bad_property(key, value, "a string literal")),
        },
        _ => Err(bad_property(key, value, "a string literal")),
    }
}

fn string_array(key: &str, value: &Expr) -> Result<Vec<String>, PlanError> {
    match value {
        Expr::Array(array) => array.elem.iter().map(|e| string_value(key, e)).collect(),
        _ => Err(bad_property(key, value, "ARRAY['column', ...]")),
    }
}

fn lake_error(code: &str, message: String) -> PlanError {
    PlanError::DataFusion(tributary_connectors::ConnectorError::sql(code, message))
}

fn not_supported(what: &str) -> PlanError {
    lake_error(
        tributary_connectors::sqlstate::FEATURE_NOT_SUPPORTED,
        format!("{what} is not supported"),
    )
}

fn unknown_property(kind: &str, key: &str) -> PlanError {
    lake_error(
        tributary_connectors::sqlstate::FEATURE_NOT_SUPPORTED,
        format!(
            "{kind} property '{key}' is not supported (tables take format and partitioned_by / \
             partitioning; schemas take location)"
        ),
    )
}

fn bad_property(key: &str, value: &Expr, expected: &str) -> PlanError {
    lake_error(
        tributary_connectors::sqlstate::INVALID_PARAMETER_VALUE,
        format!("property '{key}' = {value}: expected {expected}"),
    )
}
