//! Stopping services when the test process ends, and the process facts that needs (root, pids,
//! scratch directories).
//!
//! Test binaries never drop their statics, so every service started by this harness gets two
//! guards: a shell command run from an `atexit` handler (normal exit, including a failed test run),
//! and a watchdog shell process that runs the same command once the test process is gone (covers
//! `kill -9`, aborts and Ctrl-C). Both commands must therefore be idempotent.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, Once};

static AT_EXIT: Mutex<Vec<String>> = Mutex::new(Vec::new());
static REGISTER: Once = Once::new();

extern "C" fn run_at_exit() {
    let commands = match AT_EXIT.lock() {
        Ok(mut guard) => std::mem::take(&mut *guard),
        Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
    };
    // Last registered first, like destructors.
    for command in commands.iter().rev() {
        let _ = Command::new("sh")
            .arg("-c")
            .arg(command)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Runs `shell_command` (with `sh -c`) when this process exits normally, and from a watchdog
/// process if it dies any other way. Returns the watchdog, which the caller may kill early
/// (then it should also call [`forget_at_exit`]).
pub fn on_exit(shell_command: &str) -> Child {
    REGISTER.call_once(|| {
        // SAFETY: registering a plain `extern "C" fn` with libc's atexit.
        unsafe {
            libc::atexit(run_at_exit);
        }
    });
    AT_EXIT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(shell_command.to_string());
    let pid = std::process::id();
    let script = format!(
        "trap '' INT HUP TERM; while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {shell_command}"
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn watchdog shell (sh)")
}

/// Removes a command registered with [`on_exit`] (after the caller did the cleanup itself).
pub fn forget_at_exit(shell_command: &str) {
    let mut commands = AT_EXIT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(pos) = commands.iter().position(|c| c == shell_command) {
        commands.remove(pos);
    }
}

/// Quotes `s` for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// True when this process runs as root (PostgreSQL then has to run as the `postgres` user).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// True when a process with this pid exists.
pub fn pid_alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A new scratch directory `{prefix}{pid}-{nanos}` under the temp dir, owned by this process
/// (see [`stale_dirs`]).
pub fn scratch_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "{prefix}{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// The [`scratch_dir`]s with `prefix` left behind by test processes that no longer exist (their
/// servers may still run; the caller stops them before removing the directory).
pub fn stale_dirs(prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(prefix) else {
                return false;
            };
            let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
                return false;
            };
            pid != std::process::id() && !pid_alive(pid)
        })
        .map(|entry| entry.path())
        .collect()
}
