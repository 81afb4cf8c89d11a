//! TLS for every protocol (rustls, TLS 1.2 and 1.3 only): certificates from PEM files, reloaded
//! on SIGHUP without touching sessions in progress; key-exchange groups from `tls.dhKeyLength`;
//! a self-signed certificate for the demo setup.

mod certs;
mod selfsigned;

pub use certs::{load_certified_key, TlsError};
pub use selfsigned::ensure_self_signed;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use rustls::crypto::aws_lc_rs::{self, kx_group};
use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::config::model::CertificatePair;

/// The crypto provider of the whole process, with the key-exchange groups allowed by
/// `tls.dhKeyLength` (rustls has no finite-field DH; see docs/settings.md):
/// 2048 and 3072 → X25519, P-256, P-384 and X25519+ML-KEM-768 (all at least 128-bit strong);
/// 4096 → P-384 and X25519+ML-KEM-768 only (≥ 192-bit classical or post-quantum).
pub fn provider(dh_key_length: u32) -> CryptoProvider {
    let kx_groups: Vec<&'static dyn SupportedKxGroup> = if dh_key_length >= 4096 {
        vec![kx_group::X25519MLKEM768, kx_group::SECP384R1]
    } else {
        vec![
            kx_group::X25519,
            kx_group::SECP256R1,
            kx_group::SECP384R1,
            kx_group::X25519MLKEM768,
        ]
    };
    CryptoProvider {
        kx_groups,
        ..aws_lc_rs::default_provider()
    }
}

/// A certificate that can be replaced while the server runs (SIGHUP): new handshakes use the
/// new one, established sessions keep theirs.
#[derive(Debug)]
pub struct ReloadableCert {
    current: RwLock<Arc<CertifiedKey>>,
    pair: CertificatePair,
    /// Configuration key of the pair, for error messages.
    key: &'static str,
    provider: Arc<CryptoProvider>,
}

impl ReloadableCert {
    pub fn load(
        pair: &CertificatePair,
        key: &'static str,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, TlsError> {
        let certified = load_certified_key(pair, key, &provider)?;
        Ok(ReloadableCert {
            current: RwLock::new(Arc::new(certified)),
            pair: pair.clone(),
            key,
            provider,
        })
    }

    /// Re-reads the files; on error the old certificate stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let certified = load_certified_key(&self.pair, self.key, &self.provider)?;
        let mut current = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *current = Arc::new(certified);
        Ok(())
    }

    pub fn files(&self) -> (PathBuf, PathBuf) {
        (self.pair.cert_file.clone(), self.pair.key_file.clone())
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        )
    }
}

/// A TLS acceptor for one certificate.
pub fn acceptor(cert: Arc<ReloadableCert>) -> Result<TlsAcceptor, TlsError> {
    let config = ServerConfig::builder_with_provider(cert.provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Rustls)?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests;
