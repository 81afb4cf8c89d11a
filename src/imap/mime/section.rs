//! BODY[section] bytes (RFC 3501 §6.4.5), resolved the way Dovecot resolves part numbers:
//! in a multipart, N is its Nth child; a non-multipart part is its own part 1 when that
//! ends the path (so part 1 of a simple message is its body, and 1.1 of a multipart's
//! text part is that part again); a number after a message/rfc822 part steps into the
//! encapsulated message.

use std::num::NonZeroU32;

use imap_codec::imap_types::{
    core::{AString, Vec1},
    fetch::{Part, Section},
};

use super::header::Header;
use super::tree::{Entity, Kind};

/// The bytes of `section` of the message `root` parsed from `raw`; empty if it does not exist.
pub(crate) fn bytes(raw: &[u8], root: &Entity, section: Option<&Section<'_>>) -> Vec<u8> {
    let Some(section) = section else {
        return raw.to_vec();
    };
    let message = |part: &Option<Part>| -> Option<&Entity> {
        match part {
            None => Some(root),
            Some(p) => match &resolve(root, p.0.as_ref())?.kind {
                Kind::Message(inner) => Some(&**inner),
                _ => None,
            },
        }
    };
    let out = match section {
        Section::Part(p) => resolve(root, p.0.as_ref()).map(|e| raw[e.body.clone()].to_vec()),
        Section::Mime(p) => resolve(root, p.0.as_ref()).map(|e| raw[e.header.clone()].to_vec()),
        Section::Header(p) => message(p).map(|e| raw[e.header.clone()].to_vec()),
        Section::Text(p) => message(p).map(|e| raw[e.body.clone()].to_vec()),
        Section::HeaderFields(p, names) => message(p).map(|e| fields(raw, e, names, true)),
        Section::HeaderFieldsNot(p, names) => message(p).map(|e| fields(raw, e, names, false)),
    };
    out.unwrap_or_default()
}

/// The entity a part number path names, if any.
pub(super) fn resolve<'e>(root: &'e Entity, path: &[NonZeroU32]) -> Option<&'e Entity> {
    let mut cur = root;
    for (i, n) in path.iter().enumerate() {
        let n = usize::try_from(n.get()).ok()?;
        let last = i + 1 == path.len();
        cur = match &cur.kind {
            Kind::Multipart(children) => children.get(n - 1)?,
            // A leaf is its own part 1, but only at the end of the path; a message/rfc822
            // part may go on into the encapsulated message.
            Kind::Message(_) if n == 1 => cur,
            _ if n == 1 && last => cur,
            _ => return None,
        };
        if !last {
            if let Kind::Message(inner) = &cur.kind {
                cur = inner;
            }
        }
    }
    Some(cur)
}

/// HEADER.FIELDS (`keep` = true) or HEADER.FIELDS.NOT: the matching fields, whole (folded
/// lines included), each ending in a line break, then the empty line if the header had one.
fn fields(raw: &[u8], entity: &Entity, names: &Vec1<AString<'_>>, keep: bool) -> Vec<u8> {
    let header = Header::parse(raw, entity.header.clone());
    let mut out = Vec::new();
    for f in &header.fields {
        let name = &raw[f.name.clone()];
        let listed = names
            .as_ref()
            .iter()
            .any(|n| n.as_ref().eq_ignore_ascii_case(name));
        if listed == keep {
            let line = &raw[f.line.clone()];
            out.extend_from_slice(line);
            if !line.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    if header.blank_line {
        out.extend_from_slice(b"\r\n");
    }
    out
}
