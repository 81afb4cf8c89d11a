//! ESEARCH (RFC 4731): `SEARCH RETURN (MIN MAX COUNT ALL) criteria`. imap-codec parses SEARCH
//! without RETURN, so the guard takes ` RETURN (...)` off the command's first line (where it
//! always is: right after `SEARCH`, before any literal) and keeps the options for the session.

/// The first line of a `[UID] SEARCH RETURN (...) ...` command without its RETURN, and the
/// options (upper case); None for any other line.
pub fn split_return(line: &[u8]) -> Option<(Vec<u8>, Vec<String>)> {
    split_return_of(line, "SEARCH")
}

/// [`split_return`] for `[UID] <command> RETURN (...) ...` (SEARCH, or SORT for ESORT).
pub fn split_return_of(line: &[u8], command: &str) -> Option<(Vec<u8>, Vec<String>)> {
    let mut at = line.iter().position(|&b| b == b' ')? + 1;
    let word = |from: usize| -> &[u8] {
        let end = line[from..]
            .iter()
            .position(|&b| b == b' ')
            .map_or(line.len(), |n| from + n);
        &line[from..end]
    };
    if word(at).eq_ignore_ascii_case(b"UID") {
        at += 4;
    }
    if !word(at).eq_ignore_ascii_case(command.as_bytes()) {
        return None;
    }
    let search_end = at + command.len();
    const RETURN: &[u8] = b" return (";
    let rest = line.get(search_end..)?;
    if rest.len() < RETURN.len() || !rest[..RETURN.len()].eq_ignore_ascii_case(RETURN) {
        return None;
    }
    let list_start = search_end + RETURN.len();
    let close = line[list_start..].iter().position(|&b| b == b')')? + list_start;
    let list = &line[list_start..close];
    if list.iter().any(|&b| b == b'(' || b == b'"' || b == b'{') {
        return None;
    }
    let options = std::str::from_utf8(list)
        .ok()?
        .split(' ')
        .filter(|o| !o.is_empty())
        .map(str::to_ascii_uppercase)
        .collect();
    // `) ` then the criteria, which must follow.
    let after = line.get(close + 1..)?;
    let criteria = after.strip_prefix(b" ")?;
    let mut stripped = line[..search_end].to_vec();
    stripped.push(b' ');
    stripped.extend_from_slice(criteria);
    Some((stripped, options))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_options_are_taken_off_the_first_line() {
        let (line, options) = split_return(b"a UID SEARCH RETURN (MIN count) ALL\r\n").unwrap();
        assert_eq!(line, b"a UID SEARCH ALL\r\n");
        assert_eq!(options, ["MIN", "COUNT"]);
        let (line, options) = split_return(b"b search return () SUBJECT {3}\r\n").unwrap();
        assert_eq!(line, b"b search SUBJECT {3}\r\n");
        assert!(options.is_empty());
        assert!(split_return(b"c SEARCH ALL\r\n").is_none());
        assert!(split_return(b"c SEARCH RETURN (MIN)\r\n").is_none());
        assert!(split_return(b"c SEARCH RETURN (PARTIAL (1:5)) ALL\r\n").is_none());
        assert!(split_return(b"c FETCH RETURN (MIN) ALL\r\n").is_none());
        assert!(split_return(b"SEARCH").is_none());
    }
}
