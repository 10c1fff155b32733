//! Functions about functions, from the static `pg_proc` rows: `regprocin(text)` and
//! `regprocedurein(text)` (what `'name'::regproc` and `'name(types)'::regprocedure` do; the catalog
//! rewrite calls them where such a cast is turned into an OID, as in psql's `\sf`), and
//! `pg_get_functiondef(oid)`, the `CREATE OR REPLACE FUNCTION` statement of a function.
//!
//! Errors are PostgreSQL's: `function "f" does not exist` (42883), `more than one function named
//! "f"` (42725), `type "t" does not exist` (42704). Parameter defaults and SQL-standard bodies are
//! kept by the library as parse trees, which this cannot print: defaults are left out, and
//! `pg_get_functiondef` of a function with such a body is an error (0A000).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float32Type, Int32Type};
use datafusion::error::Result;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Signature, Volatility};

use super::functions::{canonical_type_name, type_oids};
use super::{PG_CATALOG, PG_CATALOG_OID, finish, oids_of, parse_identifier, simple_udf};
use crate::pgwire::compat::quote_identifier;
use crate::pgwire::errors::{CatalogError, sqlstate};

/// The language OIDs whose functions cost 1 by default (`internal`, `c`); others cost 100.
const CHEAP_LANGUAGES: &[i32] = &[12, 13];

/// One `pg_proc` row, as much of it as the functions here need.
#[derive(Debug, Clone, Default)]
struct Proc {
    name: String,
    namespace: i32,
    language: i32,
    kind: String,
    volatility: String,
    parallel: String,
    strict: bool,
    security_definer: bool,
    leakproof: bool,
    cost: f32,
    rows: f32,
    support: Option<String>,
    returns_set: bool,
    result_type: i32,
    arg_types: Vec<i32>,
    all_arg_types: Option<Vec<i32>>,
    arg_modes: Option<Vec<String>>,
    arg_names: Option<Vec<String>>,
    source: String,
    binary: Option<String>,
    sql_body: bool,
}

/// The static functions, types and languages, indexed once for the server's lifetime.
#[derive(Debug, Default)]
pub struct Procedures {
    by_oid: HashMap<i32, Proc>,
    /// Function name -> OIDs of its overloads.
    by_name: HashMap<String, Vec<i32>>,
    /// Type OID -> `pg_type.typname`.
    type_names: HashMap<i32, String>,
    /// `pg_type.typname` -> OID.
    type_oids: HashMap<String, i32>,
    /// Language OID -> name.
    languages: HashMap<i32, String>,
}

impl Procedures {
    /// Indexes the static `pg_proc`, `pg_type` and `pg_language` rows.
    pub fn new(
        pg_proc: &[RecordBatch],
        pg_type: &[RecordBatch],
        pg_language: &[RecordBatch],
    ) -> Result<Self> {
        let mut out = Self {
            type_oids: type_oids(pg_type),
            ..Default::default()
        };
        out.type_names = out
            .type_oids
            .iter()
            .map(|(name, oid)| (*oid, name.clone()))
            .collect();
        for batch in pg_language {
            let oids = int_column(batch, "oid")?;
            let names = text_column(batch, "lanname")?;
            for i in 0..batch.num_rows() {
                if let (Some(oid), Some(name)) = (oids[i], &names[i]) {
                    out.languages.insert(oid, name.clone());
                }
            }
        }
        for batch in pg_proc {
            let oids = int_column(batch, "oid")?;
            let names = text_column(batch, "proname")?;
            let namespaces = int_column(batch, "pronamespace")?;
            let languages = int_column(batch, "prolang")?;
            let kinds = text_column(batch, "prokind")?;
            let volatilities = text_column(batch, "provolatile")?;
            let parallels = text_column(batch, "proparallel")?;
            let strict = bool_column(batch, "proisstrict")?;
            let secdef = bool_column(batch, "prosecdef")?;
            let leakproof = bool_column(batch, "proleakproof")?;
            let retset = bool_column(batch, "proretset")?;
            let costs = float_column(batch, "procost")?;
            let rows = float_column(batch, "prorows")?;
            let supports = text_column(batch, "prosupport")?;
            let result_types = int_column(batch, "prorettype")?;
            let arg_types = text_column(batch, "proargtypes")?;
            let all_arg_types = text_column(batch, "proallargtypes")?;
            let arg_modes = text_column(batch, "proargmodes")?;
            let arg_names = text_column(batch, "proargnames")?;
            let sources = text_column(batch, "prosrc")?;
            let binaries = text_column(batch, "probin")?;
            let bodies = text_column(batch, "prosqlbody")?;
            for i in 0..batch.num_rows() {
                let (Some(oid), Some(name)) = (oids[i], names[i].clone()) else {
                    continue;
                };
                let text = |column: &[Option<String>]| column[i].clone().unwrap_or_default();
                let proc = Proc {
                    name: name.clone(),
                    namespace: namespaces[i].unwrap_or(PG_CATALOG_OID as i32),
                    language: languages[i].unwrap_or(0),
                    kind: text(&kinds),
                    volatility: text(&volatilities),
                    parallel: text(&parallels),
                    strict: strict[i],
                    security_definer: secdef[i],
                    leakproof: leakproof[i],
                    cost: costs[i],
                    rows: rows[i],
                    support: supports[i].clone().filter(|s| s != "-" && s != "0"),
                    returns_set: retset[i],
                    result_type: result_types[i].unwrap_or(0),
                    arg_types: numbers(&text(&arg_types)),
                    all_arg_types: all_arg_types[i].as_deref().map(numbers),
                    arg_modes: arg_modes[i].as_deref().map(words),
                    arg_names: arg_names[i].as_deref().map(words),
                    source: text(&sources),
                    binary: binaries[i].clone().filter(|b| !b.is_empty()),
                    sql_body: bodies[i].as_deref().is_some_and(|b| !b.is_empty()),
                };
                out.by_name.entry(name).or_default().push(oid);
                out.by_oid.insert(oid, proc);
            }
        }
        Ok(out)
    }

    /// The OID `'name'::regproc` stands for: the only function of that name (in `pg_catalog`
    /// unless the name is qualified), or an OID written as a number.
    fn regproc(&self, input: &str) -> Result<i32> {
        if let Ok(oid) = input.trim().parse::<i32>() {
            return Ok(oid);
        }
        let candidates = self.named(input)?;
        match candidates.as_slice() {
            [oid] => Ok(*oid),
            [] => Err(undefined_function(input)),
            _ => Err(CatalogError::new(
                sqlstate::AMBIGUOUS_FUNCTION,
                format!("more than one function named \"{}\"", input.trim()),
            )
            .into_datafusion()),
        }
    }

    /// The OID `'name(type, ...)'::regprocedure` stands for: the function of that name with exactly
    /// those argument types.
    fn regprocedure(&self, input: &str) -> Result<i32> {
        let trimmed = input.trim();
        if let Ok(oid) = trimmed.parse::<i32>() {
            return Ok(oid);
        }
        let (name, args) = match trimmed.find('(') {
            Some(open) if trimmed.ends_with(')') => {
                (&trimmed[..open], &trimmed[open + 1..trimmed.len() - 1])
            }
            _ => {
                return Err(CatalogError::new(
                    sqlstate::INVALID_TEXT_REPRESENTATION,
                    format!("expected a left parenthesis: \"{trimmed}\""),
                )
                .into_datafusion());
            }
        };
        let mut types = Vec::new();
        for arg in split_arguments(args) {
            let base = arg.split('(').next().unwrap_or_default();
            let array = if arg.trim_end().ends_with("[]") {
                "[]"
            } else {
                ""
            };
            let canonical = canonical_type_name(&format!("{}{array}", base.trim()));
            match self.type_oids.get(&canonical) {
                Some(oid) => types.push(*oid),
                None => {
                    return Err(CatalogError::new(
                        sqlstate::UNDEFINED_OBJECT,
                        format!("type \"{}\" does not exist", arg.trim()),
                    )
                    .into_datafusion());
                }
            }
        }
        self.named(name)?
            .into_iter()
            .find(|oid| self.by_oid.get(oid).is_some_and(|p| p.arg_types == types))
            .ok_or_else(|| undefined_function(trimmed))
    }

    /// The OIDs of the functions a possibly qualified name names.
    fn named(&self, input: &str) -> Result<Vec<i32>> {
        let Some(parts) = parse_identifier(input) else {
            return Err(CatalogError::new(
                sqlstate::INVALID_TEXT_REPRESENTATION,
                format!("invalid name syntax: \"{}\"", input.trim()),
            )
            .into_datafusion());
        };
        let (schema, name) = match parts.as_slice() {
            [name] => (PG_CATALOG, name),
            [schema, name] => (schema.as_str(), name),
            _ => return Err(undefined_function(input)),
        };
        Ok(self
            .by_name
            .get(name)
            .map(|oids| {
                oids.iter()
                    .copied()
                    .filter(|oid| {
                        self.by_oid
                            .get(oid)
                            .is_some_and(|p| namespace_name(p.namespace) == schema)
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// `pg_get_functiondef(oid)`: PostgreSQL's `CREATE OR REPLACE FUNCTION` text, NULL for an
    /// unknown OID (as PostgreSQL).
    fn functiondef(&self, oid: i32) -> Result<Option<String>> {
        let Some(proc) = self.by_oid.get(&oid) else {
            return Ok(None);
        };
        if proc.kind == "a" {
            return Err(CatalogError::new(
                sqlstate::WRONG_OBJECT_TYPE,
                format!("\"{}\" is an aggregate function", proc.name),
            )
            .into_datafusion());
        }
        if proc.sql_body && proc.source.is_empty() {
            return Err(CatalogError::new(
                sqlstate::FEATURE_NOT_SUPPORTED,
                format!(
                    "the SQL-standard body of function \"{}\" cannot be shown",
                    proc.name
                ),
            )
            .into_datafusion());
        }
        let function = proc.kind != "p";
        let mut def = format!(
            "CREATE OR REPLACE {} {}.{}({})\n",
            if function { "FUNCTION" } else { "PROCEDURE" },
            quote_identifier(namespace_name(proc.namespace)),
            quote_identifier(&proc.name),
            self.arguments(proc).join(", ")
        );
        if function {
            def.push_str(&format!(" RETURNS {}\n", self.result(proc)));
        }
        let language = self
            .languages
            .get(&proc.language)
            .map_or_else(|| proc.language.to_string(), |l| quote_identifier(l));
        def.push_str(&format!(" LANGUAGE {language}\n"));
        let mut options = String::new();
        if proc.kind == "w" {
            options.push_str(" WINDOW");
        }
        options.push_str(match proc.volatility.as_str() {
            "i" => " IMMUTABLE",
            "s" => " STABLE",
            _ => "",
        });
        options.push_str(match proc.parallel.as_str() {
            "s" => " PARALLEL SAFE",
            "r" => " PARALLEL RESTRICTED",
            _ => "",
        });
        for (set, option) in [
            (proc.strict, " STRICT"),
            (proc.security_definer, " SECURITY DEFINER"),
            (proc.leakproof, " LEAKPROOF"),
        ] {
            if set {
                options.push_str(option);
            }
        }
        let default_cost = if CHEAP_LANGUAGES.contains(&proc.language) {
            1.0
        } else {
            100.0
        };
        if proc.cost != default_cost {
            options.push_str(&format!(" COST {}", proc.cost));
        }
        if proc.rows > 0.0 && proc.rows != 1000.0 {
            options.push_str(&format!(" ROWS {}", proc.rows));
        }
        if let Some(support) = &proc.support {
            options.push_str(&format!(" SUPPORT {support}"));
        }
        if !options.is_empty() {
            def.push_str(&options);
            def.push('\n');
        }
        def.push_str("AS ");
        if let Some(binary) = &proc.binary {
            def.push_str(&format!("'{}', ", binary.replace('\'', "''")));
        }
        let mut quote = format!("${}", if function { "function" } else { "procedure" });
        while proc.source.contains(&quote) {
            quote.push('x');
        }
        quote.push('$');
        def.push_str(&format!("{quote}{}{quote}\n", proc.source));
        Ok(Some(def))
    }

    /// The argument list as PostgreSQL prints it (modes, names, types; `TABLE` columns belong to
    /// the result).
    fn arguments(&self, proc: &Proc) -> Vec<String> {
        let types = proc.all_arg_types.as_ref().unwrap_or(&proc.arg_types);
        types
            .iter()
            .enumerate()
            .filter_map(|(i, ty)| {
                let mode = proc
                    .arg_modes
                    .as_ref()
                    .and_then(|m| m.get(i))
                    .map_or("i", String::as_str);
                let mode = match mode {
                    "t" => return None,
                    "o" => "OUT ",
                    "b" => "INOUT ",
                    "v" => "VARIADIC ",
                    _ => "",
                };
                let name = proc
                    .arg_names
                    .as_ref()
                    .and_then(|n| n.get(i))
                    .filter(|n| !n.is_empty())
                    .map(|n| format!("{} ", quote_identifier(n)))
                    .unwrap_or_default();
                Some(format!("{mode}{name}{}", self.type_name(*ty)))
            })
            .collect()
    }

    /// The `RETURNS` clause's type: `TABLE(...)`, `SETOF t` or `t`.
    fn result(&self, proc: &Proc) -> String {
        let columns: Vec<String> = match (&proc.all_arg_types, &proc.arg_modes) {
            (Some(types), Some(modes)) => types
                .iter()
                .zip(modes)
                .enumerate()
                .filter(|(_, (_, mode))| *mode == "t")
                .map(|(i, (ty, _))| {
                    let name = proc
                        .arg_names
                        .as_ref()
                        .and_then(|n| n.get(i))
                        .map(|n| quote_identifier(n))
                        .unwrap_or_default();
                    format!("{name} {}", self.type_name(*ty))
                })
                .collect(),
            _ => Vec::new(),
        };
        if proc.returns_set && !columns.is_empty() {
            return format!("TABLE({})", columns.join(", "));
        }
        let set = if proc.returns_set { "SETOF " } else { "" };
        format!("{set}{}", self.type_name(proc.result_type))
    }

    /// A type as `format_type` prints it (`integer`, `double precision`, `text[]`).
    fn type_name(&self, oid: i32) -> String {
        let Some(name) = self.type_names.get(&oid) else {
            return "???".to_string();
        };
        if let Some(element) = name.strip_prefix('_')
            && let Some(element_oid) = self.type_oids.get(element)
        {
            return format!("{}[]", self.type_name(*element_oid));
        }
        super::types::standard_type_name(name)
            .map_or_else(|| quote_identifier(name), str::to_string)
    }
}

/// The UDFs of this module over `procedures`.
pub fn udfs(procedures: Arc<Procedures>) -> Vec<ScalarUDF> {
    let by_name = procedures.clone();
    let by_signature = procedures.clone();
    vec![
        text_to_oid("regprocin", move |text| by_name.regproc(text)),
        text_to_oid("regprocedurein", move |text| {
            by_signature.regprocedure(text)
        }),
        simple_udf(
            "pg_get_functiondef",
            Signature::any(1, Volatility::Stable),
            DataType::Utf8,
            move |args| {
                let (oids, scalar) = oids_of(args)?;
                let defs = oids
                    .iter()
                    .map(|oid| match oid.and_then(|o| i32::try_from(o).ok()) {
                        Some(oid) => procedures.functiondef(oid),
                        None => Ok(None),
                    })
                    .collect::<Result<Vec<_>>>()?;
                finish(Arc::new(StringArray::from(defs)), scalar)
            },
        ),
    ]
}

/// A function of text returning an OID (NULL for NULL), failing as `f` does.
fn text_to_oid(name: &str, f: impl Fn(&str) -> Result<i32> + Send + Sync + 'static) -> ScalarUDF {
    simple_udf(
        name,
        Signature::exact(vec![DataType::Utf8], Volatility::Stable),
        DataType::Int32,
        move |args| {
            let scalar = matches!(args[0], ColumnarValue::Scalar(_));
            let rows = super::rows_of(args);
            let text = cast(&args[0].to_array(rows)?, &DataType::Utf8)?;
            let oids = text
                .as_string::<i32>()
                .iter()
                .map(|t| t.map(&f).transpose())
                .collect::<Result<Int32Array>>()?;
            finish(Arc::new(oids), scalar)
        },
    )
}

fn undefined_function(name: &str) -> datafusion::error::DataFusionError {
    CatalogError::new(
        sqlstate::UNDEFINED_FUNCTION,
        format!("function \"{}\" does not exist", name.trim()),
    )
    .into_datafusion()
}

/// The schema of a static function: `pg_catalog`, or `information_schema` for its few helpers.
fn namespace_name(oid: i32) -> &'static str {
    if oid == PG_CATALOG_OID as i32 {
        PG_CATALOG
    } else {
        super::INFORMATION_SCHEMA
    }
}

/// Splits `numeric(10,2), int` at the commas outside parentheses; empty for no arguments.
fn split_arguments(args: &str) -> Vec<&str> {
    if args.trim().is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in args.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&args[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&args[start..]);
    out
}

/// The numbers of a vector or array as text: `"23 25"`, `{23,25}` or `[23, 25]`.
fn numbers(text: &str) -> Vec<i32> {
    text.split([' ', ',', '{', '}', '[', ']'])
        .filter_map(|p| p.trim().parse().ok())
        .collect()
}

/// The elements of a text array as the library writes it (`['a', 'b']`) or PostgreSQL (`{a,b}`).
fn words(text: &str) -> Vec<String> {
    text.trim_matches(|c| matches!(c, '{' | '}' | '[' | ']'))
        .split(',')
        .map(|w| w.trim().trim_matches(|c| c == '\'' || c == '"').to_string())
        .filter(|w| !w.is_empty())
        .collect()
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a Arc<dyn Array>> {
    batch.column_by_name(name).ok_or_else(|| {
        datafusion::error::DataFusionError::Internal(format!("pg_catalog column {name} missing"))
    })
}

fn int_column(batch: &RecordBatch, name: &str) -> Result<Vec<Option<i32>>> {
    let array = cast(column(batch, name)?, &DataType::Int32)?;
    Ok(array.as_primitive::<Int32Type>().iter().collect())
}

fn float_column(batch: &RecordBatch, name: &str) -> Result<Vec<f32>> {
    let array = cast(column(batch, name)?, &DataType::Float32)?;
    Ok(array
        .as_primitive::<Float32Type>()
        .iter()
        .map(Option::unwrap_or_default)
        .collect())
}

fn bool_column(batch: &RecordBatch, name: &str) -> Result<Vec<bool>> {
    let array = cast(column(batch, name)?, &DataType::Boolean)?;
    Ok(array
        .as_boolean()
        .iter()
        .map(Option::unwrap_or_default)
        .collect())
}

fn text_column(batch: &RecordBatch, name: &str) -> Result<Vec<Option<String>>> {
    let array = cast(column(batch, name)?, &DataType::Utf8)?;
    Ok(array
        .as_string::<i32>()
        .iter()
        .map(|v| v.map(String::from))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion_pg_catalog::pg_catalog::PgCatalogStaticTables;

    fn procedures() -> Procedures {
        let tables = PgCatalogStaticTables::try_new().unwrap();
        Procedures::new(
            tables.pg_proc.data(),
            tables.pg_type.data(),
            tables.pg_language.data(),
        )
        .unwrap()
    }

    fn code(err: datafusion::error::DataFusionError) -> String {
        crate::pgwire::errors::datafusion_error(&err).code
    }

    #[test]
    fn names_resolve_like_regproc_and_regprocedure() {
        let procs = procedures();
        assert_eq!(procs.regproc("version").unwrap(), 89);
        assert_eq!(procs.regproc("pg_catalog.version").unwrap(), 89);
        assert_eq!(procs.regproc("89").unwrap(), 89);
        assert_eq!(code(procs.regproc("abs").unwrap_err()), "42725");
        assert_eq!(
            code(procs.regproc("no_such_function").unwrap_err()),
            "42883"
        );
        assert_eq!(procs.regprocedure("abs(int)").unwrap(), 1397);
        assert_eq!(procs.regprocedure("ABS(integer)").unwrap(), 1397);
        assert_eq!(procs.regprocedure("now()").unwrap(), 1299);
        assert_eq!(code(procs.regprocedure("abs(text)").unwrap_err()), "42883");
        assert_eq!(code(procs.regprocedure("abs(foo)").unwrap_err()), "42704");
    }

    #[test]
    fn definitions_read_like_postgres() {
        let procs = procedures();
        assert_eq!(
            procs.functiondef(1397).unwrap().as_deref(),
            Some(
                "CREATE OR REPLACE FUNCTION pg_catalog.abs(integer)\n RETURNS integer\n \
                 LANGUAGE internal\n IMMUTABLE PARALLEL SAFE STRICT\nAS $function$int4abs$function$\n"
            )
        );
        let keywords = procs.regproc("pg_get_keywords").unwrap();
        let def = procs.functiondef(keywords).unwrap().unwrap();
        assert!(
            def.starts_with(
                "CREATE OR REPLACE FUNCTION pg_catalog.pg_get_keywords(OUT word text, OUT catcode \
                 \"char\", OUT barelabel boolean, OUT catdesc text, OUT baredesc text)\n RETURNS \
                 SETOF record\n"
            ),
            "{def}"
        );
        assert!(def.contains(" COST 10 ROWS 500\n"), "{def}");
        assert_eq!(procs.functiondef(-1).unwrap(), None);
        let max = procs.regprocedure("max(integer)").unwrap();
        assert_eq!(code(procs.functiondef(max).unwrap_err()), "42809");
    }
}
