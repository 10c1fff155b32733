//! The catalog tables computed from our catalogs when scanned: `pg_namespace`, `pg_class`,
//! `pg_attribute`, `pg_tables`, `pg_settings`, `pg_index`, `pg_constraint`, `pg_description` (the
//! last three after the library's static rows), and the `information_schema` tables.
//!
//! Keys appear as PostgreSQL keeps them: a `pg_constraint` row (`contype` `p` or `u`), an index with
//! its `pg_class` row (`relkind` `i`, btree) and `pg_attribute` rows, a `pg_index` row, and
//! `relhasindex` on the table. Comments are `pg_description` rows of `pg_class` (classoid 1259).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, new_empty_array, new_null_array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;

use super::relations::{Relation, relations};
use super::{
    INFORMATION_SCHEMA, OWNER_OID, PG_CATALOG, PgCatalog, information_schema, settings, types,
};
use crate::pgwire::session::SERVER_VERSION;

/// `pg_class`'s own OID, the `classoid` of descriptions of relations and columns.
const PG_CLASS_OID: i64 = 1259;
/// The btree access method.
const BTREE_OID: i64 = 403;
/// The heap access method.
const HEAP_OID: i64 = 2;

/// Where a computed table lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespace {
    PgCatalog,
    InformationSchema,
}

/// A table computed from the catalog when scanned, followed by `static_rows` (the library's rows of
/// the same table, in the same shape).
#[derive(Debug)]
pub struct DynamicTable {
    pub schema: SchemaRef,
    pub namespace: Namespace,
    pub table: String,
    pub catalog: String,
    pub pg: Arc<PgCatalog>,
    pub static_rows: Vec<RecordBatch>,
}

/// One row by column name; columns left out get [`build_batch`]'s neutral value.
pub type Row = HashMap<&'static str, ScalarValue>;

pub fn text(s: &str) -> ScalarValue {
    ScalarValue::Utf8(Some(s.to_string()))
}

pub fn int(v: i64) -> ScalarValue {
    ScalarValue::Int64(Some(v))
}

pub fn boolean(v: bool) -> ScalarValue {
    ScalarValue::Boolean(Some(v))
}

/// A `smallint[]` value.
fn int2_array(values: &[i16]) -> ScalarValue {
    let values: Vec<ScalarValue> = values
        .iter()
        .map(|v| ScalarValue::Int16(Some(*v)))
        .collect();
    ScalarValue::List(ScalarValue::new_list_nullable(&values, &DataType::Int16))
}

/// An `oid[]` value (the library keeps oids as Int32).
fn oid_array(values: &[i32]) -> ScalarValue {
    let values: Vec<ScalarValue> = values
        .iter()
        .map(|v| ScalarValue::Int32(Some(*v)))
        .collect();
    ScalarValue::List(ScalarValue::new_list_nullable(&values, &DataType::Int32))
}

impl PartitionStream for DynamicTable {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let schema = self.schema.clone();
        let namespace = self.namespace;
        let table = self.table.clone();
        let catalog = self.catalog.clone();
        let pg = self.pg.clone();
        let static_rows = self.static_rows.clone();
        let out = schema.clone();
        let ours = futures::stream::once(async move {
            let rows = match namespace {
                Namespace::PgCatalog => rows(&pg, &catalog, &table).await?,
                Namespace::InformationSchema => {
                    information_schema::rows(&pg, &catalog, &table).await?
                }
            };
            build_batch(&schema, &rows)
        });
        let statics = futures::stream::iter(static_rows.into_iter().map(Ok));
        Box::pin(RecordBatchStreamAdapter::new(
            out,
            futures::StreamExt::chain(ours, statics),
        ))
    }
}

async fn rows(pg: &Arc<PgCatalog>, catalog: &str, table: &str) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    if table == "pg_settings" {
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
                ("pending_restart", boolean(false)),
            ]));
        }
        return Ok(rows);
    }
    if table == "pg_namespace" {
        for (oid, schema) in namespaces(pg, catalog) {
            rows.push(Row::from([
                ("oid", int(oid.into())),
                ("nspname", text(&schema)),
                ("nspowner", int(OWNER_OID.into())),
            ]));
        }
        return Ok(rows);
    }
    for relation in relations(pg, catalog).await? {
        match table {
            "pg_class" => class_rows(&relation, &mut rows),
            "pg_attribute" => attribute_rows(&relation, &mut rows),
            "pg_tables" if !relation.is_view() => rows.push(Row::from([
                ("schemaname", text(&relation.schema)),
                ("tablename", text(&relation.name)),
                ("tableowner", text("tributary")),
                ("tablespace", ScalarValue::Utf8(None)),
                ("hasindexes", boolean(!relation.keys.is_empty())),
            ])),
            "pg_index" => index_rows(&relation, &mut rows),
            "pg_constraint" => constraint_rows(&relation, &mut rows),
            "pg_description" => {
                for (column, comment) in relation.comments() {
                    rows.push(Row::from([
                        ("objoid", int(relation.oid.into())),
                        ("classoid", int(PG_CLASS_OID)),
                        ("objsubid", int(column.into())),
                        ("description", text(&comment)),
                    ]));
                }
            }
            _ => {}
        }
    }
    Ok(rows)
}

/// (OID, name) of the catalog's schemas, `pg_catalog` and `information_schema` first.
pub fn namespaces(pg: &PgCatalog, catalog: &str) -> Vec<(u32, String)> {
    let mut schemas = pg
        .catalogs
        .catalog(catalog)
        .map(|c| c.schema_names())
        .unwrap_or_default();
    schemas.retain(|s| s != PG_CATALOG && s != INFORMATION_SCHEMA);
    schemas.sort();
    schemas.insert(0, INFORMATION_SCHEMA.to_string());
    schemas.insert(0, PG_CATALOG.to_string());
    schemas
        .into_iter()
        .map(|s| (pg.oid(catalog, &s, ""), s))
        .collect()
}

fn class_rows(relation: &Relation, rows: &mut Vec<Row>) {
    let view = relation.is_view();
    rows.push(Row::from([
        ("oid", int(relation.oid.into())),
        ("relname", text(&relation.name)),
        ("relnamespace", int(relation.namespace.into())),
        ("relowner", int(OWNER_OID.into())),
        ("relam", int(if view { 0 } else { HEAP_OID })),
        ("relfilenode", int(relation.oid.into())),
        ("reltuples", ScalarValue::Float64(Some(-1.0))),
        ("relhasindex", boolean(!relation.keys.is_empty())),
        ("relpersistence", text("p")),
        ("relkind", text(if view { "v" } else { "r" })),
        (
            "relnatts",
            int(relation.provider.schema().fields().len() as i64),
        ),
        ("relispopulated", boolean(true)),
        ("relreplident", text(if view { "n" } else { "d" })),
        ("relpartbound", ScalarValue::Utf8(None)),
    ]));
    for key in &relation.keys {
        rows.push(Row::from([
            ("oid", int(key.index_oid.into())),
            ("relname", text(&key.name)),
            ("relnamespace", int(relation.namespace.into())),
            ("relowner", int(OWNER_OID.into())),
            ("relam", int(BTREE_OID)),
            ("relfilenode", int(key.index_oid.into())),
            ("reltuples", ScalarValue::Float64(Some(-1.0))),
            ("relpersistence", text("p")),
            ("relkind", text("i")),
            ("relnatts", int(key.columns.len() as i64)),
            ("relispopulated", boolean(true)),
            ("relreplident", text("n")),
            ("relpartbound", ScalarValue::Utf8(None)),
        ]));
    }
}

fn attribute_row(relid: u32, name: &str, number: i64, field: &Field) -> Row {
    let ty = types::of_field(field);
    Row::from([
        ("attrelid", int(relid.into())),
        ("attname", text(name)),
        ("atttypid", int(ty.oid.into())),
        ("attstattarget", int(-1)),
        ("attlen", int(ty.len.into())),
        ("attnum", int(number)),
        ("attndims", int(i64::from(ty.array))),
        ("attcacheoff", int(-1)),
        ("atttypmod", int(ty.typmod.into())),
        ("attbyval", boolean(ty.len > 0 && ty.len <= 8)),
        ("attalign", text(ty.align)),
        ("attstorage", text(if ty.len > 0 { "p" } else { "x" })),
        ("attnotnull", boolean(!field.is_nullable())),
        ("attislocal", boolean(true)),
        ("attcollation", int(if ty.collatable { 100 } else { 0 })),
    ])
}

fn attribute_rows(relation: &Relation, rows: &mut Vec<Row>) {
    let schema = relation.provider.schema();
    for (i, field) in schema.fields().iter().enumerate() {
        rows.push(attribute_row(
            relation.oid,
            field.name(),
            i as i64 + 1,
            field,
        ));
    }
    for key in &relation.keys {
        for (i, column) in key.columns.iter().enumerate() {
            if let Some(field) = schema.fields().get(*column as usize - 1) {
                rows.push(attribute_row(
                    key.index_oid,
                    field.name(),
                    i as i64 + 1,
                    field,
                ));
            }
        }
    }
}

fn index_rows(relation: &Relation, rows: &mut Vec<Row>) {
    let schema = relation.provider.schema();
    for key in &relation.keys {
        let collations: Vec<i32> = key
            .columns
            .iter()
            .map(|c| {
                let collatable = schema
                    .fields()
                    .get(*c as usize - 1)
                    .is_some_and(|f| types::of_field(f).collatable);
                if collatable { 100 } else { 0 }
            })
            .collect();
        let n = key.columns.len() as i64;
        rows.push(Row::from([
            ("indexrelid", int(key.index_oid.into())),
            ("indrelid", int(relation.oid.into())),
            ("indnatts", int(n)),
            ("indnkeyatts", int(n)),
            ("indisunique", boolean(true)),
            ("indnullsnotdistinct", boolean(false)),
            ("indisprimary", boolean(key.primary)),
            ("indisexclusion", boolean(false)),
            ("indimmediate", boolean(true)),
            ("indisclustered", boolean(false)),
            ("indisvalid", boolean(true)),
            ("indcheckxmin", boolean(false)),
            ("indisready", boolean(true)),
            ("indislive", boolean(true)),
            ("indisreplident", boolean(false)),
            ("indkey", int2_array(&key.columns)),
            ("indcollation", oid_array(&collations)),
            ("indclass", oid_array(&vec![0; key.columns.len()])),
            ("indoption", int2_array(&vec![0; key.columns.len()])),
            ("indexprs", ScalarValue::Utf8(None)),
            ("indpred", ScalarValue::Utf8(None)),
        ]));
    }
}

fn constraint_rows(relation: &Relation, rows: &mut Vec<Row>) {
    for key in &relation.keys {
        rows.push(Row::from([
            ("oid", int(key.constraint_oid.into())),
            ("conname", text(&key.name)),
            ("connamespace", int(relation.namespace.into())),
            ("contype", text(if key.primary { "p" } else { "u" })),
            ("condeferrable", boolean(false)),
            ("condeferred", boolean(false)),
            ("convalidated", boolean(true)),
            ("conrelid", int(relation.oid.into())),
            ("contypid", int(0)),
            ("conindid", int(key.index_oid.into())),
            ("conparentid", int(0)),
            ("confrelid", int(0)),
            ("confupdtype", text(" ")),
            ("confdeltype", text(" ")),
            ("confmatchtype", text(" ")),
            ("conislocal", boolean(true)),
            ("coninhcount", int(0)),
            ("connoinherit", boolean(true)),
            ("conkey", int2_array(&key.columns)),
        ]));
    }
}

/// Builds a batch of `schema` from rows naming some of its columns; the others get PostgreSQL's
/// neutral value for their type (NULL when nullable, else 0 / false / '').
pub fn build_batch(schema: &SchemaRef, rows: &[Row]) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| column(field, rows))
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows.len())),
    )?)
}

fn column(field: &Field, rows: &[Row]) -> Result<ArrayRef> {
    if rows.is_empty() {
        return Ok(new_empty_array(field.data_type()));
    }
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
    let array = ScalarValue::iter_to_array(values)?;
    Ok(if array.data_type() == field.data_type() {
        array
    } else if array.null_count() == array.len() {
        new_null_array(field.data_type(), array.len())
    } else {
        cast(&array, field.data_type())?
    })
}
