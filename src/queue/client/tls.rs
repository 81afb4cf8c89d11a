//! TLS for outgoing connections (rustls client).
//!
//! - Opportunistic (MX hosts, and the smarthost without AUTH): any certificate is accepted.
//!   Encryption protects against passive eavesdropping; without DANE or MTA-STS there is no way
//!   to know which certificate an MX should have, and refusing would only push the mail to
//!   plain text (RFC 7435).
//! - Verified (the smarthost with `relay.auth`): the certificate must chain to a trusted root
//!   and match `relay.host`, so the password never goes to an impostor. The roots come from
//!   `$SSL_CERT_FILE` or the system bundle `/etc/ssl/certs/ca-certificates.crt`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// The system's CA bundle on Debian and NixOS (`security.pki`).
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// How to run TLS with one peer.
#[derive(Clone)]
pub struct TlsPolicy {
    pub config: Arc<ClientConfig>,
    pub server_name: ServerName<'static>,
    /// A failed handshake may be retried in plain text.
    pub opportunistic: bool,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A client configuration that accepts any certificate (but still checks the handshake
/// signatures, so the connection is encrypted to whoever holds the certificate's key).
pub fn opportunistic_config() -> anyhow::Result<Arc<ClientConfig>> {
    let provider = provider();
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS client versions")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A client configuration that verifies certificates against the trusted roots.
pub fn verified_config() -> anyhow::Result<Arc<ClientConfig>> {
    let bundle = std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(SYSTEM_CA_BUNDLE));
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(&bundle)
        .with_context(|| format!("reading trusted roots from {}", bundle.display()))?;
    for cert in certs {
        let cert = cert.with_context(|| format!("parsing {}", bundle.display()))?;
        // Bundles hold some certificates webpki refuses; skip those.
        let _ = roots.add(cert);
    }
    anyhow::ensure!(
        !roots.is_empty(),
        "no trusted root certificate in {}",
        bundle.display()
    );
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS client versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The SNI / verification name of a host (a name or an IP address).
pub fn server_name(host: &str) -> anyhow::Result<ServerName<'static>> {
    ServerName::try_from(host.to_string()).with_context(|| format!("{host:?} as a TLS name"))
}

#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
