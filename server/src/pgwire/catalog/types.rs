//! How a column's Arrow field appears as a PostgreSQL type: in `pg_attribute` (type OID, length,
//! type modifier) and in `information_schema.columns` (`data_type`, `udt_name`, precision, length).
//!
//! A string field may carry [`PG_TYPE_KEY`] metadata naming the source's type (`uuid`, `json`,
//! `varchar(20)`, `bpchar(5)`, ...; see the connectors' `remote_catalog`): the column is that type,
//! as the front end reports it in results.

use datafusion::arrow::datatypes::{DataType, Field};

pub use crate::pgwire::encoding::PG_TYPE_KEY;

/// How a column's type appears in `pg_type` and `pg_attribute`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgType {
    pub oid: u32,
    pub len: i16,
    /// `atttypmod`: -1, or the declared length + 4, or `(precision << 16 | scale) + 4`.
    pub typmod: i32,
    pub align: &'static str,
    pub collatable: bool,
    pub array: bool,
}

/// The type of a column: its [`PG_TYPE_KEY`] when it is a string naming a known type, else the
/// type the Arrow type maps to.
pub fn of_field(field: &Field) -> PgType {
    let tagged = field
        .metadata()
        .get(PG_TYPE_KEY)
        .filter(|_| field.data_type() == &DataType::Utf8)
        .and_then(|name| tagged(name));
    tagged.unwrap_or_else(|| of_arrow(field.data_type()))
}

fn fixed(oid: u32, len: i16, align: &'static str) -> PgType {
    PgType {
        oid,
        len,
        typmod: -1,
        align,
        collatable: false,
        array: false,
    }
}

fn varlen(oid: u32, collatable: bool) -> PgType {
    PgType {
        oid,
        len: -1,
        typmod: -1,
        align: "i",
        collatable,
        array: false,
    }
}

/// A [`PG_TYPE_KEY`] value: `uuid`, `json`, `jsonb`, `numeric`, `varchar[(n)]`, `bpchar[(n)]`, `name`.
fn tagged(name: &str) -> Option<PgType> {
    let (base, length) = match name.split_once('(') {
        Some((base, rest)) => {
            let n: i32 = rest.strip_suffix(')')?.trim().parse().ok()?;
            (base.trim(), Some(n))
        }
        None => (name.trim(), None),
    };
    let mut ty = match base {
        "uuid" => fixed(2950, 16, "c"),
        "json" => varlen(114, false),
        "jsonb" => varlen(3802, false),
        "numeric" => varlen(1700, false),
        "varchar" => varlen(1043, true),
        "bpchar" => varlen(1042, true),
        "name" => PgType {
            collatable: true,
            ..fixed(19, 64, "c")
        },
        _ => return None,
    };
    if let (1043 | 1042, Some(n)) = (ty.oid, length)
        && n > 0
    {
        ty.typmod = n.checked_add(4)?;
    }
    Some(ty)
}

/// The type an Arrow type is reported as.
pub fn of_arrow(data_type: &DataType) -> PgType {
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
            let element = of_arrow(f.data_type());
            PgType {
                array: true,
                align: "d",
                ..varlen(array_of(element.oid), element.collatable)
            }
        }
        DataType::Struct(_) | DataType::Map(_, _) => varlen(114, false),
        _ => varlen(25, true),
    }
}

/// The array type of an element type.
fn array_of(element: u32) -> u32 {
    match element {
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
        2950 => 2951,
        1043 => 1015,
        _ => 1009,
    }
}

/// (`udt_name`, `data_type`) of `information_schema.columns`: the `pg_type` name and the SQL
/// standard's name (`ARRAY` for arrays).
pub fn names(ty: &PgType) -> (&'static str, &'static str) {
    let udt = match ty.oid {
        16 => "bool",
        21 => "int2",
        23 => "int4",
        20 => "int8",
        700 => "float4",
        701 => "float8",
        1700 => "numeric",
        1082 => "date",
        1083 => "time",
        1114 => "timestamp",
        1184 => "timestamptz",
        1186 => "interval",
        17 => "bytea",
        2950 => "uuid",
        114 => "json",
        3802 => "jsonb",
        1043 => "varchar",
        1042 => "bpchar",
        19 => "name",
        1000 => "_bool",
        1005 => "_int2",
        1007 => "_int4",
        1016 => "_int8",
        1021 => "_float4",
        1022 => "_float8",
        1231 => "_numeric",
        1182 => "_date",
        1115 => "_timestamp",
        1185 => "_timestamptz",
        1001 => "_bytea",
        2951 => "_uuid",
        1015 => "_varchar",
        1009 => "_text",
        _ => "text",
    };
    let data_type = if ty.array {
        "ARRAY"
    } else {
        standard_type_name(udt).unwrap_or(udt)
    };
    (udt, data_type)
}

/// The SQL-standard name PostgreSQL prints for an internal type name (`format_type`,
/// `information_schema.columns.data_type`): `int4` is `integer`, `bpchar` is `character`; `None` for
/// types printed under their own name.
pub fn standard_type_name(name: &str) -> Option<&'static str> {
    Some(match name {
        "bool" => "boolean",
        "int2" => "smallint",
        "int4" => "integer",
        "int8" => "bigint",
        "float4" => "real",
        "float8" => "double precision",
        "varchar" => "character varying",
        "bpchar" => "character",
        "varbit" => "bit varying",
        "time" => "time without time zone",
        "timetz" => "time with time zone",
        "timestamp" => "timestamp without time zone",
        "timestamptz" => "timestamp with time zone",
        "char" => "\"char\"",
        _ => return None,
    })
}

/// `information_schema.columns` numbers of a type: (character_maximum_length, numeric_precision,
/// numeric_precision_radix, numeric_scale, datetime_precision).
pub fn precision(ty: &PgType) -> [Option<i32>; 5] {
    let length = (ty.typmod > 4 && matches!(ty.oid, 1043 | 1042)).then(|| ty.typmod - 4);
    let (precision, radix, scale) = match ty.oid {
        21 => (Some(16), Some(2), Some(0)),
        23 => (Some(32), Some(2), Some(0)),
        20 => (Some(64), Some(2), Some(0)),
        700 => (Some(24), Some(2), None),
        701 => (Some(53), Some(2), None),
        1700 if ty.typmod >= 4 => {
            let modifier = ty.typmod - 4;
            (Some(modifier >> 16), Some(10), Some(modifier & 0xffff))
        }
        1700 => (None, Some(10), None),
        _ => (None, None, None),
    };
    let datetime = match ty.oid {
        1082 => Some(0),
        1083 | 1114 | 1184 | 1186 => Some(6),
        _ => None,
    };
    [length, precision, radix, scale, datetime]
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use datafusion::arrow::datatypes::TimeUnit;

    use super::*;

    #[test]
    fn types_map_to_pg_oids() {
        assert_eq!(of_arrow(&DataType::Int64).oid, 20);
        assert_eq!(of_arrow(&DataType::Utf8View).oid, 25);
        let numeric = of_arrow(&DataType::Decimal128(15, 2));
        assert_eq!((numeric.oid, numeric.typmod), (1700, (15 << 16 | 2) + 4));
        assert_eq!(precision(&numeric)[1..4], [Some(15), Some(10), Some(2)]);
        let tz = of_arrow(&DataType::Timestamp(
            TimeUnit::Microsecond,
            Some("UTC".into()),
        ));
        assert_eq!(names(&tz), ("timestamptz", "timestamp with time zone"));
    }

    #[test]
    fn tagged_strings_are_their_source_type() {
        let field = |tag: &str| {
            Field::new("c", DataType::Utf8, true)
                .with_metadata(HashMap::from([(PG_TYPE_KEY.to_string(), tag.to_string())]))
        };
        let varchar = of_field(&field("varchar(20)"));
        assert_eq!((varchar.oid, varchar.typmod), (1043, 24));
        assert_eq!(names(&varchar), ("varchar", "character varying"));
        assert_eq!(precision(&varchar)[0], Some(20));
        assert_eq!(of_field(&field("uuid")).oid, 2950);
        assert_eq!(of_field(&field("geometry")).oid, 25);
    }
}
