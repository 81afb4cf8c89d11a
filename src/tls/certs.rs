//! Reading a certificate chain and its private key, with errors that name the setting.

use std::path::{Path, PathBuf};

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tracing::warn;

use crate::config::model::CertificatePair;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key}.certFile: cannot read certificates from {path}: {reason}")]
    Certificate {
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{key}.keyFile: cannot read a private key from {path}: {reason}")]
    PrivateKey {
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{key}: the private key does not match the certificate ({reason})")]
    Mismatch { key: &'static str, reason: String },
    #[error("TLS setup: {0}")]
    Rustls(rustls::Error),
}

/// Loads `pair` and checks that the key belongs to the first certificate. An expired or not yet
/// valid certificate is logged as a warning (clients will complain, but the server can still
/// serve plain-text protocols and fix-ups can be made with a reload).
pub fn load_certified_key(
    pair: &CertificatePair,
    key: &'static str,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let cert_error = |reason: String| TlsError::Certificate {
        key,
        path: pair.cert_file.clone(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&pair.cert_file)
        .map_err(|err| cert_error(err.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|err| cert_error(err.to_string()))?;
    let Some(leaf) = chain.first() else {
        return Err(cert_error("no PEM certificate in the file".into()));
    };
    check_validity(leaf, &pair.cert_file, key).map_err(cert_error)?;
    let private =
        PrivateKeyDer::from_pem_file(&pair.key_file).map_err(|err| TlsError::PrivateKey {
            key,
            path: pair.key_file.clone(),
            reason: err.to_string(),
        })?;
    let signing = provider
        .key_provider
        .load_private_key(private)
        .map_err(|err| TlsError::PrivateKey {
            key,
            path: pair.key_file.clone(),
            reason: err.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|err| TlsError::Mismatch {
        key,
        reason: err.to_string(),
    })?;
    Ok(certified)
}

/// Parses the leaf certificate; warns when it is outside its validity period.
fn check_validity(leaf: &CertificateDer<'_>, path: &Path, key: &str) -> Result<(), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|err| format!("not an X.509 certificate: {err}"))?;
    let validity = cert.validity();
    let now = x509_parser::time::ASN1Time::now();
    if validity.not_after < now {
        warn!(
            "{key}.certFile: the certificate in {} expired on {}",
            path.display(),
            validity.not_after
        );
    } else if validity.not_before > now {
        warn!(
            "{key}.certFile: the certificate in {} is not valid before {}",
            path.display(),
            validity.not_before
        );
    }
    Ok(())
}
