//! One real PostgreSQL 15 per test process.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::cleanup::{self, shell_quote};
use crate::service::run_checked;

/// Directory name prefix of PostgreSQL scratch dirs under `/tmp` (`{prefix}{pid}-{nanos}`).
const DIR_PREFIX: &str = "tributary-pg-";
/// The OS user PostgreSQL runs as when the tests run as root (postgres refuses root).
const OS_USER: &str = "postgres";

/// A PostgreSQL server started by this harness: superuser `postgres`, trust auth, on
/// 127.0.0.1 and a free port, fsync off. Stopped (and its directory removed) at process exit.
#[derive(Debug)]
pub struct Postgres {
    port: u16,
    base: PathBuf,
    bin_dir: PathBuf,
    _watchdog: Mutex<Child>,
}

impl Postgres {
    /// The process-wide server, started on first use (initdb + start take about 1-2 s).
    /// Panics with what to install when PostgreSQL cannot be found.
    pub fn shared() -> &'static Postgres {
        static SHARED: OnceLock<Postgres> = OnceLock::new();
        SHARED.get_or_init(Postgres::start)
    }

    fn start() -> Postgres {
        let bin_dir = find_bin_dir();
        remove_stale_dirs(&bin_dir);
        let base = cleanup::scratch_dir(DIR_PREFIX);
        if cleanup::is_root() {
            let status = Command::new("id").arg("-u").arg(OS_USER).output();
            if !status.map(|o| o.status.success()).unwrap_or(false) {
                panic!(
                    "running as root, so PostgreSQL must run as the `{OS_USER}` OS user, which \
                     does not exist: install the Debian `postgresql` package (creates it) or run \
                     `useradd --system {OS_USER}`"
                );
            }
            run_checked(
                Command::new("chown")
                    .arg("-R")
                    .arg(format!("{OS_USER}:{OS_USER}"))
                    .arg(&base),
                "chown PostgreSQL scratch dir",
            );
        }
        let data = base.join("data");
        let port = crate::free_port();

        // Register the cleanup before starting, so a failed start is cleaned up too.
        let stop = format!(
            "{} -D {} stop -m immediate -w -t 20 >/dev/null 2>&1; rm -rf {}",
            as_pg_user(&bin_dir.join("pg_ctl")),
            shell_quote(&data.to_string_lossy()),
            shell_quote(&base.to_string_lossy())
        );
        let watchdog = cleanup::on_exit(&stop);

        let mut initdb = pg_command(&bin_dir, "initdb");
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "-N",
        ]);
        run_checked(&mut initdb, "initdb");

        let log = base.join("postgres.log");
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=200 -c shared_buffers=128MB",
            base.display()
        );
        let mut pg_ctl = pg_command(&bin_dir, "pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(&data)
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
        Postgres {
            port,
            base,
            bin_dir,
            _watchdog: Mutex::new(watchdog),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The directory holding `initdb`, `pg_ctl`, `postgres`.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.base.join("postgres.log")
    }

    /// Client config for database `db` as superuser `postgres` (trust auth, no password).
    pub fn config(&self, db: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.port)
            .user("postgres")
            .dbname(db)
            .connect_timeout(Duration::from_secs(10));
        config
    }

    /// `postgresql://postgres@127.0.0.1:PORT/db`
    pub fn url(&self, db: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Connects as `postgres` to `db` (spawning the connection task on the current runtime).
    pub async fn connect(&self, db: &str) -> tokio_postgres::Client {
        crate::connect_with(&self.config(db), &format!("PostgreSQL database {db}")).await
    }

    /// Creates database `name` unless it exists (safe to call from concurrent tests).
    pub async fn create_database(&self, name: &str) {
        static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let _guard = LOCK.lock().await;
        let client = self.connect("postgres").await;
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
