//! Stored password hashes: argon2id (what `icsmail hash-password` writes) and SHA-512-crypt
//! (`$6$`, what `mkpasswd -m sha-512` and most existing systems have).

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use sha_crypt::ShaCrypt;

/// A parsed, verifiable password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredHash {
    Argon2id(String),
    ShaCrypt512(String),
}

impl StoredHash {
    /// Recognises a hash string; the error says what was expected.
    pub fn parse(text: &str) -> Result<StoredHash, String> {
        let text = text.trim();
        if text.starts_with("$argon2id$") {
            argon2::PasswordHash::new(text)
                .map_err(|err| format!("malformed argon2id hash: {err}"))?;
            Ok(StoredHash::Argon2id(text.to_string()))
        } else if text.starts_with("$6$") {
            // Checked by form only: a trial verification would cost 5000+ SHA-512 rounds per
            // account at every start.
            let digest = text.rsplit('$').next().unwrap_or("");
            let form_ok = sha_crypt::PasswordHashRef::new(text).is_ok()
                && digest.len() == 86
                && digest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/');
            if form_ok {
                Ok(StoredHash::ShaCrypt512(text.to_string()))
            } else {
                Err(
                    "malformed SHA-512-crypt hash: expected $6$[rounds=N$]salt$<86 characters>"
                        .to_string(),
                )
            }
        } else {
            Err(
                "not a supported hash: expected argon2id ($argon2id$…) or SHA-512-crypt ($6$…)"
                    .to_string(),
            )
        }
    }

    /// The hash as stored.
    pub fn as_text(&self) -> &str {
        match self {
            StoredHash::Argon2id(text) | StoredHash::ShaCrypt512(text) => text,
        }
    }

    /// True when `password` matches. Both algorithms compare in constant time.
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            StoredHash::Argon2id(text) => argon2::PasswordHash::new(text)
                .map(|hash| Argon2::default().verify_password(password, &hash).is_ok())
                .unwrap_or(false),
            StoredHash::ShaCrypt512(text) => ShaCrypt::default()
                .verify_password(password, text.as_str())
                .is_ok(),
        }
    }
}

/// Hashes a password with argon2id and a random salt (RFC 9106 second recommended parameters,
/// the argon2 crate's defaults).
pub fn hash_argon2id(password: &[u8]) -> anyhow::Result<String> {
    let hash = Argon2::default()
        .hash_password(password)
        .map_err(|err| anyhow::anyhow!("argon2id hashing failed: {err}"))?;
    Ok(hash.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_round_trip() {
        let hash = hash_argon2id(b"secret").unwrap();
        let stored = StoredHash::parse(&hash).unwrap();
        assert!(stored.verify(b"secret"));
        assert!(!stored.verify(b"Secret"));
    }

    #[test]
    fn sha512_crypt_from_mkpasswd() {
        // crypt(3): `crypt("secret", "$6$saltsalt")`
        let stored = StoredHash::parse(
            "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1",
        )
        .unwrap();
        assert!(stored.verify(b"secret"));
        assert!(!stored.verify(b"wrong"));
    }

    #[test]
    fn other_formats_are_refused() {
        assert!(StoredHash::parse("plaintext").is_err());
        assert!(StoredHash::parse("$1$md5$x").is_err());
        assert!(StoredHash::parse("$argon2id$garbage").is_err());
        assert!(StoredHash::parse("$6$salt$tooshort").is_err());
    }
}
