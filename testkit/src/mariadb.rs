//! One real MariaDB (MySQL protocol) per test process ([`Mariadb::shared`]), or a dedicated one a
//! test may stop and start again ([`Mariadb::dedicated`], [`Mariadb::dedicated_with`] for TLS).
//!
//! SQL is run through the `mariadb` command-line client over the server's Unix socket, so the
//! harness needs no MySQL client library of its own.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::TlsFiles;
use crate::cleanup::{self, shell_quote};
use crate::service::run_checked;

/// Directory name prefix of MariaDB scratch dirs under `/tmp` (`{prefix}{pid}-{nanos}`).
const DIR_PREFIX: &str = "tributary-mariadb-";

/// How a [`Mariadb::dedicated_with`] server is set up. The default is the shared server's: no TLS.
#[derive(Debug, Clone, Default)]
pub struct MariadbOptions {
    /// Server certificate and key: TCP connections must then use TLS
    /// (`require-secure-transport`); the Unix socket the harness uses stays plain.
    pub tls: Option<TlsFiles>,
}

/// A MariaDB server started by this harness: user `root` without a password on 127.0.0.1 and a
/// free port (`--skip-name-resolve`), stopped (and its directory removed) at process exit.
#[derive(Debug)]
pub struct Mariadb {
    port: u16,
    base: PathBuf,
    client: PathBuf,
    options: MariadbOptions,
    _child: Mutex<Child>,
    _watchdog: Mutex<Child>,
}

/// `program` on PATH or in the usual sbin/bin directories (Debian puts mariadbd in /usr/sbin).
fn find(program: &str) -> Option<PathBuf> {
    crate::which(program).or_else(|| {
        ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"]
            .iter()
            .map(|d| Path::new(d).join(program))
            .find(|p| p.is_file())
    })
}

fn need(program: &str) -> PathBuf {
    find(program).unwrap_or_else(|| {
        panic!(
            "{program} not found: install MariaDB (Debian: `apt-get install mariadb-server \
             mariadb-client`), or run scripts/test.sh, which installs it"
        )
    })
}

impl Mariadb {
    /// The process-wide server, started on first use (install-db + start take a few seconds).
    /// Panics with what to install when MariaDB cannot be found.
    pub fn shared() -> &'static Mariadb {
        static SHARED: OnceLock<Mariadb> = OnceLock::new();
        SHARED.get_or_init(|| Mariadb::start(MariadbOptions::default()))
    }

    /// A server of its own (for tests that stop it): stopped on drop, removed at process exit.
    pub fn dedicated() -> Mariadb {
        Mariadb::start(MariadbOptions::default())
    }

    /// A server of its own set up as `options` say: stopped on drop, removed at process exit.
    pub fn dedicated_with(options: MariadbOptions) -> Mariadb {
        Mariadb::start(options)
    }

    /// Stops the server (SIGTERM: connections are cut, committed data survives; the server runs
    /// with `innodb-flush-log-at-trx-commit=0`, so SIGKILL would lose recent commits) and waits
    /// until it is gone (SIGKILL after 30 s).
    pub fn stop(&self) {
        let mut child = self._child.lock().unwrap_or_else(|e| e.into_inner());
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the stopped server again on the same port and data directory and waits until it
    /// accepts connections.
    pub fn restart(&self) {
        let child = launch(&self.base, self.port, &self.options);
        *self._child.lock().unwrap_or_else(|e| e.into_inner()) = child;
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.run_sql("SELECT 1").status.success() {
            if Instant::now() > deadline {
                panic!(
                    "mariadbd did not accept connections within 60 s; err.log:\n{}",
                    std::fs::read_to_string(self.log_path()).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn start(options: MariadbOptions) -> Mariadb {
        let install = need("mariadb-install-db");
        let client = need("mariadb");
        remove_stale_dirs();
        let base = cleanup::scratch_dir(DIR_PREFIX);
        let data = base.join("data");
        let port = crate::free_port();
        // Its own temporary directory: concurrent installs in /tmp trip over each other.
        let tmp = base.join("tmp");
        std::fs::create_dir_all(&tmp).unwrap_or_else(|e| panic!("create {}: {e}", tmp.display()));

        let mut cmd = Command::new(&install);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
        if cleanup::is_root() {
            cmd.arg("--user=root");
        }
        run_checked(&mut cmd, "mariadb-install-db");

        // Killed through the pid file, so a restarted server is stopped too.
        let watchdog = cleanup::on_exit(&format!(
            "pid=$(cat {pidfile} 2>/dev/null); \
             if [ -n \"$pid\" ] && grep -qF {base} /proc/$pid/cmdline 2>/dev/null; then \
             kill $pid; sleep 1; kill -9 $pid 2>/dev/null; fi; rm -rf {base}",
            pidfile = shell_quote(&base.join("mysqld.pid").to_string_lossy()),
            base = shell_quote(&base.to_string_lossy())
        ));
        let child = launch(&base, port, &options);
        let server = Mariadb {
            port,
            base,
            client,
            options,
            _child: Mutex::new(child),
            _watchdog: Mutex::new(watchdog),
        };
        server.wait_ready();
        server
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1`.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The server's error log.
    pub fn log_path(&self) -> PathBuf {
        self.base.join("err.log")
    }

    /// The catalog file of a `mysql` catalog on this server (user root, no password), plus `extra`
    /// lines.
    pub fn catalog_toml(&self, extra: &str) -> String {
        format!(
            "connector = \"mysql\"\nhost = \"127.0.0.1\"\nport = {}\nuser = \"root\"\n{extra}",
            self.port
        )
    }

    fn run_sql(&self, sql: &str) -> Output {
        Command::new(&self.client)
            .arg("--no-defaults")
            .arg("-uroot")
            .arg(format!(
                "--socket={}",
                self.base.join("mysqld.sock").display()
            ))
            .args(["--batch", "--skip-column-names", "--raw", "-e", sql])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.client.display()))
    }

    /// Runs `sql` (one or more statements) as root; panics with the server's message on error.
    pub fn execute(&self, sql: &str) {
        let out = self.run_sql(sql);
        if !out.status.success() {
            panic!(
                "MariaDB: {sql}\n{}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }

    /// The rows of `sql`, every value as text (`None` for NULL), tab-separated by the client.
    pub fn query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let out = self.run_sql(sql);
        if !out.status.success() {
            panic!(
                "MariaDB: {sql}\n{}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|line| {
                line.split('\t')
                    .map(|v| (v != "NULL").then(|| v.to_string()))
                    .collect()
            })
            .collect()
    }
}

/// Starts mariadbd on `base`'s data directory and `port`.
fn launch(base: &Path, port: u16, options: &MariadbOptions) -> Child {
    let mariadbd = need("mariadbd");
    let mut cmd = Command::new(&mariadbd);
    cmd.arg("--no-defaults");
    if cleanup::is_root() {
        cmd.arg("--user=root");
    }
    cmd.arg(format!("--datadir={}", base.join("data").display()))
        .arg(format!("--tmpdir={}", base.join("tmp").display()))
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--port={port}"))
        .arg(format!("--socket={}", base.join("mysqld.sock").display()))
        .arg(format!("--pid-file={}", base.join("mysqld.pid").display()))
        .arg(format!("--log-error={}", base.join("err.log").display()))
        .args([
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=64M",
            "--innodb-flush-log-at-trx-commit=0",
            "--skip-log-bin",
            "--max-connections=200",
        ]);
    if let Some(tls) = &options.tls {
        cmd.arg(format!("--ssl-cert={}", tls.cert.display()))
            .arg(format!("--ssl-key={}", tls.key.display()))
            .arg("--require-secure-transport=ON");
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd.spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", mariadbd.display()))
}

impl Drop for Mariadb {
    /// Only dedicated servers are ever dropped (the shared one is a static).
    fn drop(&mut self) {
        self.stop();
    }
}

/// Removes MariaDB dirs left behind by test processes that no longer exist (their servers were
/// killed by the watchdog, or are killed here through the pid file).
fn remove_stale_dirs() {
    for dir in cleanup::stale_dirs(DIR_PREFIX) {
        if let Ok(server) = std::fs::read_to_string(dir.join("mysqld.pid"))
            && let Ok(server) = server.trim().parse::<u32>()
            && cleanup::pid_alive(server)
        {
            // Only a mariadbd whose command line names this directory.
            let cmdline = std::fs::read(format!("/proc/{server}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&*dir.to_string_lossy()) {
                let _ = Command::new("kill").arg(server.to_string()).status();
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
