//! BINARY[section] (RFC 3516): a part's content with its Content-Transfer-Encoding removed.
//!
//! The part is found as for BODY[section] (`section::resolve`); its body is decoded straight
//! from the raw message into one output buffer, so nothing more than the decoded section is
//! held beside the message. base64 skips characters outside its alphabet (line breaks) and
//! stops at `=`; quoted-printable removes soft line breaks and decodes `=XX`, keeping any
//! other `=` as it is; 7bit, 8bit and binary are the bytes as stored. Any other encoding
//! can't be decoded: [`UnknownCte`] (the `NO [UNKNOWN-CTE]` of RFC 3516 §4.3).
//!
//! An empty section is the whole message; it, a multipart or a message/rfc822 part is given as
//! stored except that every encoded leaf inside is decoded and its header says
//! `Content-Transfer-Encoding: binary` (as Dovecot answers; RFC 2045 allows only 7bit, 8bit
//! or binary for the containers themselves).

use std::num::NonZeroU32;

use super::header::Header;
use super::params::Lexer;
use super::section::resolve;
use super::tree::{Entity, Kind};

/// The section's Content-Transfer-Encoding is not one we can decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownCte(pub String);

/// The decoded content of BINARY[`part`] of the message `raw`, `root` its MIME tree; an empty
/// Vec when the part does not exist. An empty `part` is the whole message.
pub(crate) fn decoded(
    raw: &[u8],
    root: &Entity,
    part: &[NonZeroU32],
) -> Result<Vec<u8>, UnknownCte> {
    let (entity, range) = if part.is_empty() {
        (root, 0..raw.len())
    } else {
        match resolve(root, part) {
            Some(entity) => (entity, entity.body.clone()),
            None => return Ok(Vec::new()),
        }
    };
    if part.is_empty() || !matches!(entity.kind, Kind::Single | Kind::Opaque) {
        // A whole message, multipart or message/rfc822: as stored, but with each leaf inside
        // decoded and its header saying so (as Dovecot does).
        let mut out = Vec::with_capacity(range.len());
        let mut cursor = range.start;
        decode_leaves(raw, entity, &mut out, &mut cursor)?;
        out.extend_from_slice(&raw[cursor.min(range.end)..range.end]);
        return Ok(out);
    }
    let body = &raw[entity.body.clone()];
    Ok(match encoding(raw, entity)? {
        Encoding::Identity => body.to_vec(),
        Encoding::Base64 => base64(body),
        Encoding::QuotedPrintable => quoted_printable(body),
    })
}

/// Whether BINARY[`part`] of `raw` can be decoded, without decoding it: the same part and
/// leaves as [`decoded`] looks at, only their Content-Transfer-Encoding read. (A non-PEEK
/// FETCH asks before it sets \Seen, so a FETCH that fails changes no flag.)
pub(crate) fn check(raw: &[u8], root: &Entity, part: &[NonZeroU32]) -> Result<(), UnknownCte> {
    let entity = if part.is_empty() {
        root
    } else {
        match resolve(root, part) {
            Some(entity) => entity,
            None => return Ok(()),
        }
    };
    if part.is_empty() || !matches!(entity.kind, Kind::Single | Kind::Opaque) {
        return check_leaves(raw, entity);
    }
    encoding(raw, entity).map(|_| ())
}

/// [`check`] for every leaf inside `entity` (as [`decode_leaves`] walks them: bounded by
/// `tree::MAX_DEPTH`).
fn check_leaves(raw: &[u8], entity: &Entity) -> Result<(), UnknownCte> {
    match &entity.kind {
        Kind::Multipart(children) => children
            .iter()
            .try_for_each(|child| check_leaves(raw, child)),
        Kind::Message(inner) => check_leaves(raw, inner),
        Kind::Opaque => Ok(()),
        Kind::Single => encoding(raw, entity).map(|_| ()),
    }
}

enum Encoding {
    Identity,
    Base64,
    QuotedPrintable,
}

/// A leaf's Content-Transfer-Encoding (7bit when it has none).
fn encoding(raw: &[u8], entity: &Entity) -> Result<Encoding, UnknownCte> {
    let header = Header::parse(raw, entity.header.clone());
    let token = header
        .first(raw, "Content-Transfer-Encoding")
        .and_then(|v| Lexer::new(v).token())
        .map(|t| t.to_ascii_lowercase());
    match token.as_deref() {
        None | Some(b"7bit" | b"8bit" | b"binary") => Ok(Encoding::Identity),
        Some(b"base64") => Ok(Encoding::Base64),
        Some(b"quoted-printable") => Ok(Encoding::QuotedPrintable),
        Some(other) => Err(UnknownCte(String::from_utf8_lossy(other).into_owned())),
    }
}

/// Copies `raw` from `cursor` through `entity` into `out`, each encoded leaf replaced by its
/// header with `Content-Transfer-Encoding: binary` and its decoded body. The tree is at most
/// `tree::MAX_DEPTH` deep, so the recursion is bounded.
fn decode_leaves(
    raw: &[u8],
    entity: &Entity,
    out: &mut Vec<u8>,
    cursor: &mut usize,
) -> Result<(), UnknownCte> {
    match &entity.kind {
        Kind::Multipart(children) => children
            .iter()
            .try_for_each(|child| decode_leaves(raw, child, out, cursor)),
        Kind::Message(inner) => decode_leaves(raw, inner, out, cursor),
        Kind::Opaque => Ok(()),
        Kind::Single => {
            let body = &raw[entity.body.clone()];
            let decoded = match encoding(raw, entity)? {
                Encoding::Identity => return Ok(()),
                Encoding::Base64 => base64(body),
                Encoding::QuotedPrintable => quoted_printable(body),
            };
            let header = Header::parse(raw, entity.header.clone());
            let Some(field) = header.all(raw, "Content-Transfer-Encoding").next() else {
                return Ok(());
            };
            if *cursor > field.value.start {
                return Ok(());
            }
            out.extend_from_slice(&raw[*cursor..field.value.start]);
            out.extend_from_slice(b" binary");
            out.extend_from_slice(&raw[field.value.end..entity.header.end]);
            out.extend_from_slice(&decoded);
            *cursor = entity.body.end;
            Ok(())
        }
    }
}

/// base64 as RFC 2045 §6.8 reads it: characters outside the alphabet are ignored, `=` ends
/// the data; a last incomplete group gives the whole bytes it holds.
pub fn base64(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() / 4 * 3 + 3);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &c in input {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// quoted-printable (RFC 2045 §6.7): `=XX` is the byte, `=` at a line end (spaces or tabs
/// allowed before it) is a soft line break and goes; whitespace at the end of a line goes;
/// any other `=` stays as it is.
pub fn quoted_printable(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    for line in input.split_inclusive(|&b| b == b'\n') {
        let (content, ending): (&[u8], &[u8]) = if let Some(c) = line.strip_suffix(b"\r\n") {
            (c, b"\r\n")
        } else if let Some(c) = line.strip_suffix(b"\n") {
            (c, b"\n")
        } else {
            (line, b"")
        };
        // Transport padding at the end of a line is not part of the data.
        let end = content
            .iter()
            .rposition(|&b| b != b' ' && b != b'\t')
            .map_or(0, |at| at + 1);
        let content = &content[..end];
        let (content, soft) = match content.strip_suffix(b"=") {
            Some(c) => (c, true),
            None => (content, false),
        };
        let mut i = 0;
        while i < content.len() {
            let byte = content[i];
            if byte == b'=' {
                if let (Some(h), Some(l)) = (
                    content.get(i + 1).and_then(|&c| hex(c)),
                    content.get(i + 2).and_then(|&c| hex(c)),
                ) {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
            }
            out.push(byte);
            i += 1;
        }
        if !soft {
            out.extend_from_slice(ending);
        }
    }
    out
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tree::parse;
    use super::*;

    fn part(n: &[u32]) -> Vec<NonZeroU32> {
        n.iter().filter_map(|&n| NonZeroU32::new(n)).collect()
    }

    #[test]
    fn base64_ignores_line_breaks_and_stops_at_padding() {
        assert_eq!(base64(b"aGVs\r\nbG8A\r\nAQ=="), b"hello\0\x01");
        assert_eq!(base64(b"AAEC/w==garbage"), b"\0\x01\x02\xff");
        assert_eq!(base64(b""), b"");
        assert_eq!(base64(b"!!\r\n"), b"");
    }

    #[test]
    fn base64_agrees_with_the_base64_crate_on_random_data() {
        use ::base64::Engine as _;
        let mut next = crate::test_support::xorshift(0x5EED_0B1A_2024_0001);
        for _ in 0..500 {
            let data: Vec<u8> = (0..next() % 300).map(|_| next() as u8).collect();
            let encoded = ::base64::engine::general_purpose::STANDARD.encode(&data);
            // Folded into lines of 76, as mail does.
            let folded: Vec<u8> = encoded
                .as_bytes()
                .chunks(76)
                .flat_map(|l| l.iter().copied().chain(*b"\r\n"))
                .collect();
            assert_eq!(base64(&folded), data);
        }
    }

    #[test]
    fn quoted_printable_decodes_escapes_and_soft_breaks() {
        assert_eq!(
            quoted_printable(b"caf=C3=A9 =\r\nau lait  \r\nx=3D1=\r\n"),
            "café au lait\r\nx=1".as_bytes()
        );
        assert_eq!(quoted_printable(b"a=zz=4\r\n=00"), b"a=zz=4\r\n\0");
        assert_eq!(quoted_printable(b"end="), b"end");
    }

    #[test]
    fn sections_are_decoded_by_their_own_encoding() {
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b\r\n\
Content-Transfer-Encoding: Quoted-Printable\r\n\r\na=3Db\r\n--b\r\n\
Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n--b\r\n\r\nplain\r\n--b--\r\n";
        let root = parse(raw);
        assert_eq!(decoded(raw, &root, &part(&[1])).unwrap(), b"\0\x01\x02");
        assert_eq!(decoded(raw, &root, &part(&[2])).unwrap(), b"a=b");
        assert_eq!(
            decoded(raw, &root, &part(&[3])),
            Err(UnknownCte("x-uuencode".into()))
        );
        assert_eq!(decoded(raw, &root, &part(&[4])).unwrap(), b"plain");
        assert_eq!(decoded(raw, &root, &part(&[9])).unwrap(), b"");
        // The whole message holds a part it can't decode.
        assert!(decoded(raw, &root, &part(&[])).is_err());
        // `check` says the same without decoding.
        for section in [&[1][..], &[2], &[3], &[4], &[9], &[]] {
            assert_eq!(
                check(raw, &root, &part(section)),
                decoded(raw, &root, &part(section)).map(|_| ()),
                "{section:?}"
            );
        }
    }

    #[test]
    fn a_multipart_section_has_its_leaves_decoded() {
        let raw = b"Subject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Type: text/plain\r\nContent-Transfer-Encoding:  base64\r\n\r\naGk=\r\n--b\r\n\
\r\nplain\r\n--b--\r\n";
        let root = parse(raw);
        let expected = b"Subject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Type: text/plain\r\nContent-Transfer-Encoding: binary\r\n\r\nhi\r\n--b\r\n\
\r\nplain\r\n--b--\r\n";
        assert_eq!(decoded(raw, &root, &part(&[])).unwrap(), expected.to_vec());
        let single = b"Subject: s\r\nContent-Transfer-Encoding: base64\r\n\r\naGk=\r\n";
        assert_eq!(
            decoded(single, &parse(single), &part(&[])).unwrap(),
            b"Subject: s\r\nContent-Transfer-Encoding: binary\r\n\r\nhi".to_vec()
        );
    }
}
