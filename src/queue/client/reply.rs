//! SMTP replies as the client reads them (RFC 5321 §4.2): a sans-I/O parser with bounded
//! lines, and the reply value with its class and enhanced status code (RFC 3463).

use std::fmt;

/// Longest reply line accepted, CRLF included (RFC 5321 says 512; servers send more).
pub const MAX_REPLY_LINE: usize = 4096;
/// Most lines in one reply (EHLO lists are the longest real ones).
pub const MAX_REPLY_LINES: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerReply {
    pub code: u16,
    /// Text of each line, without code and separator.
    pub lines: Vec<String>,
}

impl ServerReply {
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    pub fn is_intermediate(&self) -> bool {
        (300..400).contains(&self.code)
    }

    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5xx, and anything outside the defined classes (treated as a refusal).
    pub fn is_permanent(&self) -> bool {
        !(self.is_positive() || self.is_intermediate() || self.is_transient())
    }

    /// The enhanced status code of the first line, or one implied by the class.
    pub fn status(&self) -> String {
        if let Some(code) = self.lines.first().and_then(|l| enhanced_code(l)) {
            let class = self.code / 100;
            if code.starts_with(&class.to_string()) {
                return code;
            }
        }
        match self.code / 100 {
            2 => "2.0.0".into(),
            4 => "4.0.0".into(),
            _ => "5.0.0".into(),
        }
    }

    /// A synthetic reply for errors that have no server reply (connection failures…).
    pub fn local(code: u16, text: impl Into<String>) -> ServerReply {
        ServerReply {
            code,
            lines: vec![text.into()],
        }
    }
}

impl fmt::Display for ServerReply {
    /// One line: `550 5.1.1 text / more text`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.lines.join(" / "))
    }
}

/// `x.y.z` at the start of a reply text, if it is one.
fn enhanced_code(text: &str) -> Option<String> {
    let word = text.split_whitespace().next()?;
    let parts: Vec<&str> = word.split('.').collect();
    let valid = parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()));
    valid.then(|| word.to_string())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("reply line longer than {MAX_REPLY_LINE} bytes")]
    LineTooLong,
    #[error("reply with more than {MAX_REPLY_LINES} lines")]
    TooManyLines,
    #[error("malformed reply line {0:?}")]
    Malformed(String),
}

/// Collects bytes and yields complete replies.
#[derive(Debug, Default)]
pub struct ReplyParser {
    buf: Vec<u8>,
    pos: usize,
    lines: Vec<String>,
    code: Option<u16>,
}

impl ReplyParser {
    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet consumed (after STARTTLS there must be none).
    pub fn has_pending(&self) -> bool {
        self.pos < self.buf.len() || !self.lines.is_empty()
    }

    /// The next complete reply, or `None` when more input is needed.
    pub fn next_reply(&mut self) -> Result<Option<ServerReply>, ReplyError> {
        loop {
            let pending = &self.buf[self.pos..];
            let Some(end) = pending.iter().position(|&b| b == b'\n') else {
                if pending.len() > MAX_REPLY_LINE {
                    return Err(ReplyError::LineTooLong);
                }
                return Ok(None);
            };
            if end + 1 > MAX_REPLY_LINE {
                return Err(ReplyError::LineTooLong);
            }
            let raw = &pending[..end];
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            let line = String::from_utf8_lossy(raw).into_owned();
            self.pos += end + 1;
            let (code, last, text) = split_line(&line)?;
            if self.code.is_some_and(|c| c != code) {
                return Err(ReplyError::Malformed(line));
            }
            if self.lines.len() >= MAX_REPLY_LINES {
                return Err(ReplyError::TooManyLines);
            }
            self.code = Some(code);
            self.lines.push(text.to_string());
            if last {
                self.code = None;
                return Ok(Some(ServerReply {
                    code,
                    lines: std::mem::take(&mut self.lines),
                }));
            }
        }
    }
}

/// `250-text` → (250, false, "text"); `250 text` or `250` → (250, true, …).
fn split_line(line: &str) -> Result<(u16, bool, &str), ReplyError> {
    let malformed = || ReplyError::Malformed(line.chars().take(100).collect());
    let digits = line.get(..3).ok_or_else(malformed)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !(b'2'..=b'5').contains(&digits.as_bytes()[0])
    {
        return Err(malformed());
    }
    let code: u16 = digits.parse().map_err(|_| malformed())?;
    match line.as_bytes().get(3) {
        None => Ok((code, true, "")),
        Some(b' ') => Ok((code, true, &line[4..])),
        Some(b'-') => Ok((code, false, &line[4..])),
        Some(_) => Err(malformed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Vec<ServerReply> {
        let mut parser = ReplyParser::default();
        let mut out = Vec::new();
        for byte in input {
            parser.push(&[*byte]);
            while let Some(reply) = parser.next_reply().unwrap() {
                out.push(reply);
            }
        }
        out
    }

    #[test]
    fn multi_line_and_pipelined_replies() {
        let replies =
            parse_all(b"250-mx.test\r\n250-PIPELINING\r\n250 SIZE 10\r\n550 5.1.1 no\r\n354\n");
        assert_eq!(replies.len(), 3);
        assert_eq!(replies[0].lines, ["mx.test", "PIPELINING", "SIZE 10"]);
        assert_eq!(replies[1].status(), "5.1.1");
        assert!(replies[1].is_permanent());
        assert!(replies[2].is_intermediate());
        assert_eq!(replies[1].to_string(), "550 5.1.1 no");
    }

    #[test]
    fn status_falls_back_to_the_class() {
        let reply = ServerReply::local(451, "try again");
        assert_eq!(reply.status(), "4.0.0");
        assert!(reply.is_transient());
        let mismatched = ServerReply::local(550, "2.0.0 odd");
        assert_eq!(mismatched.status(), "5.0.0");
    }

    #[test]
    fn limits_and_garbage() {
        let mut parser = ReplyParser::default();
        parser.push(&vec![b'2'; MAX_REPLY_LINE + 1]);
        assert_eq!(parser.next_reply(), Err(ReplyError::LineTooLong));
        let mut parser = ReplyParser::default();
        parser.push(b"hello\r\n");
        assert!(matches!(parser.next_reply(), Err(ReplyError::Malformed(_))));
        let mut parser = ReplyParser::default();
        parser.push(b"250-a\r\n251 b\r\n");
        assert!(matches!(parser.next_reply(), Err(ReplyError::Malformed(_))));
        let mut parser = ReplyParser::default();
        let many: Vec<u8> = (0..=MAX_REPLY_LINES)
            .flat_map(|_| b"250-x\r\n".to_vec())
            .collect();
        parser.push(&many);
        assert_eq!(parser.next_reply(), Err(ReplyError::TooManyLines));
    }
}
