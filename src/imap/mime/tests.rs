//! Tests against exact IMAP output. Expected strings come from RFC 3501 examples or from
//! Dovecot 2.3.19 run on the same message (noted per test); imap-codec writes "TEXT" and
//! "MESSAGE" "RFC822" in upper case, which clients treat case-insensitively.

use std::num::NonZeroU32;

use imap_codec::{
    decode::Decoder,
    encode::Encoder,
    imap_types::{
        command::CommandBody,
        core::Vec1,
        fetch::{MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName, Section},
        response::{Data, Response},
    },
    CommandCodec, ResponseCodec,
};

use super::{body_structure, envelope, section_bytes};

/// `msg` with LF turned into CRLF, so tests can be written as plain text.
fn crlf(msg: &str) -> Vec<u8> {
    msg.replace("\r\n", "\n").replace('\n', "\r\n").into_bytes()
}

/// The wire form of one FETCH data item, without the `* 1 FETCH (` frame.
fn encode_bytes(item: MessageDataItem<'static>) -> Vec<u8> {
    let resp = Response::Data(Data::Fetch {
        seq: NonZeroU32::MIN,
        items: Vec1::from(item),
    });
    let wire = ResponseCodec::default().encode(&resp).dump();
    let inner = wire
        .strip_prefix(b"* 1 FETCH (")
        .and_then(|s| s.strip_suffix(b")\r\n"));
    inner.unwrap_or(&wire).to_vec()
}

/// [`encode_bytes`] as text, for items that are ASCII.
fn encode(item: MessageDataItem<'static>) -> String {
    String::from_utf8_lossy(&encode_bytes(item)).into_owned()
}

fn env(msg: &[u8]) -> String {
    encode(MessageDataItem::Envelope(envelope(msg)))
}

fn bs(msg: &[u8]) -> String {
    encode(MessageDataItem::BodyStructure(body_structure(msg, true)))
}

fn body(msg: &[u8]) -> String {
    encode(MessageDataItem::Body(body_structure(msg, false)))
}

/// A section as a client writes it between the brackets, e.g. `1.2.MIME`; "" is BODY[].
fn section(spec: &str) -> Option<Section<'static>> {
    let cmd = format!("a FETCH 1 (BODY[{spec}])\r\n");
    let (_, cmd) = CommandCodec::default().decode_static(cmd.as_bytes()).ok()?;
    let CommandBody::Fetch {
        macro_or_item_names: MacroOrMessageDataItemNames::MessageDataItemNames(names),
        ..
    } = cmd.body
    else {
        return None;
    };
    match names.into_iter().next()? {
        MessageDataItemName::BodyExt { section, .. } => section,
        _ => None,
    }
}

/// BODY[spec] of `msg` as a string; panics on a spec the test itself got wrong.
fn sect(msg: &[u8], spec: &str) -> String {
    let s = section(spec);
    assert!(spec.is_empty() || s.is_some(), "bad section spec {spec}");
    String::from_utf8_lossy(&section_bytes(msg, s.as_ref())).into_owned()
}

mod corpus;
mod envelopes;
mod garbage;
mod sections;
mod structures;
