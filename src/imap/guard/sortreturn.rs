//! ESORT (RFC 5267 §3): `[UID] SORT RETURN (MIN MAX COUNT ALL) (criteria) charset keys`.
//! imap-codec parses SORT without RETURN, so the guard takes ` RETURN (...)` off the
//! command's first line (where it always is: right after `SORT`, before any literal) and
//! keeps the options for the session, as for SEARCH (`searchreturn`).

/// The first line of a `[UID] SORT RETURN (...) ...` command without its RETURN, and the
/// options (upper case); None for any other line.
pub fn split_return(line: &[u8]) -> Option<(Vec<u8>, Vec<String>)> {
    super::searchreturn::split_return_of(line, "SORT")
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
