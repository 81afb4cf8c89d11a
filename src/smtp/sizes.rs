//! Sizes a client declares (BDAT chunk-size, RFC 3030; MAIL `SIZE=`, RFC 1870), read again
//! from the command line. smtp-proto 0.2 saturates a number past 19 digits at `usize::MAX` but
//! then starts over from the next digit, so `BDAT 999999999999999999999` (21 nines) comes out
//! as a 9-octet chunk: the session and the client would disagree on where the chunk ends. We
//! read the digits ourselves, saturating for good.

/// The value of an all-digit token, saturated at `usize::MAX`; None if it is not all digits.
fn saturating_number(token: &[u8]) -> Option<usize> {
    if token.is_empty() || !token.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(token.iter().fold(0usize, |value, digit| {
        value
            .saturating_mul(10)
            .saturating_add(usize::from(digit - b'0'))
    }))
}

fn tokens(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|b| b.is_ascii_whitespace())
        .filter(|token| !token.is_empty())
}

/// The chunk size of a `BDAT <size> [LAST]` line.
pub fn bdat_chunk_size(line: &[u8]) -> Option<usize> {
    let mut tokens = tokens(line);
    let verb = tokens.next()?;
    if !verb.eq_ignore_ascii_case(b"BDAT") {
        return None;
    }
    saturating_number(tokens.next()?)
}

/// The largest `SIZE=` value on a MAIL line, if any. (Taking the largest means a token that only
/// looks like one, inside a quoted address, can make the refusal stricter, never looser.)
pub fn mail_size(line: &[u8]) -> Option<usize> {
    tokens(line)
        .filter_map(|token| {
            let (key, value) = token.split_at_checked(5)?;
            key.eq_ignore_ascii_case(b"SIZE=")
                .then(|| saturating_number(value))?
        })
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes_saturate() {
        assert_eq!(bdat_chunk_size(b"BDAT 10\r\n"), Some(10));
        assert_eq!(bdat_chunk_size(b"bdat 7 LAST\r\n"), Some(7));
        assert_eq!(
            bdat_chunk_size(b"BDAT 18446744073709551609 LAST\r\n"),
            Some(18446744073709551609)
        );
        assert_eq!(
            bdat_chunk_size(b"BDAT 999999999999999999999 LAST\r\n"),
            Some(usize::MAX)
        );
        assert_eq!(bdat_chunk_size(b"BDAT x\r\n"), None);
        assert_eq!(bdat_chunk_size(b"NOOP 5\r\n"), None);
    }

    #[test]
    fn smtp_proto_wraps_what_we_saturate() {
        // Why this module exists: the parser's own value of a 21-digit size.
        let line = b"BDAT 999999999999999999999 LAST\r\n";
        let parsed = smtp_proto::Request::parse(&mut line.iter()).map(|r| r.into_owned());
        assert!(matches!(
            parsed,
            Ok(smtp_proto::Request::Bdat { chunk_size: 9, .. })
        ));
    }

    #[test]
    fn mail_sizes() {
        assert_eq!(mail_size(b"MAIL FROM:<a@b.test> SIZE=100\r\n"), Some(100));
        assert_eq!(
            mail_size(b"MAIL FROM:<a@b.test> body=8bitmime size=99999999999999999999999\r\n"),
            Some(usize::MAX)
        );
        assert_eq!(mail_size(b"MAIL FROM:<a@b.test>\r\n"), None);
        assert_eq!(mail_size(b"MAIL FROM:<a@b.test> SIZE=\r\n"), None);
    }
}
