//! CREATE-SPECIAL-USE (RFC 6154 §3): `CREATE name (USE (\Sent))`. imap-codec parses CREATE
//! without its parameter list, so the guard takes the `(USE (...))` off the command's last
//! line before imap-next sees it and keeps the attributes for the session's CREATE. The
//! mailbox name comes before it on that line (atom or quoted string) or in a literal before
//! it; neither can end in `))` followed by CRLF, so the suffix is never part of a name.

/// Whether a command's first line is a CREATE (its second word, in any case).
pub fn is_create(line: &[u8]) -> bool {
    let mut words = line.splitn(3, |&b| b == b' ');
    let (Some(_tag), Some(name)) = (words.next(), words.next()) else {
        return false;
    };
    name.eq_ignore_ascii_case(b"CREATE")
}

/// The last line of a CREATE without its ` (USE (...))` parameter, and the attributes it
/// named; None when it has none (or another parameter, left for imap-next to refuse).
pub fn split_use(line: &[u8]) -> Option<(Vec<u8>, Vec<String>)> {
    const OPEN: &[u8] = b" (use (";
    let body = line.strip_suffix(b"\r\n")?.strip_suffix(b"))")?;
    let lower = body.to_ascii_lowercase();
    let at = lower.windows(OPEN.len()).rposition(|w| w == OPEN)?;
    let list = &body[at + OPEN.len()..];
    if list
        .iter()
        .any(|&b| b == b'(' || b == b')' || b == b'"' || b == b'{')
    {
        return None;
    }
    let uses = std::str::from_utf8(list)
        .ok()?
        .split(' ')
        .filter(|word| !word.is_empty())
        .map(str::to_string)
        .collect();
    let mut stripped = body[..at].to_vec();
    stripped.extend_from_slice(b"\r\n");
    Some((stripped, uses))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_use_list_is_taken_off_the_last_line() {
        let (line, uses) = split_use(b"a1 CREATE MySent (USE (\\Sent))\r\n").unwrap();
        assert_eq!(line, b"a1 CREATE MySent\r\n");
        assert_eq!(uses, ["\\Sent"]);
        let (line, uses) =
            split_use(b"a1 create \"My (USE) x\" (use (\\Archive \\All))\r\n").unwrap();
        assert_eq!(line, b"a1 create \"My (USE) x\"\r\n");
        assert_eq!(uses, ["\\Archive", "\\All"]);
        // After a literal name: the rest of the line.
        let (line, uses) = split_use(b" (USE (\\Trash))\r\n").unwrap();
        assert_eq!(line, b"\r\n");
        assert_eq!(uses, ["\\Trash"]);
        // A quoted name that merely looks like it, and no list: untouched.
        assert!(split_use(b"a1 CREATE \"x (USE (\\Sent))\"\r\n").is_none());
        assert!(split_use(b"a1 CREATE plain\r\n").is_none());
        assert!(split_use(b"a1 CREATE x (USE (\\Sent) OTHER (y))\r\n").is_none());
        assert!(is_create(b"t CREATE x\r\n") && is_create(b"t create {3}\r\n"));
        assert!(!is_create(b"t CREATED x\r\n") && !is_create(b"CREATE\r\n"));
    }
}
