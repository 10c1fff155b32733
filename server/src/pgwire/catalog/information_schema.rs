//! `information_schema` in PostgreSQL's shapes, for the session's catalog (a PostgreSQL database
//! shows its own objects): `schemata`, `tables`, `columns` (with `udt_name`, `is_identity`, ...
//! Metabase reads), `views`, `table_constraints`, `key_column_usage`, `constraint_column_usage`, and
//! empty `referential_constraints` and `check_constraints`. DataFusion's own tables it has no
//! PostgreSQL counterpart for (`df_settings`, `routines`, `parameters`) stay DataFusion's.
//!
//! The session turns off DataFusion's built-in `information_schema` (which would shadow this one and
//! lists every catalog in DataFusion's shapes); see [`super::PgCatalog::install`].

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::information_schema::InformationSchemaProvider;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::catalog::{CatalogProviderList, SchemaProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::TableProvider;
use datafusion::error::Result;

use super::relations::relations;
use super::tables::{DynamicTable, Namespace, Row, int, namespaces, text};
use super::{PgCatalog, types};

/// Column types: `sql_identifier`, `character_data` and `yes_or_no` are text, `cardinal_number` int.
const T: DataType = DataType::Utf8;
const N: DataType = DataType::Int32;

/// Our tables and their columns, in PostgreSQL 15's order.
const TABLES: &[(&str, &[(&str, DataType)])] = &[
    (
        "schemata",
        &[
            ("catalog_name", T),
            ("schema_name", T),
            ("schema_owner", T),
            ("default_character_set_catalog", T),
            ("default_character_set_schema", T),
            ("default_character_set_name", T),
            ("sql_path", T),
        ],
    ),
    (
        "tables",
        &[
            ("table_catalog", T),
            ("table_schema", T),
            ("table_name", T),
            ("table_type", T),
            ("self_referencing_column_name", T),
            ("reference_generation", T),
            ("user_defined_type_catalog", T),
            ("user_defined_type_schema", T),
            ("user_defined_type_name", T),
            ("is_insertable_into", T),
            ("is_typed", T),
            ("commit_action", T),
        ],
    ),
    (
        "columns",
        &[
            ("table_catalog", T),
            ("table_schema", T),
            ("table_name", T),
            ("column_name", T),
            ("ordinal_position", N),
            ("column_default", T),
            ("is_nullable", T),
            ("data_type", T),
            ("character_maximum_length", N),
            ("character_octet_length", N),
            ("numeric_precision", N),
            ("numeric_precision_radix", N),
            ("numeric_scale", N),
            ("datetime_precision", N),
            ("interval_type", T),
            ("interval_precision", N),
            ("character_set_catalog", T),
            ("character_set_schema", T),
            ("character_set_name", T),
            ("collation_catalog", T),
            ("collation_schema", T),
            ("collation_name", T),
            ("domain_catalog", T),
            ("domain_schema", T),
            ("domain_name", T),
            ("udt_catalog", T),
            ("udt_schema", T),
            ("udt_name", T),
            ("scope_catalog", T),
            ("scope_schema", T),
            ("scope_name", T),
            ("maximum_cardinality", N),
            ("dtd_identifier", T),
            ("is_self_referencing", T),
            ("is_identity", T),
            ("identity_generation", T),
            ("identity_start", T),
            ("identity_increment", T),
            ("identity_maximum", T),
            ("identity_minimum", T),
            ("identity_cycle", T),
            ("is_generated", T),
            ("generation_expression", T),
            ("is_updatable", T),
        ],
    ),
    (
        "views",
        &[
            ("table_catalog", T),
            ("table_schema", T),
            ("table_name", T),
            ("view_definition", T),
            ("check_option", T),
            ("is_updatable", T),
            ("is_insertable_into", T),
            ("is_trigger_updatable", T),
            ("is_trigger_deletable", T),
            ("is_trigger_insertable_into", T),
        ],
    ),
    (
        "table_constraints",
        &[
            ("constraint_catalog", T),
            ("constraint_schema", T),
            ("constraint_name", T),
            ("table_catalog", T),
            ("table_schema", T),
            ("table_name", T),
            ("constraint_type", T),
            ("is_deferrable", T),
            ("initially_deferred", T),
            ("enforced", T),
            ("nulls_distinct", T),
        ],
    ),
    (
        "key_column_usage",
        &[
            ("constraint_catalog", T),
            ("constraint_schema", T),
            ("constraint_name", T),
            ("table_catalog", T),
            ("table_schema", T),
            ("table_name", T),
            ("column_name", T),
            ("ordinal_position", N),
            ("position_in_unique_constraint", N),
        ],
    ),
    (
        "constraint_column_usage",
        &[
            ("table_catalog", T),
            ("table_schema", T),
            ("table_name", T),
            ("column_name", T),
            ("constraint_catalog", T),
            ("constraint_schema", T),
            ("constraint_name", T),
        ],
    ),
    (
        "referential_constraints",
        &[
            ("constraint_catalog", T),
            ("constraint_schema", T),
            ("constraint_name", T),
            ("unique_constraint_catalog", T),
            ("unique_constraint_schema", T),
            ("unique_constraint_name", T),
            ("match_option", T),
            ("update_rule", T),
            ("delete_rule", T),
        ],
    ),
    (
        "check_constraints",
        &[
            ("constraint_catalog", T),
            ("constraint_schema", T),
            ("constraint_name", T),
            ("check_clause", T),
        ],
    ),
];

/// DataFusion's tables kept as they are.
const DATAFUSION_TABLES: &[&str] = &["df_settings", "routines", "parameters"];

fn shape(table: &str) -> Option<SchemaRef> {
    let (_, columns) = TABLES.iter().find(|(name, _)| *name == table)?;
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, ty)| Field::new(*name, ty.clone(), true))
        .collect();
    Some(Arc::new(Schema::new(fields)))
}

/// `information_schema` of one catalog.
#[derive(Debug)]
pub struct InformationSchema {
    pub catalog: String,
    pub pg: Arc<PgCatalog>,
    /// The session's catalogs, for DataFusion's tables.
    pub catalogs: Arc<dyn CatalogProviderList>,
}

#[async_trait]
impl SchemaProvider for InformationSchema {
    fn table_names(&self) -> Vec<String> {
        TABLES
            .iter()
            .map(|(name, _)| *name)
            .chain(DATAFUSION_TABLES.iter().copied())
            .map(String::from)
            .collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let lower = name.to_ascii_lowercase();
        if DATAFUSION_TABLES.contains(&lower.as_str()) {
            return InformationSchemaProvider::new(self.catalogs.clone())
                .table(&lower)
                .await;
        }
        let Some(schema) = shape(&lower) else {
            return Ok(None);
        };
        let stream = Arc::new(DynamicTable {
            schema: schema.clone(),
            namespace: Namespace::InformationSchema,
            table: lower,
            catalog: self.catalog.clone(),
            pg: self.pg.clone(),
            static_rows: vec![],
        });
        Ok(Some(Arc::new(StreamingTable::try_new(
            schema,
            vec![stream],
        )?)))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.table_names()
            .iter()
            .any(|t| t.eq_ignore_ascii_case(name))
    }
}

fn yes_no(v: bool) -> ScalarValue {
    text(if v { "YES" } else { "NO" })
}

fn cardinal(v: Option<i32>) -> ScalarValue {
    ScalarValue::Int32(v)
}

/// The rows of `information_schema.<table>` for `catalog`.
pub async fn rows(pg: &Arc<PgCatalog>, catalog: &str, table: &str) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    if table == "schemata" {
        for (_, schema) in namespaces(pg, catalog) {
            rows.push(Row::from([
                ("catalog_name", text(catalog)),
                ("schema_name", text(&schema)),
                ("schema_owner", text("tributary")),
            ]));
        }
        return Ok(rows);
    }
    let at = |schema: &str, name: &str| -> [(&'static str, ScalarValue); 3] {
        [
            ("table_catalog", text(catalog)),
            ("table_schema", text(schema)),
            ("table_name", text(name)),
        ]
    };
    for relation in relations(pg, catalog).await? {
        let (schema, name) = (relation.schema.as_str(), relation.name.as_str());
        match table {
            "tables" => {
                let mut row = Row::from(at(schema, name));
                row.extend([
                    (
                        "table_type",
                        text(if relation.is_view() {
                            "VIEW"
                        } else {
                            "BASE TABLE"
                        }),
                    ),
                    ("is_insertable_into", yes_no(false)),
                    ("is_typed", yes_no(false)),
                ]);
                rows.push(row);
            }
            "views" if relation.is_view() => {
                let mut row = Row::from(at(schema, name));
                row.extend([
                    (
                        "view_definition",
                        ScalarValue::Utf8(
                            relation.provider.get_table_definition().map(String::from),
                        ),
                    ),
                    ("check_option", text("NONE")),
                    ("is_updatable", yes_no(false)),
                    ("is_insertable_into", yes_no(false)),
                    ("is_trigger_updatable", yes_no(false)),
                    ("is_trigger_deletable", yes_no(false)),
                    ("is_trigger_insertable_into", yes_no(false)),
                ]);
                rows.push(row);
            }
            "columns" => {
                let primary: Vec<i16> = relation
                    .keys
                    .iter()
                    .filter(|k| k.primary)
                    .flat_map(|k| k.columns.clone())
                    .collect();
                for (i, field) in relation.provider.schema().fields().iter().enumerate() {
                    let ty = types::of_field(field);
                    let (udt, data_type) = types::names(&ty);
                    let [length, precision, radix, scale, datetime] = types::precision(&ty);
                    let nullable = field.is_nullable() && !primary.contains(&(i as i16 + 1));
                    let mut row = Row::from(at(schema, name));
                    row.extend([
                        ("column_name", text(field.name())),
                        ("ordinal_position", cardinal(Some(i as i32 + 1))),
                        ("is_nullable", yes_no(nullable)),
                        ("data_type", text(data_type)),
                        ("character_maximum_length", cardinal(length)),
                        (
                            "character_octet_length",
                            cardinal(if ty.collatable && ty.oid != 19 {
                                Some(length.map_or(1_073_741_824, |n| n * 4))
                            } else {
                                None
                            }),
                        ),
                        ("numeric_precision", cardinal(precision)),
                        ("numeric_precision_radix", cardinal(radix)),
                        ("numeric_scale", cardinal(scale)),
                        ("datetime_precision", cardinal(datetime)),
                        ("udt_catalog", text(catalog)),
                        ("udt_schema", text("pg_catalog")),
                        ("udt_name", text(udt)),
                        ("dtd_identifier", text(&(i + 1).to_string())),
                        ("is_self_referencing", yes_no(false)),
                        ("is_identity", yes_no(false)),
                        ("identity_cycle", yes_no(false)),
                        ("is_generated", text("NEVER")),
                        ("is_updatable", yes_no(false)),
                    ]);
                    rows.push(row);
                }
            }
            "table_constraints" => {
                for key in &relation.keys {
                    let mut row = Row::from(at(schema, name));
                    row.extend([
                        ("constraint_catalog", text(catalog)),
                        ("constraint_schema", text(schema)),
                        ("constraint_name", text(&key.name)),
                        (
                            "constraint_type",
                            text(if key.primary { "PRIMARY KEY" } else { "UNIQUE" }),
                        ),
                        ("is_deferrable", yes_no(false)),
                        ("initially_deferred", yes_no(false)),
                        ("enforced", yes_no(true)),
                        (
                            "nulls_distinct",
                            if key.primary {
                                ScalarValue::Utf8(None)
                            } else {
                                yes_no(true)
                            },
                        ),
                    ]);
                    rows.push(row);
                }
            }
            "key_column_usage" | "constraint_column_usage" => {
                for key in &relation.keys {
                    for (i, column) in key.column_names.iter().enumerate() {
                        let mut row = Row::from(at(schema, name));
                        row.extend([
                            ("constraint_catalog", text(catalog)),
                            ("constraint_schema", text(schema)),
                            ("constraint_name", text(&key.name)),
                            ("column_name", text(column)),
                            ("ordinal_position", int(i as i64 + 1)),
                        ]);
                        rows.push(row);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(rows)
}
