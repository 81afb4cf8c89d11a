//! APPENDLIMIT (RFC 7889 §3.2): `STATUS name (... APPENDLIMIT ...)`. imap-codec has no such
//! status item, so the guard takes it out of the item list on the STATUS command's last line
//! (the list always ends the command) and the session adds it to the answer.

/// Whether a command's first line is a STATUS (its second word, in any case).
pub fn is_status(line: &[u8]) -> bool {
    let mut words = line.splitn(3, |&b| b == b' ');
    let (Some(_tag), Some(name)) = (words.next(), words.next()) else {
        return false;
    };
    name.eq_ignore_ascii_case(b"STATUS")
}

/// What was taken out of a STATUS item list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// APPENDLIMIT was the only item: MESSAGES stands in for imap-codec (which wants one),
    /// and is left out of the answer.
    pub only: bool,
}

/// The last line of a STATUS without APPENDLIMIT in its item list; None when it has none.
pub fn split_appendlimit(line: &[u8]) -> Option<(Vec<u8>, Taken)> {
    let body = line.strip_suffix(b"\r\n")?.strip_suffix(b")")?;
    let open = body.iter().rposition(|&b| b == b'(')?;
    let list = std::str::from_utf8(&body[open + 1..]).ok()?;
    if list.contains(['"', ')', '{']) {
        return None;
    }
    let words: Vec<&str> = list.split(' ').filter(|w| !w.is_empty()).collect();
    if !words.iter().any(|w| w.eq_ignore_ascii_case("APPENDLIMIT")) {
        return None;
    }
    let rest: Vec<&str> = words
        .into_iter()
        .filter(|w| !w.eq_ignore_ascii_case("APPENDLIMIT"))
        .collect();
    let only = rest.is_empty();
    let list = if only {
        "MESSAGES".to_string()
    } else {
        rest.join(" ")
    };
    let mut stripped = body[..=open].to_vec();
    stripped.extend_from_slice(list.as_bytes());
    stripped.extend_from_slice(b")\r\n");
    Some((stripped, Taken { only }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appendlimit_is_taken_out_of_the_item_list() {
        let (line, taken) =
            split_appendlimit(b"a STATUS INBOX (MESSAGES appendlimit)\r\n").unwrap();
        assert_eq!(line, b"a STATUS INBOX (MESSAGES)\r\n");
        assert!(!taken.only);
        let (line, taken) = split_appendlimit(b"a STATUS \"x (y\" (APPENDLIMIT)\r\n").unwrap();
        assert_eq!(line, b"a STATUS \"x (y\" (MESSAGES)\r\n");
        assert!(taken.only);
        let (line, _) = split_appendlimit(b" (UIDNEXT APPENDLIMIT SIZE)\r\n").unwrap();
        assert_eq!(line, b" (UIDNEXT SIZE)\r\n");
        assert!(split_appendlimit(b"a STATUS INBOX (MESSAGES)\r\n").is_none());
        assert!(is_status(b"a status {5}\r\n") && !is_status(b"a STATUSES x\r\n"));
    }
}
