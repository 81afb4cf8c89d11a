//! Conversions from raw header bytes to imap-types strings.
//!
//! Header bytes are arbitrary octets. imap-types chooses a quoted string when the bytes
//! allow it and a literal otherwise (8-bit, CR/LF); only NUL is impossible in both, so it
//! is replaced by U+FFFD, as Dovecot does.

use imap_codec::imap_types::core::{IString, Literal, NString};

/// The bytes as an IMAP string: quoted when possible, a literal otherwise.
pub(crate) fn istring(bytes: &[u8]) -> IString<'static> {
    let mut clean = Vec::with_capacity(bytes.len());
    for &b in bytes {
        if b == 0 {
            clean.extend_from_slice("\u{FFFD}".as_bytes());
        } else {
            clean.push(b);
        }
    }
    // Cannot fail without NUL; the fallback only keeps this function total.
    IString::try_from(clean).unwrap_or_else(|_| IString::Literal(Literal::unvalidated(Vec::new())))
}

/// A non-NIL IMAP string.
pub(crate) fn nstring(bytes: &[u8]) -> NString<'static> {
    NString(Some(istring(bytes)))
}

/// NIL for `None`, the string otherwise.
pub(crate) fn nstring_opt(bytes: Option<&[u8]>) -> NString<'static> {
    NString(bytes.map(istring))
}
