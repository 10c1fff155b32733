//! Hostile and careless clients at the built binary, over raw sockets: malformed frontend messages
//! (lying counts and lengths, unknown types, truncated and overlong frames; proptest-generated and
//! mutated from valid startup, Parse, Bind, Execute, Describe, COPY and cancel messages) get a FATAL
//! `08P01` and a closed connection, never a panic; the server keeps answering with bounded memory.
//! A client that closes its connection while its query computes has the query canceled at once.

use std::time::Duration;

use compat_tests::results::all_rows;
use compat_tests::{ConfigDir, Tributary, toml_string};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A typed frontend message: type byte, length (itself included), body.
fn typed(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut frame = vec![kind];
    frame.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    frame.extend_from_slice(body);
    frame
}

/// A protocol 3.0 StartupMessage for `user` on database `tpch`.
fn startup(user: &str) -> Vec<u8> {
    let mut body = 196_608i32.to_be_bytes().to_vec();
    for (name, value) in [("user", user), ("database", "tpch")] {
        body.extend_from_slice(name.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut frame = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

fn cstring(text: &str) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    bytes.push(0);
    bytes
}

/// Parse of statement `name` with one int4 parameter.
fn parse(name: &str, sql: &str) -> Vec<u8> {
    let mut body = cstring(name);
    body.extend(cstring(sql));
    body.extend_from_slice(&1u16.to_be_bytes());
    body.extend_from_slice(&23u32.to_be_bytes());
    typed(b'P', &body)
}

/// Bind of statement `name` to the unnamed portal with one binary int4 parameter `value`.
fn bind(name: &str, value: i32) -> Vec<u8> {
    let mut body = cstring("");
    body.extend(cstring(name));
    body.extend_from_slice(&1u16.to_be_bytes());
    body.extend_from_slice(&1i16.to_be_bytes());
    body.extend_from_slice(&1u16.to_be_bytes());
    body.extend_from_slice(&4i32.to_be_bytes());
    body.extend_from_slice(&value.to_be_bytes());
    body.extend_from_slice(&0u16.to_be_bytes());
    typed(b'B', &body)
}

/// The valid messages cases are built from.
fn valid_messages() -> Vec<Vec<u8>> {
    let mut execute = cstring("");
    execute.extend_from_slice(&0i32.to_be_bytes());
    let mut cancel = 16i32.to_be_bytes().to_vec();
    cancel.extend_from_slice(&80_877_102i32.to_be_bytes());
    cancel.extend_from_slice(&1234i32.to_be_bytes());
    cancel.extend_from_slice(&5678i32.to_be_bytes());
    vec![
        typed(b'Q', &cstring("select 1")),
        typed(b'Q', &cstring("copy (select 1 as a) to stdout")),
        typed(
            b'Q',
            &cstring("create table memory.default.fuzz_t(a int) -- not writable"),
        ),
        parse("s1", "select $1::int + 1"),
        parse("", "select $1::int"),
        bind("s1", 41),
        bind("", 7),
        typed(b'D', &[b"S".as_slice(), &cstring("s1")].concat()),
        typed(b'D', &[b"P".as_slice(), &cstring("")].concat()),
        typed(b'E', &execute),
        typed(b'C', &[b"S".as_slice(), &cstring("s1")].concat()),
        typed(b'H', b""),
        typed(b'S', b""),
        typed(b'd', b"1\n"),
        typed(b'c', b""),
        typed(b'f', &cstring("client gave up")),
        typed(b'p', &cstring("not a password")),
        cancel,
    ]
}

/// How a message is broken.
#[derive(Debug, Clone)]
enum Mutation {
    Keep,
    /// Overwrite byte `at` (modulo the length) with `value`.
    Flip {
        at: usize,
        value: u8,
    },
    /// Set the length field (bytes 1..5 of a typed message).
    Length(i32),
    /// Drop the last `n` bytes.
    Truncate(usize),
    /// Append bytes.
    Append(Vec<u8>),
    /// Overwrite two bytes at `at` with a big-endian count.
    Count {
        at: usize,
        count: u16,
    },
}

impl Mutation {
    fn apply(&self, mut message: Vec<u8>) -> Vec<u8> {
        let len = message.len();
        match self {
            Mutation::Keep => {}
            Mutation::Flip { at, value } => message[at % len] = *value,
            Mutation::Length(length) if len >= 5 => {
                message[1..5].copy_from_slice(&length.to_be_bytes());
            }
            Mutation::Length(_) => {}
            Mutation::Truncate(n) => message.truncate(len.saturating_sub(*n).max(1)),
            Mutation::Append(bytes) => message.extend_from_slice(bytes),
            Mutation::Count { at, count } if len >= 2 => {
                let at = at % (len - 1);
                message[at..at + 2].copy_from_slice(&count.to_be_bytes());
            }
            Mutation::Count { .. } => {}
        }
        message
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => Just(Mutation::Keep),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::Flip { at, value }),
        2 => prop_oneof![
            Just(-1),
            Just(0),
            Just(3),
            Just(i32::MAX),
            Just(0x4000_0000),
            0..64i32,
        ]
        .prop_map(Mutation::Length),
        1 => (1..12usize).prop_map(Mutation::Truncate),
        1 => proptest::collection::vec(any::<u8>(), 1..16).prop_map(Mutation::Append),
        2 => (any::<usize>(), prop_oneof![Just(u16::MAX), Just(0x8000), 0..8u16])
            .prop_map(|(at, count)| Mutation::Count { at, count }),
    ]
}

/// One client: its startup (perhaps broken), then messages (picked from [`valid_messages`], each
/// perhaps broken), or raw random bytes.
#[derive(Debug, Clone)]
struct Case {
    startup: Mutation,
    messages: Vec<(usize, Mutation)>,
    noise: Vec<u8>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop_oneof![6 => Just(Mutation::Keep), 1 => mutation()],
        proptest::collection::vec((any::<usize>(), mutation()), 0..8),
        prop_oneof![
            4 => Just(Vec::new()),
            1 => proptest::collection::vec(any::<u8>(), 1..64),
        ],
    )
        .prop_map(|(startup, messages, noise)| Case {
            startup,
            messages,
            noise,
        })
}

impl Case {
    fn bytes(&self, user: &str) -> Vec<u8> {
        let valid = valid_messages();
        let mut bytes = self.startup.apply(startup(user));
        for (pick, mutation) in &self.messages {
            bytes.extend(mutation.apply(valid[pick % valid.len()].clone()));
        }
        bytes.extend_from_slice(&self.noise);
        bytes
    }
}

/// Backend messages in `bytes`: (type, body). A trailing partial message is left out.
fn backend_messages(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut messages = Vec::new();
    let mut at = 0;
    // The answer to an SSLRequest-free startup starts with typed messages.
    while at + 5 <= bytes.len() {
        let length = i32::from_be_bytes(bytes[at + 1..at + 5].try_into().unwrap()) as usize;
        if at + 1 + length > bytes.len() {
            break;
        }
        messages.push((bytes[at], bytes[at + 5..at + 1 + length].to_vec()));
        at += 1 + length;
    }
    messages
}

/// The SQLSTATE and severity of an ErrorResponse body.
fn error_fields(body: &[u8]) -> (String, String) {
    let mut code = String::new();
    let mut severity = String::new();
    for field in body.split(|&b| b == 0) {
        match field.first() {
            Some(b'C') => code = String::from_utf8_lossy(&field[1..]).into_owned(),
            Some(b'S') => severity = String::from_utf8_lossy(&field[1..]).into_owned(),
            _ => {}
        }
    }
    (code, severity)
}

/// Sends `bytes`, closes the sending side, and reads the answer until the server closes. Panics if
/// the server neither answers nor closes within 20 s.
async fn exchange(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    // The server may close before reading all of it: a failed write is an answer too.
    let _ = socket.write_all(bytes).await;
    let _ = socket.shutdown().await;
    let mut answer = Vec::new();
    match tokio::time::timeout(Duration::from_secs(20), socket.read_to_end(&mut answer)).await {
        Ok(_) => answer,
        Err(_) => panic!(
            "the server neither answered nor closed for {} bytes: {:?}",
            bytes.len(),
            &bytes[..bytes.len().min(200)]
        ),
    }
}

/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

async fn assert_serving(server: &Tributary) {
    assert!(server.try_wait().is_none(), "the server exited");
    let log = server.log();
    assert!(
        !log.contains("panicked"),
        "a panic in the server log:\n{log}"
    );
    let client = server.connect("tpch").await;
    let rows = all_rows(&client, "select count(*) from tpch.tiny.nation").await;
    assert_eq!(rows[0][0].as_deref(), Some("25"));
}

/// The defects the issue names: a Bind whose parameter count or lengths lie, a Parse whose type count
/// lies. Each gets FATAL 08P01 and the connection closes; other sessions go on.
#[tokio::test]
async fn lying_bind_and_parse_get_protocol_violation() {
    let server = Tributary::start(None);
    let bystander = server.connect("tpch").await;
    let mut lying_bind = bind("s1", 1);
    // The parameter's length says 4000 bytes; 4 follow.
    let at = lying_bind.len() - 10;
    lying_bind[at..at + 4].copy_from_slice(&4000i32.to_be_bytes());
    let mut lying_parse = parse("s1", "select $1::int");
    let at = lying_parse.len() - 6;
    lying_parse[at..at + 2].copy_from_slice(&u16::MAX.to_be_bytes());
    let unknown_type = typed(b'Z', b"");
    let short_sync = vec![b'S', 0, 0, 0, 1];
    for broken in [lying_bind, lying_parse, unknown_type, short_sync] {
        let mut bytes = startup("tester");
        bytes.extend(parse("s1", "select $1::int"));
        bytes.extend(broken);
        bytes.extend(typed(b'S', b""));
        let answer = exchange(server.port(), &bytes).await;
        let messages = backend_messages(&answer);
        let errors: Vec<_> = messages
            .iter()
            .filter(|(kind, _)| *kind == b'E')
            .map(|(_, body)| error_fields(body))
            .collect();
        assert_eq!(
            errors,
            vec![("08P01".to_string(), "FATAL".to_string())],
            "{messages:?}"
        );
        // Nothing after the FATAL error: the connection closed.
        assert_eq!(messages.last().unwrap().0, b'E', "{messages:?}");
    }
    let rows = all_rows(&bystander, "select 41 + 1").await;
    assert_eq!(rows[0][0].as_deref(), Some("42"));
    assert_serving(&server).await;
}

/// Random and mutated messages from clients with trust and with SCRAM authentication: the server
/// never panics, every connection ends, memory stays bounded, and it keeps answering.
#[test]
fn random_and_mutated_messages_never_take_the_server_down() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let trust = Tributary::start(None);
    let scram_dir = ConfigDir::new()
        .config("[auth]\nmethod = \"scram-sha-256\"\nusers_file = \"users.toml\"\n")
        .file(
            "users.toml",
            format!(
                "[[user]]\nname = \"tester\"\npassword_hash = {}\n",
                toml_string(&hash_password("fuzz-password"))
            ),
        );
    let scram = Tributary::start(Some(scram_dir.path()));
    let baseline = rss_kib(trust.pid());

    let cases: u32 = std::env::var("MALFORMED_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(400);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&(case(), any::<bool>()), |(case, on_scram)| {
        let server = if on_scram { &scram } else { &trust };
        let bytes = case.bytes("tester");
        let answer = runtime.block_on(exchange(server.port(), &bytes));
        for (kind, body) in backend_messages(&answer) {
            if kind == b'E' {
                let (code, _) = error_fields(&body);
                prop_assert!(
                    code.len() == 5 && !code.starts_with("XX"),
                    "internal error {code} for {case:?}"
                );
            }
        }
        prop_assert!(trust.try_wait().is_none() && scram.try_wait().is_none());
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}\ntrust log tail:\n{}", tail(&trust.log()));
    }
    // SCRAM's first password message with a lying data length, directly.
    let mut initial = cstring("SCRAM-SHA-256");
    initial.extend_from_slice(&1000i32.to_be_bytes());
    initial.extend_from_slice(b"n,,n=,r=abc");
    let mut bytes = startup("tester");
    bytes.extend(typed(b'p', &initial));
    let answer = runtime.block_on(exchange(scram.port(), &bytes));
    let codes: Vec<_> = backend_messages(&answer)
        .into_iter()
        .filter(|(kind, _)| *kind == b'E')
        .map(|(_, body)| error_fields(&body).0)
        .collect();
    assert_eq!(codes, vec!["08P01"]);

    let grown = rss_kib(trust.pid()).saturating_sub(baseline);
    // Read by scripts/soak.sh (with --nocapture).
    println!("malformed input: {cases} random cases, resident memory grew {grown} KiB, no panic");
    assert!(
        grown < 512 * 1024,
        "resident memory grew by {grown} KiB over {cases} cases"
    );
    runtime.block_on(assert_serving(&trust));
    assert!(scram.try_wait().is_none(), "the SCRAM server exited");
    let log = scram.log();
    assert!(
        !log.contains("panicked"),
        "a panic in the server log:\n{log}"
    );
}

/// `tributary hash-password` of `password` (SCRAM-SHA-256).
fn hash_password(password: &str) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(Tributary::binary())
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run tributary hash-password");
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

fn tail(log: &str) -> String {
    let lines: Vec<_> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// A client that closes its connection while its query computes (nothing written yet) has the query
/// canceled at once, as PostgreSQL's `client_connection_check_interval` does: it leaves
/// `pg_stat_activity` and `system.runtime.queries` shows it ended.
#[tokio::test]
async fn a_query_whose_client_left_is_canceled() {
    let server = Tributary::start(None);
    let watcher = server.connect("tpch").await;
    let mut socket = TcpStream::connect(("127.0.0.1", server.port()))
        .await
        .unwrap();
    let mut bytes = startup("tester");
    bytes.extend(typed(
        b'Q',
        &cstring("select count(*) from generate_series(1, 100000000000) t(gone_client)"),
    ));
    socket.write_all(&bytes).await.unwrap();
    let running = "select count(*) from pg_stat_activity \
                   where query like '%gone_client%' and query not like '%pg_stat_activity%'";
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while all_rows(&watcher, running).await[0][0].as_deref() != Some("1") {
        assert!(std::time::Instant::now() < deadline, "the query never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(socket);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let states = all_rows(
            &watcher,
            "select state from system.runtime.queries where query like '%(gone_client)%' \
               and query not like '%runtime.queries%'",
        )
        .await;
        if states.len() == 1 && states[0][0].as_deref() != Some("RUNNING") {
            assert_eq!(states[0][0].as_deref(), Some("CANCELED"));
            assert_eq!(
                all_rows(&watcher, running).await[0][0].as_deref(),
                Some("0")
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the query still runs 10 s after its client left: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
