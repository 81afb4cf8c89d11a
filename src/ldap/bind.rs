//! Binds (RFC 4513): anonymous, or simple with a mail account's login and password, checked by
//! the shared authenticator (the same slow-down after failures as SMTP, IMAP and POP3). SASL
//! is not offered. Under `tls.mode = "required"` a password is taken only over TLS.

use ldap3_proto::proto::{LdapBindCred, LdapBindRequest, LdapResultCode};

use super::dn::Dn;
use crate::auth::sasl::Credentials;

/// What a bind request asks for.
#[derive(Debug)]
pub enum Attempt {
    Anonymous,
    Password(Credentials),
    /// Answered at once with this code and message; the connection is anonymous after it.
    Refused(LdapResultCode, &'static str),
}

/// Sorts a bind request; `passwords_allowed` is false on a plain connection under
/// `tls.mode = "required"`.
pub fn classify(request: &LdapBindRequest, passwords_allowed: bool) -> Attempt {
    if request.version != 3 {
        return Attempt::Refused(LdapResultCode::ProtocolError, "only LDAPv3 is supported");
    }
    let password = match &request.cred {
        LdapBindCred::Simple(password) => password,
        LdapBindCred::SASL(_) | LdapBindCred::Unsupported => {
            return Attempt::Refused(
                LdapResultCode::AuthMethodNotSupported,
                "only simple binds are supported",
            )
        }
    };
    match (request.dn.is_empty(), password.is_empty()) {
        (true, true) => Attempt::Anonymous,
        // RFC 4513 §5.1.2: an unauthenticated bind is refused, not taken as anonymous.
        (false, true) => Attempt::Refused(
            LdapResultCode::UnwillingToPerform,
            "unauthenticated bind (a name without a password) is not allowed",
        ),
        _ if !passwords_allowed => Attempt::Refused(
            LdapResultCode::ConfidentialityRequired,
            "use StartTLS or LDAPS before a simple bind",
        ),
        _ => Attempt::Password(Credentials {
            login: login_of(&request.dn),
            password: password.as_bytes().to_vec(),
            authzid: None,
        }),
    }
}

/// The login a bind name means: the value of a `uid=` or `mail=` first RDN (the DN of an entry
/// of this book, `uid=alice@example.org,dc=example,dc=org`), or the name as it is
/// (`alice@example.org`, or `alice` with `defaultAuthDomain`).
pub fn login_of(name: &str) -> String {
    if let Ok(dn) = Dn::parse(name) {
        if let Some((kind, value)) = dn.first() {
            if kind == "uid" || kind == "mail" {
                return value.to_string();
            }
        }
    }
    name.trim().to_string()
}
