//! Test certificates: a throwaway CA and localhost certificates it signs, made with the
//! openssl command (a test prerequisite: a missing one fails the test).

use std::path::{Path, PathBuf};

/// Runs `openssl` with `args`; panics naming them when it fails.
pub fn openssl(args: &[&str]) {
    let status = std::process::Command::new("openssl")
        .args(args)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs (a test prerequisite)");
    assert!(status.success(), "openssl {args:?}");
}

/// A test CA in `dir` (`ca.crt`, `ca.key`).
pub fn authority(dir: &Path) -> PathBuf {
    let (crt, key) = (dir.join("ca.crt"), dir.join("ca.key"));
    let (crt_s, key_s) = (crt.to_str().unwrap(), key.to_str().unwrap());
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=ferry test CA",
        "-keyout",
        key_s,
        "-out",
        crt_s,
    ]);
    crt
}

/// A certificate for localhost and 127.0.0.1 signed by the CA of `dir`: `(cert, key)`.
pub fn certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let p = |ext: &str| dir.join(format!("{name}.{ext}"));
    let (cert, key, csr, ext) = (p("crt"), p("key"), p("csr"), p("ext"));
    std::fs::write(
        &ext,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let s = |p: &PathBuf| p.to_str().unwrap().to_owned();
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        &s(&key),
        "-out",
        &s(&csr),
    ]);
    let (ca, ca_key) = (s(&dir.join("ca.crt")), s(&dir.join("ca.key")));
    openssl(&[
        "x509",
        "-req",
        "-in",
        &s(&csr),
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        &s(&ext),
        "-out",
        &s(&cert),
    ]);
    (cert, key)
}
