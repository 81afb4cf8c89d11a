//! SASL mechanisms PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login): decoding the
//! client's base64 responses into credentials. Framing (334 challenges, lines) is the
//! protocol's job.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// A login name and password from the client.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub login: String,
    pub password: Vec<u8>,
    /// PLAIN's authorization identity, when the client sent one; it must name the same account
    /// as `login` (checked by the authenticator, which knows `defaultAuthDomain`).
    pub authzid: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never log passwords.
        f.debug_struct("Credentials")
            .field("login", &self.login)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    #[error("the response is not valid base64")]
    Base64,
    #[error("malformed PLAIN response")]
    Malformed,
    #[error("the client cancelled the authentication")]
    Cancelled,
}

/// The `*` line cancels an exchange (RFC 4954 §4).
pub fn is_cancel(line: &str) -> bool {
    line.trim() == "*"
}

pub fn decode_base64(line: &str) -> Result<Vec<u8>, SaslError> {
    let line = line.trim();
    if is_cancel(line) {
        return Err(SaslError::Cancelled);
    }
    if line == "=" {
        return Ok(Vec::new());
    }
    STANDARD.decode(line).map_err(|_| SaslError::Base64)
}

/// PLAIN: `[authzid] NUL authcid NUL passwd`.
pub fn decode_plain(response: &str) -> Result<Credentials, SaslError> {
    parse_plain(&decode_base64(response)?)
}

/// PLAIN from the already decoded response (IMAP's codec decodes base64 itself).
pub fn parse_plain(bytes: &[u8]) -> Result<Credentials, SaslError> {
    let mut parts = bytes.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed);
    };
    let login = String::from_utf8(authcid.to_vec()).map_err(|_| SaslError::Malformed)?;
    if login.is_empty() {
        return Err(SaslError::Malformed);
    }
    let authzid = match authzid {
        [] => None,
        bytes => Some(String::from_utf8(bytes.to_vec()).map_err(|_| SaslError::Malformed)?),
    };
    Ok(Credentials {
        login,
        password: password.to_vec(),
        authzid,
    })
}

/// LOGIN's user name response.
pub fn decode_login_user(response: &str) -> Result<String, SaslError> {
    String::from_utf8(decode_base64(response)?).map_err(|_| SaslError::Malformed)
}

/// Challenge texts of LOGIN, base64 of "Username:" and "Password:".
pub const LOGIN_USER_CHALLENGE: &str = "VXNlcm5hbWU6";
pub const LOGIN_PASSWORD_CHALLENGE: &str = "UGFzc3dvcmQ6";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_with_and_without_authzid() {
        let creds = decode_plain(&STANDARD.encode(b"\0alice\0pw")).unwrap();
        assert_eq!(
            (creds.login.as_str(), creds.password.as_slice()),
            ("alice", &b"pw"[..])
        );
        let with_authzid = decode_plain(&STANDARD.encode(b"admin\0alice\0pw")).unwrap();
        assert_eq!(with_authzid.authzid.as_deref(), Some("admin"));
        assert_eq!(decode_plain("!!!"), Err(SaslError::Base64));
        assert_eq!(
            decode_plain(&STANDARD.encode(b"nonul")),
            Err(SaslError::Malformed)
        );
        assert_eq!(decode_plain("*"), Err(SaslError::Cancelled));
    }

    #[test]
    fn debug_hides_password() {
        let creds = decode_plain(&STANDARD.encode(b"\0alice\0hunter2")).unwrap();
        assert!(!format!("{creds:?}").contains("hunter2"));
    }
}
