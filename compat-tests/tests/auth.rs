//! Authentication and TLS against the built binary: `[auth]` with SCRAM-SHA-256, md5 and cleartext
//! users files (hashes printed by `tributary hash-password`), wrong passwords as `28P01` and never
//! in the server log, `[tls]` with a throwaway CA and server certificate made by the `openssl` CLI
//! (psql, pgjdbc, psycopg 3 and psycopg2 with `sslmode=require` and `verify-full`), `[tls] required`,
//! and config errors naming the key.

#[path = "support/certs.rs"]
mod certs;
#[path = "support/java.rs"]
mod java;
#[path = "support/python.rs"]
mod python;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use compat_tests::{ConfigDir, TempDir, Tributary, toml_string};
use tokio_postgres::error::SqlState;

const PASSWORD: &str = "correct-horse-7";
const WRONG: &str = "Wr0ng-Guess-xyzzy";

/// `tributary hash-password [args]` with `password` on stdin.
fn hash_password(password: &str, args: &[&str]) -> String {
    let mut child = Command::new(Tributary::binary())
        .arg("hash-password")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tributary hash-password");
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "hash-password failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let hash = String::from_utf8(output.stdout).unwrap().trim().to_string();
    assert!(!hash.contains(password), "the hash shows the password");
    hash
}

/// A config dir with `[auth] method` and a users file of `alice` (+ `extra` config lines).
fn auth_dir(method: &str, user_line: &str, extra: &str) -> ConfigDir {
    ConfigDir::new()
        .config(&format!(
            "[auth]\nmethod = \"{method}\"\nusers_file = \"users.toml\"\n{extra}"
        ))
        .file(
            "users.toml",
            format!("[[user]]\nname = \"alice\"\n{user_line}\n"),
        )
}

async fn connect(
    server: &Tributary,
    user: &str,
    password: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut config = server.config("tpch");
    config.user(user).password(password);
    compat_tests::try_connect_with(&config).await
}

async fn assert_login_works(server: &Tributary, password: &str) {
    let client = connect(server, "alice", password)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "login failed: {e:?}\n{}",
                compat_tests::tail(&server.log(), 30)
            )
        });
    let row = client.query_one("select current_user", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "alice");
}

async fn assert_invalid_password(server: &Tributary, user: &str, password: &str) {
    let err = match connect(server, user, password).await {
        Ok(_) => panic!("{user} logged in with a wrong password"),
        Err(e) => e,
    };
    assert_eq!(
        err.code(),
        Some(&SqlState::INVALID_PASSWORD),
        "expected 28P01, got {err:?}"
    );
}

/// Runs psql with `conninfo` (a libpq connection string) and `-c` commands; PGPASSWORD when
/// given. Returns (success, stdout, stderr).
fn psql(conninfo: &str, password: Option<&str>, commands: &[&str]) -> (bool, String, String) {
    let psql = compat_tests::which("psql").expect("psql (PostgreSQL 15 client) on PATH");
    let mut command = Command::new(psql);
    command
        .args(["-X", "-d", conninfo])
        .env("PGCONNECT_TIMEOUT", "10")
        .env_remove("PGPASSWORD")
        .env_remove("PGSSLMODE")
        .stdin(Stdio::null());
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    for c in commands {
        command.args(["-c", c]);
    }
    let output = command.output().expect("psql runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn conninfo(server: &Tributary, host: &str, extra: &str) -> String {
    format!(
        "host={host} port={} user=alice dbname=tpch {extra}",
        server.port()
    )
}

fn assert_psql_ok(result: (bool, String, String), expected: &[&str], server: &Tributary) {
    let (ok, out, err) = result;
    assert!(
        ok && !err.contains("ERROR"),
        "psql failed:\nstdout:\n{out}\nstderr:\n{err}\nserver log:\n{}",
        compat_tests::tail(&server.log(), 30)
    );
    for e in expected {
        assert!(out.contains(e), "{e:?} missing from psql output:\n{out}");
    }
}

fn assert_log_clean(server: &Tributary) {
    let log = server.log();
    for secret in [PASSWORD, WRONG] {
        assert!(
            !log.contains(secret),
            "the server log shows a password:\n{log}"
        );
    }
}

#[tokio::test]
async fn scram_sha_256() {
    let hash = hash_password(PASSWORD, &[]);
    assert!(hash.starts_with("SCRAM-SHA-256-SALTED$4096:"), "{hash}");
    let dir = auth_dir(
        "scram-sha-256",
        &format!("password_hash = {}", toml_string(&hash)),
        "",
    );
    let server = Tributary::start(Some(dir.path()));
    assert!(
        server.log().contains("scram-sha-256"),
        "startup log does not say how clients authenticate:\n{}",
        server.log()
    );

    assert_login_works(&server, PASSWORD).await;
    assert_invalid_password(&server, "alice", WRONG).await;
    assert_invalid_password(&server, "mallory", PASSWORD).await;

    let (_, out, _) = psql(
        &conninfo(&server, "127.0.0.1", ""),
        Some(PASSWORD),
        &["select 40 + 2 as answer"],
    );
    assert!(out.contains("42"), "{out}");
    let (ok, _, err) = psql(
        &conninfo(&server, "127.0.0.1", ""),
        Some(WRONG),
        &["select 1"],
    );
    assert!(!ok, "psql logged in with a wrong password");
    assert!(
        err.contains("password authentication failed for user \"alice\""),
        "{err}"
    );

    let log = server.log();
    assert!(
        log.contains("authentication failed") && log.contains("alice"),
        "failed logins are not logged:\n{log}"
    );
    assert_log_clean(&server);
}

#[tokio::test]
async fn md5() {
    let hash = hash_password(PASSWORD, &["--method", "md5", "--user", "alice"]);
    assert!(hash.starts_with("md5") && hash.len() == 35, "{hash}");
    let dir = auth_dir("md5", &format!("password_hash = \"{hash}\""), "");
    let server = Tributary::start(Some(dir.path()));
    assert_login_works(&server, PASSWORD).await;
    assert_invalid_password(&server, "alice", WRONG).await;
    assert_invalid_password(&server, "mallory", PASSWORD).await;
    assert_psql_ok(
        psql(
            &conninfo(&server, "127.0.0.1", ""),
            Some(PASSWORD),
            &["select 1 as one"],
        ),
        &["one"],
        &server,
    );
    assert_log_clean(&server);
}

#[tokio::test]
async fn cleartext_password_mode() {
    let dir = auth_dir("password", &format!("password = \"{PASSWORD}\""), "");
    let server = Tributary::start(Some(dir.path()));
    assert_login_works(&server, PASSWORD).await;
    assert_invalid_password(&server, "alice", WRONG).await;
    assert_log_clean(&server);
}

/// A throwaway CA and a server certificate `server.crt` for localhost / 127.0.0.1 signed by it, in
/// `dir`; and `other-ca.crt`, a CA that signed nothing.
fn make_certificates(dir: &Path) {
    certs::make_ca(dir, "ca");
    certs::make_ca(dir, "other-ca");
    certs::make_leaf(dir, "ca", "server");
}

fn tls_dir(required: bool) -> (TempDir, ConfigDir) {
    let certs = TempDir::new("certs");
    make_certificates(certs.path());
    let hash = hash_password(PASSWORD, &[]);
    let tls = format!(
        "[tls]\ncert_file = {}\nkey_file = {}\nrequired = {required}\n",
        toml_string(&certs.path().join("server.crt").display().to_string()),
        toml_string(&certs.path().join("server.key").display().to_string()),
    );
    let dir = auth_dir(
        "scram-sha-256",
        &format!("password_hash = {}", toml_string(&hash)),
        &tls,
    );
    (certs, dir)
}

#[tokio::test]
async fn tls_require_and_verify_full() {
    let (certs, dir) = tls_dir(false);
    let server = Tributary::start(Some(dir.path()));
    let ca = certs.path().join("ca.crt").display().to_string();

    assert_psql_ok(
        psql(
            &conninfo(&server, "127.0.0.1", "sslmode=require"),
            Some(PASSWORD),
            &["\\conninfo", "select 1 as one"],
        ),
        &["SSL connection (protocol: TLSv1.3", "one"],
        &server,
    );
    // The certificate is checked against the CA and the host name; SCRAM is bound to the TLS
    // channel (SCRAM-SHA-256-PLUS).
    assert_psql_ok(
        psql(
            &conninfo(
                &server,
                "localhost",
                &format!("sslmode=verify-full sslrootcert={ca} channel_binding=require"),
            ),
            Some(PASSWORD),
            &["\\conninfo", "select 1 as one"],
        ),
        &["SSL connection", "one"],
        &server,
    );
    // A host name the certificate does not cover fails verify-full.
    let (ok, _, err) = psql(
        &conninfo(
            &server,
            "wrong.invalid",
            &format!("hostaddr=127.0.0.1 sslmode=verify-full sslrootcert={ca}"),
        ),
        Some(PASSWORD),
        &["select 1"],
    );
    assert!(!ok, "verify-full accepted a wrong host name");
    assert!(err.contains("does not match host name"), "{err}");
    // Without TLS is still allowed, and the password still checked.
    assert_login_works(&server, PASSWORD).await;
    let (ok, _, _) = psql(
        &conninfo(&server, "127.0.0.1", "sslmode=require"),
        Some(WRONG),
        &["select 1"],
    );
    assert!(!ok, "wrong password accepted over TLS");
    assert_log_clean(&server);
}

/// pgjdbc and libpq-based Python drivers with `sslmode=require` and `verify-full`, against a server
/// that refuses connections without TLS (so every successful query went over TLS).
#[test]
fn tls_pgjdbc_and_psycopg() {
    let (certs, dir) = tls_dir(true);
    let server = Tributary::start(Some(dir.path()));
    let port = server.port().to_string();
    let ca = certs.path().join("ca.crt").display().to_string();
    let other_ca = certs.path().join("other-ca.crt").display().to_string();
    let args = [port.as_str(), PASSWORD, ca.as_str(), other_ca.as_str()];
    for (what, output, done) in [
        (
            "TlsProbe (pgjdbc)",
            java::run("TlsProbe", &args),
            "jdbc tls ok",
        ),
        (
            "tls_probe.py",
            python::run("tls_probe.py", &args),
            "psycopg2 tls ok",
        ),
    ] {
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains(done),
            "{what} failed:\nstdout:\n{stdout}\nstderr:\n{}\nserver log:\n{}",
            String::from_utf8_lossy(&output.stderr),
            compat_tests::tail(&server.log(), 30)
        );
    }
    assert_log_clean(&server);
}

#[tokio::test]
async fn tls_required_refuses_plain_connections() {
    let (_certs, dir) = tls_dir(true);
    let server = Tributary::start(Some(dir.path()));

    let err = match connect(&server, "alice", PASSWORD).await {
        Ok(_) => panic!("a connection without TLS was accepted"),
        Err(e) => e,
    };
    assert_eq!(
        err.code(),
        Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION),
        "{err:?}"
    );
    let (ok, _, err) = psql(
        &conninfo(&server, "127.0.0.1", "sslmode=disable"),
        Some(PASSWORD),
        &["select 1"],
    );
    assert!(!ok, "psql without TLS was accepted");
    assert!(err.contains("requires TLS"), "{err}");
    assert_psql_ok(
        psql(
            &conninfo(&server, "127.0.0.1", "sslmode=require"),
            Some(PASSWORD),
            &["\\conninfo"],
        ),
        &["SSL connection"],
        &server,
    );
}

#[tokio::test]
async fn no_tls_configured_answers_n_and_defaults_to_trust() {
    let server = Tributary::start(None);
    assert!(
        server.log().contains("trust"),
        "the server does not say it trusts everyone:\n{}",
        server.log()
    );
    let (ok, _, err) = psql(
        &format!(
            "host=127.0.0.1 port={} user=x dbname=tpch sslmode=require",
            server.port()
        ),
        None,
        &["select 1"],
    );
    assert!(!ok && err.contains("does not support SSL"), "{err}");
    assert_psql_ok(
        psql(
            &format!(
                "host=127.0.0.1 port={} user=x dbname=tpch sslmode=prefer",
                server.port()
            ),
            None,
            &["select 1 as one"],
        ),
        &["one"],
        &server,
    );
}

#[test]
fn config_errors_name_the_key_or_file() {
    for (config, users, expected) in [
        (
            "[auth]\nmethod = \"scram-sha-256\"\nusers_fil = \"u.toml\"\n",
            None,
            "auth.users_fil",
        ),
        ("[auth]\nmethod = \"kerberos\"\n", None, "auth.method"),
        (
            "[tls]\ncert_file = \"nope.crt\"\nkey_file = \"nope.key\"\n",
            None,
            "nope.crt",
        ),
        ("[tls]\nrequired = true\n", None, "tls.required"),
        (
            "[auth]\nmethod = \"scram-sha-256\"\nusers_file = \"users.toml\"\n",
            Some("[[user]]\nname = \"alice\"\npassword = \"hunter2\"\n"),
            "users.toml",
        ),
    ] {
        let mut dir = ConfigDir::new().config(config);
        if let Some(users) = users {
            dir = dir.file("users.toml", users);
        }
        let failure = match Tributary::try_start(Some(dir.path())) {
            Ok(_) => panic!("started with {config}"),
            Err(f) => f,
        };
        assert!(failure.log.contains(expected), "{config}: {}", failure.log);
        assert!(!failure.log.contains("hunter2"), "{}", failure.log);
    }
}
