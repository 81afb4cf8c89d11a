//! A look at the raw input before imap-next parses it, for the two limits imap-next can't
//! answer in time: a command line longer than `MAX_LINE` (imap-next only counts whole
//! commands, literals included) and a non-synchronising literal (`{n+}`, LITERAL+) larger than
//! the literal limit (imap-next would silently read and drop up to the command limit, while
//! the client waits for an answer). Sans-I/O: it follows lines and literal payloads so that
//! text inside a message being appended is never mistaken for a command.

/// Longest command line (outside literals), its CR included, as in Dovecot.
pub const MAX_LINE: usize = 64 * 1024;
/// Longest tag we remember for the reply.
const MAX_TAG: usize = 64;

/// Why the connection must be refused and closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    LineTooLong { tag: Option<String> },
    LiteralTooBig { tag: Option<String>, size: u64 },
}

#[derive(Debug)]
pub struct InputGuard {
    max_literal: u64,
    /// Bytes of literal payload still to skip.
    literal_left: u64,
    /// Length of the current line so far.
    line_len: usize,
    /// The last bytes of the current line (enough to see `{n+}\r`).
    tail: Vec<u8>,
    /// Start of the current command (its tag), kept until the command's first line ends.
    head: Vec<u8>,
    in_first_line: bool,
    /// Tag of the command being received (for a reply on a later line).
    tag: Option<String>,
}

impl InputGuard {
    pub fn new(max_literal: u32) -> InputGuard {
        InputGuard {
            max_literal: u64::from(max_literal),
            literal_left: 0,
            line_len: 0,
            tail: Vec::with_capacity(32),
            head: Vec::new(),
            in_first_line: true,
            tag: None,
        }
    }

    /// Follows `bytes`; the first violation found, if any.
    pub fn inspect(&mut self, mut bytes: &[u8]) -> Option<Violation> {
        while !bytes.is_empty() {
            if self.literal_left > 0 {
                let skip = (self.literal_left.min(bytes.len() as u64)) as usize;
                self.literal_left -= skip as u64;
                bytes = &bytes[skip..];
                continue;
            }
            let (line_part, newline) = match bytes.iter().position(|&b| b == b'\n') {
                Some(at) => (&bytes[..at], true),
                None => (bytes, false),
            };
            self.line_len += line_part.len();
            if self.in_first_line && self.head.len() < MAX_TAG + 1 {
                let room = MAX_TAG + 1 - self.head.len();
                self.head
                    .extend_from_slice(&line_part[..line_part.len().min(room)]);
            }
            self.tail.extend_from_slice(line_part);
            if self.tail.len() > 32 {
                self.tail.drain(..self.tail.len() - 32);
            }
            if self.line_len > MAX_LINE {
                return Some(Violation::LineTooLong {
                    tag: self.current_tag(),
                });
            }
            if !newline {
                return None;
            }
            bytes = &bytes[line_part.len() + 1..];
            if let Some(violation) = self.end_of_line() {
                return Some(violation);
            }
        }
        None
    }

    fn current_tag(&self) -> Option<String> {
        self.tag.clone().or_else(|| tag_of(&self.head))
    }

    /// A line ended: does it announce a literal?
    fn end_of_line(&mut self) -> Option<Violation> {
        if self.in_first_line {
            self.tag = tag_of(&self.head);
        }
        let literal = literal_announcement(&self.tail);
        self.line_len = 0;
        self.tail.clear();
        match literal {
            Some((size, non_sync)) => {
                if size > self.max_literal {
                    if non_sync {
                        return Some(Violation::LiteralTooBig {
                            tag: self.current_tag(),
                            size,
                        });
                    }
                    // A synchronising one is refused by imap-next and never sent: the command
                    // is over.
                    self.start_command();
                } else {
                    self.literal_left = size;
                    self.in_first_line = false;
                }
            }
            None => self.start_command(),
        }
        None
    }

    fn start_command(&mut self) {
        self.in_first_line = true;
        self.head.clear();
        self.tag = None;
    }
}

/// `{123}` or `{123+}` (optionally with a trailing CR) at the end of a line.
fn literal_announcement(line: &[u8]) -> Option<(u64, bool)> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let mut number = &inner[open + 1..];
    let non_sync = number.last() == Some(&b'+');
    if non_sync {
        number = &number[..number.len() - 1];
    }
    if number.is_empty() || number.len() > 19 || !number.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let size = std::str::from_utf8(number).ok()?.parse().ok()?;
    Some((size, non_sync))
}

/// The first word of a command, when it looks like a tag.
fn tag_of(head: &[u8]) -> Option<String> {
    let end = head.iter().position(|&b| b == b' ')?;
    let tag = std::str::from_utf8(&head[..end]).ok()?;
    let valid = !tag.is_empty()
        && tag.len() <= MAX_TAG
        && tag
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"(){%*\"\\+]".contains(&b));
    valid.then(|| tag.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_payload_is_not_taken_for_commands() {
        let mut guard = InputGuard::new(1000);
        // The payload itself contains a huge non-sync announcement: it must be skipped.
        let payload = b"x {99999999+}\r\n";
        let mut input = format!("a APPEND INBOX {{{}+}}\r\n", payload.len()).into_bytes();
        input.extend_from_slice(payload);
        input.extend_from_slice(b"\r\nb NOOP\r\n");
        assert_eq!(guard.inspect(&input), None);
    }

    #[test]
    fn oversized_non_sync_literal_names_its_tag() {
        let mut guard = InputGuard::new(1000);
        assert_eq!(guard.inspect(b"a1 NOOP\r\n"), None);
        assert_eq!(
            guard.inspect(b"b2 APPEND INBOX {1001+}\r\nxxx"),
            Some(Violation::LiteralTooBig {
                tag: Some("b2".into()),
                size: 1001
            })
        );
        // The limit itself is fine, and split reads work.
        let mut guard = InputGuard::new(1000);
        assert_eq!(guard.inspect(b"c APPEND INBOX {10"), None);
        assert_eq!(guard.inspect(b"00+}\r\n"), None);
        // A synchronising one is left to imap-next (which refuses it), and the next command
        // is seen as such.
        let mut guard = InputGuard::new(10);
        assert_eq!(guard.inspect(b"d APPEND INBOX {11}\r\ne NOOP\r\n"), None);
    }

    #[test]
    fn line_limit_is_exact() {
        let mut guard = InputGuard::new(1000);
        let mut line = b"a SELECT ".to_vec();
        line.resize(MAX_LINE - 1, b'x');
        assert_eq!(guard.inspect(&line), None);
        assert_eq!(guard.inspect(b"\r\n"), None);
        line.resize(MAX_LINE + 1, b'x');
        assert_eq!(
            guard.inspect(&line),
            Some(Violation::LineTooLong {
                tag: Some("a".into())
            })
        );
    }

    /// Random command streams: the verdict (and where it comes) must not depend on how the
    /// bytes are split into reads, and nothing may panic.
    #[test]
    fn verdicts_do_not_depend_on_read_boundaries() {
        let mut next = crate::test_support::xorshift(0x1a2b_3c4d);
        let pieces: [&[u8]; 9] = [
            b"a1 NOOP\r\n",
            b"b APPEND INBOX {5}\r\nhello\r\n",
            b"c APPEND INBOX {12+}\r\n{99999999+}\r\n\r\n",
            b"d LOGIN {3}\r\nbob {3+}\r\npw!\r\n",
            b"e APPEND INBOX {2000+}\r\n",
            b"f APPEND INBOX {2000}\r\ng NOOP\r\n",
            b"\r\n\n{}{+}{x+}\r\n",
            b"h SELECT xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            b"\xff\x00 garbage {\r\n",
        ];
        for _ in 0..300 {
            let mut input = Vec::new();
            for _ in 0..(next() % 12) {
                input.extend_from_slice(pieces[(next() % pieces.len() as u64) as usize]);
                if next().is_multiple_of(50) {
                    input.extend(std::iter::repeat_n(b'x', MAX_LINE));
                }
            }
            let mut whole = InputGuard::new(1000);
            let expected = whole.inspect(&input);
            let mut split = InputGuard::new(1000);
            let mut verdict = None;
            let mut rest = &input[..];
            while !rest.is_empty() && verdict.is_none() {
                let take = 1 + (next() % 97) as usize;
                let (chunk, tail) = rest.split_at(take.min(rest.len()));
                verdict = split.inspect(chunk);
                rest = tail;
            }
            assert_eq!(
                verdict,
                expected,
                "input {:?}",
                String::from_utf8_lossy(&input)
            );
        }
    }

    #[test]
    fn the_tag_of_a_later_line_is_the_commands() {
        let mut guard = InputGuard::new(1000);
        let input = b"t7 LOGIN {5}\r\nalice {999999+}\r\n";
        assert_eq!(
            guard.inspect(input),
            Some(Violation::LiteralTooBig {
                tag: Some("t7".into()),
                size: 999999
            })
        );
    }
}
