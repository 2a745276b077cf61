//! TLS on the listening port (`--tls-cert`, `--tls-key`): the PEM files made into a rustls
//! acceptor, re-read on SIGHUP (a broken pair keeps the one in use). The handshake is bounded
//! by `--header-read-timeout` like the request that follows it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

/// The certificate files and the acceptor made from them.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    acceptor: RwLock<TlsAcceptor>,
}

impl Tls {
    /// Loads `cert` and `key`; an unreadable or mismatched pair is an error.
    pub fn new(cert: &Path, key: &Path) -> Result<Self, String> {
        Ok(Self {
            acceptor: RwLock::new(load(cert, key)?),
            cert: cert.to_owned(),
            key: key.to_owned(),
        })
    }

    /// The acceptor for the next connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        match self.acceptor.read() {
            Ok(a) => a.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Re-reads the files; on an error the acceptor in use stays.
    pub fn reload(&self) -> Result<(), String> {
        let fresh = load(&self.cert, &self.key)?;
        if let Ok(mut a) = self.acceptor.write() {
            *a = fresh;
        }
        tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
        Ok(())
    }
}

fn load(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in PEM", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e: rustls::Error| format!("certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
