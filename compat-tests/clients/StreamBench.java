// Reads a query's whole result as fast as the server sends it, for scripts/bench-stream.sh (a
// measurement tool, not a test):
//   rows: the query through a server-prepared statement in binary format (prepareThreshold=-1),
//         streamed 10000 rows a fetch; pgjdbc keeps each row's bytes undecoded until a value is
//         read, so the client costs little beside the server;
//   copy: `COPY (...) TO STDOUT` (text or CSV: one row a line) through CopyManager.
// Prints `rows seconds bytes` (bytes of COPY data; 0 for rows).
// Usage: java -cp postgresql.jar:DIR StreamBench JDBC_URL USER rows|copy SQL
import java.io.OutputStream;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.util.Properties;
import org.postgresql.PGConnection;

public class StreamBench {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.setProperty("user", args[1]);
        props.setProperty("prepareThreshold", "-1");
        props.setProperty("binaryTransfer", "true");
        long rows = 0;
        long bytes = 0;
        long start;
        try (Connection conn = DriverManager.getConnection(args[0], props)) {
            start = System.nanoTime();
            if (args[2].equals("rows")) {
                conn.setAutoCommit(false);
                try (PreparedStatement ps = conn.prepareStatement(args[3])) {
                    ps.setFetchSize(10000);
                    try (ResultSet rs = ps.executeQuery()) {
                        while (rs.next()) {
                            rows++;
                        }
                    }
                }
                conn.commit();
            } else {
                long[] counted = new long[2];
                OutputStream counter = new OutputStream() {
                    @Override
                    public void write(int b) {
                        counted[1]++;
                        if (b == '\n') {
                            counted[0]++;
                        }
                    }

                    @Override
                    public void write(byte[] b, int off, int len) {
                        counted[1] += len;
                        for (int i = off; i < off + len; i++) {
                            if (b[i] == '\n') {
                                counted[0]++;
                            }
                        }
                    }
                };
                conn.unwrap(PGConnection.class).getCopyAPI().copyOut(args[3], counter);
                rows = counted[0];
                bytes = counted[1];
            }
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        System.out.printf("%d %.3f %d%n", rows, seconds, bytes);
    }
}
