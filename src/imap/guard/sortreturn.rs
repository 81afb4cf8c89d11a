//! ESORT (RFC 5267 §3): `[UID] SORT RETURN (MIN MAX COUNT ALL) (criteria) charset keys`.
//! imap-codec parses SORT without RETURN, so the guard takes ` RETURN (...)` off the
//! command's first line (where it always is: right after `SORT`, before any literal) and
//! keeps the options for the session, as for SEARCH (`searchreturn`).

/// The first line of a `[UID] SORT RETURN (...) ...` command without its RETURN, and the
/// options (upper case); None for any other line.
pub fn split_return(line: &[u8]) -> Option<(Vec<u8>, Vec<String>)> {
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
    if !word(at).eq_ignore_ascii_case(b"SORT") {
        return None;
    }
    let sort_end = at + "SORT".len();
    const RETURN: &[u8] = b" return (";
    let rest = line.get(sort_end..)?;
    if rest.len() < RETURN.len() || !rest[..RETURN.len()].eq_ignore_ascii_case(RETURN) {
        return None;
    }
    let list_start = sort_end + RETURN.len();
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
    // `) ` then the sort criteria, which must follow.
    let criteria = line.get(close + 1..)?.strip_prefix(b" ")?;
    let mut stripped = line[..sort_end].to_vec();
    stripped.push(b' ');
    stripped.extend_from_slice(criteria);
    Some((stripped, options))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_options_are_taken_off_the_first_line() {
        let (line, options) =
            split_return(b"a UID SORT RETURN (MIN count) (DATE) UTF-8 ALL\r\n").unwrap();
        assert_eq!(line, b"a UID SORT (DATE) UTF-8 ALL\r\n");
        assert_eq!(options, ["MIN", "COUNT"]);
        let (line, options) =
            split_return(b"b sort return () (SUBJECT) utf-8 TEXT {3}\r\n").unwrap();
        assert_eq!(line, b"b sort (SUBJECT) utf-8 TEXT {3}\r\n");
        assert!(options.is_empty());
        assert!(split_return(b"c SORT (DATE) UTF-8 ALL\r\n").is_none());
        assert!(split_return(b"c SORT RETURN (MIN)\r\n").is_none());
        assert!(split_return(b"c SORT RETURN (PARTIAL (1:5)) (DATE) UTF-8 ALL\r\n").is_none());
        assert!(split_return(b"c SEARCH RETURN (MIN) ALL\r\n").is_none());
        assert!(split_return(b"c THREAD RETURN (MIN) REFERENCES UTF-8 ALL\r\n").is_none());
    }
}
