//! pgjdbc (Debian `libpostgresql-jdbc-java`) against the built `tributary` binary: a small Java
//! program (`compat-tests/clients/JdbcProbe.java`, compiled here with javac) calls the
//! DatabaseMetaData methods Metabase and DBeaver use (getCatalogs, getSchemas, getTables, getColumns,
//! getPrimaryKeys, getIndexInfo, getImportedKeys, getTypeInfo, getProcedures, getFunctions, getUDTs),
//! executes PreparedStatements past pgjdbc's prepareThreshold (named server statements, binary
//! results) and streams tpch.tiny.lineitem with setFetchSize(100) (Execute with a row limit,
//! PortalSuspended, resume). `scripts/deps/clients.sh` installs the JDK and the driver and exports
//! PGJDBC_JAR (a missing one fails the test).

use std::path::PathBuf;
use std::process::Command;

use compat_tests::Tributary;

fn pgjdbc_jar() -> PathBuf {
    let jar = std::env::var_os("PGJDBC_JAR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/java/postgresql.jar"));
    assert!(
        jar.is_file(),
        "pgjdbc not found at {}: run scripts/test.sh (scripts/deps/clients.sh installs \
         libpostgresql-jdbc-java) or set PGJDBC_JAR",
        jar.display()
    );
    jar
}

#[test]
fn pgjdbc_metadata_prepared_binary_and_fetch_size() {
    let jar = pgjdbc_jar();
    let javac = compat_tests::which("javac").expect("javac on PATH (scripts/deps/clients.sh)");
    let java = compat_tests::which("java").expect("java on PATH (scripts/deps/clients.sh)");
    let classes = compat_tests::target_dir().join("tmp/jdbc-probe");
    std::fs::create_dir_all(&classes).unwrap();
    let source = compat_tests::workspace_root().join("compat-tests/clients/JdbcProbe.java");
    let compiled = Command::new(javac)
        .arg("-d")
        .arg(&classes)
        .arg("-cp")
        .arg(&jar)
        .arg(&source)
        .output()
        .expect("javac runs");
    assert!(
        compiled.status.success(),
        "javac failed:\n{}",
        String::from_utf8_lossy(&compiled.stderr)
    );

    let tributary = Tributary::start(None);
    let classpath = std::env::join_paths([jar, classes]).unwrap();
    let output = Command::new(java)
        .arg("-cp")
        .arg(classpath)
        .arg("JdbcProbe")
        .arg(tributary.port().to_string())
        .output()
        .expect("java runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "JdbcProbe failed:\nstdout:\n{stdout}\nstderr:\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        compat_tests::tail(&tributary.log(), 40)
    );
    assert!(stdout.contains("jdbc ok"), "{stdout}");
}
