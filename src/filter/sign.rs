//! `dkim.sign`: the DKIM signatures (RFC 6376, relaxed/relaxed) of mail from our domains,
//! made by mail-auth with the keys of `dkim.keyDirectory`.
//!
//! Key files, one per domain, selector and algorithm (docs/filters.md):
//!
//! | file | signature |
//! |---|---|
//! | `<dir>/<domain>.<selector>.rsa.pem` | `a=rsa-sha256; s=<selector>` |
//! | `<dir>/<domain>.<selector>.ed25519.pem` | `a=ed25519-sha256; s=<selector>-ed25519` |
//!
//! PEM, PKCS#8 (`PRIVATE KEY`; RSA keys may also be PKCS#1, `RSA PRIVATE KEY`). A selector's
//! DNS record holds one key (RFC 6376 §3.6.2.2), so the Ed25519 key has a selector of its own.
//! With both files, a message gets both signatures (RFC 8463 §4: receivers that don't know
//! Ed25519 ignore that one).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;

use crate::mailtext;

/// The fields signed, in this order. `From` twice: the second signs the absence of another
/// `From:` (oversigning, RFC 6376 §8.15), so none can be added above ours; every absent field
/// of the list is signed as absent too (mail-auth adds those to `h=`).
pub const SIGNED_FIELDS: &[&str] = &[
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "From",
];

/// The key algorithms, with their file suffix and what they add to the selector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Rsa,
    Ed25519,
}

impl Algorithm {
    pub const ALL: [Algorithm; 2] = [Algorithm::Rsa, Algorithm::Ed25519];

    /// The name in file names and the DNS record's `k=`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Rsa => "rsa",
            Algorithm::Ed25519 => "ed25519",
        }
    }

    /// The selector of this algorithm's key for the configured `selector`.
    pub fn dns_selector(self, selector: &str) -> String {
        match self {
            Algorithm::Rsa => selector.to_string(),
            Algorithm::Ed25519 => format!("{selector}-ed25519"),
        }
    }
}

/// Where the key of `domain` for `selector` and `algorithm` lives.
pub fn key_path(dir: &Path, domain: &str, selector: &str, algorithm: Algorithm) -> PathBuf {
    dir.join(format!(
        "{}.{selector}.{}.pem",
        domain.to_ascii_lowercase(),
        algorithm.name()
    ))
}

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a PEM private key: {why}")]
    Pem { path: PathBuf, why: String },
    #[error("{path}: not a usable {algorithm} key: {why}")]
    Key {
        path: PathBuf,
        algorithm: &'static str,
        why: String,
    },
}

/// Why a message could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("signing with {selector}._domainkey.{domain}: {why}")]
    Sign {
        domain: String,
        selector: String,
        why: String,
    },
}

/// The signers of one domain (one per key found).
struct DomainSigners {
    signers: Vec<(String, DkimSigner<DkimKey, Done>)>,
}

/// Every signing key of our domains, loaded once per settings (a reload loads them again).
#[derive(Default)]
pub struct KeyRing {
    domains: HashMap<String, DomainSigners>,
}

impl KeyRing {
    /// The keys in `dir` of each of `domains` for `selector`. A missing file means that key is
    /// not used; a file that cannot be used is a problem (logged by the caller), not a stop.
    pub fn load(dir: &Path, domains: &[String], selector: &str) -> (KeyRing, Vec<KeyError>) {
        let mut ring = KeyRing::default();
        let mut problems = Vec::new();
        for domain in domains {
            let domain = domain.trim_end_matches('.').to_ascii_lowercase();
            let mut signers = Vec::new();
            for algorithm in Algorithm::ALL {
                let path = key_path(dir, &domain, selector, algorithm);
                let key = match read_key(&path, algorithm) {
                    Ok(Some(key)) => key,
                    Ok(None) => continue,
                    Err(err) => {
                        problems.push(err);
                        continue;
                    }
                };
                let dns_selector = algorithm.dns_selector(selector);
                let signer = DkimSigner::from_key(key)
                    .domain(domain.clone())
                    .selector(dns_selector.clone())
                    .headers(SIGNED_FIELDS.iter().copied())
                    .header_canonicalization(Canonicalization::Relaxed)
                    .body_canonicalization(Canonicalization::Relaxed);
                signers.push((dns_selector, signer));
            }
            if !signers.is_empty() {
                ring.domains.insert(domain, DomainSigners { signers });
            }
        }
        (ring, problems)
    }

    /// The domains with at least one key, with their selectors (for the log at start).
    pub fn summary(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .domains
            .iter()
            .map(|(domain, s)| {
                let selectors: Vec<&str> = s.signers.iter().map(|(sel, _)| sel.as_str()).collect();
                format!("{domain} ({})", selectors.join(", "))
            })
            .collect();
        out.sort();
        out
    }

    /// The `DKIM-Signature:` fields (CRLF form, folded) for `message` when its `From:`
    /// domain has keys, `None` when it has none. `message` is the CRLF wire form, complete:
    /// after every rewrite.
    pub fn sign(&self, message: &[u8]) -> Result<Option<String>, SignError> {
        let Some(domain) = from_domain(message) else {
            return Ok(None);
        };
        let Some(domain_signers) = self.domains.get(&domain) else {
            return Ok(None);
        };
        let mut fields = String::new();
        for (selector, signer) in &domain_signers.signers {
            let signature = signer.sign(message).map_err(|err| SignError::Sign {
                domain: domain.clone(),
                selector: selector.clone(),
                why: err.to_string(),
            })?;
            fields.push_str(&signature.to_header());
        }
        Ok(Some(fields))
    }

    /// `message` with its signatures on top when it is ours to sign; unchanged otherwise.
    pub fn signed(&self, message: &[u8]) -> Result<Option<Vec<u8>>, SignError> {
        Ok(self
            .sign(message)?
            .map(|fields| super::authres::prepend(&fields, message)))
    }
}

/// The key in `path`, `None` when there is no such file.
fn read_key(path: &Path, algorithm: Algorithm) -> Result<Option<DkimKey>, KeyError> {
    let pem = match std::fs::read(path) {
        Ok(pem) => pem,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(KeyError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    parse_key(&pem, algorithm)
        .map(Some)
        .map_err(|(pem_error, why)| match pem_error {
            true => KeyError::Pem {
                path: path.to_path_buf(),
                why,
            },
            false => KeyError::Key {
                path: path.to_path_buf(),
                algorithm: algorithm.name(),
                why,
            },
        })
}

/// A PEM private key as a signing key of `algorithm`; the error says whether the PEM itself
/// was wrong, and why.
pub fn parse_key(pem: &[u8], algorithm: Algorithm) -> Result<DkimKey, (bool, String)> {
    let der = PrivateKeyDer::from_pem_slice(pem).map_err(|err| (true, err.to_string()))?;
    let key_error = |err: mail_auth::Error| (false, err.to_string());
    match algorithm {
        Algorithm::Rsa => Ok(DkimKey::Rsa(
            RsaKey::<Sha256>::from_key_der(der).map_err(key_error)?,
        )),
        Algorithm::Ed25519 => match der {
            PrivateKeyDer::Pkcs8(pkcs8) => Ok(DkimKey::Ed25519(
                Ed25519Key::from_pkcs8_maybe_unchecked_der(pkcs8.secret_pkcs8_der())
                    .map_err(key_error)?,
            )),
            _ => Err((false, "an Ed25519 key must be PKCS#8 (PRIVATE KEY)".into())),
        },
    }
}

/// The domain (lowercase, no trailing dot) of the first address of the first `From:` field.
pub fn from_domain(message: &[u8]) -> Option<String> {
    let header = &message[..mailtext::header_end(message)];
    let field = mailtext::header_fields(header)
        .into_iter()
        .find(|field| field.len() >= 5 && field[..5].eq_ignore_ascii_case(b"from:"))?;
    let parsed = mail_parser::MessageParser::new().parse_headers(field)?;
    let address = parsed.from()?.first()?.address()?;
    let (_, domain) = address.rsplit_once('@')?;
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    (!domain.is_empty()).then_some(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_names() {
        let dir = Path::new("/keys");
        assert_eq!(
            key_path(dir, "Example.Test", "s1", Algorithm::Rsa),
            Path::new("/keys/example.test.s1.rsa.pem")
        );
        assert_eq!(
            key_path(dir, "example.test", "s1", Algorithm::Ed25519),
            Path::new("/keys/example.test.s1.ed25519.pem")
        );
        assert_eq!(Algorithm::Rsa.dns_selector("s1"), "s1");
        assert_eq!(Algorithm::Ed25519.dns_selector("s1"), "s1-ed25519");
    }

    #[test]
    fn from_domain_of_first_from() {
        assert_eq!(
            from_domain(b"To: x@y\r\nFrom: \"A, B\"\r\n <a@Example.TEST>\r\n\r\nFrom: z@q\r\n"),
            Some("example.test".into())
        );
        assert_eq!(from_domain(b"From: undisclosed\r\n\r\n"), None);
        assert_eq!(from_domain(b"Subject: x\r\n\r\n"), None);
    }

    fn write(dir: &Path, name: &str, text: &[u8]) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn discovers_the_keys_of_each_domain() {
        let dir = tempdir();
        let (rsa, _) = crate::filter::keygen::generate(Algorithm::Rsa).unwrap();
        let (ed, _) = crate::filter::keygen::generate(Algorithm::Ed25519).unwrap();
        write(&dir, "one.test.s1.rsa.pem", rsa.as_bytes());
        write(&dir, "one.test.s1.ed25519.pem", ed.as_bytes());
        write(&dir, "two.test.s1.ed25519.pem", ed.as_bytes());
        write(&dir, "two.test.other.rsa.pem", rsa.as_bytes());
        write(&dir, "bad.test.s1.rsa.pem", b"not a key");
        // An Ed25519 key where the RSA key should be: refused, named.
        write(&dir, "bad.test.s1.ed25519.pem", rsa.as_bytes());
        let domains: Vec<String> = ["One.Test", "two.test", "bad.test", "none.test"]
            .iter()
            .map(|d| d.to_string())
            .collect();
        let (ring, problems) = KeyRing::load(&dir, &domains, "s1");
        assert_eq!(
            ring.summary(),
            vec!["one.test (s1, s1-ed25519)", "two.test (s1-ed25519)"]
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert!(text[0].contains("bad.test.s1.rsa.pem"), "{text:?}");
        assert!(text[1].contains("bad.test.s1.ed25519.pem"), "{text:?}");

        let message =
            b"From: Alice <alice@one.test>\r\nTo: b@remote.test\r\nSubject: hi\r\n\r\nbody\r\n";
        let signed = ring.signed(message).unwrap().unwrap();
        let text = String::from_utf8(signed.clone()).unwrap();
        assert_eq!(text.matches("DKIM-Signature:").count(), 2, "{text}");
        assert!(text.contains("a=rsa-sha256") && text.contains("a=ed25519-sha256"));
        assert!(text.contains("s=s1;") && text.contains("s=s1-ed25519;"));
        assert!(signed.ends_with(message));
        assert!(ring
            .signed(b"From: x@elsewhere.test\r\n\r\nb")
            .unwrap()
            .is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "icsmail-dkim-keys-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
