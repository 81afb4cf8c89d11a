//! POP3 responses as typed values, serialized in one place (RFC 1939, RFC 2449 codes).

use crate::mailtext::{dot_stuff_into, LineEndPolicy};

/// Extended response codes (RFC 2449 §8, RFC 3206).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The maildrop is locked by another session.
    InUse,
    /// Credentials were wrong.
    Auth,
    /// A temporary server problem.
    SysTemp,
    /// A permanent refusal (e.g. login before TLS in `required` mode).
    SysPerm,
}

impl Code {
    fn text(self) -> &'static str {
        match self {
            Code::InUse => "IN-USE",
            Code::Auth => "AUTH",
            Code::SysTemp => "SYS/TEMP",
            Code::SysPerm => "SYS/PERM",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Ok(String),
    Err(Option<Code>, String),
    /// `+OK first` followed by lines (already in CRLF form, not yet dot-stuffed).
    Multi(String, Vec<u8>),
    /// `+ challenge` of a SASL exchange (RFC 5034).
    Continue(String),
}

impl Response {
    pub fn ok(text: impl Into<String>) -> Response {
        Response::Ok(text.into())
    }

    pub fn err(text: impl Into<String>) -> Response {
        Response::Err(None, text.into())
    }

    pub fn err_code(code: Code, text: impl Into<String>) -> Response {
        Response::Err(Some(code), text.into())
    }

    pub fn is_err(&self) -> bool {
        matches!(self, Response::Err(..))
    }

    pub fn to_wire(&self) -> Vec<u8> {
        let clean =
            |text: &str| -> String { text.chars().filter(|c| *c != '\r' && *c != '\n').collect() };
        match self {
            Response::Ok(text) if text.is_empty() => b"+OK\r\n".to_vec(),
            Response::Ok(text) => format!("+OK {}\r\n", clean(text)).into_bytes(),
            Response::Err(Some(code), text) => {
                format!("-ERR [{}] {}\r\n", code.text(), clean(text)).into_bytes()
            }
            Response::Err(None, text) => format!("-ERR {}\r\n", clean(text)).into_bytes(),
            Response::Continue(text) => format!("+ {}\r\n", clean(text)).into_bytes(),
            Response::Multi(first, body) => {
                let mut out = if first.is_empty() {
                    b"+OK\r\n".to_vec()
                } else {
                    format!("+OK {}\r\n", clean(first)).into_bytes()
                };
                // Not normalised: RETR sends exactly the octets LIST counted (docs/pop3.md).
                dot_stuff_into(body, LineEndPolicy::Keep, &mut out);
                out.extend_from_slice(b".\r\n");
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_each_kind() {
        assert_eq!(Response::ok("ready").to_wire(), b"+OK ready\r\n");
        assert_eq!(
            Response::err_code(Code::InUse, "locked").to_wire(),
            b"-ERR [IN-USE] locked\r\n"
        );
        let multi = Response::Multi("2 octets".into(), b"a\r\n.b\r\n..\r\nend".to_vec());
        assert_eq!(
            multi.to_wire(),
            b"+OK 2 octets\r\na\r\n..b\r\n...\r\nend\r\n.\r\n"
        );
        assert_eq!(
            Response::Multi(String::new(), Vec::new()).to_wire(),
            b"+OK\r\n.\r\n"
        );
    }
}
