//! SQLSTATE codes Tributary reports, named as in PostgreSQL's Appendix A ("PostgreSQL Error Codes").
//!
//! The one table of codes for every crate: connectors report source failures with them, `exec` and
//! `exchange` send them across nodes, and the front end maps every error to one of them. A client that
//! handles `42P01` or `57014` from PostgreSQL handles ours the same way. Each constant is the
//! five-character code.

/// `00000` successful_completion (what a source reports when it has no error code).
pub const SUCCESSFUL_COMPLETION: &str = "00000";
/// `08001` sqlclient_unable_to_establish_sqlconnection: a source cannot be reached.
pub const CONNECTION_FAILURE_ON_CONNECT: &str = "08001";
/// `08006` connection_failure: a source connection was lost mid-query.
pub const CONNECTION_FAILURE: &str = "08006";
/// `0A000` feature_not_supported.
pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
/// `08P01` protocol_violation: a frontend message that is malformed, of an unknown type or length.
pub const PROTOCOL_VIOLATION: &str = "08P01";
/// `21000` cardinality_violation (a scalar subquery returned more than one row).
pub const CARDINALITY_VIOLATION: &str = "21000";
/// `22003` numeric_value_out_of_range.
pub const NUMERIC_VALUE_OUT_OF_RANGE: &str = "22003";
/// `22012` division_by_zero.
pub const DIVISION_BY_ZERO: &str = "22012";
/// `22023` invalid_parameter_value.
pub const INVALID_PARAMETER_VALUE: &str = "22023";
/// `22P02` invalid_text_representation.
pub const INVALID_TEXT_REPRESENTATION: &str = "22P02";
/// `25P02` in_failed_sql_transaction.
pub const IN_FAILED_TRANSACTION: &str = "25P02";
/// `28000` invalid_authorization_specification (a connection refused by policy).
pub const INVALID_AUTHORIZATION_SPECIFICATION: &str = "28000";
/// `28P01` invalid_password (a failed login, here or at a source).
pub const INVALID_PASSWORD: &str = "28P01";
/// `34000` invalid_cursor_name.
pub const INVALID_CURSOR_NAME: &str = "34000";
/// `2BP01` dependent_objects_still_exist (`DROP SCHEMA` of a schema with tables, without CASCADE).
pub const DEPENDENT_OBJECTS_STILL_EXIST: &str = "2BP01";
/// `3D000` invalid_catalog_name.
pub const INVALID_CATALOG_NAME: &str = "3D000";
/// `3F000` invalid_schema_name.
pub const UNDEFINED_SCHEMA: &str = "3F000";
/// `42000` syntax_error_or_access_rule_violation.
pub const SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION: &str = "42000";
/// `42601` syntax_error.
pub const SYNTAX_ERROR: &str = "42601";
/// `42701` duplicate_column.
pub const DUPLICATE_COLUMN: &str = "42701";
/// `42702` ambiguous_column.
pub const AMBIGUOUS_COLUMN: &str = "42702";
/// `42703` undefined_column.
pub const UNDEFINED_COLUMN: &str = "42703";
/// `42704` undefined_object.
pub const UNDEFINED_OBJECT: &str = "42704";
/// `42725` ambiguous_function.
pub const AMBIGUOUS_FUNCTION: &str = "42725";
/// `42803` grouping_error.
pub const GROUPING_ERROR: &str = "42803";
/// `42804` datatype_mismatch.
pub const DATATYPE_MISMATCH: &str = "42804";
/// `42809` wrong_object_type.
pub const WRONG_OBJECT_TYPE: &str = "42809";
/// `42883` undefined_function.
pub const UNDEFINED_FUNCTION: &str = "42883";
/// `42P01` undefined_table.
pub const UNDEFINED_TABLE: &str = "42P01";
/// `42P06` duplicate_schema.
pub const DUPLICATE_SCHEMA: &str = "42P06";
/// `42P07` duplicate_table.
pub const DUPLICATE_TABLE: &str = "42P07";
/// `42P02` undefined_parameter (a `$n` a simple query gives no value for).
pub const UNDEFINED_PARAMETER: &str = "42P02";
/// `42P03` duplicate_cursor.
pub const DUPLICATE_CURSOR: &str = "42P03";
/// `40003` statement_completion_unknown (a commit whose outcome is unknown: never retried).
pub const STATEMENT_COMPLETION_UNKNOWN: &str = "40003";
/// `42P18` indeterminate_datatype.
pub const INDETERMINATE_DATATYPE: &str = "42P18";
/// `53200` out_of_memory (a memory limit reached).
pub const OUT_OF_MEMORY: &str = "53200";
/// `54000` program_limit_exceeded (a value over 1 GiB, as PostgreSQL refuses it).
pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
/// `55P02` cant_change_runtime_param.
pub const CANT_CHANGE_RUNTIME_PARAM: &str = "55P02";
/// `57014` query_canceled.
pub const QUERY_CANCELED: &str = "57014";
/// `58000` system_error: an error outside Tributary (a lost worker, a failing broker).
pub const SYSTEM_ERROR: &str = "58000";
/// `42710` duplicate_object (`CREATE CATALOG` of a catalog that exists).
pub const DUPLICATE_OBJECT: &str = "42710";
/// `42602` invalid_name (a catalog name that cannot be a file name).
pub const INVALID_NAME: &str = "42602";
/// `42501` insufficient_privilege.
pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
/// `F0000` config_file_error: a catalog's configuration does not fit its source.
pub const CONFIG_FILE_ERROR: &str = "F0000";
/// `XX000` internal_error: everything without a more precise code.
pub const INTERNAL_ERROR: &str = "XX000";
/// `58P01` undefined_file: a file or object that does not exist (not worth a retry).
pub const UNDEFINED_FILE: &str = "58P01";
/// `58P02` duplicate_file: a file or object that already exists.
pub const DUPLICATE_FILE: &str = "58P02";
/// `58030` io_error: reading or writing storage failed (the spool, a lake file).
pub const IO_ERROR: &str = "58030";
/// `40001` serialization_failure (at a source).
pub const SERIALIZATION_FAILURE: &str = "40001";
/// `40P01` deadlock_detected (at a source).
pub const DEADLOCK_DETECTED: &str = "40P01";
/// `53300` too_many_connections (at a source).
pub const TOO_MANY_CONNECTIONS: &str = "53300";
/// `57P01` admin_shutdown (a source shutting down).
pub const ADMIN_SHUTDOWN: &str = "57P01";
/// `57P02` crash_shutdown.
pub const CRASH_SHUTDOWN: &str = "57P02";
/// `57P03` cannot_connect_now (a source starting up).
pub const CANNOT_CONNECT_NOW: &str = "57P03";

/// Whether an error with this SQLSTATE is worth running again (a fault-tolerant retry policy re-runs
/// the query or task; Trino retries all but user errors): connection failures (class `08`), a
/// serialization failure or deadlock (`40001`, `40P01`), too many connections (`53300`), a server
/// shutting down or starting (`57P01`..`57P03`), and system or I/O errors (class `58` but a missing
/// or duplicate file, `58P01`/`58P02`; a lost worker or a failed exchange read reports `58000`).
/// Never a user's error (syntax, missing table, division by zero, a cancel `57014`) and not `53200`
/// out_of_memory, which [`is_out_of_memory`] singles out (only worth a retry with more memory).
pub fn is_retryable(sqlstate: &str) -> bool {
    sqlstate.starts_with("08")
        || (sqlstate.starts_with("58") && !matches!(sqlstate, UNDEFINED_FILE | DUPLICATE_FILE))
        || matches!(
            sqlstate,
            SERIALIZATION_FAILURE
                | DEADLOCK_DETECTED
                | TOO_MANY_CONNECTIONS
                | ADMIN_SHUTDOWN
                | CRASH_SHUTDOWN
                | CANNOT_CONNECT_NOW
        )
}

/// Whether the SQLSTATE says memory ran out (`53200` out_of_memory): a task retried with more memory
/// may succeed.
pub fn is_out_of_memory(sqlstate: &str) -> bool {
    sqlstate == OUT_OF_MEMORY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_failures_are_retryable() {
        for code in [
            CONNECTION_FAILURE,
            CONNECTION_FAILURE_ON_CONNECT,
            SYSTEM_ERROR,
            IO_ERROR,
            SERIALIZATION_FAILURE,
            DEADLOCK_DETECTED,
            TOO_MANY_CONNECTIONS,
            ADMIN_SHUTDOWN,
            CRASH_SHUTDOWN,
            CANNOT_CONNECT_NOW,
        ] {
            assert!(is_retryable(code), "{code}");
        }
        for code in [
            SYNTAX_ERROR,
            UNDEFINED_TABLE,
            DIVISION_BY_ZERO,
            QUERY_CANCELED,
            OUT_OF_MEMORY,
            STATEMENT_COMPLETION_UNKNOWN,
            INTERNAL_ERROR,
            INVALID_PASSWORD,
            UNDEFINED_FILE,
            DUPLICATE_FILE,
        ] {
            assert!(!is_retryable(code), "{code}");
        }
        assert!(is_out_of_memory(OUT_OF_MEMORY));
    }
}
