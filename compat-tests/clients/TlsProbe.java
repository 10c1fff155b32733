// pgjdbc over TLS against a Tributary with `[tls]` (and a SCRAM user `alice`): `sslmode=require`,
// `sslmode=verify-full` with the test CA as `sslrootcert` (host `localhost`), and verify-full with
// a CA that did not sign the server's certificate, which must fail.
// Usage: java -cp postgresql.jar:DIR TlsProbe PORT PASSWORD CA_FILE OTHER_CA_FILE
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;

public class TlsProbe {
    static void check(boolean ok, String what) {
        if (!ok) {
            throw new AssertionError(what);
        }
    }

    static Connection connect(String host, String port, String password, String ssl) throws SQLException {
        Properties props = new Properties();
        props.setProperty("user", "alice");
        props.setProperty("password", password);
        return DriverManager.getConnection("jdbc:postgresql://" + host + ":" + port + "/tpch?" + ssl, props);
    }

    static void query(Connection conn, String what) throws SQLException {
        try (Statement st = conn.createStatement();
             ResultSet rs = st.executeQuery("select current_user, count(*) from tiny.nation")) {
            check(rs.next(), what + ": no row");
            check(rs.getString(1).equals("alice") && rs.getLong(2) == 25, what + ": " + rs.getString(1));
        }
    }

    public static void main(String[] args) throws Exception {
        String port = args[0];
        String password = args[1];
        try (Connection conn = connect("127.0.0.1", port, password, "sslmode=require")) {
            query(conn, "sslmode=require");
        }
        try (Connection conn = connect("localhost", port, password, "sslmode=verify-full&sslrootcert=" + args[2])) {
            query(conn, "sslmode=verify-full");
        }
        try (Connection conn = connect("localhost", port, password, "sslmode=verify-full&sslrootcert=" + args[3])) {
            throw new AssertionError("verify-full accepted a certificate the given CA did not sign");
        } catch (SQLException e) {
            String message = String.valueOf(e.getMessage()) + " " + e.getCause();
            check(message.contains("SSL") || message.contains("certificat"), "unexpected failure: " + message);
        }
        System.out.println("jdbc tls ok");
    }
}
