// What Metabase's PostgreSQL driver sends when it syncs a database, over pgjdbc as Metabase does
// (src/metabase/driver/postgres.clj and sql_jdbc/sync/describe_database.clj: session setup, the
// table-privileges query, get-tables-sql, the SELECT probe per table, describe-fields-sql,
// describe-fks-sql, describe-indexes-sql, the enum-types query, a fingerprint query), with the
// parameters as PreparedStatement parameters. Prints what it found, one line per table and field,
// for the test to check; any SQL error fails it.
// Usage: java -cp postgresql.jar:DIR MetabaseProbe PORT DATABASE SCHEMA
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Properties;

public class MetabaseProbe {
    static final String PRIVILEGES = String.join("\n",
        "with table_privileges as (",
        " select",
        "   NULL as role,",
        "   t.schemaname as schema,",
        "   t.objectname as table,",
        "   pg_catalog.has_any_column_privilege(current_user, '\"' || replace(t.schemaname, '\"', '\"\"') || '\"' || '.' || '\"' || replace(t.objectname, '\"', '\"\"') || '\"',  'update') as update,",
        "   pg_catalog.has_any_column_privilege(current_user, '\"' || replace(t.schemaname, '\"', '\"\"') || '\"' || '.' || '\"' || replace(t.objectname, '\"', '\"\"') || '\"',  'select') as select,",
        "   pg_catalog.has_any_column_privilege(current_user, '\"' || replace(t.schemaname, '\"', '\"\"') || '\"' || '.' || '\"' || replace(t.objectname, '\"', '\"\"') || '\"',  'insert') as insert,",
        "   pg_catalog.has_table_privilege(     current_user, '\"' || replace(t.schemaname, '\"', '\"\"') || '\"' || '.' || '\"' || replace(t.objectname, '\"', '\"\"') || '\"',  'delete') as delete",
        " from (",
        "   select schemaname, tablename as objectname from pg_catalog.pg_tables",
        "   union",
        "   select schemaname, viewname as objectname from pg_catalog.pg_views",
        "   union",
        "   select schemaname, matviewname as objectname from pg_catalog.pg_matviews",
        " ) t",
        " where t.schemaname !~ '^pg_'",
        "   and t.schemaname <> 'information_schema'",
        "   and pg_catalog.has_schema_privilege(current_user, t.schemaname, 'usage')",
        ")",
        "select t.*",
        "from table_privileges t");

    static final String TABLES = "SELECT \"n\".\"nspname\" AS \"schema\", \"c\".\"relname\" AS \"name\", "
        + "CASE \"c\".\"relkind\" WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'PARTITIONED TABLE' WHEN 'v' THEN 'VIEW' "
        + "WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE NULL END AS \"type\", "
        + "\"d\".\"description\" AS \"description\", \"stat\".\"n_live_tup\" AS \"estimated_row_count\" "
        + "FROM \"pg_catalog\".\"pg_class\" AS \"c\" INNER JOIN \"pg_catalog\".\"pg_namespace\" AS \"n\" ON \"c\".\"relnamespace\" = \"n\".\"oid\" "
        + "LEFT JOIN \"pg_catalog\".\"pg_description\" AS \"d\" ON (\"c\".\"oid\" = \"d\".\"objoid\") AND (\"d\".\"objsubid\" = ?) "
        + "AND (\"d\".\"classoid\" = 'pg_class'::regclass) "
        + "LEFT JOIN \"pg_stat_user_tables\" AS \"stat\" ON (\"n\".\"nspname\" = \"stat\".\"schemaname\") AND (\"c\".\"relname\" = \"stat\".\"relname\") "
        + "WHERE (\"c\".\"relnamespace\" = \"n\".\"oid\") AND (\"n\".\"nspname\" !~ ?) AND (\"n\".\"nspname\" <> ?) "
        + "AND c.relkind in ('r', 'p', 'v', 'f', 'm') AND (\"n\".\"nspname\" IN (?)) "
        + "ORDER BY \"type\" ASC, \"schema\" ASC, \"name\" ASC";

    static final String FIELDS = "SELECT \"c\".\"column_name\" AS \"name\", "
        + "CASE WHEN \"c\".\"udt_schema\" IN ('public', 'pg_catalog') THEN FORMAT('%s', \"c\".\"udt_name\") "
        + "ELSE FORMAT('\"%s\".\"%s\"', \"c\".\"udt_schema\", \"c\".\"udt_name\") END AS \"database-type\", "
        + "\"c\".\"ordinal_position\" - 1 AS \"database-position\", \"c\".\"table_schema\" AS \"table-schema\", "
        + "\"c\".\"table_name\" AS \"table-name\", \"pk\".\"column_name\" IS NOT NULL AS \"pk?\", "
        + "COL_DESCRIPTION(CAST(CAST(FORMAT('%I.%I', CAST(\"c\".\"table_schema\" AS TEXT), CAST(\"c\".\"table_name\" AS TEXT)) AS REGCLASS) AS OID), "
        + "\"c\".\"ordinal_position\") AS \"field-comment\", "
        + "((\"column_default\" IS NULL) OR (LOWER(\"column_default\") = 'null')) AND (\"is_nullable\" = 'NO') "
        + "AND NOT (((\"column_default\" IS NOT NULL) AND (\"column_default\" LIKE '%nextval(%')) OR (\"is_identity\" <> 'NO')) AS \"database-required\", "
        + "((\"column_default\" IS NOT NULL) AND (\"column_default\" LIKE '%nextval(%')) OR (\"is_identity\" <> 'NO') AS \"database-is-auto-increment\" "
        + "FROM \"information_schema\".\"columns\" AS \"c\" "
        + "LEFT JOIN (SELECT \"tc\".\"table_schema\", \"tc\".\"table_name\", \"kc\".\"column_name\" "
        + "FROM \"information_schema\".\"table_constraints\" AS \"tc\" "
        + "INNER JOIN \"information_schema\".\"key_column_usage\" AS \"kc\" ON (\"tc\".\"constraint_name\" = \"kc\".\"constraint_name\") "
        + "AND (\"tc\".\"table_schema\" = \"kc\".\"table_schema\") AND (\"tc\".\"table_name\" = \"kc\".\"table_name\") "
        + "WHERE \"tc\".\"constraint_type\" = 'PRIMARY KEY') AS \"pk\" ON (\"c\".\"table_schema\" = \"pk\".\"table_schema\") "
        + "AND (\"c\".\"table_name\" = \"pk\".\"table_name\") AND (\"c\".\"column_name\" = \"pk\".\"column_name\") "
        + "WHERE c.table_schema !~ '^information_schema|catalog_history|pg_' AND (\"c\".\"table_schema\" IN (?)) AND (\"c\".\"table_name\" IN (%TABLES%)) "
        + "UNION ALL "
        + "SELECT \"pa\".\"attname\" AS \"name\", CASE WHEN \"ptn\".\"nspname\" IN ('public', 'pg_catalog') THEN FORMAT('%s', \"pt\".\"typname\") "
        + "ELSE FORMAT('\"%s\".\"%s\"', \"ptn\".\"nspname\", \"pt\".\"typname\") END AS \"database-type\", "
        + "\"pa\".\"attnum\" - 1 AS \"database-position\", \"pn\".\"nspname\" AS \"table-schema\", \"pc\".\"relname\" AS \"table-name\", "
        + "FALSE AS \"pk?\", NULL AS \"field-comment\", FALSE AS \"database-required\", FALSE AS \"database-is-auto-increment\" "
        + "FROM \"pg_catalog\".\"pg_class\" AS \"pc\" INNER JOIN \"pg_catalog\".\"pg_namespace\" AS \"pn\" ON \"pn\".\"oid\" = \"pc\".\"relnamespace\" "
        + "INNER JOIN \"pg_catalog\".\"pg_attribute\" AS \"pa\" ON \"pa\".\"attrelid\" = \"pc\".\"oid\" "
        + "INNER JOIN \"pg_catalog\".\"pg_type\" AS \"pt\" ON \"pt\".\"oid\" = \"pa\".\"atttypid\" "
        + "INNER JOIN \"pg_catalog\".\"pg_namespace\" AS \"ptn\" ON \"ptn\".\"oid\" = \"pt\".\"typnamespace\" "
        + "WHERE (\"pc\".\"relkind\" = 'm') AND (\"pa\".\"attnum\" >= 1) AND (\"pn\".\"nspname\" IN (?)) AND (\"pc\".\"relname\" IN (%TABLES%)) "
        + "ORDER BY \"table-schema\" ASC, \"table-name\" ASC, \"database-position\" ASC";

    static final String FKS = "SELECT \"fk_ns\".\"nspname\" AS \"fk-table-schema\", \"fk_table\".\"relname\" AS \"fk-table-name\", "
        + "\"fk_column\".\"attname\" AS \"fk-column-name\", \"pk_ns\".\"nspname\" AS \"pk-table-schema\", "
        + "\"pk_table\".\"relname\" AS \"pk-table-name\", \"pk_column\".\"attname\" AS \"pk-column-name\" "
        + "FROM \"pg_constraint\" AS \"c\" INNER JOIN \"pg_class\" AS \"fk_table\" ON \"c\".\"conrelid\" = \"fk_table\".\"oid\" "
        + "INNER JOIN \"pg_namespace\" AS \"fk_ns\" ON \"c\".\"connamespace\" = \"fk_ns\".\"oid\" "
        + "INNER JOIN \"pg_attribute\" AS \"fk_column\" ON \"c\".\"conrelid\" = \"fk_column\".\"attrelid\" "
        + "INNER JOIN \"pg_class\" AS \"pk_table\" ON \"c\".\"confrelid\" = \"pk_table\".\"oid\" "
        + "INNER JOIN \"pg_namespace\" AS \"pk_ns\" ON \"pk_table\".\"relnamespace\" = \"pk_ns\".\"oid\" "
        + "INNER JOIN \"pg_attribute\" AS \"pk_column\" ON \"c\".\"confrelid\" = \"pk_column\".\"attrelid\" "
        + "WHERE (fk_ns.nspname !~ '^information_schema|catalog_history|pg_') AND (\"c\".\"contype\" = 'f'::char) "
        + "AND (\"fk_column\".\"attnum\" = ANY(c.conkey)) AND (\"pk_column\".\"attnum\" = ANY(c.confkey)) "
        + "AND (\"fk_ns\".\"nspname\" IN (?)) ORDER BY \"fk-table-schema\" ASC, \"fk-table-name\" ASC";

    static final String INDEXES = "SELECT \"tmp\".\"table-schema\", \"tmp\".\"table-name\", "
        + "TRIM(BOTH '\"' FROM PG_CATALOG.PG_GET_INDEXDEF(\"tmp\".\"ci_oid\", \"tmp\".\"pos\", FALSE)) AS \"field-name\" "
        + "FROM (SELECT \"n\".\"nspname\" AS \"table-schema\", \"ct\".\"relname\" AS \"table-name\", \"ci\".\"oid\" AS \"ci_oid\", "
        + "(INFORMATION_SCHEMA._PG_EXPANDARRAY(\"i\".\"indkey\")).n AS \"pos\" "
        + "FROM \"pg_catalog\".\"pg_class\" AS \"ct\" INNER JOIN \"pg_catalog\".\"pg_namespace\" AS \"n\" ON \"ct\".\"relnamespace\" = \"n\".\"oid\" "
        + "INNER JOIN \"pg_catalog\".\"pg_index\" AS \"i\" ON \"ct\".\"oid\" = \"i\".\"indrelid\" "
        + "INNER JOIN \"pg_catalog\".\"pg_class\" AS \"ci\" ON \"ci\".\"oid\" = \"i\".\"indexrelid\" "
        + "WHERE (PG_CATALOG.PG_GET_EXPR(\"i\".\"indpred\", \"i\".\"indrelid\") IS NULL) "
        + "AND n.nspname !~ '^information_schema|catalog_history|pg_' AND (\"n\".\"nspname\" IN (?))) AS \"tmp\" "
        + "WHERE \"tmp\".\"pos\" = 1";

    static final String ENUMS = "SELECT nspname, typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
        + "WHERE t.oid IN (SELECT DISTINCT enumtypid FROM pg_enum e)";

    static void check(boolean ok, String what) {
        if (!ok) {
            throw new AssertionError(what);
        }
    }

    static String quote(String identifier) {
        return "\"" + identifier.replace("\"", "\"\"") + "\"";
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/" + args[1];
        String schema = args[2];
        Properties props = new Properties();
        props.setProperty("user", "tester");
        props.setProperty("ApplicationName", "Metabase v0.55.1");
        try (Connection conn = DriverManager.getConnection(url, props)) {
            // Metabase's connection options for sync: read-only, READ UNCOMMITTED, the report zone.
            conn.setReadOnly(true);
            conn.setTransactionIsolation(Connection.TRANSACTION_READ_UNCOMMITTED);
            try (Statement st = conn.createStatement()) {
                st.execute("SET SESSION TIMEZONE TO 'UTC'");
                try (ResultSet rs = st.executeQuery("show timezone;")) {
                    check(rs.next() && rs.getString(1).equals("UTC"), "show timezone");
                }
            }
            DatabaseMetaData md = conn.getMetaData();
            System.out.println("version|" + md.getDatabaseProductName() + "|" + md.getDatabaseProductVersion());

            // Syncable schemas: getSchemas minus the excluded ones.
            List<String> schemas = new ArrayList<>();
            try (ResultSet rs = md.getSchemas()) {
                while (rs.next()) {
                    String s = rs.getString("TABLE_SCHEM");
                    if (!s.equals("information_schema") && !s.equals("pg_catalog")) {
                        schemas.add(s);
                    }
                }
            }
            check(schemas.contains(schema), "schema " + schema + " not in " + schemas);

            List<String> selectable = new ArrayList<>();
            try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery(PRIVILEGES)) {
                while (rs.next()) {
                    if (rs.getBoolean("select")) {
                        selectable.add(rs.getString("schema") + "." + rs.getString("table"));
                    }
                }
            }

            List<String> tables = new ArrayList<>();
            try (PreparedStatement ps = conn.prepareStatement(TABLES)) {
                ps.setInt(1, 0);
                ps.setString(2, "^pg_");
                ps.setString(3, "information_schema");
                ps.setString(4, schema);
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) {
                        String name = rs.getString("name");
                        check(selectable.contains(rs.getString("schema") + "." + name), "no select privilege on " + name);
                        tables.add(name);
                        System.out.println("table|" + rs.getString("schema") + "|" + name + "|" + rs.getString("type")
                            + "|" + (rs.getString("description") == null ? "" : rs.getString("description")));
                    }
                }
            }
            check(!tables.isEmpty(), "no tables in " + schema);

            // The SELECT probe Metabase runs on each table it may sync.
            try (Statement st = conn.createStatement()) {
                for (String table : tables) {
                    try (ResultSet rs = st.executeQuery(
                            "SELECT TRUE AS \"_\" FROM " + quote(schema) + "." + quote(table) + " WHERE 1 <> 1 LIMIT 0")) {
                        check(!rs.next(), "probe of " + table + " returned a row");
                    }
                }
            }

            String placeholders = String.join(", ", Collections.nCopies(tables.size(), "?"));
            try (PreparedStatement ps = conn.prepareStatement(FIELDS.replace("%TABLES%", placeholders))) {
                int i = 1;
                ps.setString(i++, schema);
                for (String table : tables) {
                    ps.setString(i++, table);
                }
                ps.setString(i++, schema);
                for (String table : tables) {
                    ps.setString(i++, table);
                }
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) {
                        String comment = rs.getString("field-comment");
                        System.out.println("field|" + rs.getString("table-name") + "|" + rs.getString("name")
                            + "|" + rs.getString("database-type") + "|" + rs.getInt("database-position")
                            + "|pk=" + rs.getBoolean("pk?") + "|required=" + rs.getBoolean("database-required")
                            + "|auto=" + rs.getBoolean("database-is-auto-increment")
                            + "|" + (comment == null ? "" : comment));
                    }
                }
            }

            for (String sql : new String[] {FKS, INDEXES}) {
                try (PreparedStatement ps = conn.prepareStatement(sql)) {
                    ps.setString(1, schema);
                    try (ResultSet rs = ps.executeQuery()) {
                        while (rs.next()) {
                            System.out.println((sql == FKS ? "fk|" : "index|") + rs.getString(2) + "|" + rs.getString(3));
                        }
                    }
                }
            }
            try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery(ENUMS)) {
                while (rs.next()) {
                    System.out.println("enum|" + rs.getString(1) + "|" + rs.getString(2));
                }
            }

            // A fingerprint query: the first rows of a table.
            String first = tables.get(0);
            try (Statement st = conn.createStatement();
                 ResultSet rs = st.executeQuery("SELECT * FROM " + quote(schema) + "." + quote(first) + " LIMIT 10000")) {
                int rows = 0;
                while (rs.next()) {
                    rows++;
                }
                check(rows > 0, "no rows in " + first);
            }
            System.out.println("metabase sync ok: " + tables.size() + " tables");
        }
    }
}
