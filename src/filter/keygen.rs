//! `icsmail dkim-keygen`: a new DKIM key (RSA-2048 or Ed25519, made by aws-lc-rs, the
//! cryptography the TLS stack and mail-auth already use), written where `filter::sign` looks
//! for it, and the DNS TXT record that publishes its public half (RFC 6376 §3.6.1; Ed25519:
//! RFC 8463 §4, the raw 32-byte key).

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;

use super::sign::Algorithm;

/// Why a key could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    #[error("generating the {0} key failed")]
    Generate(&'static str),
    #[error("{path} already exists: remove it first (or pick another selector)")]
    Exists { path: String },
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// A new private key as PEM (PKCS#8) and the base64 public key for the record's `p=`.
pub fn generate(algorithm: Algorithm) -> Result<(String, String), KeygenError> {
    let failed = |_| KeygenError::Generate(algorithm.name());
    let (private_der, public) = match algorithm {
        Algorithm::Rsa => {
            let pair = aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048).map_err(failed)?;
            let private: Pkcs8V1Der = pair.as_der().map_err(failed)?;
            let public: PublicKeyX509Der = pair.public_key().as_der().map_err(failed)?;
            (private.as_ref().to_vec(), public.as_ref().to_vec())
        }
        Algorithm::Ed25519 => {
            let pair = Ed25519KeyPair::generate().map_err(failed)?;
            let private: Pkcs8V1Der = pair.as_der().map_err(failed)?;
            (
                private.as_ref().to_vec(),
                pair.public_key().as_ref().to_vec(),
            )
        }
    };
    let engine = base64::engine::general_purpose::STANDARD;
    Ok((pem("PRIVATE KEY", &private_der), engine.encode(public)))
}

/// `der` as PEM with the label, 64 columns.
fn pem(label: &str, der: &[u8]) -> String {
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in text.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The zone-file line publishing `public` for `selector` of `domain`: the TXT data split
/// into strings of at most 255 bytes (RFC 1035 §3.3.14; an RSA-2048 key is longer).
pub fn txt_record(domain: &str, dns_selector: &str, algorithm: Algorithm, public: &str) -> String {
    let data = format!("v=DKIM1; k={}; p={public}", algorithm.name());
    let strings: Vec<String> = data
        .as_bytes()
        .chunks(255)
        .map(|chunk| format!("\"{}\"", String::from_utf8_lossy(chunk)))
        .collect();
    format!(
        "{dns_selector}._domainkey.{}. IN TXT {}",
        domain.trim_end_matches('.'),
        strings.join(" ")
    )
}

/// Writes `pem` to `path`, new (an existing key is never overwritten), mode 0600 and
/// fsync'd; when run as root, owned by the owner of the key directory (the daemon's user,
/// which the service setup gives that directory). A missing key directory is made (0700),
/// owned like the directory it is in.
pub fn write_key(path: &Path, pem: &str) -> Result<(), KeygenError> {
    let name = path.display().to_string();
    let io = |source: std::io::Error| KeygenError::Write {
        path: name.clone(),
        source,
    };
    if let Some(dir) = path.parent() {
        ensure_dir(dir).map_err(|source| KeygenError::Write {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(KeygenError::Exists { path: name })
        }
        Err(err) => return Err(io(err)),
    };
    let written = (|| -> std::io::Result<()> {
        file.write_all(pem.as_bytes())?;
        if let Some(dir) = path.parent() {
            let owner = std::fs::metadata(dir)?;
            if running_as_root() && (owner.uid() != 0 || owner.gid() != 0) {
                std::os::unix::fs::chown(path, Some(owner.uid()), Some(owner.gid()))?;
            }
        }
        file.sync_all()?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if let Err(err) = written {
        let _ = std::fs::remove_file(path);
        return Err(io(err));
    }
    Ok(())
}

/// Makes `dir` (0700) when it is missing; as root, gives it the owner of its parent.
fn ensure_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    if let Some(parent) = dir.parent() {
        let owner = std::fs::metadata(parent)?;
        if running_as_root() && owner.uid() != 0 {
            std::os::unix::fs::chown(dir, Some(owner.uid()), Some(owner.gid()))?;
        }
    }
    Ok(())
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_load_back_and_records_split() {
        for algorithm in Algorithm::ALL {
            let (pem, public) = generate(algorithm).unwrap();
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
            assert!(super::super::sign::parse_key(pem.as_bytes(), algorithm).is_ok());
            let record = txt_record("example.test.", "s1", algorithm, &public);
            let prefix = format!(
                "s1._domainkey.example.test. IN TXT \"v=DKIM1; k={}; p=",
                algorithm.name()
            );
            assert!(record.starts_with(&prefix), "{record}");
            let strings = record.matches('"').count() / 2;
            match algorithm {
                // 294 bytes of SubjectPublicKeyInfo: 392 of base64, two strings.
                Algorithm::Rsa => {
                    assert_eq!(public.len(), 392);
                    assert_eq!(strings, 2);
                }
                Algorithm::Ed25519 => {
                    assert_eq!(public.len(), 44);
                    assert_eq!(strings, 1);
                }
            }
        }
    }

    #[test]
    fn never_overwrites() {
        let dir = std::env::temp_dir().join(format!("icsmail-keygen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // The key directory is made when missing.
        let path = dir.join("keys").join("a.test.s.rsa.pem");
        write_key(&path, "one").unwrap();
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(dir.join("keys")).unwrap().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
        assert!(matches!(
            write_key(&path, "two"),
            Err(KeygenError::Exists { .. })
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
