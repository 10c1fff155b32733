//! What the postgres and mysql connector tests share: certificates for the TLS tests, made with
//! the `openssl` command line tool (Debian package `openssl`), and the checks of primary keys,
//! comments and front-end types.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::common::{Constraint, Constraints};

/// The SQL of the table [`check_keyed`] checks, the same in PostgreSQL and MySQL: a key in another
/// order than the columns, comments, uuid and varchar(10) columns.
pub const KEYED_COLUMNS: &str = "a int, b varchar(10), c int, u uuid, PRIMARY KEY (c, a)";

/// `keyed` (with table comment `a keyed table` and column comment `the b column` on b) reports its
/// key, comments and front-end types; the view `keyed_v` and the table `unkeyed` have no key.
pub fn check_keyed(
    keyed: &Arc<dyn TableProvider>,
    keyed_v: &Arc<dyn TableProvider>,
    unkeyed: &Arc<dyn TableProvider>,
) {
    assert_eq!(
        keyed.constraints(),
        Some(&Constraints::new_unverified(vec![Constraint::PrimaryKey(
            vec![2, 0]
        )]))
    );
    let schema = keyed.schema();
    assert_eq!(
        schema.metadata().get("comment").map(String::as_str),
        Some("a keyed table")
    );
    let meta = |name: &str, key: &str| {
        schema
            .field_with_name(name)
            .expect(name)
            .metadata()
            .get(key)
            .cloned()
    };
    assert_eq!(meta("b", "comment").as_deref(), Some("the b column"));
    assert_eq!(meta("a", "comment"), None);
    assert_eq!(meta("u", "tributary.pg_type").as_deref(), Some("uuid"));
    assert_eq!(
        meta("b", "tributary.pg_type").as_deref(),
        Some("varchar(10)")
    );
    assert_eq!(meta("a", "tributary.pg_type"), None);
    assert_eq!(keyed_v.constraints(), None);
    assert!(
        keyed_v.schema().metadata().is_empty(),
        "{:?}",
        keyed_v.schema()
    );
    assert_eq!(unkeyed.constraints(), None);
}

/// Certificates for a TLS test server: a CA, a server certificate it signed for the host name
/// `db.example` only (so `verify-full` against 127.0.0.1 must fail), and an unrelated CA.
pub struct TestCerts {
    pub ca: PathBuf,
    pub other_ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let mut c = Command::new("openssl");
    c.current_dir(dir).args(args);
    let out = c.output().unwrap_or_else(|e| {
        panic!("openssl (the OpenSSL command line tool, Debian package `openssl`) is needed: {e}")
    });
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestCerts {
    pub fn make(dir: &Path) -> TestCerts {
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        for (name, subject) in [
            ("ca", "/CN=tributary test CA"),
            ("other_ca", "/CN=other CA"),
        ] {
            let key = format!("{name}.key");
            let crt = format!("{name}.crt");
            let mut args = vec!["req", "-x509", "-days", "2", "-subj", subject];
            args.extend(ec);
            args.extend([
                "-keyout",
                &key,
                "-out",
                &crt,
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ]);
            openssl(dir, &args);
        }
        let mut args = vec!["req", "-subj", "/CN=db.example"];
        args.extend(ec);
        args.extend(["-keyout", "server.key", "-out", "server.csr"]);
        openssl(dir, &args);
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:db.example\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write server.ext");
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                "server.crt",
            ],
        );
        TestCerts {
            ca: dir.join("ca.crt"),
            other_ca: dir.join("other_ca.crt"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
        }
    }
}
