//! `pg_settings` rows: the server settings clients read from the catalog rather than with SHOW
//! (pgjdbc's `max_index_keys`, ORMs' `max_identifier_length`, ...), as a PostgreSQL 15 reports them.

/// (name, setting, unit, vartype).
const SETTINGS: &[(&str, &str, Option<&str>, &str)] = &[
    ("block_size", "8192", None, "integer"),
    ("client_encoding", "UTF8", None, "string"),
    ("DateStyle", "ISO, MDY", None, "string"),
    ("default_transaction_read_only", "off", None, "bool"),
    ("integer_datetimes", "on", None, "bool"),
    ("IntervalStyle", "postgres", None, "enum"),
    ("lc_collate", "C", None, "string"),
    ("lc_ctype", "C", None, "string"),
    ("max_connections", "100", None, "integer"),
    ("max_function_args", "100", None, "integer"),
    ("max_identifier_length", "63", None, "integer"),
    ("max_index_keys", "32", None, "integer"),
    ("search_path", "\"$user\", public", None, "string"),
    ("server_encoding", "UTF8", None, "string"),
    ("standard_conforming_strings", "on", None, "bool"),
    ("statement_timeout", "0", Some("ms"), "integer"),
    ("TimeZone", "UTC", None, "string"),
    ("transaction_isolation", "read committed", None, "enum"),
];

/// One row per setting: (name, setting, unit, vartype, source).
pub fn settings(server_version: &str) -> Vec<[Option<String>; 5]> {
    let mut out: Vec<[Option<String>; 5]> = SETTINGS
        .iter()
        .map(|(name, setting, unit, vartype)| {
            [
                Some(name.to_string()),
                Some(setting.to_string()),
                unit.map(str::to_string),
                Some(vartype.to_string()),
                Some("default".to_string()),
            ]
        })
        .collect();
    out.push([
        Some("server_version".into()),
        Some(server_version.into()),
        None,
        Some("string".into()),
        Some("default".into()),
    ]);
    out
}
