//! psql 15 against the built `tributary` binary: the backslash commands people use every day work,
//! print what they should, and log no ERROR; on a `postgres` catalog they show the source's keys
//! and comments. Also `pg_catalog`, `information_schema` and the catalog functions over plain SQL
//! (tokio-postgres), since psql's own queries only cover part of them.

#[path = "support/keyed.rs"]
mod keyed;

use std::process::Command;

use compat_tests::Tributary;
use compat_tests::results::all_rows;

/// Runs psql with each command as a `-c` (in one session, in order); returns (stdout, stderr) and
/// checks that it succeeded without an ERROR.
fn psql(tributary: &Tributary, db: &str, commands: &[&str]) -> (String, String) {
    let (success, stdout, stderr) = run_psql(tributary, db, commands);
    assert!(
        success && !stderr.contains("ERROR"),
        "psql {commands:?} failed:\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver log:\n{}",
        compat_tests::tail(&tributary.log(), 40)
    );
    (stdout, stderr)
}

/// Runs psql; returns (exit success, stdout, stderr).
fn run_psql(tributary: &Tributary, db: &str, commands: &[&str]) -> (bool, String, String) {
    let psql = compat_tests::which("psql").expect("psql (PostgreSQL 15 client) on PATH");
    let mut command = Command::new(psql);
    command
        .args(["-X", "-h", "127.0.0.1", "-U", "tester", "-d", db, "-p"])
        .arg(tributary.port().to_string())
        .env("PGCONNECT_TIMEOUT", "10")
        .env_remove("PGPASSWORD");
    for c in commands {
        command.args(["-c", c]);
    }
    let output = command.output().expect("psql runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.success(), stdout, stderr)
}

fn assert_contains(output: &str, expected: &[&str], what: &str) {
    for e in expected {
        assert!(output.contains(e), "{what}: {e:?} missing from:\n{output}");
    }
}

const TPCH_TABLES: &[&str] = &[
    "customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier",
];

#[test]
fn list_relations_schemas_databases() {
    let tributary = Tributary::start(None);

    let (out, _) = psql(&tributary, "tpch", &["\\dt"]);
    assert_contains(&out, TPCH_TABLES, "\\dt");
    assert_contains(&out, &["tiny", "table"], "\\dt");
    // Only the session's schema is visible, as with search_path in PostgreSQL.
    assert!(!out.contains("sf1 "), "\\dt lists another schema:\n{out}");

    let (out, _) = psql(&tributary, "tpch", &["\\dt sf1.*"]);
    assert_contains(&out, &["sf1", "lineitem", "(8 rows)"], "\\dt sf1.*");

    let (out, _) = psql(&tributary, "tpch", &["\\d"]);
    assert_contains(&out, TPCH_TABLES, "\\d");

    let (out, _) = psql(&tributary, "tpch", &["\\dn"]);
    assert_contains(&out, &["tiny", "sf1", "List of schemas"], "\\dn");
    assert!(!out.contains("pg_catalog"), "\\dn shows pg_catalog:\n{out}");

    let (out, _) = psql(&tributary, "tpch", &["\\l"]);
    assert_contains(&out, &["tpch", "system", "UTF"], "\\l");

    let (_, stderr) = psql(&tributary, "tpch", &["\\dv"]);
    assert_contains(&stderr, &["Did not find any relations"], "\\dv");

    let (out, _) = psql(&tributary, "tpch", &["\\df"]);
    assert_contains(&out, &["List of functions"], "\\df");

    let (out, _) = psql(&tributary, "tpch", &["\\d+"]);
    assert_contains(&out, TPCH_TABLES, "\\d+");
    assert_contains(&out, &["permanent", "Size", "Description"], "\\d+");

    let (out, _) = psql(&tributary, "tpch", &["\\dt+"]);
    assert_contains(&out, &["lineitem", "Access method"], "\\dt+");

    // Roles (with `ARRAY(SELECT ...)` of memberships), indexes, sequences, types, access lists,
    // sizes, settings: valid answers.
    for command in [
        "\\du",
        "\\di",
        "\\ds",
        "\\dT",
        "\\dm",
        "\\dx",
        "\\l+",
        "\\dn+",
        "\\df+",
        "\\db+",
        "\\do",
        "\\dconfig",
    ] {
        psql(&tributary, "tpch", &[command]);
    }

    let (out, _) = psql(&tributary, "tpch", &["\\conninfo"]);
    assert_contains(
        &out,
        &["database \"tpch\"", "user \"tester\""],
        "\\conninfo",
    );

    let (out, _) = psql(&tributary, "system", &["\\dt runtime.*"]);
    assert_contains(&out, &["runtime", "nodes", "queries"], "\\dt in system");
    assert!(
        !out.contains("lineitem"),
        "system lists tpch's tables:\n{out}"
    );
}

#[test]
fn privileges_comments_languages_and_function_source() {
    let tributary = Tributary::start(None);

    // Access privileges: none granted, one row per table, with psql's columns.
    let (out, _) = psql(&tributary, "tpch", &["\\dp"]);
    assert_contains(&out, TPCH_TABLES, "\\dp");
    assert_contains(
        &out,
        &[
            "Access privileges",
            "Column privileges",
            "Policies",
            "(8 rows)",
        ],
        "\\dp",
    );
    let (out, _) = psql(&tributary, "tpch", &["\\dp sf1.*"]);
    assert_contains(&out, &["sf1", "lineitem", "(8 rows)"], "\\dp sf1.*");
    let (out, _) = psql(&tributary, "tpch", &["\\dp nation"]);
    assert_contains(&out, &["tiny", "nation", "(1 row)"], "\\dp nation");

    // Comments of constraints, rules, triggers, ... (`tableoid` joins `pg_description`).
    for command in ["\\dd", "\\dd nation"] {
        let (out, _) = psql(&tributary, "tpch", &[command]);
        assert_contains(&out, &["Object descriptions", "(0 rows)"], command);
    }

    let (out, _) = psql(&tributary, "tpch", &["\\dL"]);
    assert_contains(
        &out,
        &[
            "List of languages",
            "plpgsql",
            "PL/pgSQL procedural language",
        ],
        "\\dL",
    );
    for (command, title) in [
        ("\\dy", "List of event triggers"),
        ("\\dO", "List of collations"),
        ("\\dX", "List of extended statistics"),
    ] {
        let (out, _) = psql(&tributary, "tpch", &[command]);
        assert_contains(&out, &[title, "(0 rows)"], command);
    }

    // A built-in function's definition, as PostgreSQL 15 prints it.
    let (out, _) = psql(&tributary, "tpch", &["\\sf abs(int)"]);
    assert_eq!(
        out,
        "CREATE OR REPLACE FUNCTION pg_catalog.abs(integer)\n RETURNS integer\n LANGUAGE internal\n \
         IMMUTABLE PARALLEL SAFE STRICT\nAS $function$int4abs$function$\n"
    );
    let (out, _) = psql(&tributary, "tpch", &["\\sf version"]);
    assert_contains(
        &out,
        &[
            "CREATE OR REPLACE FUNCTION pg_catalog.version()",
            "RETURNS text",
        ],
        "\\sf version",
    );
    // Overloaded or unknown names fail as in PostgreSQL.
    let (_, _, stderr) = run_psql(&tributary, "tpch", &["\\sf abs"]);
    assert_contains(
        &stderr,
        &["ERROR:  more than one function named \"abs\""],
        "\\sf abs",
    );
    let (_, _, stderr) = run_psql(&tributary, "tpch", &["\\sf no_such_function"]);
    assert_contains(
        &stderr,
        &["ERROR:  function \"no_such_function\" does not exist"],
        "\\sf no_such_function",
    );
}

#[test]
fn describe_tables() {
    let tributary = Tributary::start(None);
    let lineitem_columns = [
        "l_orderkey",
        "bigint",
        "l_linenumber",
        "integer",
        "l_quantity",
        "numeric(15,2)",
        "l_shipdate",
        "date",
        "l_comment",
        "text",
        "not null",
    ];

    let (out, _) = psql(&tributary, "tpch", &["\\d tiny.lineitem"]);
    assert_contains(&out, &["Table \"tiny.lineitem\""], "\\d tiny.lineitem");
    assert_contains(&out, &lineitem_columns, "\\d tiny.lineitem");

    // Unqualified, after moving the search path; the same in one psql session.
    let (out, _) = psql(
        &tributary,
        "tpch",
        &["SET search_path TO sf1", "\\d lineitem", "\\dt"],
    );
    assert_contains(&out, &["Table \"sf1.lineitem\""], "\\d after SET");
    assert_contains(&out, &lineitem_columns, "\\d after SET");
    assert_contains(&out, &["sf1    | orders"], "\\dt after SET");

    // A missing table is psql's own message, not a server error.
    let (_, _, stderr) = run_psql(&tributary, "tpch", &["\\d no_such_table"]);
    assert!(!stderr.contains("ERROR"), "{stderr}");
    assert_contains(
        &stderr,
        &["Did not find any relation named \"no_such_table\""],
        "\\d no_such_table",
    );

    // `\d+ TABLE` lists the table's options with `ARRAY(SELECT ... FROM unnest(...))`.
    let (out, _) = psql(&tributary, "tpch", &["\\d+ tiny.lineitem"]);
    assert_contains(&out, &["Table \"tiny.lineitem\""], "\\d+ tiny.lineitem");
    assert_contains(&out, &lineitem_columns, "\\d+ tiny.lineitem");
    assert_contains(
        &out,
        &["Storage", "Description", "Access method: heap"],
        "\\d+ tiny.lineitem",
    );

    let (out, _) = psql(
        &tributary,
        "tpch",
        &["\\x", "select 1 as a, 'x' as b", "\\x"],
    );
    assert_contains(
        &out,
        &["Expanded display is on.", "-[ RECORD 1 ]", "a | 1", "b | x"],
        "\\x",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_comments_of_a_postgres_catalog() {
    let config = keyed::catalog().await;
    let tributary = Tributary::start(Some(config.path()));
    let db = keyed::CATALOG;

    let (out, _) = psql(&tributary, db, &["\\d public.orders"]);
    assert_contains(
        &out,
        &[
            "character varying(20)",
            "numeric(10,2)",
            "Indexes:",
            "\"orders_pkey\" PRIMARY KEY, btree (id)",
        ],
        "\\d public.orders",
    );
    let (out, _) = psql(&tributary, db, &["\\d+ public.orders"]);
    assert_contains(&out, &["Total in EUR"], "\\d+ public.orders");
    let (out, _) = psql(&tributary, db, &["\\d public.lines"]);
    assert_contains(
        &out,
        &["\"lines_pkey\" PRIMARY KEY, btree (order_id, line)"],
        "\\d public.lines",
    );
    let (out, _) = psql(&tributary, db, &["\\dt+ public.*"]);
    assert_contains(&out, &["Customer orders"], "\\dt+ public.*");
    let (out, _) = psql(&tributary, db, &["\\di public.*"]);
    assert_contains(
        &out,
        &["orders_pkey", "lines_pkey", "index"],
        "\\di public.*",
    );

    let client = tributary.connect(db).await;
    let constraints = all_rows(
        &client,
        "SELECT tc.table_name, tc.constraint_name, tc.constraint_type, k.column_name, k.ordinal_position \
         FROM information_schema.table_constraints tc JOIN information_schema.key_column_usage k \
         ON k.constraint_name = tc.constraint_name AND k.table_schema = tc.table_schema \
         WHERE tc.table_schema = 'public' ORDER BY 1, 5",
    )
    .await;
    let row = |t: &str, c: &str, column: &str, n: &str| {
        [t, c, "PRIMARY KEY", column, n]
            .map(|v| Some(v.to_string()))
            .to_vec()
    };
    assert_eq!(
        constraints,
        vec![
            row("lines", "lines_pkey", "order_id", "1"),
            row("lines", "lines_pkey", "line", "2"),
            row("orders", "orders_pkey", "id", "1"),
        ]
    );
    let comments = all_rows(
        &client,
        "SELECT obj_description('public.orders'::regclass, 'pg_class'), \
         col_description('public.orders'::regclass, 3), col_description('public.orders'::regclass, 1)",
    )
    .await;
    assert_eq!(
        comments,
        vec![vec![
            Some("Customer orders".to_string()),
            Some("Total in EUR".to_string()),
            None
        ]]
    );
    let columns = all_rows(
        &client,
        "SELECT column_name, data_type, character_maximum_length, numeric_precision, numeric_scale, \
         is_nullable FROM information_schema.columns WHERE table_name = 'orders' ORDER BY ordinal_position",
    )
    .await;
    let strings = |row: [Option<&str>; 6]| row.map(|v| v.map(String::from)).to_vec();
    assert_eq!(
        columns,
        vec![
            strings([
                Some("id"),
                Some("integer"),
                None,
                Some("32"),
                Some("0"),
                Some("NO")
            ]),
            strings([
                Some("code"),
                Some("character varying"),
                Some("20"),
                None,
                None,
                Some("YES")
            ]),
            strings([
                Some("total"),
                Some("numeric"),
                None,
                Some("10"),
                Some("2"),
                Some("YES")
            ]),
            strings([Some("note"), Some("text"), None, None, None, Some("YES")]),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pg_catalog_and_functions() {
    let tributary = Tributary::start(None);
    let client = tributary.connect("tpch").await;

    let row = &all_rows(
        &client,
        "SELECT version(), current_schema(), current_database(), current_user",
    )
    .await[0];
    assert!(
        row[0].as_deref().unwrap().starts_with("PostgreSQL 15"),
        "{row:?}"
    );
    assert_eq!(row[1].as_deref(), Some("tiny"));
    assert_eq!(row[2].as_deref(), Some("tpch"));

    // The same relation by every spelling, and the same OID from another session.
    let qualified = all_rows(
        &client,
        "SELECT c.oid FROM tpch.pg_catalog.pg_class c JOIN tpch.pg_catalog.pg_namespace n \
         ON n.oid = c.relnamespace WHERE c.relname = 'lineitem' AND n.nspname = 'tiny'",
    )
    .await;
    assert_eq!(qualified.len(), 1, "{qualified:?}");
    for sql in [
        "SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n \
         ON n.oid = c.relnamespace WHERE c.relname = 'lineitem' AND n.nspname = 'tiny'",
        "SELECT c.oid FROM pg_class c JOIN pg_namespace n \
         ON n.oid = c.relnamespace WHERE c.relname = 'lineitem' AND n.nspname = 'tiny'",
    ] {
        assert_eq!(all_rows(&client, sql).await, qualified, "{sql}");
    }
    let other = tributary.connect("tpch").await;
    let again = all_rows(
        &other,
        "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relname = 'lineitem' AND n.nspname = 'tiny'",
    )
    .await;
    assert_eq!(again, qualified, "OIDs differ between sessions");

    let columns = all_rows(
        &client,
        &format!(
            "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
             WHERE a.attrelid = '{}' AND a.attnum > 0 ORDER BY a.attnum",
            qualified[0][0].as_deref().unwrap()
        ),
    )
    .await;
    assert_eq!(columns.len(), 16, "{columns:?}");
    assert_eq!(columns[0][0].as_deref(), Some("l_orderkey"));
    assert_eq!(columns[0][1].as_deref(), Some("bigint"));

    // Rewritten client syntax reaches DataFusion in a form it plans.
    let rows = all_rows(
        &client,
        "SELECT c.relname FROM pg_catalog.pg_class c \
         WHERE c.relname OPERATOR(pg_catalog.~) '^(nation)$' COLLATE pg_catalog.default \
         AND pg_catalog.pg_table_is_visible(c.oid)",
    )
    .await;
    assert_eq!(rows, vec![vec![Some("nation".to_string())]]);

    // EXPLAIN of a catalog query explains it as rewritten.
    let plan = all_rows(
        &client,
        "EXPLAIN SELECT c.relname FROM pg_catalog.pg_class c \
         WHERE c.relname OPERATOR(pg_catalog.~) '^(nation)$' AND pg_catalog.pg_table_is_visible(c.oid)",
    )
    .await;
    assert!(
        plan.iter()
            .flatten()
            .flatten()
            .any(|l| l.contains("Stage 0")),
        "{plan:?}"
    );

    // Catalog tables have PostgreSQL's system column `tableoid`, the table's own OID.
    let mut oids = all_rows(
        &client,
        "SELECT DISTINCT l.tableoid FROM pg_catalog.pg_language l \
         UNION ALL SELECT DISTINCT c.tableoid FROM pg_catalog.pg_class c",
    )
    .await;
    oids.sort();
    assert_eq!(
        oids,
        vec![
            vec![Some("1259".to_string())],
            vec![Some("2612".to_string())]
        ]
    );

    // Other catalogs have their own pg_catalog.
    let system = all_rows(
        &client,
        "SELECT count(*) FROM system.pg_catalog.pg_class WHERE relname = 'nodes'",
    )
    .await;
    assert_eq!(system[0][0].as_deref(), Some("1"));

    // Errors stay clean SQLSTATE errors.
    let err = client
        .simple_query("SELECT * FROM pg_catalog.pg_no_such_table")
        .await
        .expect_err("unknown pg_catalog table");
    assert_eq!(err.code().map(|c| c.code()), Some("42P01"), "{err:?}");
}

#[test]
fn progress_notices_show_in_psql_while_a_query_runs() {
    let tributary = Tributary::start(None);
    let (out, err) = psql(
        &tributary,
        "tpch",
        &[
            "set progress_notices = on",
            "set progress_interval = '200ms'",
            "select count(*) from generate_series(1, 30000000)",
            "select a % 3, count(*) from generate_series(1, 8000000) t(a) group by 1 order by 1",
        ],
    );
    assert_contains(&out, &["30000000", "2666666"], "the queries' answers");
    // The first query is one stage, on the coordinator; the second has tasks.
    assert_contains(
        &err,
        &[
            "NOTICE:  query ",
            " s, running on the coordinator",
            " stages finished, ",
            " tasks finished, ",
            " rows out",
        ],
        "progress notices",
    );
    // Off by default.
    let (_, quiet) = psql(
        &tributary,
        "tpch",
        &["select count(*) from generate_series(1, 30000000)"],
    );
    assert!(!quiet.contains("NOTICE"), "{quiet}");
}
