// pgjdbc against Tributary: DatabaseMetaData (what Metabase and DBeaver call on connect and sync), a
// PreparedStatement executed past pgjdbc's prepareThreshold (server-prepared, binary results), and
// setFetchSize streaming of a large result (Execute with a row limit, PortalSuspended, resume).
// With KEYED_DB, also the primary keys, indexes and comments of that database's `public.orders`
// (key `id`, comments) and `public.lines` (key `order_id, line`).
// Usage: java -cp postgresql.jar:DIR JdbcProbe PORT [KEYED_DB]
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;

public class JdbcProbe {
    static void check(boolean ok, String what) {
        if (!ok) {
            throw new AssertionError(what);
        }
    }

    /// Every row of `rs` as strings, columns joined by '|'.
    static List<String> rows(ResultSet rs) throws Exception {
        ResultSetMetaData md = rs.getMetaData();
        List<String> out = new ArrayList<>();
        while (rs.next()) {
            StringBuilder row = new StringBuilder();
            for (int i = 1; i <= md.getColumnCount(); i++) {
                if (i > 1) {
                    row.append('|');
                }
                row.append(rs.getString(i));
            }
            out.add(row.toString());
        }
        rs.close();
        return out;
    }

    static List<String> column(ResultSet rs, String name) throws Exception {
        List<String> out = new ArrayList<>();
        while (rs.next()) {
            out.add(rs.getString(name));
        }
        rs.close();
        return out;
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/tpch";
        Properties props = new Properties();
        props.setProperty("user", "tester");
        try (Connection conn = DriverManager.getConnection(url, props)) {
            metadata(conn);
            prepared(conn);
            streaming(conn);
        }
        if (args.length > 1) {
            String keyed = "jdbc:postgresql://127.0.0.1:" + args[0] + "/" + args[1];
            try (Connection conn = DriverManager.getConnection(keyed, props)) {
                keys(conn);
            }
        }
        System.out.println("jdbc ok");
    }

    static void metadata(Connection conn) throws Exception {
        DatabaseMetaData md = conn.getMetaData();
        check(md.getDatabaseProductName().equals("PostgreSQL"), md.getDatabaseProductName());
        check(md.getDatabaseMajorVersion() >= 9, "major version " + md.getDatabaseMajorVersion());

        List<String> catalogs = column(md.getCatalogs(), "TABLE_CAT");
        check(catalogs.contains("tpch"), "getCatalogs " + catalogs);

        List<String> schemas = column(md.getSchemas(), "TABLE_SCHEM");
        check(schemas.contains("tiny") && schemas.contains("sf1"), "getSchemas " + schemas);
        List<String> filtered = column(md.getSchemas(null, "ti%"), "TABLE_SCHEM");
        check(filtered.equals(List.of("tiny")), "getSchemas(ti%) " + filtered);

        List<String> tables = column(md.getTables(null, "tiny", "%", new String[] {"TABLE"}), "TABLE_NAME");
        check(tables.contains("nation") && tables.contains("lineitem"), "getTables " + tables);
        List<String> all = column(md.getTables(null, null, "nation", null), "TABLE_SCHEM");
        check(all.contains("tiny"), "getTables(nation) " + all);

        List<String> columns = rows(md.getColumns(null, "tiny", "nation", "%"));
        check(columns.size() == 4, "getColumns " + columns);
        ResultSet rs = md.getColumns(null, "tiny", "nation", "n_%");
        List<String> names = new ArrayList<>();
        while (rs.next()) {
            names.add(rs.getString("COLUMN_NAME") + ":" + rs.getInt("ORDINAL_POSITION") + ":" + rs.getString("TYPE_NAME"));
        }
        rs.close();
        check(names.size() == 4 && names.get(0).startsWith("n_nationkey:1:"), "getColumns names " + names);

        // The tpch connector declares no keys: a valid, empty answer.
        List<String> pks = rows(md.getPrimaryKeys(null, "tiny", "nation"));
        check(pks.isEmpty(), "getPrimaryKeys " + pks);
        List<String> indexes = rows(md.getIndexInfo(null, "tiny", "nation", false, true));
        check(indexes.isEmpty(), "getIndexInfo " + indexes);
        rows(md.getImportedKeys(null, "tiny", "nation"));

        List<String> types = column(md.getTypeInfo(), "TYPE_NAME");
        check(types.contains("int4") && types.contains("text") && types.contains("timestamptz"), "getTypeInfo " + types);
        rows(md.getTableTypes());
        rows(md.getProcedures(null, "tiny", "%"));
        rows(md.getFunctions(null, "tiny", "%"));
        rows(md.getUDTs(null, null, null, null));
        System.out.println("metadata ok: " + tables.size() + " tables, " + types.size() + " types");
    }

    static void keys(Connection conn) throws Exception {
        DatabaseMetaData md = conn.getMetaData();
        List<String> pks = new ArrayList<>();
        try (ResultSet rs = md.getPrimaryKeys(null, "public", "lines")) {
            while (rs.next()) {
                pks.add(rs.getString("COLUMN_NAME") + ":" + rs.getInt("KEY_SEQ") + ":" + rs.getString("PK_NAME"));
            }
        }
        check(pks.equals(List.of("order_id:1:lines_pkey", "line:2:lines_pkey")), "getPrimaryKeys(lines) " + pks);
        List<String> indexes = new ArrayList<>();
        try (ResultSet rs = md.getIndexInfo(null, "public", "orders", true, true)) {
            while (rs.next()) {
                indexes.add(rs.getString("INDEX_NAME") + ":" + rs.getString("COLUMN_NAME") + ":" + rs.getBoolean("NON_UNIQUE"));
            }
        }
        check(indexes.equals(List.of("orders_pkey:id:false")), "getIndexInfo(orders) " + indexes);
        List<String> remarks = column(md.getTables(null, "public", "orders", null), "REMARKS");
        check(remarks.equals(List.of("Customer orders")), "getTables(orders) REMARKS " + remarks);
        List<String> columns = new ArrayList<>();
        try (ResultSet rs = md.getColumns(null, "public", "orders", "%")) {
            while (rs.next()) {
                columns.add(rs.getString("COLUMN_NAME") + ":" + rs.getString("TYPE_NAME") + ":" + rs.getString("REMARKS"));
            }
        }
        check(columns.equals(List.of("id:int4:null", "code:varchar:null", "total:numeric:Total in EUR", "note:text:null")),
            "getColumns(orders) " + columns);
        System.out.println("keys ok");
    }

    static void prepared(Connection conn) throws Exception {
        // prepareThreshold defaults to 5: from the fifth execution pgjdbc uses a named server statement
        // and asks for binary results.
        try (PreparedStatement ps = conn.prepareStatement(
                "SELECT n_name, n_regionkey, n_nationkey * 1.5 AS x FROM tpch.tiny.nation WHERE n_nationkey = ?")) {
            for (int i = 0; i < 8; i++) {
                ps.setLong(1, i);
                try (ResultSet rs = ps.executeQuery()) {
                    check(rs.next(), "row for nation " + i);
                    check(rs.getString(1) != null && !rs.getString(1).isEmpty(), "name of nation " + i);
                    check(rs.getLong(2) >= 0 && rs.getLong(2) < 5, "region of nation " + i);
                    check(Math.abs(rs.getDouble(3) - i * 1.5) < 1e-9, "x of nation " + i + ": " + rs.getDouble(3));
                    check(!rs.next(), "one row for nation " + i);
                }
            }
        }
        // The same row through the text results of the first executions and the binary ones after.
        try (PreparedStatement ps = conn.prepareStatement(
                "SELECT o_orderdate, o_totalprice, o_orderstatus, o_comment FROM tpch.tiny.orders WHERE o_orderkey = ?")) {
            String first = null;
            for (int i = 0; i < 7; i++) {
                ps.setInt(1, 1);
                try (ResultSet rs = ps.executeQuery()) {
                    check(rs.next(), "order 1");
                    check(rs.getDate(1).toString().equals("1996-01-02"), "orderdate " + rs.getDate(1));
                    String row = rs.getDate(1) + "|" + rs.getBigDecimal(2).toPlainString() + "|" + rs.getString(3) + "|" + rs.getString(4);
                    check(rs.getBigDecimal(2).scale() == 2, "totalprice scale " + rs.getBigDecimal(2));
                    check(rs.getString(3).equals("O"), "status " + rs.getString(3));
                    if (first == null) {
                        first = row;
                    }
                    check(row.equals(first), "execution " + i + ": " + row + " != " + first);
                }
            }
        }
        System.out.println("prepared ok");
    }

    static void streaming(Connection conn) throws Exception {
        conn.setAutoCommit(false);
        try (Statement st = conn.createStatement()) {
            st.setFetchSize(100);
            long rows = 0;
            long sum = 0;
            try (ResultSet rs = st.executeQuery("SELECT l_orderkey, l_linenumber FROM tpch.tiny.lineitem")) {
                while (rs.next()) {
                    rows++;
                    sum += rs.getLong(2);
                }
            }
            check(rows == 60175, "lineitem rows " + rows);
            check(sum > rows, "linenumber sum " + sum);
            System.out.println("streaming ok: " + rows + " rows");
        }
        conn.commit();
        conn.setAutoCommit(true);
    }
}
