//! Throwaway certificates for TLS tests, made by the `openssl` CLI: a CA, and leaf certificates it
//! signs for 127.0.0.1 / localhost, usable as TLS server and client certificates.

use std::path::Path;
use std::process::Command;

/// Runs the `openssl` CLI in `dir`.
pub fn openssl(dir: &Path, args: &[&str]) {
    let openssl = compat_tests::which("openssl").expect("openssl CLI on PATH");
    let output = Command::new(&openssl)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A self-signed CA `{name}.crt` / `{name}.key` in `dir`.
pub fn make_ca(dir: &Path, name: &str) {
    let (key, crt) = (format!("{name}.key"), format!("{name}.crt"));
    let subject = format!("/CN=Tributary test {name}");
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", &subject,
            "-keyout", &key, "-out", &crt,
        ],
    );
}

/// `{name}.crt` / `{name}.key` in `dir`, signed by CA `{ca}.crt`, for `DNS:localhost` and
/// `IP:127.0.0.1`, with the server and client extended key usages.
pub fn make_leaf(dir: &Path, ca: &str, name: &str) {
    let run = |args: &[&str]| openssl(dir, args);
    let (key, csr, crt, ext) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.crt"),
        format!("{name}.ext"),
    );
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        &key,
        "-out",
        &csr,
    ]);
    std::fs::write(
        dir.join(&ext),
        "subjectAltName = DNS:localhost, IP:127.0.0.1\nbasicConstraints = CA:FALSE\n\
         keyUsage = digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth, clientAuth\n",
    )
    .unwrap();
    let (ca_crt, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
    run(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca_crt,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-days",
        "2",
        "-sha256",
        "-extfile",
        &ext,
        "-out",
        &crt,
    ]);
}
