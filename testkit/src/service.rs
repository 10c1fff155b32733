//! Starting the processes the harness runs (PostgreSQL's and MariaDB's tools, moto, tansu): a
//! checked one-off command, a server with its output in a log file and a watchdog that kills it
//! at process exit, and the wait until it is ready.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::cleanup;

/// Runs `command` to completion with no input, and panics with `what` and its output unless it
/// succeeds.
pub fn run_checked(command: &mut Command, what: &str) {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: could not run {command:?}: {e}"));
    assert_success(&output, &format!("{what} ({command:?})"));
}

/// Panics with `what` and the process's output unless it exited successfully.
pub fn assert_success(output: &Output, what: &str) {
    if !output.status.success() {
        panic!(
            "{what} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// A server process whose stdout and stderr go to a log file.
pub struct LoggedProcess {
    /// The server.
    pub child: Child,
    /// Its output.
    pub log: PathBuf,
    /// Kills the server and removes the log once this test process is gone.
    pub watchdog: Child,
}

/// Spawns `command` (a server named `name` on `port`) with its output in
/// `tributary-{name}-{pid}-{port}.log` under the temp dir; the server is killed and the log
/// removed at process exit.
pub fn spawn_logged(command: &mut Command, name: &str, port: u16) -> LoggedProcess {
    let log = std::env::temp_dir().join(format!(
        "tributary-{name}-{}-{port}.log",
        std::process::id()
    ));
    let log_file =
        std::fs::File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
    let child = command
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("clone log file handle"))
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {:?}: {e}", command.get_program()));
    let watchdog = cleanup::on_exit(&format!(
        "kill {pid} 2>/dev/null; sleep 0.2; kill -9 {pid} 2>/dev/null; rm -f {log}",
        pid = child.id(),
        log = cleanup::shell_quote(&log.to_string_lossy())
    ));
    LoggedProcess {
        child,
        log,
        watchdog,
    }
}

impl LoggedProcess {
    /// Waits until `ready` says the server (`what`) answers, polling every 50 ms; panics with the
    /// log if it exits first or is not ready within `timeout`.
    pub fn wait_ready(&mut self, what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            if ready() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{what} exited with {status} during startup:\n{}",
                    read_log(&self.log)
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "{what} was not ready within {timeout:?}:\n{}",
                    read_log(&self.log)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn read_log(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}
