//! A plain HTTP/1.1 client for the tests of the HTTP listener and of chromedriver's WebDriver API
//! (a `TcpStream`, no client library): one request, its status and body.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// One HTTP/1.1 request to `127.0.0.1:port`, with Basic authentication as `credentials`
/// (`user:password`) when given and `body` as `application/json` when given: the status code and
/// the body (chunks joined). The body is read by its Content-Length when there is one (chromedriver
/// says `Connection: close` but keeps the connection open), else to the end. Panics on a transport
/// error (30 s read timeout).
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    credentials: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("HTTP listener");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let auth = credentials
        .map(|c| format!("Authorization: Basic {}\r\n", STANDARD.encode(c)))
        .unwrap_or_default();
    let body = body.unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "{method} {path}: connection closed in the head");
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    let status = head[9..12].parse().unwrap();
    let length = head.lines().find_map(|l| {
        l.strip_prefix("content-length:")
            .and_then(|v| v.trim().parse::<usize>().ok())
    });
    let mut body = raw.split_off(head_end);
    match length {
        Some(length) => {
            while body.len() < length {
                let n = stream.read(&mut buf).unwrap();
                assert!(n > 0, "{method} {path}: connection closed in the body");
                body.extend_from_slice(&buf[..n]);
            }
        }
        None => {
            stream.read_to_end(&mut body).unwrap();
        }
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    if !head.contains("transfer-encoding: chunked") {
        return (status, body);
    }
    let (mut out, mut rest) = (String::new(), body.as_str());
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    (status, out)
}

/// The value of the sample `name` (with its labels, as written) in a Prometheus text page.
pub fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
