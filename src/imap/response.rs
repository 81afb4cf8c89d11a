//! Building responses: tagged and untagged statuses with codes, infallibly (imap-types
//! validates texts; ours are constants or sanitised), and the encoding to wire bytes.

use std::num::NonZeroU32;

use imap_codec::encode::Encoder;
use imap_codec::imap_types::core::{Tag, Text};
use imap_codec::imap_types::response::{
    Code, CodeOther, CommandContinuationRequest, Data, Response, Status,
};
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
    let mut wire = ResponseCodec::default().encode(response).dump();
    let capabilities = match response {
        Response::Data(Data::Capability(_)) => true,
        Response::Status(status) => matches!(status.code(), Some(Code::Capability(_))),
        _ => false,
    };
    if capabilities {
        spell_imap4rev1(&mut wire);
    }
    wire
}

/// Writes the IMAP4rev1 capability as RFC 3501 does. imap-types can only write it `IMAP4REV1`
/// (the Display of `Capability::Imap4Rev1`; `CapabilityOther`, which would carry our own
/// spelling, can't be built), which is legal but some clients and testssl.sh's STARTTLS
/// detection match `IMAP4rev1` literally. So this is the one rewrite of encoded bytes: in a
/// capability response (`* CAPABILITY ...`, `[CAPABILITY ...]`), whose list always starts with
/// it (`commands::misc::capabilities`), the first `CAPABILITY IMAP4REV1` gets its spelling,
/// in place. Called for our capability responses (`encode`) and for imap-next's output (the
/// greeting, AUTHENTICATE's completion), which never carries message data.
pub fn spell_imap4rev1(wire: &mut [u8]) {
    const ENCODED: &[u8] = b"CAPABILITY IMAP4REV1";
    const SPELLED: &[u8] = b"CAPABILITY IMAP4rev1";
    if let Some(at) = memchr::memmem::find(wire, ENCODED) {
        wire[at..at + SPELLED.len()].copy_from_slice(SPELLED);
    }
}

pub fn encode_status(status: Status<'static>) -> Vec<u8> {
    encode(&Response::Status(status))
}

pub fn encode_data(data: Data<'static>) -> Vec<u8> {
    encode(&Response::Data(data))
}

/// The text of our `+` for a literal (imap-next's, for literals it takes, says the same).
pub const LITERAL_ACCEPT_TEXT: &str = "Ready for literal data";

/// `+ Ready for literal data`: go ahead with the literal.
pub fn continuation() -> Vec<u8> {
    let request = CommandContinuationRequest::basic(None, LITERAL_ACCEPT_TEXT)
        .unwrap_or_else(|_| CommandContinuationRequest::base64(Vec::new()));
    encode(&Response::CommandContinuationRequest(request))
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

    /// Issue 10 item 8: `IMAP4rev1` as the RFC writes it, in data and in codes; other
    /// responses are left alone, whatever their text.
    #[test]
    fn imap4rev1_is_spelled_as_the_rfc_does() {
        use imap_codec::imap_types::core::Vec1;
        use imap_codec::imap_types::response::Capability;
        let caps = Vec1::try_from(vec![Capability::Imap4Rev1, Capability::Idle]).unwrap();
        assert_eq!(
            encode_data(Data::Capability(caps.clone())),
            b"* CAPABILITY IMAP4rev1 IDLE\r\n"
        );
        let wire = encode_status(status(
            Kind::Ok,
            Tag::try_from("a").ok(),
            Some(Code::Capability(caps)),
            "Logged in",
        ));
        assert_eq!(wire, b"a OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n");
        let wire = encode_status(status(Kind::Ok, None, None, "CAPABILITY IMAP4REV1"));
        assert_eq!(wire, b"* OK CAPABILITY IMAP4REV1\r\n");
    }
}
