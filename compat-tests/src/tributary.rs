//! The `tributary` binary under test.

use std::fmt;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tributary_testkit::cleanup;

/// How long [`Tributary::start`] waits for the port to accept connections.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `tributary --listen 127.0.0.1:PORT [--config DIR]` process. Killed on drop; if the
/// dropping thread is panicking (a failed test), the server's log tail is printed to stderr so it
/// shows up in the test report.
pub struct Tributary {
    child: Mutex<Child>,
    watchdog: Mutex<Child>,
    kill_command: String,
    port: u16,
    log: Arc<Mutex<String>>,
}

/// Why [`Tributary::try_start`] did not get a running server.
#[derive(Debug)]
pub struct StartFailure {
    /// The exit status if the process exited (e.g. a bad config file), `None` on timeout.
    pub status: Option<ExitStatus>,
    /// Everything the process wrote to stdout and stderr.
    pub log: String,
}

impl fmt::Display for StartFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(f, "tributary exited during startup with {status}")?,
            None => write!(
                f,
                "tributary did not accept connections within {START_TIMEOUT:?}"
            )?,
        }
        write!(f, "; its output:\n{}", self.log)
    }
}

impl Tributary {
    /// The binary: `$TRIBUTARY_BIN`, else `<target>/debug/tributary`. Panics with what to run when
    /// it does not exist.
    pub fn binary() -> PathBuf {
        let path = match std::env::var_os("TRIBUTARY_BIN") {
            Some(p) => PathBuf::from(p),
            None => crate::target_dir().join("debug").join("tributary"),
        };
        if !path.is_file() {
            panic!(
                "tributary binary not found at {}: build it first with `cargo build --bins` \
                 (scripts/test.sh does), or set TRIBUTARY_BIN to its path",
                path.display()
            );
        }
        path
    }

    /// Starts the server with `config_dir` (or the built-in catalogs when `None`) on a free port
    /// and waits until it accepts connections. Panics with the server's output on failure.
    pub fn start(config_dir: Option<&Path>) -> Tributary {
        Self::start_with_args(config_dir, &[])
    }

    /// Like [`Tributary::start`] with extra command-line arguments.
    pub fn start_with_args(config_dir: Option<&Path>, extra_args: &[&str]) -> Tributary {
        Self::try_start_with_args(config_dir, extra_args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Tributary::start`] but returns the exit status and output when the process exits
    /// before accepting connections (what a bad-config test wants) or does not come up in time.
    pub fn try_start(config_dir: Option<&Path>) -> Result<Tributary, StartFailure> {
        Self::try_start_with_args(config_dir, &[])
    }

    /// Like [`Tributary::try_start`] with extra command-line arguments.
    pub fn try_start_with_args(
        config_dir: Option<&Path>,
        extra_args: &[&str],
    ) -> Result<Tributary, StartFailure> {
        let port = crate::free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["--listen", listen.as_str()];
        args.extend_from_slice(extra_args);
        Self::spawn(config_dir, &args, port)
    }

    /// Starts a worker process (`--role worker`) announcing itself to the coordinator whose node RPC
    /// address is `coordinator`, with node id `node_id`, and waits until its own RPC port accepts
    /// connections. [`Tributary::port`] is then that RPC port (a worker serves no clients).
    pub fn start_worker(config_dir: Option<&Path>, coordinator: &str, node_id: &str) -> Tributary {
        let port = crate::free_port();
        let rpc = format!("127.0.0.1:{port}");
        let args = [
            "--role",
            "worker",
            "--rpc-listen",
            rpc.as_str(),
            "--coordinator",
            coordinator,
            "--node-id",
            node_id,
        ];
        Self::spawn(config_dir, &args, port).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Spawns the binary with `args` and waits until `port` accepts connections.
    fn spawn(
        config_dir: Option<&Path>,
        args: &[&str],
        port: u16,
    ) -> Result<Tributary, StartFailure> {
        let binary = Self::binary();
        let mut command = Command::new(&binary);
        if let Some(dir) = config_dir {
            command.arg("--config").arg(dir);
        }
        // The `[engine]` defaults derive from the core count: tests see a 2-core node's (CI's)
        // unless the environment says otherwise.
        if std::env::var_os("TRIBUTARY_CORES").is_none() {
            command.env("TRIBUTARY_CORES", "2");
        }
        command
            .args(args)
            .env("RUST_BACKTRACE", "1")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
        let log = Arc::new(Mutex::new(String::new()));
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = Arc::clone(&log);
            std::thread::spawn(move || pump(pipe, &log));
        }
        let kill_command = format!("kill -9 {} 2>/dev/null", child.id());
        let watchdog = cleanup::on_exit(&kill_command);
        let server = Tributary {
            child: Mutex::new(child),
            watchdog: Mutex::new(watchdog),
            kill_command,
            port,
            log,
        };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&self) -> Result<(), StartFailure> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.try_wait() {
                // Give the pipe readers a moment to collect the last lines.
                std::thread::sleep(Duration::from_millis(200));
                return Err(StartFailure {
                    status: Some(status),
                    log: self.log(),
                });
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(StartFailure {
                    status: None,
                    log: self.log(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The exit status if the process has exited.
    pub fn try_wait(&self) -> Option<ExitStatus> {
        self.child
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .try_wait()
            .ok()
            .flatten()
    }

    /// The PostgreSQL-wire port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server process's id (to signal it: kill, stop).
    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap_or_else(|e| e.into_inner()).id()
    }

    /// Everything the server wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Same as [`Tributary::log`] (the server's stdout and stderr are captured together).
    pub fn stderr(&self) -> String {
        self.log()
    }

    /// A client config for database (= default catalog) `db`, user `tester`, no password.
    pub fn config(&self, db: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.port)
            .user("tester")
            .dbname(db)
            .application_name("compat-tests")
            .connect_timeout(Duration::from_secs(10));
        config
    }

    /// A `postgresql://` URL for other clients (psql, JDBC after adapting, sqllogictest).
    pub fn url(&self, db: &str) -> String {
        format!("postgresql://tester@127.0.0.1:{}/{db}", self.port)
    }

    /// Connects as user `tester` (no TLS) to database `db`. Panics with the server log on failure.
    pub async fn connect(&self, db: &str) -> tokio_postgres::Client {
        match crate::try_connect_with(&self.config(db)).await {
            Ok(client) => client,
            Err(e) => panic!(
                "could not connect to tributary on port {} (db {db}): {e} ({e:?})\n\
                 server log tail:\n{}",
                self.port,
                crate::tail(&self.log(), 60)
            ),
        }
    }

    /// Like [`Tributary::connect`] but returns the error.
    pub async fn try_connect(
        &self,
        db: &str,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        crate::try_connect_with(&self.config(db)).await
    }

    /// Kills the server (SIGKILL) and waits for it.
    pub fn kill(&self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn pump(mut pipe: Box<dyn Read + Send>, log: &Mutex<String>) {
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => log
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
}

impl Drop for Tributary {
    fn drop(&mut self) {
        self.kill();
        let mut watchdog = self.watchdog.lock().unwrap_or_else(|e| e.into_inner());
        let _ = watchdog.kill();
        let _ = watchdog.wait();
        cleanup::forget_at_exit(&self.kill_command);
        if std::thread::panicking() {
            eprintln!(
                "---- tributary (port {}) log tail ----\n{}\n---- end of tributary log ----",
                self.port,
                crate::tail(&self.log(), 80)
            );
        }
    }
}

impl fmt::Debug for Tributary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tributary")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}
