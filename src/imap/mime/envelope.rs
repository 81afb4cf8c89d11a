//! ENVELOPE (RFC 3501 §7.4.2) from a header block.
//!
//! Follows Dovecot: unstructured fields (date, subject, message-id, in-reply-to) are the
//! raw value unfolded, tabs as spaces, the last occurrence winning; address fields
//! repeated in the header are concatenated; sender and reply-to fall back to from.

use std::ops::Range;

use imap_codec::imap_types::{
    core::NString,
    envelope::{Address, Envelope},
};

use super::address::parse_list;
use super::header::{unfold_envelope, Header};
use super::strings::nstring;

/// The envelope of the message whose header block is `header` within `raw`.
pub(crate) fn from_header(raw: &[u8], header: Range<usize>) -> Envelope<'static> {
    let h = Header::parse(raw, header);
    let text = |name: &str| -> NString<'static> {
        match h.last(raw, name) {
            Some(v) => nstring(&unfold_envelope(v)),
            None => NString(None),
        }
    };
    let addresses = |name: &str| -> Vec<Address<'static>> {
        h.all(raw, name)
            .flat_map(|f| parse_list(&raw[f.value.clone()]))
            .collect()
    };
    let from = addresses("From");
    let sender = addresses("Sender");
    let reply_to = addresses("Reply-To");
    Envelope {
        date: text("Date"),
        subject: text("Subject"),
        sender: if sender.is_empty() {
            from.clone()
        } else {
            sender
        },
        reply_to: if reply_to.is_empty() {
            from.clone()
        } else {
            reply_to
        },
        from,
        to: addresses("To"),
        cc: addresses("Cc"),
        bcc: addresses("Bcc"),
        in_reply_to: text("In-Reply-To"),
        message_id: text("Message-ID"),
    }
}
