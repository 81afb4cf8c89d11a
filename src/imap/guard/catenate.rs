//! CATENATE (RFC 4469) in an APPEND: `APPEND mailbox [flags] [date] CATENATE (part ...)`,
//! each part `TEXT literal`, `URL astring` or (RFC 6855 §4) `UTF8 (literal8)`. imap-codec doesn't parse it, so the guard does:
//! the head up to ` CATENATE (` is decoded by imap-codec as an APPEND (a placeholder standing
//! in for the message, as in `append`), and the parts are read here one at a time, so a TEXT
//! literal streams like a message and a URL is resolved by the session before the next.

use super::append::{decode_head, AppendCommand};

/// The next thing in a CATENATE part list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// `URL astring` (a quoted string or an atom; not a literal).
    Url(String),
    /// `TEXT` and the literal the line announces.
    Text,
    /// `UTF8 (` and the literal8 the line announces (RFC 6855 §4); its `)` follows it.
    Utf8Text,
    /// `)`: the list ended; what follows starts at this offset.
    End(usize),
    /// Anything else: a syntax error.
    Bad,
}

/// Where the APPEND `head` (or the line after a message, with `tag APPEND A` before it)
/// switches to CATENATE: the command decoded from the part before ` CATENATE (`, and the
/// offset just after the `(`. Every occurrence is tried, so a quoted mailbox name holding the
/// words can't mislead it (its prefix doesn't decode).
pub fn split_head(head: &[u8]) -> Option<(AppendCommand, usize)> {
    const WORD: &[u8] = b" CATENATE (";
    let mut from = 0;
    while let Some(at) = find_ci(&head[from..], WORD) {
        let at = from + at;
        // The placeholder message goes where ` CATENATE (...)` is.
        let prefix = &head[..at + 1];
        if let Some(mut command) = decode_head(prefix, prefix.len(), 0, true) {
            command.catenate = true;
            return Some((command, at + WORD.len()));
        }
        from = at + 1;
    }
    None
}

/// The part at `at` in `line`; `text_at` is where the line's literal announcement starts
/// (`{`, or the `~` before it), if it has one. Returns the part and where the next begins.
pub fn next_part(line: &[u8], at: usize, text_at: Option<usize>) -> (Part, usize) {
    let mut p = at;
    if line.get(p) == Some(&b' ') {
        p += 1;
    }
    let rest = &line[p.min(line.len())..];
    if rest.first() == Some(&b')') {
        return (Part::End(p + 1), p + 1);
    }
    if starts_with_ci(rest, b"TEXT ") {
        return match text_at {
            Some(start) if start == p + 5 => (Part::Text, line.len()),
            _ => (Part::Bad, line.len()),
        };
    }
    if starts_with_ci(rest, b"UTF8 (") {
        // A literal8 only: `text_at` is the `~` right after the parenthesis.
        return match text_at {
            Some(start) if start == p + 6 && line.get(start) == Some(&b'~') => {
                (Part::Utf8Text, line.len())
            }
            _ => (Part::Bad, line.len()),
        };
    }
    if starts_with_ci(rest, b"URL ") {
        let value = &rest[4..];
        if let Some((url, used)) = astring(value) {
            return (Part::Url(url), p + 4 + used);
        }
    }
    (Part::Bad, line.len())
}

/// A quoted string or an atom at the start of `input`: its value and length.
fn astring(input: &[u8]) -> Option<(String, usize)> {
    if input.first() == Some(&b'"') {
        let mut value = Vec::new();
        let mut i = 1;
        while let Some(&b) = input.get(i) {
            match b {
                b'"' => return Some((String::from_utf8(value).ok()?, i + 1)),
                b'\\' => {
                    value.push(*input.get(i + 1)?);
                    i += 2;
                }
                b'\r' | b'\n' => return None,
                _ => {
                    value.push(b);
                    i += 1;
                }
            }
        }
        return None;
    }
    let end = input
        .iter()
        .position(|&b| matches!(b, b' ' | b')' | b'\r' | b'\n' | b'{' | b'"'))
        .unwrap_or(input.len());
    if end == 0 {
        return None;
    }
    Some((String::from_utf8(input[..end].to_vec()).ok()?, end))
}

fn starts_with_ci(input: &[u8], word: &[u8]) -> bool {
    input.len() >= word.len() && input[..word.len()].eq_ignore_ascii_case(word)
}

fn find_ci(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use imap_codec::imap_types::flag::Flag;

    #[test]
    fn heads_split_where_a_valid_append_ends() {
        let (command, at) = split_head(b"a APPEND INBOX (\\Seen) CATENATE (TEXT {3}\r\n").unwrap();
        assert!(command.catenate && command.flags == vec![Flag::Seen]);
        assert_eq!(at, 33);
        // The words inside a quoted name are not the switch.
        let head = b"a APPEND \"x CATENATE (y\" catenate (URL \"/INBOX/;UID=1\")\r\n";
        let (command, at) = split_head(head).unwrap();
        assert_eq!(command.mailbox, "x CATENATE (y".try_into().unwrap());
        assert_eq!(&head[at..at + 3], b"URL");
        assert!(split_head(b"a APPEND INBOX (\\Bogus\" CATENATE (URL x)\r\n").is_none());
    }

    #[test]
    fn parts_are_read_one_at_a_time() {
        let line = b"(URL \"/INBOX/;UID=1\" URL /Sent/;UID=2 TEXT {5}\r\n";
        let brace = line.iter().position(|&b| b == b'{');
        let (part, at) = next_part(line, 1, brace);
        assert_eq!(part, Part::Url("/INBOX/;UID=1".into()));
        let (part, at) = next_part(line, at, brace);
        assert_eq!(part, Part::Url("/Sent/;UID=2".into()));
        assert_eq!(next_part(line, at, brace).0, Part::Text);
        let line = b" URL \"a\\\"b\")\r\n";
        let (part, at) = next_part(line, 0, None);
        assert_eq!(part, Part::Url("a\"b".into()));
        assert_eq!(next_part(line, at, None), (Part::End(12), 12));
        assert_eq!(next_part(b" TEXT x\r\n", 0, None).0, Part::Bad);
        assert_eq!(next_part(b" URL \r\n", 0, None).0, Part::Bad);
        assert_eq!(next_part(b" BOGUS\r\n", 0, None).0, Part::Bad);
        // RFC 6855's UTF8 part: a literal8 right after `UTF8 (`.
        assert_eq!(next_part(b" utf8 (~{5}\r\n", 0, Some(7)).0, Part::Utf8Text);
        assert_eq!(next_part(b" UTF8 ({5}\r\n", 0, Some(7)).0, Part::Bad);
        assert_eq!(next_part(b" UTF8 ( ~{5}\r\n", 0, Some(8)).0, Part::Bad);
    }
}
