//! BODY and BODYSTRUCTURE (RFC 3501 §7.4.2) from the entity tree.
//!
//! Values are reported as the message gives them (type, subtype, encoding and parameter
//! case kept, whitespace and comments dropped), like Dovecot. Defaults follow Dovecot too:
//! no Content-Type is text/plain ("charset" "us-ascii") (message/rfc822 in a digest), a
//! text/* part without charset gets "charset" "us-ascii" appended, and a missing
//! Content-Transfer-Encoding is "7bit". Sizes are octets of the body as stored; lines are
//! counted LFs, as Dovecot counts them.

use imap_codec::imap_types::{
    body::{
        BasicFields, Body, BodyStructure, Disposition, Language, Location, MultiPartExtensionData,
        SinglePartExtensionData, SpecificFields,
    },
    core::{IString, NString, Vec1},
};

use super::envelope::from_header;
use super::header::{unfold, Header};
use super::params::{disposition, languages, Lexer, MimeValue};
use super::strings::{istring, nstring, nstring_opt};
use super::tree::{Entity, Kind};

/// BODYSTRUCTURE (`extended`) or BODY of `entity`.
pub(crate) fn build(raw: &[u8], entity: &Entity, extended: bool) -> BodyStructure<'static> {
    let header = Header::parse(raw, entity.header.clone());
    let ext = extended.then(|| Extension::read(raw, &header));
    if let Kind::Multipart(children) = &entity.kind {
        let bodies: Vec<_> = children.iter().map(|c| build(raw, c, extended)).collect();
        let subtype = istring(&entity.ctype.subtype);
        return match Vec1::try_from(bodies) {
            Ok(bodies) => BodyStructure::Multi {
                bodies,
                subtype,
                extension_data: ext.map(|e| MultiPartExtensionData {
                    parameter_list: pairs(&entity.ctype.params),
                    tail: Some(e.into_disposition()),
                }),
            },
            // Unreachable: the tree gives every multipart a child.
            Err(_) => single(raw, entity, &header, ext, extended),
        };
    }
    single(raw, entity, &header, ext, extended)
}

fn single(
    raw: &[u8],
    entity: &Entity,
    header: &Header,
    ext: Option<Extension>,
    extended: bool,
) -> BodyStructure<'static> {
    let opaque = matches!(entity.kind, Kind::Opaque);
    let mut ctype = if opaque {
        text_plain()
    } else {
        entity.ctype.clone()
    };
    let is_text = ctype.kind.eq_ignore_ascii_case(b"text");
    if is_text && ctype.param("charset").is_none() {
        ctype
            .params
            .push((b"charset".to_vec(), b"us-ascii".to_vec()));
    }
    let encoding = header
        .first(raw, "Content-Transfer-Encoding")
        .and_then(|v| Lexer::new(v).token().map(<[u8]>::to_vec))
        .unwrap_or_else(|| b"7bit".to_vec());
    let body_bytes = &raw[entity.body.clone()];
    let lines =
        u32::try_from(body_bytes.iter().filter(|&&b| b == b'\n').count()).unwrap_or(u32::MAX);
    let basic = BasicFields {
        parameter_list: pairs(&ctype.params),
        id: unfolded(header.first(raw, "Content-ID")),
        description: unfolded(header.first(raw, "Content-Description")),
        content_transfer_encoding: istring(&encoding),
        size: u32::try_from(body_bytes.len()).unwrap_or(u32::MAX),
    };
    let specific = match &entity.kind {
        Kind::Message(inner) => SpecificFields::Message {
            envelope: Box::new(from_header(raw, inner.header.clone())),
            body_structure: Box::new(build(raw, inner, extended)),
            number_of_lines: lines,
        },
        _ if is_text => SpecificFields::Text {
            subtype: istring(&ctype.subtype),
            number_of_lines: lines,
        },
        _ => SpecificFields::Basic {
            r#type: istring(&ctype.kind),
            subtype: istring(&ctype.subtype),
        },
    };
    BodyStructure::Single {
        body: Body { basic, specific },
        extension_data: ext.map(|e| SinglePartExtensionData {
            md5: e.md5.clone(),
            tail: Some(e.into_disposition()),
        }),
    }
}

fn text_plain() -> MimeValue {
    MimeValue {
        kind: b"text".to_vec(),
        subtype: b"plain".to_vec(),
        params: Vec::new(),
    }
}

/// The extension fields shared by single and multipart bodies.
struct Extension {
    md5: NString<'static>,
    disposition: Option<MimeValue>,
    language: Vec<Vec<u8>>,
    location: Option<Vec<u8>>,
}

impl Extension {
    fn read(raw: &[u8], header: &Header) -> Extension {
        Extension {
            md5: unfolded(header.first(raw, "Content-MD5")),
            disposition: header.first(raw, "Content-Disposition").map(disposition),
            language: header
                .first(raw, "Content-Language")
                .map(languages)
                .unwrap_or_default(),
            location: header.first(raw, "Content-Location").map(unfold),
        }
    }

    fn into_disposition(self) -> Disposition<'static> {
        Disposition {
            disposition: self
                .disposition
                .map(|d| (istring(&d.kind), pairs(&d.params))),
            tail: Some(Language {
                language: self.language.iter().map(|l| istring(l)).collect(),
                tail: Some(Location {
                    location: nstring_opt(self.location.as_deref()),
                    extensions: Vec::new(),
                }),
            }),
        }
    }
}

fn pairs(params: &[(Vec<u8>, Vec<u8>)]) -> Vec<(IString<'static>, IString<'static>)> {
    params
        .iter()
        .map(|(k, v)| (istring(k), istring(v)))
        .collect()
}

fn unfolded(value: Option<&[u8]>) -> NString<'static> {
    match value {
        Some(v) => nstring(&unfold(v)),
        None => NString(None),
    }
}
