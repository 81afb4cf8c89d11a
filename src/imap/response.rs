//! Building responses: tagged and untagged statuses with codes, infallibly (imap-types
//! validates texts; ours are constants or sanitised), and the encoding to wire bytes.

use std::num::NonZeroU32;

use imap_codec::encode::Encoder;
use imap_codec::imap_types::core::{Tag, Text};
use imap_codec::imap_types::response::{Code, CodeOther, Data, Response, Status};
use imap_codec::ResponseCodec;

/// Response codes imap-types has no variant for (RFC 5530, RFC 3501).
pub fn other(code: &'static str) -> Code<'static> {
    Code::Other(CodeOther::unvalidated(code.as_bytes()))
}

/// A text that imap-types accepts: no CR/LF, not empty, not starting with `[`.
fn text(text: &str) -> Text<'static> {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = clean.trim_start_matches('[').trim().to_string();
    Text::try_from(clean).unwrap_or_else(|_| Text::unvalidated("done"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ok,
    No,
    Bad,
}

pub fn status(
    kind: Kind,
    tag: Option<Tag<'static>>,
    code: Option<Code<'static>>,
    message: &str,
) -> Status<'static> {
    let text = text(message);
    let built = match kind {
        Kind::Ok => Status::ok(tag.clone(), code.clone(), text.clone()),
        Kind::No => Status::no(tag.clone(), code.clone(), text.clone()),
        Kind::Bad => Status::bad(tag.clone(), code.clone(), text.clone()),
    };
    // Only a code/kind mismatch imap-types forbids could fail; fall back to no code.
    built.unwrap_or_else(|_| match kind {
        Kind::Ok => Status::ok(tag, None, text).unwrap_or_else(|_| unreachable_status()),
        Kind::No => Status::no(tag, None, text).unwrap_or_else(|_| unreachable_status()),
        Kind::Bad => Status::bad(tag, None, text).unwrap_or_else(|_| unreachable_status()),
    })
}

/// `Status::bye` with a constant text never fails; this keeps the types honest without unwrap.
fn unreachable_status() -> Status<'static> {
    Status::Bye(imap_codec::imap_types::response::Bye {
        code: None,
        text: Text::unvalidated("internal error"),
    })
}

pub fn bye(message: &str) -> Status<'static> {
    Status::bye(None, text(message)).unwrap_or_else(|_| unreachable_status())
}

/// The wire bytes of a response.
pub fn encode(response: &Response<'_>) -> Vec<u8> {
    ResponseCodec::default().encode(response).dump()
}

pub fn encode_status(status: Status<'static>) -> Vec<u8> {
    encode(&Response::Status(status))
}

pub fn encode_data(data: Data<'static>) -> Vec<u8> {
    encode(&Response::Data(data))
}

pub fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_encode_with_codes() {
        let tag = Tag::try_from("a1").ok();
        let wire = encode_status(status(
            Kind::No,
            tag,
            Some(other("NONEXISTENT")),
            "no such folder",
        ));
        assert_eq!(wire, b"a1 NO [NONEXISTENT] no such folder\r\n");
        let wire = encode_status(status(Kind::Ok, None, None, "[evil]\r\ntext"));
        assert_eq!(wire, b"* OK evil]  text\r\n");
    }
}
