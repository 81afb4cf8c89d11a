//! The `Authentication-Results:` header field (RFC 8601) as this server handles it on inbound
//! mail: fields already carrying our authserv-id are forgeries (only we may write them, and we
//! have not seen the message yet) and are removed (§5); ours goes on top. Pure functions on
//! the CRLF wire form; the checks themselves are in `filter::verify`.

use crate::mailtext;

const NAME: &[u8] = b"authentication-results:";

/// The authserv-id of an `Authentication-Results:` value: the first token after any comments
/// and folding white space (RFC 8601 §2.2: `authserv-id [CFWS authres-version] ( ...`), up to
/// `;`, white space or a comment. `None` when the value starts with no token.
pub fn authserv_id(value: &[u8]) -> Option<&[u8]> {
    let start = skip_cfws(value, 0);
    let rest = &value[start..];
    let len = rest
        .iter()
        .position(|&b| b == b';' || b == b'(' || b.is_ascii_whitespace())
        .unwrap_or(rest.len());
    (len > 0).then(|| &rest[..len])
}

/// The offset past white space and (nested) comments from `pos`.
fn skip_cfws(value: &[u8], mut pos: usize) -> usize {
    let mut depth = 0usize;
    while let Some(&b) = value.get(pos) {
        match b {
            b'(' => depth += 1,
            b')' if depth > 0 => depth -= 1,
            b'\\' if depth > 0 => pos += 1,
            _ if depth > 0 || b.is_ascii_whitespace() => {}
            _ => break,
        }
        pos += 1;
    }
    pos
}

/// Whether `field` (one header field with its continuation lines) is an
/// `Authentication-Results:` field naming `hostname` as its authserv-id.
fn is_ours(field: &[u8], hostname: &str) -> bool {
    field.len() >= NAME.len()
        && field[..NAME.len()].eq_ignore_ascii_case(NAME)
        && authserv_id(&field[NAME.len()..])
            .is_some_and(|id| id.eq_ignore_ascii_case(hostname.trim_end_matches('.').as_bytes()))
}

/// `message` without the `Authentication-Results:` fields that carry `hostname` as their
/// authserv-id, and how many there were. The body and every other field stay byte for byte.
pub fn remove_ours(message: &[u8], hostname: &str) -> (Vec<u8>, usize) {
    let header_end = mailtext::header_end(message);
    let mut out = Vec::with_capacity(message.len());
    let mut removed = 0;
    for field in mailtext::header_fields(&message[..header_end]) {
        if is_ours(field, hostname) {
            removed += 1;
        } else {
            out.extend_from_slice(field);
        }
    }
    out.extend_from_slice(&message[header_end..]);
    (out, removed)
}

/// `field` (a complete header field ending in CRLF) put on top of `message`.
pub fn prepend(field: &str, message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len() + message.len());
    out.extend_from_slice(field.as_bytes());
    out.extend_from_slice(message);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authserv_id_after_comments_and_folding() {
        assert_eq!(
            authserv_id(b" mx.example.test; spf=pass"),
            Some(&b"mx.example.test"[..])
        );
        assert_eq!(
            authserv_id(b" (a (nested) comment)\r\n\tmx.example.test 1; none"),
            Some(&b"mx.example.test"[..])
        );
        assert_eq!(
            authserv_id(b"mx.example.test(c); none"),
            Some(&b"mx.example.test"[..])
        );
        assert_eq!(authserv_id(b"  ; none"), None);
        assert_eq!(authserv_id(b""), None);
        assert_eq!(authserv_id(b" (unclosed comment"), None);
    }

    #[test]
    fn removes_only_our_fields() {
        let message = b"Authentication-Results: MX.Example.Test; dkim=pass\r\n\
Received: from x\r\n\
authentication-results: (forged)\r\n mx.example.test;\r\n\tspf=pass\r\n\
Authentication-Results: other.example; dkim=fail\r\n\
Authentication-Results: mx.example.test.evil; dkim=pass\r\n\
Subject: hi\r\n\
\r\n\
Authentication-Results: mx.example.test; in the body\r\n";
        let (out, removed) = remove_ours(message, "mx.example.test");
        assert_eq!(removed, 2);
        assert_eq!(
            out,
            b"Received: from x\r\n\
Authentication-Results: other.example; dkim=fail\r\n\
Authentication-Results: mx.example.test.evil; dkim=pass\r\n\
Subject: hi\r\n\
\r\n\
Authentication-Results: mx.example.test; in the body\r\n"
        );
    }

    #[test]
    fn nothing_to_remove_keeps_the_message() {
        let message = b"Subject: x\r\n\r\nbody";
        assert_eq!(remove_ours(message, "mx.test"), (message.to_vec(), 0));
        assert_eq!(
            prepend("A: b\r\n", message),
            b"A: b\r\nSubject: x\r\n\r\nbody"
        );
    }
}
