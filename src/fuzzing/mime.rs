//! The MIME code behind FETCH: ENVELOPE, BODYSTRUCTURE, BODY[section] and BINARY[section] of
//! an arbitrary message, each encoded into its FETCH response as the server sends it.

use std::num::NonZeroU32;

use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::fetch::{MessageDataItem, Part, Section};
use imap_codec::imap_types::response::Data;

use crate::imap::mime;
use crate::imap::response::encode_data;

/// `data[0]`: the part path (up to three numbers from its bits); the rest: the message.
pub fn message(data: &[u8]) {
    let Some((&path, raw)) = data.split_first() else {
        return;
    };
    let part: Vec<NonZeroU32> = (0..usize::from(path >> 6))
        .filter_map(|i| NonZeroU32::new(u32::from((path >> (i * 2)) & 3) + 1))
        .collect();
    let items = vec![
        MessageDataItem::Envelope(mime::envelope(raw)),
        MessageDataItem::BodyStructure(mime::body_structure(raw, true)),
        MessageDataItem::Body(mime::body_structure(raw, false)),
    ];
    let mut sections = vec![None, Some(Section::Header(None)), Some(Section::Text(None))];
    if let Ok(part) = Vec1::try_from(part.clone()) {
        let part = Part(part);
        sections.extend([
            Some(Section::Part(part.clone())),
            Some(Section::Mime(part.clone())),
            Some(Section::Header(Some(part.clone()))),
            Some(Section::Text(Some(part))),
        ]);
    }
    for section in &sections {
        let _ = mime::section_bytes(raw, section.as_ref());
        let _ = mime::section_as_stored(raw, section.as_ref());
    }
    if let Ok(decoded) = mime::binary_section(raw, &part) {
        // A decoded part is never bigger than the text it decodes (base64 shrinks, QP too).
        assert!(decoded.len() <= raw.len(), "BINARY grew the part");
    }
    let _ = mime::binary_decodable(raw, &[part]);
    let items = Vec1::try_from(items).expect("three items");
    let _ = encode_data(Data::Fetch {
        seq: NonZeroU32::MIN,
        items,
    });
}
