//! PostgreSQL's shapes for catalog columns the library stores differently: `int2vector`/`oidvector`
//! and array columns (`pg_index.indkey`, `pg_constraint.conkey`, `pg_policy.polroles`, the
//! `aclitem[]` columns, ...) that the library keeps as text become real arrays, so `unnest()`,
//! `= ANY(...)`, subscripts and `_pg_expandarray()` work on them; columns the library lacks
//! (`pg_class.relacl`, `pg_class.reloptions`, `pg_collation.colliculocale`) are added, NULL as in a
//! fresh cluster.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, AsArray, Int16Builder, Int32Builder, ListBuilder, StringBuilder, new_null_array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;

/// Element type of a vector or array column stored as text.
#[derive(Clone, Copy)]
enum Elem {
    /// `int2vector`, `int2[]`.
    Int2,
    /// `oidvector`, `oid[]` (the library's oids are Int32).
    Oid,
    /// `text[]`, `"char"[]`, `aclitem[]` (as text).
    Text,
}

/// (table, column, element type) of the text columns that are arrays in PostgreSQL.
const VECTOR_COLUMNS: &[(&str, &str, Elem)] = &[
    ("pg_index", "indkey", Elem::Int2),
    ("pg_index", "indoption", Elem::Int2),
    ("pg_index", "indclass", Elem::Oid),
    ("pg_index", "indcollation", Elem::Oid),
    ("pg_constraint", "conkey", Elem::Int2),
    ("pg_constraint", "confkey", Elem::Int2),
    ("pg_constraint", "conpfeqop", Elem::Oid),
    ("pg_constraint", "conppeqop", Elem::Oid),
    ("pg_constraint", "conffeqop", Elem::Oid),
    ("pg_constraint", "conexclop", Elem::Oid),
    ("pg_constraint", "confdelsetcols", Elem::Int2),
    ("pg_policy", "polroles", Elem::Oid),
    ("pg_event_trigger", "evttags", Elem::Text),
    ("pg_statistic_ext", "stxkeys", Elem::Int2),
    ("pg_statistic_ext", "stxkind", Elem::Text),
    ("pg_attribute", "attacl", Elem::Text),
    ("pg_namespace", "nspacl", Elem::Text),
    ("pg_language", "lanacl", Elem::Text),
    ("pg_proc", "proacl", Elem::Text),
    ("pg_type", "typacl", Elem::Text),
    ("pg_default_acl", "defaclacl", Elem::Text),
    ("pg_foreign_data_wrapper", "fdwacl", Elem::Text),
    ("pg_foreign_server", "srvacl", Elem::Text),
    ("pg_tablespace", "spcacl", Elem::Text),
    ("pg_largeobject_metadata", "lomacl", Elem::Text),
    ("pg_init_privs", "initprivs", Elem::Text),
];

/// Columns PostgreSQL has that the library's tables lack, added as NULL: (table, column, whether it
/// is a `text[]`, else `text`).
const MISSING_COLUMNS: &[(&str, &str, bool)] = &[
    ("pg_class", "relacl", true),
    ("pg_class", "reloptions", true),
    ("pg_settings", "boot_val", false),
    ("pg_settings", "reset_val", false),
    ("pg_collation", "colliculocale", false),
];

/// A static table's schema and rows in PostgreSQL's shape: its vector columns as real arrays, and
/// the [`MISSING_COLUMNS`] added (NULL).
pub fn reshape_static(
    name: &str,
    schema: SchemaRef,
    batches: &[RecordBatch],
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let columns: Vec<_> = VECTOR_COLUMNS.iter().filter(|(t, ..)| *t == name).collect();
    let missing: Vec<Field> = MISSING_COLUMNS
        .iter()
        .filter(|(t, c, _)| *t == name && schema.field_with_name(c).is_err())
        .map(|(_, c, array)| {
            let ty = if *array { text_array() } else { DataType::Utf8 };
            Field::new(*c, ty, true)
        })
        .collect();
    if columns.is_empty() && missing.is_empty() {
        return Ok((schema, batches.to_vec()));
    }
    let elem_of = |field: &Field| {
        columns
            .iter()
            .find(|(_, c, _)| *c == field.name())
            .filter(|_| {
                field.data_type() == &DataType::Utf8 || field.data_type() == &DataType::Utf8View
            })
            .map(|(.., e)| *e)
    };
    let mut fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match elem_of(f) {
            Some(elem) => {
                Field::new(f.name(), list_type(elem), true).with_metadata(f.metadata().clone())
            }
            None => f.as_ref().clone(),
        })
        .collect();
    fields.extend(missing.iter().cloned());
    let new_schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    let mut out = Vec::with_capacity(batches.len());
    for batch in batches {
        let mut arrays = batch
            .columns()
            .iter()
            .zip(schema.fields())
            .map(|(array, field)| match elem_of(field) {
                Some(elem) => parse_vectors(array, elem),
                None => Ok(array.clone()),
            })
            .collect::<Result<Vec<_>>>()?;
        arrays.extend(
            missing
                .iter()
                .map(|f| new_null_array(f.data_type(), batch.num_rows())),
        );
        out.push(RecordBatch::try_new(new_schema.clone(), arrays)?);
    }
    Ok((new_schema, out))
}

/// `schema` of a dynamic table in PostgreSQL's shape (see [`reshape_static`]; our rows leave the
/// array and added columns NULL).
pub fn complete_shape(name: &str, schema: SchemaRef) -> Result<SchemaRef> {
    Ok(reshape_static(name, schema, &[])?.0)
}

fn text_array() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)))
}

fn list_type(elem: Elem) -> DataType {
    let inner = match elem {
        Elem::Int2 => DataType::Int16,
        Elem::Oid => DataType::Int32,
        Elem::Text => DataType::Utf8,
    };
    DataType::List(Arc::new(Field::new_list_field(inner, true)))
}

/// Parses `"1 2"` (vector output), `"{1,2}"` (array output) or `"[1, 2]"` into a list array.
fn parse_vectors(array: &ArrayRef, elem: Elem) -> Result<ArrayRef> {
    let array = datafusion::arrow::compute::cast(array, &DataType::Utf8)?;
    let text = array.as_string::<i32>();
    let numbers = |s: &str| -> Vec<i64> {
        s.split([' ', ',', '{', '}', '[', ']'])
            .filter_map(|p| p.trim().parse().ok())
            .collect()
    };
    Ok(match elem {
        Elem::Int2 => {
            let mut builder = ListBuilder::new(Int16Builder::new());
            for value in text.iter() {
                match value {
                    Some(s) => {
                        for n in numbers(s) {
                            builder.values().append_value(n as i16);
                        }
                        builder.append(true);
                    }
                    None => builder.append(false),
                }
            }
            Arc::new(builder.finish())
        }
        Elem::Oid => {
            let mut builder = ListBuilder::new(Int32Builder::new());
            for value in text.iter() {
                match value {
                    Some(s) => {
                        for n in numbers(s) {
                            builder.values().append_value(n as i32);
                        }
                        builder.append(true);
                    }
                    None => builder.append(false),
                }
            }
            Arc::new(builder.finish())
        }
        Elem::Text => {
            let mut builder = ListBuilder::new(StringBuilder::new());
            for value in text.iter() {
                match value {
                    Some(s) => {
                        for element in text_elements(s) {
                            builder.values().append_option(element);
                        }
                        builder.append(true);
                    }
                    None => builder.append(false),
                }
            }
            Arc::new(builder.finish())
        }
    })
}

/// The elements of a one-dimensional array as text: PostgreSQL's output (`{a,"b c",NULL}`) or the
/// library's (`['a', 'b c']`). Quoted elements keep what they quote (with `\` escapes); an unquoted
/// `NULL` in PostgreSQL's form is NULL.
fn text_elements(s: &str) -> Vec<Option<String>> {
    let s = s.trim();
    let (inner, postgres) =
        if let Some(inner) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
            (inner, true)
        } else if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            (inner, false)
        } else {
            (s, true)
        };
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else {
            break;
        };
        if first == '"' || first == '\'' {
            chars.next();
            let mut element = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => element.extend(chars.next()),
                    c if c == first => break,
                    c => element.push(c),
                }
            }
            out.push(Some(element));
            while chars.next().is_some_and(|c| c != ',') {}
        } else {
            let mut element = String::new();
            while let Some(c) = chars.next_if(|c| *c != ',') {
                element.push(c);
            }
            chars.next();
            let element = element.trim();
            out.push((!(postgres && element.eq_ignore_ascii_case("NULL"))).then(|| element.into()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, StringArray};

    #[test]
    fn vectors_become_arrays() {
        let text: ArrayRef = Arc::new(StringArray::from(vec![
            Some("1 2"),
            Some("{3,4}"),
            None,
            Some(""),
        ]));
        let list = parse_vectors(&text, Elem::Int2).unwrap();
        let list = list.as_list::<i32>();
        assert_eq!(list.value(0).len(), 2);
        assert_eq!(
            list.value(1)
                .as_primitive::<datafusion::arrow::datatypes::Int16Type>()
                .value(1),
            4
        );
        assert!(list.is_null(2));
        assert_eq!(list.value(3).len(), 0);
    }

    #[test]
    fn text_arrays_parse_both_spellings() {
        let some = |v: &[&str]| v.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>();
        assert_eq!(
            text_elements("{postgres=arwdDxt/postgres,=r/postgres}"),
            some(&["postgres=arwdDxt/postgres", "=r/postgres"])
        );
        assert_eq!(
            text_elements(r#"{"a b","c\"d",NULL}"#),
            vec![Some("a b".into()), Some("c\"d".into()), None]
        );
        assert_eq!(text_elements("['o', 'i']"), some(&["o", "i"]));
        assert_eq!(text_elements("{}"), Vec::<Option<String>>::new());
    }
}
