//! ENVELOPE, BODYSTRUCTURE and BODY[section] of a message (RFC 3501 §6.4.5, §7.4.2).

use imap_codec::imap_types::{body::BodyStructure, envelope::Envelope, fetch::Section};
pub fn envelope(_raw: &[u8]) -> Envelope<'static> {
    todo!()
}
pub fn body_structure(_raw: &[u8], _extended: bool) -> BodyStructure<'static> {
    todo!()
}
pub fn section_bytes(raw: &[u8], _section: Option<&Section<'_>>) -> Vec<u8> {
    raw.to_vec()
}
