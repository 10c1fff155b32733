//! node-postgres (`pg`) against the built `tributary` binary: simple and parameterized queries, a named
//! prepared statement, a transaction, a multi-statement query. `scripts/deps/clients.sh` installs `pg`
//! under target/test-tools/node (a missing module fails the test).

use std::path::PathBuf;
use std::process::Command;

use compat_tests::Tributary;

#[test]
fn node_postgres_queries() {
    let modules = std::env::var_os("CLIENTS_NODE_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| compat_tests::target_dir().join("test-tools/node/node_modules"));
    assert!(
        modules.join("pg/package.json").is_file(),
        "npm module `pg` not found under {}: run scripts/test.sh (scripts/deps/clients.sh) or set \
         CLIENTS_NODE_PATH",
        modules.display()
    );
    let node =
        compat_tests::which("node").expect("node on PATH (scripts/deps/clients.sh installs it)");
    let tributary = Tributary::start(None);
    let script = compat_tests::workspace_root().join("compat-tests/clients/node_probe.js");
    let output = Command::new(node)
        .arg(script)
        .arg(tributary.port().to_string())
        .env("NODE_PATH", &modules)
        .output()
        .expect("node runs");
    assert!(
        output.status.success(),
        "node-postgres probe failed:\nstdout:\n{}\nstderr:\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        compat_tests::tail(&tributary.log(), 40)
    );
}
