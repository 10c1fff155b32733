//! pgjdbc programs of `compat-tests/clients/*.java`, compiled once per test process with javac
//! against Debian's `libpostgresql-jdbc-java` (`scripts/deps/clients.sh` installs both and exports
//! PGJDBC_JAR; a missing one fails the test). Included by the test files that run them.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

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

/// The classpath with pgjdbc and every compiled program (compiled on first use).
fn classpath() -> &'static OsString {
    static CLASSPATH: OnceLock<OsString> = OnceLock::new();
    CLASSPATH.get_or_init(|| {
        let jar = pgjdbc_jar();
        let javac = compat_tests::which("javac").expect("javac on PATH (scripts/deps/clients.sh)");
        // Kept in the static (never dropped), removed when the test process exits.
        static CLASSES: OnceLock<compat_tests::TempDir> = OnceLock::new();
        let classes = CLASSES
            .get_or_init(|| compat_tests::TempDir::new("jdbc-probes").remove_at_exit())
            .path();
        let sources: Vec<PathBuf> =
            std::fs::read_dir(compat_tests::workspace_root().join("compat-tests/clients"))
                .unwrap()
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "java"))
                .collect();
        let compiled = Command::new(javac)
            .arg("-d")
            .arg(classes)
            .arg("-cp")
            .arg(&jar)
            .args(&sources)
            .output()
            .expect("javac runs");
        assert!(
            compiled.status.success(),
            "javac failed:\n{}",
            String::from_utf8_lossy(&compiled.stderr)
        );
        std::env::join_paths([jar.as_path(), classes]).unwrap()
    })
}

/// Runs program `class` with `args`.
pub fn run(class: &str, args: &[&str]) -> Output {
    let java = compat_tests::which("java").expect("java on PATH (scripts/deps/clients.sh)");
    Command::new(java)
        .arg("-cp")
        .arg(classpath())
        .arg(class)
        .args(args)
        .output()
        .expect("java runs")
}
