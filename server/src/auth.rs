//! Who may connect: the users file (`[auth] users_file`), the password secrets pgwire's
//! authentication handlers check against, the TLS acceptor (`[tls]`), and `tributary hash-password`.
//!
//! The protocol work (SASL / SCRAM-SHA-256, the md5 challenge, cleartext passwords, TLS
//! negotiation) is pgwire's; this module only turns files into what those handlers ask for.
//!
//! # Users file
//!
//! TOML, one `[[user]]` table per user:
//!
//! ```toml
//! # [auth] method = "scram-sha-256": a verifier printed by `tributary hash-password`
//! [[user]]
//! name = "alice"
//! password_hash = "SCRAM-SHA-256-SALTED$4096:<salt, base64>$<SaltedPassword, base64>"
//!
//! # [auth] method = "md5": PostgreSQL's md5 format, "md5" + hex(md5(password || name)),
//! # printed by `tributary hash-password --method md5 --user bob` (or taken from pg_authid)
//! [[user]]
//! name = "bob"
//! password_hash = "md5f0c5…"
//!
//! # [auth] method = "password" (cleartext, development only): the password itself
//! [[user]]
//! name = "dev"
//! password = "dev"
//! ```
//!
//! The SCRAM verifier stores RFC 5802's `SaltedPassword = Hi(password, salt, i)` (what pgwire's
//! SCRAM handler verifies proofs with), not PostgreSQL's `StoredKey:ServerKey` pair, so a
//! `SCRAM-SHA-256$…` line copied from `pg_authid` is refused with a hint to re-hash. It is not the
//! password, but like a PostgreSQL verifier it must be kept private: it lets its holder log in to
//! this server. Plain passwords are accepted only with `method = "password"`.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use pgwire::api::auth::sasl::scram::gen_salted_password;
use pgwire::api::auth::{AuthSource, LoginInfo, Password};
use pgwire::error::PgWireResult;
use ring::rand::{SecureRandom, SystemRandom};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{AuthMethod, Config};

/// The prefix of the SCRAM verifiers of the users file.
pub const SCRAM_PREFIX: &str = "SCRAM-SHA-256-SALTED$";
/// The PBKDF2 iteration count `hash-password` uses (PostgreSQL's default).
pub const SCRAM_ITERATIONS: usize = 4096;

/// An error loading the security settings: the file and the reason, never a secret.
#[derive(Debug)]
pub struct SecurityError {
    pub file: PathBuf,
    pub reason: String,
}

impl std::fmt::Display for SecurityError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.reason)
    }
}

/// Everything the connection startup needs to authenticate clients, loaded once at startup.
#[derive(Debug)]
pub struct Security {
    pub method: AuthMethod,
    /// Present unless `method` is trust.
    pub users: Option<Arc<Users>>,
    /// Present when `[tls]` has a certificate.
    pub tls: Option<Tls>,
    /// `[tls] required`.
    pub tls_required: bool,
}

/// The TLS acceptor and the certificate PEM (for SCRAM-SHA-256-PLUS channel binding).
#[derive(Clone)]
pub struct Tls {
    pub acceptor: TlsAcceptor,
    pub cert_pem: Arc<Vec<u8>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

impl Security {
    /// Whether clients authenticate with SASL (SCRAM-SHA-256): users are configured and the method is
    /// SCRAM (or trust with a users file, which the startup also serves with SCRAM).
    pub fn uses_sasl(&self) -> bool {
        self.users.is_some() && matches!(self.method, AuthMethod::ScramSha256 | AuthMethod::Trust)
    }

    /// Reads the users file and the certificate and key named in `config`.
    pub fn load(config: &Config) -> Result<Self, SecurityError> {
        let method = config.auth.method.unwrap_or(AuthMethod::Trust);
        let users = match &config.auth.users_file {
            Some(file) if method != AuthMethod::Trust => Some(Arc::new(Users::load(file, method)?)),
            _ => None,
        };
        let tls = match (&config.tls.cert_file, &config.tls.key_file) {
            (Some(cert), Some(key)) => Some(load_tls(cert, key)?),
            _ => None,
        };
        Ok(Self {
            method,
            users,
            tls,
            tls_required: config.tls.required,
        })
    }
}

fn load_tls(cert_file: &Path, key_file: &Path) -> Result<Tls, SecurityError> {
    let cert_err = |reason: String| SecurityError {
        file: cert_file.to_path_buf(),
        reason,
    };
    let cert_pem = std::fs::read(cert_file).map_err(|e| cert_err(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(format!("not a PEM certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(cert_err("no certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| SecurityError {
        file: key_file.to_path_buf(),
        reason: format!("not a PEM private key: {e}"),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| cert_err(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| cert_err(format!("certificate and key_file do not fit: {e}")))?;
    // PostgreSQL 17 clients' direct TLS (sslnegotiation=direct) needs this ALPN name.
    server.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(Tls {
        acceptor: TlsAcceptor::from(Arc::new(server)),
        cert_pem: Arc::new(cert_pem),
    })
}

/// The users file, checked against the configured method.
#[derive(Debug)]
pub struct Users {
    secrets: HashMap<String, Secret>,
    /// The SCRAM iteration count every verifier shares (the handler announces one count).
    scram_iterations: usize,
    /// Per-process key for the made-up salts of unknown users (stable per name, so probing the
    /// salt does not reveal which users exist).
    mock_key: [u8; 32],
}

#[derive(Debug)]
enum Secret {
    Scram {
        salt: Vec<u8>,
        salted: Vec<u8>,
    },
    /// The 32 hex digits of md5(password || name).
    Md5(String),
    Cleartext(String),
}

impl Users {
    /// Whether `password` is `name`'s, checked against the users file's secret as the wire login
    /// would (SCRAM: the salted password derived again; md5: the hash; cleartext: the text), in
    /// constant time. For logins that carry a cleartext password (HTTP Basic authentication).
    pub fn verify(&self, name: &str, password: &str) -> bool {
        let expected: Vec<u8> = match self.secrets.get(name) {
            None => return false,
            Some(Secret::Scram { salt, salted }) => {
                let derived = gen_salted_password(password, salt, self.scram_iterations);
                return same_bytes(&derived, salted);
            }
            Some(Secret::Md5(hex)) => hex.as_bytes().to_vec(),
            Some(Secret::Cleartext(text)) => {
                return same_bytes(text.as_bytes(), password.as_bytes());
            }
        };
        let given = format!("{:x}", md5::compute(format!("{password}{name}")));
        same_bytes(given.as_bytes(), &expected)
    }

    /// Reads `file`; every user must have the secret `method` needs. Errors name the user, never a
    /// secret.
    pub fn load(file: &Path, method: AuthMethod) -> Result<Self, SecurityError> {
        let text = std::fs::read_to_string(file).map_err(|e| SecurityError {
            file: file.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, method).map_err(|reason| SecurityError {
            file: file.to_path_buf(),
            reason,
        })
    }

    fn parse(text: &str, method: AuthMethod) -> Result<Self, String> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e
                .span()
                .map(|span| format!("line {}: ", text[..span.start].lines().count().max(1)))
                .unwrap_or_default();
            format!("{line}{}", e.message())
        })?;
        let mut secrets = HashMap::new();
        let mut scram_iterations = None;
        for (key, value) in &table {
            if key != "user" {
                return Err(format!(
                    "key `{key}`: unknown key; expected [[user]] tables"
                ));
            }
            let Some(users) = value.as_array() else {
                return Err("key `user`: expected [[user]] tables".into());
            };
            for (i, user) in users.iter().enumerate() {
                let Some(user) = user.as_table() else {
                    return Err("key `user`: expected [[user]] tables".into());
                };
                let name = user
                    .get("name")
                    .and_then(|v| v.as_str())
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| format!("user #{}: `name` (a string) is required", i + 1))?;
                let at = |reason: String| format!("user \"{name}\": {reason}");
                for key in user.keys() {
                    if !["name", "password_hash", "password"].contains(&key.as_str()) {
                        return Err(at(format!("key `{key}`: unknown key")));
                    }
                }
                let string = |key: &str| match user.get(key) {
                    None => Ok(None),
                    Some(v) => v
                        .as_str()
                        .map(Some)
                        .ok_or_else(|| at(format!("`{key}` must be a string"))),
                };
                let secret = match (method, string("password_hash")?, string("password")?) {
                    (AuthMethod::Password, None, Some(password)) => {
                        Secret::Cleartext(password.to_string())
                    }
                    (AuthMethod::Password, _, _) => {
                        return Err(at(
                            "method \"password\" needs `password` (the cleartext password) and no `password_hash`".into(),
                        ));
                    }
                    (_, _, Some(_)) => {
                        return Err(at(format!(
                            "plain `password` is only accepted with method \"password\"; store `password_hash` \
                             (from `tributary hash-password --method {}`) instead",
                            method.name()
                        )));
                    }
                    (_, None, None) => return Err(at("`password_hash` is required".into())),
                    (AuthMethod::ScramSha256, Some(hash), None) => {
                        let (iterations, salt, salted) = parse_scram(hash).map_err(at)?;
                        if *scram_iterations.get_or_insert(iterations) != iterations {
                            return Err(at(
                                "every SCRAM verifier of the file must use the same iteration count".into(),
                            ));
                        }
                        Secret::Scram { salt, salted }
                    }
                    (AuthMethod::Md5, Some(hash), None) => {
                        Secret::Md5(parse_md5(hash).map_err(at)?)
                    }
                    (AuthMethod::Trust, _, _) => unreachable!("no users file with trust"),
                };
                if secrets.insert(name.to_string(), secret).is_some() {
                    return Err(at("listed twice".into()));
                }
            }
        }
        let mut mock_key = [0u8; 32];
        SystemRandom::new()
            .fill(&mut mock_key)
            .map_err(|_| "the system random number generator failed".to_string())?;
        Ok(Self {
            secrets,
            scram_iterations: scram_iterations.unwrap_or(SCRAM_ITERATIONS),
            mock_key,
        })
    }

    /// How many users the file lists.
    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    /// Whether `name` is a user of the file (for the log line of a failed login).
    pub fn contains(&self, name: &str) -> bool {
        self.secrets.contains_key(name)
    }

    /// The iteration count to announce in SCRAM's server-first message.
    pub fn scram_iterations(&self) -> usize {
        self.scram_iterations
    }

    fn mock_salt(&self, user: &str) -> Vec<u8> {
        let mut input = self.mock_key.to_vec();
        input.extend_from_slice(user.as_bytes());
        ring::digest::digest(&ring::digest::SHA256, &input).as_ref()[..16].to_vec()
    }
}

fn parse_scram(hash: &str) -> Result<(usize, Vec<u8>, Vec<u8>), String> {
    let bad = || {
        format!(
            "password_hash is not a verifier of the form {SCRAM_PREFIX}<iterations>:<salt>$<salted password> \
             (print one with `tributary hash-password`)"
        )
    };
    let Some(rest) = hash.strip_prefix(SCRAM_PREFIX) else {
        if hash.starts_with("SCRAM-SHA-256$") {
            return Err(
                "password_hash is a PostgreSQL SCRAM verifier (StoredKey:ServerKey), which \
                        cannot be used here; print a verifier with `tributary hash-password`"
                    .into(),
            );
        }
        return Err(bad());
    };
    let (params, salted) = rest.split_once('$').ok_or_else(bad)?;
    let (iterations, salt) = params.split_once(':').ok_or_else(bad)?;
    let iterations: usize = iterations.parse().map_err(|_| bad())?;
    if iterations < SCRAM_ITERATIONS {
        return Err(format!(
            "SCRAM iteration count {iterations} is below the minimum of {SCRAM_ITERATIONS}"
        ));
    }
    let salt = BASE64.decode(salt).map_err(|_| bad())?;
    let salted = BASE64.decode(salted).map_err(|_| bad())?;
    if salt.is_empty() || salted.len() != 32 {
        return Err(bad());
    }
    Ok((iterations, salt, salted))
}

/// Whether `a` and `b` are equal, in time that depends on their lengths only.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn parse_md5(hash: &str) -> Result<String, String> {
    match hash.strip_prefix("md5") {
        Some(hex) if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(hex.to_ascii_lowercase())
        }
        _ => Err(
            "password_hash is not an md5 hash \"md5\" + 32 hex digits (print one with \
             `tributary hash-password --method md5 --user NAME`)"
                .into(),
        ),
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The system RNG failing is not something a login can recover from; fall back to a value no
    // client can match (all zero salts still give unguessable expected answers below).
    let _ = SystemRandom::new().fill(&mut bytes);
    bytes
}

/// The SCRAM-SHA-256 verifier of `password` in the users file's format.
pub fn scram_verifier(password: &str) -> String {
    let salt = random_bytes::<16>();
    let salted = gen_salted_password(password, &salt, SCRAM_ITERATIONS);
    format!(
        "{SCRAM_PREFIX}{SCRAM_ITERATIONS}:{}${}",
        BASE64.encode(salt),
        BASE64.encode(salted)
    )
}

/// PostgreSQL's md5 password hash: "md5" + hex(md5(password || user)).
pub fn md5_hash(user: &str, password: &str) -> String {
    format!("md5{:x}", md5::compute(format!("{password}{user}")))
}

/// `tributary hash-password`: reads the password (first line of stdin) and prints the
/// `password_hash` value for the users file.
pub fn hash_password_command(method: AuthMethod, user: Option<&str>) -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return Err(
            "empty password (give it on stdin, e.g. `tributary hash-password < file`)".into(),
        );
    }
    match (method, user) {
        (AuthMethod::ScramSha256, _) => Ok(scram_verifier(password)),
        (AuthMethod::Md5, Some(user)) => Ok(md5_hash(user, password)),
        (AuthMethod::Md5, None) => {
            Err("--method md5 needs --user (the hash includes the name)".into())
        }
        _ => Err("--method must be scram-sha-256 or md5".into()),
    }
}

/// What pgwire's handlers ask for the user of a login: SCRAM's salt and salted password, md5's
/// salt and expected answer, or the cleartext password. Unknown users get made-up secrets no
/// answer matches, so they fail the same way (28P01) as a wrong password.
#[derive(Debug)]
pub struct UsersSource(pub Arc<Users>);

#[async_trait]
impl AuthSource for UsersSource {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let user = login.user().unwrap_or_default();
        let users = &self.0;
        Ok(match users.secrets.get(user) {
            Some(Secret::Scram { salt, salted }) => {
                Password::new(Some(salt.clone()), salted.clone())
            }
            Some(Secret::Md5(hex)) => {
                let salt = random_bytes::<4>().to_vec();
                let mut input = hex.as_bytes().to_vec();
                input.extend_from_slice(&salt);
                let expected = format!("md5{:x}", md5::compute(input));
                Password::new(Some(salt), expected.into_bytes())
            }
            Some(Secret::Cleartext(password)) => Password::new(None, password.as_bytes().to_vec()),
            None => {
                // Salt stable per name for SCRAM; md5 wants 4 bytes. The "password" is random
                // bytes, which neither a SCRAM proof nor an md5 answer nor a typed password matches.
                let salt = if users.secrets.values().any(|s| matches!(s, Secret::Md5(_))) {
                    random_bytes::<4>().to_vec()
                } else {
                    users.mock_salt(user)
                };
                Password::new(Some(salt), random_bytes::<32>().to_vec())
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_scram_users() {
        let verifier = scram_verifier("pencil");
        let text = format!("[[user]]\nname = \"alice\"\npassword_hash = \"{verifier}\"\n");
        let users = Users::parse(&text, AuthMethod::ScramSha256).unwrap();
        assert!(users.contains("alice"));
        assert_eq!(users.scram_iterations(), 4096);
        let Some(Secret::Scram { salt, salted }) = users.secrets.get("alice") else {
            panic!("not scram");
        };
        assert_eq!(*salted, gen_salted_password("pencil", salt, 4096));
    }

    #[test]
    fn md5_matches_postgres() {
        // SELECT 'md5' || md5('secret' || 'bob') in PostgreSQL.
        assert_eq!(
            md5_hash("bob", "secret"),
            format!("md5{:x}", md5::compute("secretbob"))
        );
        let text = format!(
            "[[user]]\nname = \"bob\"\npassword_hash = \"{}\"\n",
            md5_hash("bob", "x")
        );
        assert!(Users::parse(&text, AuthMethod::Md5).is_ok());
    }

    #[test]
    fn errors_name_the_user_not_the_secret() {
        let cases = [
            (
                "[[user]]\nname = \"a\"\npassword = \"hunter2\"\n",
                AuthMethod::ScramSha256,
                "only accepted",
            ),
            (
                "[[user]]\nname = \"a\"\npassword_hash = \"SCRAM-SHA-256$4096:abc$def:ghi\"\n",
                AuthMethod::ScramSha256,
                "PostgreSQL SCRAM verifier",
            ),
            (
                "[[user]]\nname = \"a\"\npassword_hash = \"md5hunter2\"\n",
                AuthMethod::Md5,
                "not an md5",
            ),
            ("[[user]]\nname = \"a\"\n", AuthMethod::Md5, "required"),
            (
                "[[user]]\nname = \"a\"\npasword = \"x\"\n",
                AuthMethod::Password,
                "pasword",
            ),
            ("[[users]]\nname = \"a\"\n", AuthMethod::Password, "users"),
        ];
        for (text, method, expected) in cases {
            let msg = Users::parse(text, method).unwrap_err();
            assert!(msg.contains(expected), "{text}: {msg}");
            assert!(!msg.contains("hunter2"), "{msg}");
        }
    }
}
