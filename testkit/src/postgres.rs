//! Real PostgreSQL 15 servers: one per test process ([`Postgres::shared`]) or one of a test's own
//! ([`Postgres::dedicated`]), with a password and TLS when asked.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::TlsFiles;
use crate::cleanup::{self, shell_quote};
use crate::service::run_checked;

/// Directory name prefix of PostgreSQL scratch dirs under `/tmp` (`{prefix}{pid}-{nanos}`).
const DIR_PREFIX: &str = "tributary-pg-";
/// The OS user PostgreSQL runs as when the tests run as root (postgres refuses root).
const OS_USER: &str = "postgres";

/// How a [`Postgres::dedicated`] server is set up. The default is the shared server's: superuser
/// `postgres` trusted everywhere, no TLS.
#[derive(Debug, Clone, Default)]
pub struct PostgresOptions {
    /// Superuser password: TCP connections then need it (`scram-sha-256`), the Unix socket stays
    /// trusted.
    pub password: Option<String>,
    /// Server certificate and key: TCP connections must then use TLS (`hostnossl ... reject`).
    pub tls: Option<TlsFiles>,
}

/// A PostgreSQL server started by this harness: superuser `postgres`, on 127.0.0.1 and a free port
/// (Unix socket in its scratch directory), fsync off. The shared one is stopped at process exit; a
/// dedicated one when dropped (or at process exit, whichever comes first). Its directory is
/// removed with it.
#[derive(Debug)]
pub struct Postgres {
    port: u16,
    base: PathBuf,
    bin_dir: PathBuf,
    password: Option<String>,
    /// Whether the server runs with `ssl=on`.
    tls: bool,
    /// The shell command that stops the server and removes its directory.
    stop_and_remove: String,
    watchdog: Mutex<Child>,
}

impl Postgres {
    /// The process-wide server (trust auth), started on first use (initdb + start take about
    /// 1-2 s). Panics with what to install when PostgreSQL cannot be found.
    pub fn shared() -> &'static Postgres {
        static SHARED: OnceLock<Postgres> = OnceLock::new();
        SHARED.get_or_init(|| Postgres::dedicated(PostgresOptions::default()))
    }

    /// A server of the test's own, set up as `options` say; stopped and removed on drop. Panics
    /// with what to install when PostgreSQL cannot be found, or with the log when it fails to start.
    pub fn dedicated(options: PostgresOptions) -> Postgres {
        let bin_dir = find_bin_dir();
        remove_stale_dirs(&bin_dir);
        let base = cleanup::scratch_dir(DIR_PREFIX);
        let data = base.join("data");
        let port = crate::free_port();

        // Register the cleanup before starting, so a failed start is cleaned up too.
        let stop_and_remove = format!(
            "{} -D {} stop -m immediate -w -t 20 >/dev/null 2>&1; rm -rf {}",
            as_pg_user(&bin_dir.join("pg_ctl")),
            shell_quote(&data.to_string_lossy()),
            shell_quote(&base.to_string_lossy())
        );
        let watchdog = cleanup::on_exit(&stop_and_remove);
        let server = Postgres {
            port,
            base,
            bin_dir,
            password: options.password.clone(),
            tls: options.tls.is_some(),
            stop_and_remove,
            watchdog: Mutex::new(watchdog),
        };
        server.init(&options);
        server.start();
        server
    }

    /// `initdb`, then the TLS files and `pg_hba.conf` when asked.
    fn init(&self, options: &PostgresOptions) {
        let data = self.data();
        let mut initdb = pg_command(&self.bin_dir, "initdb");
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-E", "UTF8", "--locale=C", "-N"]);
        if let Some(password) = &options.password {
            let pwfile = self.base.join("pw");
            std::fs::write(&pwfile, password)
                .unwrap_or_else(|e| panic!("write {}: {e}", pwfile.display()));
            initdb
                .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
                .arg(format!("--pwfile={}", pwfile.display()));
        } else {
            initdb.arg("--auth=trust");
        }
        self.chown(&[&self.base]);
        run_checked(&mut initdb, "initdb");
        if let Some(pwfile) = options.password.as_ref().map(|_| self.base.join("pw")) {
            let _ = std::fs::remove_file(pwfile);
        }

        let Some(tls) = &options.tls else {
            return;
        };
        let host_auth = if options.password.is_some() {
            "scram-sha-256"
        } else {
            "trust"
        };
        let hba = data.join("pg_hba.conf");
        std::fs::write(
            &hba,
            format!(
                "local all all trust\n\
                 hostssl all all 127.0.0.1/32 {host_auth}\n\
                 hostnossl all all 127.0.0.1/32 reject\n"
            ),
        )
        .unwrap_or_else(|e| panic!("write {}: {e}", hba.display()));
        let cert = data.join("server.crt");
        let key = data.join("server.key");
        for (from, to) in [(&tls.cert, &cert), (&tls.key, &key)] {
            std::fs::copy(from, to)
                .unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
        }
        run_checked(
            Command::new("chmod").arg("600").arg(&key),
            "chmod server.key",
        );
        self.chown(&[&cert, &key, &hba]);
    }

    /// Gives `paths` to the `postgres` OS user when running as root.
    fn chown(&self, paths: &[&Path]) {
        if !cleanup::is_root() {
            return;
        }
        let status = Command::new("id").arg("-u").arg(OS_USER).output();
        if !status.map(|o| o.status.success()).unwrap_or(false) {
            panic!(
                "running as root, so PostgreSQL must run as the `{OS_USER}` OS user, which does \
                 not exist: install the Debian `postgresql` package (creates it) or run \
                 `useradd --system {OS_USER}` (scripts/test.sh does)"
            );
        }
        run_checked(
            Command::new("chown")
                .arg("-R")
                .arg(format!("{OS_USER}:{OS_USER}"))
                .args(paths),
            "chown PostgreSQL files",
        );
    }

    /// Starts the server (again, after [`Postgres::stop`]) on the same port and data directory, and
    /// waits until it accepts connections. Panics with the log when it does not.
    pub fn start(&self) {
        let ssl = if self.tls { " -c ssl=on" } else { "" };
        let log = self.log_path();
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=200 -c shared_buffers=128MB{ssl}",
            self.port,
            self.base.display()
        );
        let mut pg_ctl = pg_command(&self.bin_dir, "pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o", &options, "start"]);
        let output = run(&mut pg_ctl, "pg_ctl start");
        if !output.status.success() {
            panic!(
                "pg_ctl start failed ({}):\n{}{}\npostgres.log:\n{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
    }

    /// Immediate shutdown (no checkpoint, connections cut: like a crash); waits until it is down.
    /// [`Postgres::start`] starts it again.
    pub fn stop(&self) {
        let _ = pg_command(&self.bin_dir, "pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["stop", "-m", "immediate", "-w", "-t", "30"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    fn data(&self) -> PathBuf {
        self.base.join("data")
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1`.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The directory holding `initdb`, `pg_ctl`, `postgres`.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The directory holding the server's Unix socket (`.s.PGSQL.PORT`).
    pub fn socket_dir(&self) -> &Path {
        &self.base
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.base.join("postgres.log")
    }

    /// The catalog file of a `postgres` catalog on database `db` of this server (superuser
    /// `postgres` over TCP, its password if the server has one), plus `extra` lines.
    pub fn catalog_toml(&self, db: &str, extra: &str) -> String {
        let password = self
            .password
            .as_ref()
            .map(|p| format!("password = {}\n", crate::toml_string(p)))
            .unwrap_or_default();
        format!(
            "connector = \"postgres\"\nhost = \"127.0.0.1\"\nport = {}\ndatabase = {}\n\
             user = \"postgres\"\n{password}{extra}",
            self.port,
            crate::toml_string(db)
        )
    }

    /// Client config for database `db` as superuser `postgres` over TCP (with the password, if
    /// the server has one; a TLS-only server refuses it: use [`Postgres::socket_config`]).
    pub fn config(&self, db: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.port)
            .user("postgres")
            .dbname(db)
            .connect_timeout(Duration::from_secs(10));
        if let Some(password) = &self.password {
            config.password(password);
        }
        config
    }

    /// Client config for database `db` as superuser `postgres` over the Unix socket (always
    /// trusted, no TLS).
    pub fn socket_config(&self, db: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(&self.base)
            .port(self.port)
            .user("postgres")
            .dbname(db)
            .connect_timeout(Duration::from_secs(10));
        config
    }

    /// `postgresql://postgres@127.0.0.1:PORT/db` (without the password, if there is one).
    pub fn url(&self, db: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Connects as `postgres` to `db` over TCP (spawning the connection task on the current
    /// runtime).
    pub async fn connect(&self, db: &str) -> tokio_postgres::Client {
        crate::connect_with(&self.config(db), &format!("PostgreSQL database {db}")).await
    }

    /// Connects as `postgres` to `db` over the Unix socket.
    pub async fn connect_socket(&self, db: &str) -> tokio_postgres::Client {
        crate::connect_with(
            &self.socket_config(db),
            &format!("PostgreSQL database {db} (Unix socket)"),
        )
        .await
    }

    /// Creates database `name` unless it exists (safe to call from concurrent tests).
    pub async fn create_database(&self, name: &str) {
        static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let _guard = LOCK.lock().await;
        let client = self.connect_socket("postgres").await;
        let exists = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .await
            .expect("query pg_database")
            .is_some();
        if !exists {
            client
                .batch_execute(&format!(
                    "CREATE DATABASE \"{}\"",
                    name.replace('"', "\"\"")
                ))
                .await
                .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        }
    }
}

impl Drop for Postgres {
    /// Only dedicated servers are ever dropped (the shared one is a static).
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .arg("-c")
            .arg(&self.stop_and_remove)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        cleanup::forget_at_exit(&self.stop_and_remove);
        let mut watchdog = self.watchdog.lock().unwrap_or_else(|e| e.into_inner());
        let _ = watchdog.kill();
        let _ = watchdog.wait();
    }
}

/// `initdb`/`pg_ctl` location: `PATH`, else the newest `/usr/lib/postgresql/*/bin`.
fn find_bin_dir() -> PathBuf {
    if let Some(initdb) = crate::which("initdb") {
        let dir = initdb
            .canonicalize()
            .unwrap_or(initdb)
            .parent()
            .map(Path::to_path_buf);
        if let Some(dir) = dir
            && dir.join("pg_ctl").is_file()
        {
            return dir;
        }
    }
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .collect();
    candidates.sort();
    match candidates.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or under \
             /usr/lib/postgresql/*/bin: install PostgreSQL 15 (Debian: \
             `apt-get install postgresql-15` or `postgresql`), or run scripts/test.sh, \
             which installs it"
        ),
    }
}

/// `program` from `bin_dir`, run as the `postgres` OS user when we are root.
fn pg_command(bin_dir: &Path, program: &str) -> Command {
    let program = bin_dir.join(program);
    if cleanup::is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", OS_USER, "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn as_pg_user(program: &Path) -> String {
    let program = shell_quote(&program.to_string_lossy());
    if cleanup::is_root() {
        format!("runuser -u {OS_USER} -- {program}")
    } else {
        program
    }
}

fn run(command: &mut Command, what: &str) -> Output {
    // stdout/stderr to pipes would be inherited by the daemonized postmaster and keep them open;
    // pg_ctl is run with `-l`, so the postmaster writes to its log file instead.
    command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: could not run {command:?}: {e}"))
}

/// Stops and removes PostgreSQL dirs left behind by test processes that no longer exist.
fn remove_stale_dirs(bin_dir: &Path) {
    for dir in cleanup::stale_dirs(DIR_PREFIX) {
        let data = dir.join("data");
        if data.join("postmaster.pid").exists() {
            let _ = pg_command(bin_dir, "pg_ctl")
                .arg("-D")
                .arg(&data)
                .args(["stop", "-m", "immediate", "-w", "-t", "10"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
