//! SMTP replies as typed values, serialized in one place (RFC 5321 §4.2, RFC 3463 codes).

use std::fmt::Write;

/// One reply: code, enhanced status code (RFC 2034) and one or more text lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub enhanced: Option<[u8; 3]>,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, enhanced: [u8; 3], text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: Some(enhanced),
            lines: vec![text.into()],
        }
    }

    /// A reply without enhanced code (greeting, EHLO, HELO, 354).
    pub fn plain(code: u16, lines: Vec<String>) -> Reply {
        Reply {
            code,
            enhanced: None,
            lines,
        }
    }

    pub fn is_error(&self) -> bool {
        self.code >= 400
    }

    /// Wire form: `code-text` for all lines but the last, `code text` for the last; CRLF ends.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = String::new();
        let count = self.lines.len().max(1);
        for index in 0..count {
            let line = self.lines.get(index).map(String::as_str).unwrap_or("");
            let separator = if index + 1 == count { ' ' } else { '-' };
            let _ = write!(out, "{}{}", self.code, separator);
            if let Some([class, subject, detail]) = self.enhanced {
                let _ = write!(out, "{class}.{subject}.{detail} ");
            }
            // A reply line never carries CR or LF from its text (no reply injection).
            out.extend(line.chars().filter(|c| *c != '\r' && *c != '\n'));
            out.push_str("\r\n");
        }
        out.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_and_enhanced() {
        let reply = Reply::plain(250, vec!["mx.test".into(), "PIPELINING".into()]);
        assert_eq!(reply.to_wire(), b"250-mx.test\r\n250 PIPELINING\r\n");
        let reply = Reply::new(550, [5, 1, 1], "no such user\r\nX: y");
        assert_eq!(reply.to_wire(), b"550 5.1.1 no such userX: y\r\n");
    }
}
