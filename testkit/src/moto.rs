//! One moto S3 server per test process (`pip install 'moto[server]'`).
//!
//! Buckets and objects are created with plain HTTP requests (moto accepts unsigned requests), so
//! the harness needs no S3 client of its own.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::service;

/// A moto S3 server on 127.0.0.1 and a free port, killed at process exit.
#[derive(Debug)]
pub struct Moto {
    port: u16,
    log: PathBuf,
    _child: Mutex<Child>,
    _watchdog: Mutex<Child>,
}

impl Moto {
    /// Region to configure clients with.
    pub const REGION: &'static str = "us-east-1";
    /// Any credentials work; these are what catalog files in the tests use.
    pub const ACCESS_KEY_ID: &'static str = "test";
    /// The secret key paired with [`Moto::ACCESS_KEY_ID`] (moto checks neither).
    pub const SECRET_ACCESS_KEY: &'static str = "test";

    /// The process-wide server, started on first use (~2 s). Panics with what to install when
    /// `moto_server` is not on PATH.
    pub fn shared() -> &'static Moto {
        static SHARED: OnceLock<Moto> = OnceLock::new();
        SHARED.get_or_init(Moto::start)
    }

    fn start() -> Moto {
        let Some(binary) = crate::which("moto_server") else {
            panic!(
                "moto_server not found on PATH: install it with `pip install 'moto[server]'` \
                 (scripts/test.sh does)"
            );
        };
        let port = crate::free_port();
        let mut server = service::spawn_logged(
            Command::new(&binary).args(["-H", "127.0.0.1", "-p", &port.to_string()]),
            "moto",
            port,
        );
        server.wait_ready("moto_server", Duration::from_secs(30), || {
            matches!(http(port, "GET", "/", &[]), Ok((200, _)))
        });
        Moto {
            port,
            log: server.log,
            _child: Mutex::new(server.child),
            _watchdog: Mutex::new(server.watchdog),
        }
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`, the `endpoint` for S3 clients and catalog files.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// moto's own output.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Creates `bucket` (succeeds if it already exists).
    pub fn create_bucket(&self, bucket: &str) {
        let (status, body) = http(self.port, "PUT", &format!("/{bucket}"), &[])
            .unwrap_or_else(|e| panic!("create bucket {bucket}: {e}"));
        let body = String::from_utf8_lossy(&body);
        let ok = (200..300).contains(&status)
            || body.contains("BucketAlreadyOwnedByYou")
            || body.contains("BucketAlreadyExists");
        assert!(ok, "create bucket {bucket}: HTTP {status}: {body}");
    }

    /// Writes one object.
    pub fn put_object(&self, bucket: &str, key: &str, data: &[u8]) {
        let path = format!("/{bucket}/{}", encode_key(key));
        let (status, body) = http(self.port, "PUT", &path, data)
            .unwrap_or_else(|e| panic!("put s3://{bucket}/{key}: {e}"));
        assert!(
            (200..300).contains(&status),
            "put s3://{bucket}/{key}: HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }

    /// The keys under `prefix` in `bucket` (one ListObjectsV2 page), sorted. Panics when there are
    /// more than one page holds (1000), rather than answering with part of them.
    pub fn list_keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let path = format!("/{bucket}?list-type=2&prefix={}", encode_key(prefix));
        let (status, body) = http(self.port, "GET", &path, &[])
            .unwrap_or_else(|e| panic!("list s3://{bucket}/{prefix}: {e}"));
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, 200, "list s3://{bucket}/{prefix}: {body}");
        assert!(
            !body.contains("<IsTruncated>true</IsTruncated>"),
            "list s3://{bucket}/{prefix}: more than one page of keys"
        );
        let mut keys: Vec<String> = body
            .split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Key>").map(|(k, _)| k.to_string()))
            .collect();
        keys.sort();
        keys
    }

    /// Reads one object (`None` if it does not exist).
    pub fn get_object(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let path = format!("/{bucket}/{}", encode_key(key));
        let (status, body) = http(self.port, "GET", &path, &[])
            .unwrap_or_else(|e| panic!("get s3://{bucket}/{key}: {e}"));
        (status == 200).then_some(body)
    }

    /// Uploads every file under `dir` to `bucket` with keys `prefix/relative/path`
    /// (no prefix when `prefix` is empty). Returns the keys written.
    pub fn upload_dir(&self, bucket: &str, prefix: &str, dir: &Path) -> Vec<String> {
        let mut keys = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(current) = stack.pop() {
            let entries = std::fs::read_dir(&current)
                .unwrap_or_else(|e| panic!("read dir {}: {e}", current.display()));
            for entry in entries {
                let path = entry.expect("dir entry").path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let relative = path
                    .strip_prefix(dir)
                    .expect("under dir")
                    .to_string_lossy()
                    .into_owned();
                let key = if prefix.is_empty() {
                    relative
                } else {
                    format!("{}/{relative}", prefix.trim_end_matches('/'))
                };
                let data =
                    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
                self.put_object(bucket, &key, &data);
                keys.push(key);
            }
        }
        keys.sort();
        keys
    }
}

fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/=".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A minimal HTTP/1.1 request with `Connection: close`; returns status and body.
fn http(port: u16, method: &str, path: &str, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    // moto does not check signatures, but treats requests without an `Authorization` header as
    // anonymous (denied reading private objects); an explicit content type keeps its web framework
    // from parsing the body as a form.
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\n\
         Content-Type: application/octet-stream\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential={}/20240101/{}/s3/aws4_request, \
         SignedHeaders=host, Signature=0\r\n\
         Connection: close\r\n\r\n",
        body.len(),
        Moto::ACCESS_KEY_ID,
        Moto::REGION,
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(response.len(), |p| p + 4);
    let head = String::from_utf8_lossy(&response[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad HTTP response: {head:.200}")))?;
    Ok((status, response[split..].to_vec()))
}
