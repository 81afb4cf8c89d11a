//! ENVELOPE, BODYSTRUCTURE and BODY[section] of a message (RFC 3501 §6.4.5, §7.4.2).
//!
//! Pure functions over the raw message (CRLF wire form, but any bytes are accepted: these
//! never panic, always terminate, and bound nesting at 32 levels). Results follow
//! what Dovecot returns for the same message, which is what IMAP clients are tested against.
//! The MIME splitter is our own (see `tree`): IMAP needs exact raw offsets and Dovecot's
//! boundary rules, and ENVELOPE needs raw (undecoded) values, which mail-parser does not give.

mod address;
mod binary;
mod envelope;
mod header;
mod params;
mod section;
mod strings;
mod structure;
mod tree;

#[cfg(test)]
mod tests;

use std::num::NonZeroU32;

use imap_codec::imap_types::{body::BodyStructure, envelope::Envelope, fetch::Section};

pub use binary::UnknownCte;

/// ENVELOPE (RFC 3501 §7.4.2): date, subject, from, sender, reply-to, to, cc, bcc,
/// in-reply-to, message-id. Values are the raw header bytes unfolded (encoded-words kept),
/// NIL when the field is absent; sender and reply-to default to from.
pub fn envelope(raw: &[u8]) -> Envelope<'static> {
    let end = crate::mailtext::header_end(raw);
    envelope::from_header(raw, 0..end)
}

/// BODYSTRUCTURE when `extended` (with md5, disposition, language and location; multipart
/// parameters, disposition, language, location), BODY when not (no extension data).
pub fn body_structure(raw: &[u8], extended: bool) -> BodyStructure<'static> {
    let root = tree::parse(raw);
    structure::build(raw, &root, extended)
}

/// The bytes of BODY[section] before any `<partial>` cut: the whole message for `None`;
/// HEADER/TEXT/HEADER.FIELDS[.NOT] of the message or of an encapsulated message/rfc822
/// part; the body of part N (part 1 of a non-multipart message is its body); N.MIME is the
/// part's MIME header. A section that does not exist gives an empty Vec.
///
/// NUL bytes come out as 0x80, as Dovecot sends them: an IMAP literal cannot hold NUL
/// (imap-types rejects it), and a same-length substitute keeps `<partial>` offsets and
/// sizes in line with BODYSTRUCTURE.
pub fn section_bytes(raw: &[u8], section: Option<&Section<'_>>) -> Vec<u8> {
    let mut out = section_as_stored(raw, section);
    for b in &mut out {
        if *b == 0 {
            *b = 0x80;
        }
    }
    out
}

/// The bytes of BINARY[`part`] (RFC 3516) before any `<partial>` cut: the part's content with
/// its Content-Transfer-Encoding removed (NUL bytes kept: they go out as a literal8); for the
/// whole message (an empty `part`) or a container, its leaves decoded (`binary`); empty when
/// the part does not exist.
pub fn binary_section(raw: &[u8], part: &[NonZeroU32]) -> Result<Vec<u8>, UnknownCte> {
    binary::decoded(raw, &tree::parse(raw), part)
}

/// Whether [`binary_section`] of each of `parts` would succeed, without decoding anything:
/// the Content-Transfer-Encodings it would undo are all known.
pub fn binary_decodable(raw: &[u8], parts: &[Vec<NonZeroU32>]) -> Result<(), UnknownCte> {
    let root = tree::parse(raw);
    parts
        .iter()
        .try_for_each(|part| binary::check(raw, &root, part))
}

/// [`section_bytes`] with every byte as stored, NUL included (CATENATE copies a section into
/// a new message).
pub fn section_as_stored(raw: &[u8], section: Option<&Section<'_>>) -> Vec<u8> {
    match section {
        None => raw.to_vec(),
        Some(_) => section::bytes(raw, &tree::parse(raw), section),
    }
}
