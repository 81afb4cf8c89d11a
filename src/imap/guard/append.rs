//! Recognising the APPEND command whose message the session streams to disk: the head (every
//! byte up to the announcement of the message literal, with any literal before it, such as a
//! mailbox name sent as one) is decoded by imap-codec with a one-byte placeholder standing in
//! for the message, so mailbox, flags and date are read by the same parser as every other
//! command, and no message byte is held for it.

use imap_codec::decode::Decoder;
use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::core::Tag;
use imap_codec::imap_types::datetime::DateTime;
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_codec::imap_types::flag::Flag;
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::IntoStatic;
use imap_codec::CommandCodec;

/// An APPEND whose message literal has been announced but not yet read.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendCommand {
    pub tag: Tag<'static>,
    pub mailbox: Mailbox<'static>,
    pub flags: Vec<Flag<'static>>,
    pub date: Option<DateTime>,
    /// The message literal's size.
    pub size: u32,
    /// The client waits for `+` before sending the message.
    pub sync: bool,
    /// A BINARY literal8 (`~{n}`, RFC 3516): stored as it is, like any message.
    pub binary: bool,
    /// A further message of the same APPEND (MULTIAPPEND, RFC 3502): `mailbox` is a stand-in,
    /// the folder is the first message's.
    pub next: bool,
    /// The message is made of CATENATE parts (RFC 4469), reported one by one after this
    /// ([`super::Step::CatenateUrl`], [`super::Step::CatenateText`]); `size` is 0.
    pub catenate: bool,
    /// The message came in RFC 6855's `UTF8 (literal8)` form (after ENABLE UTF8=ACCEPT): it
    /// may hold UTF-8 header fields and is stored as it is; `binary` is set too.
    pub utf8: bool,
}

/// `head` is an APPEND up to a literal announced at `announcement` (the index of its `{`):
/// the command, when that literal is its message; None when it isn't (the literal is an
/// earlier argument, or the head is no valid APPEND).
pub fn decode_head(
    head: &[u8],
    announcement: usize,
    size: u32,
    sync: bool,
) -> Option<AppendCommand> {
    let placeholder: &[u8] = if sync {
        b"{1}\r\nX\r\n"
    } else {
        b"{1+}\r\nX\r\n"
    };
    let candidate = [head.get(..announcement)?, placeholder].concat();
    let (rest, command) = CommandCodec::default().decode(&candidate).ok()?;
    if !rest.is_empty() {
        return None;
    }
    let CommandBody::Append {
        mailbox,
        flags,
        date,
        message,
    } = command.body
    else {
        return None;
    };
    Some(AppendCommand {
        tag: command.tag.into_static(),
        mailbox: mailbox.into_static(),
        flags: flags.into_static(),
        date,
        size,
        sync,
        binary: matches!(message, LiteralOrLiteral8::Literal8(_)),
        next: false,
        catenate: false,
        utf8: false,
    })
}

/// The opening of RFC 6855's `append-data =/ "UTF8" SP "(" literal8 ")"`, up to the `~`.
const UTF8_OPEN: &[u8] = b" UTF8 (~";

/// `head` is an APPEND up to a literal announced at `announcement` whose text before it ends
/// in ` UTF8 (~` (RFC 6855 §4): the command, decoded as the BINARY APPEND it stands for (the
/// literal8 in the place of ` UTF8 (`), when that literal is its message. The closing `)`
/// follows the message (the guard checks it). None when the head is no such APPEND — so a
/// mailbox name holding the words can't fake it: what is before them must decode.
pub fn decode_utf8_head(
    head: &[u8],
    announcement: usize,
    size: u32,
    sync: bool,
) -> Option<AppendCommand> {
    let before = head.get(..announcement)?;
    let start = before.len().checked_sub(UTF8_OPEN.len())?;
    if !before[start..].eq_ignore_ascii_case(UTF8_OPEN) {
        return None;
    }
    // `... flags date` + ` ~{1}...`: the same command with a literal8 message.
    let candidate = [&before[..=start], b"~"].concat();
    let mut command = decode_head(&candidate, candidate.len(), size, sync)?;
    command.binary = true;
    command.utf8 = true;
    Some(command)
}

/// `line` follows a message of the APPEND tagged `tag` and announces a literal at
/// `announcement`: the next message of a MULTIAPPEND (RFC 3502: `SP [flags SP] [date SP]
/// literal`), decoded as an APPEND of it; None when it is something else.
pub fn decode_next(
    tag: &str,
    line: &[u8],
    announcement: usize,
    size: u32,
    sync: bool,
) -> Option<AppendCommand> {
    let arguments = line.get(..announcement)?;
    if !arguments.starts_with(b" ") {
        return None;
    }
    let head = [tag.as_bytes(), b" APPEND A", arguments].concat();
    let mut command = decode_head(&head, head.len(), size, sync)
        .or_else(|| decode_utf8_head(&head, head.len(), size, sync))?;
    command.next = true;
    Some(command)
}
