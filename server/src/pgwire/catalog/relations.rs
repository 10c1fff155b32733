//! The relations of one catalog as the emulation sees them: every schema's tables and views with
//! their OIDs, and what their providers know beyond columns: primary and unique keys
//! ([`TableProvider::constraints`]) and comments (Arrow metadata `comment` on the schema for the
//! table, on a field for its column). Keys become a constraint and an index each, named as
//! PostgreSQL names them (`nation_pkey`, `t_a_b_key`).
//!
//! Each enumeration also records comments and keys by OID in [`Known`], which the functions taking
//! an OID (`obj_description`, `col_description`, `pg_get_indexdef`, `pg_get_constraintdef`) read:
//! a client only has an OID from an earlier catalog scan.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::common::Constraint;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result;

use super::{INFORMATION_SCHEMA, PG_CATALOG, PgCatalog, PgCatalogSchema};
use crate::pgwire::compat::quote_identifier as quote;

/// Arrow metadata key of a table's (schema metadata) or column's (field metadata) comment.
pub const COMMENT_KEY: &str = "comment";

/// One table or view of a catalog.
#[derive(Debug, Clone)]
pub struct Relation {
    pub schema: String,
    pub name: String,
    pub provider: Arc<dyn TableProvider>,
    pub oid: u32,
    pub namespace: u32,
    pub keys: Vec<Arc<Key>>,
}

impl Relation {
    pub fn is_view(&self) -> bool {
        self.provider.table_type() == TableType::View
    }

    /// The table's comment, then each column's (1-based column number).
    pub fn comments(&self) -> Vec<(i32, String)> {
        let schema = self.provider.schema();
        let table = schema
            .metadata()
            .get(COMMENT_KEY)
            .map(|c| (0, c.clone()))
            .into_iter();
        let columns = schema.fields().iter().enumerate().filter_map(|(i, f)| {
            f.metadata()
                .get(COMMENT_KEY)
                .map(|c| (i as i32 + 1, c.clone()))
        });
        table.chain(columns).collect()
    }
}

/// A primary or unique key, as a constraint and the index behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub name: String,
    pub primary: bool,
    pub schema: String,
    pub table: String,
    /// 1-based column numbers, in key order.
    pub columns: Vec<i16>,
    pub column_names: Vec<String>,
    pub constraint_oid: u32,
    pub index_oid: u32,
}

impl Key {
    /// `pg_get_indexdef(oid, column)`: the whole `CREATE INDEX` for column 0, else that column's name.
    pub fn indexdef(&self, column: i64) -> Option<String> {
        if column > 0 {
            return self.column_names.get(column as usize - 1).cloned();
        }
        Some(format!(
            "CREATE UNIQUE INDEX {} ON {}.{} USING btree ({})",
            quote(&self.name),
            quote(&self.schema),
            quote(&self.table),
            self.quoted_columns()
        ))
    }

    /// `pg_get_constraintdef(oid)`.
    pub fn constraintdef(&self) -> String {
        let kind = if self.primary {
            "PRIMARY KEY"
        } else {
            "UNIQUE"
        };
        format!("{kind} ({})", self.quoted_columns())
    }

    fn quoted_columns(&self) -> String {
        self.column_names
            .iter()
            .map(|c| quote(c))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Comments and keys by OID, from the enumerations so far.
#[derive(Debug, Default)]
pub struct Known {
    /// (object OID, column number or 0) -> comment.
    comments: HashMap<(u32, i32), String>,
    /// Constraint or index OID -> key.
    keys: HashMap<u32, Arc<Key>>,
}

impl Known {
    pub fn comment(&self, oid: u32, column: i32) -> Option<String> {
        self.comments.get(&(oid, column)).cloned()
    }

    pub fn key(&self, oid: u32) -> Option<Arc<Key>> {
        self.keys.get(&oid).cloned()
    }
}

/// The keys a provider declares.
fn keys(
    pg: &PgCatalog,
    catalog: &str,
    schema: &str,
    table: &str,
    provider: &dyn TableProvider,
) -> Vec<Arc<Key>> {
    let Some(constraints) = provider.constraints() else {
        return vec![];
    };
    let fields = provider.schema();
    let mut out = Vec::new();
    for constraint in constraints.iter() {
        let (primary, indices) = match constraint {
            Constraint::PrimaryKey(indices) => (true, indices),
            Constraint::Unique(indices) => (false, indices),
        };
        let column_names: Vec<String> = indices
            .iter()
            .filter_map(|i| fields.fields().get(*i).map(|f| f.name().clone()))
            .collect();
        if column_names.len() != indices.len() || indices.is_empty() {
            continue;
        }
        let name = if primary {
            format!("{table}_pkey")
        } else {
            format!("{table}_{}_key", column_names.join("_"))
        };
        out.push(Arc::new(Key {
            constraint_oid: pg.oid(catalog, schema, &format!("{name}\0constraint")),
            index_oid: pg.oid(catalog, schema, &format!("{name}\0index")),
            name,
            primary,
            schema: schema.to_string(),
            table: table.to_string(),
            columns: indices.iter().map(|i| *i as i16 + 1).collect(),
            column_names,
        }));
    }
    out
}

/// The relations of one catalog, `pg_catalog`'s own tables included (`information_schema`'s are
/// not: they are not tables of the catalog's sources).
pub async fn relations(pg: &Arc<PgCatalog>, catalog: &str) -> Result<Vec<Relation>> {
    let Some(cat) = pg.catalogs.catalog(catalog) else {
        return Ok(vec![]);
    };
    let mut schemas = cat.schema_names();
    schemas.retain(|s| s != PG_CATALOG && s != INFORMATION_SCHEMA);
    schemas.sort();
    let mut found = Vec::new();
    for schema in &schemas {
        let Some(provider) = cat.schema(schema) else {
            continue;
        };
        let mut names = provider.table_names();
        names.sort();
        for name in names {
            if let Some(table) = provider.table(&name).await? {
                found.push((schema.clone(), name, table));
            }
        }
    }
    let own = PgCatalogSchema {
        catalog: catalog.to_string(),
        pg: pg.clone(),
        user: None,
    };
    let library = pg.library(catalog)?;
    for name in datafusion::catalog::SchemaProvider::table_names(&own) {
        if let Some(table) = library.table(&name).await? {
            found.push((PG_CATALOG.to_string(), name, table));
        }
    }
    let relations: Vec<Relation> = found
        .into_iter()
        .map(|(schema, name, provider)| Relation {
            oid: pg.oid(catalog, &schema, &name),
            namespace: pg.oid(catalog, &schema, ""),
            keys: keys(pg, catalog, &schema, &name, provider.as_ref()),
            schema,
            name,
            provider,
        })
        .collect();
    let mut known = pg.known.lock();
    for relation in &relations {
        for (column, comment) in relation.comments() {
            known.comments.insert((relation.oid, column), comment);
        }
        for key in &relation.keys {
            known.keys.insert(key.constraint_oid, key.clone());
            known.keys.insert(key.index_oid, key.clone());
        }
    }
    Ok(relations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_read_like_postgres() {
        let key = Key {
            name: "orders_pkey".into(),
            primary: true,
            schema: "public".into(),
            table: "Orders".into(),
            columns: vec![1, 3],
            column_names: vec!["id".into(), "Line".into()],
            constraint_oid: 1,
            index_oid: 2,
        };
        assert_eq!(
            key.indexdef(0).as_deref(),
            Some("CREATE UNIQUE INDEX orders_pkey ON public.\"Orders\" USING btree (id, \"Line\")")
        );
        assert_eq!(key.indexdef(2).as_deref(), Some("Line"));
        assert_eq!(key.indexdef(3), None);
        assert_eq!(key.constraintdef(), "PRIMARY KEY (id, \"Line\")");
    }
}
