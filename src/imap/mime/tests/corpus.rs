//! Dumps FETCH output for every message in `$MIME_CORPUS` to `$MIME_CORPUS_OUT`, for a
//! side-by-side diff with Dovecot (`cargo test -- --ignored dump_corpus`).

use std::path::Path;

use imap_codec::imap_types::fetch::MessageDataItem;

use super::{encode_bytes, section};
use crate::imap::mime::{body_structure, envelope, section_bytes};

const SECTIONS: &[&str] = &[
    "",
    "HEADER",
    "TEXT",
    "1",
    "1.MIME",
    "2",
    "2.MIME",
    "3",
    "1.1",
    "1.2",
    "2.1",
    "2.2",
    "1.1.MIME",
    "2.HEADER",
    "2.TEXT",
    "1.HEADER",
    "1.TEXT",
    "2.1.1",
    "2.1.MIME",
    "HEADER.FIELDS (Subject To)",
    "HEADER.FIELDS.NOT (Subject To From)",
    "2.HEADER.FIELDS (SUBJECT from)",
    "1.HEADER.FIELDS (SUBJECT)",
];

#[test]
#[ignore = "writes files; run by hand to compare with Dovecot"]
fn dump_corpus() {
    let (Ok(dir), Ok(out)) = (
        std::env::var("MIME_CORPUS"),
        std::env::var("MIME_CORPUS_OUT"),
    ) else {
        return;
    };
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    names.sort();
    for path in names {
        let Ok(raw) = std::fs::read(&path) else {
            continue;
        };
        let mut bytes = Vec::new();
        for item in [
            MessageDataItem::Envelope(envelope(&raw)),
            MessageDataItem::Body(body_structure(&raw, false)),
            MessageDataItem::BodyStructure(body_structure(&raw, true)),
        ] {
            bytes.extend_from_slice(b"* 1 FETCH (");
            bytes.extend_from_slice(&encode_bytes(item));
            bytes.extend_from_slice(b")\r\n");
        }
        for spec in SECTIONS {
            let s = section(spec);
            let data = section_bytes(&raw, s.as_ref());
            bytes.extend_from_slice(
                format!("* 1 FETCH (BODY[{spec}] {{{}}}\r\n", data.len()).as_bytes(),
            );
            bytes.extend_from_slice(&data);
            bytes.extend_from_slice(b")\r\n");
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let _ = std::fs::write(Path::new(&out).join(name), bytes);
    }
}
