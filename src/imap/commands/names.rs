//! Folder names between the wire and the store (UTF-8): modified UTF-7 on the wire (RFC 3501
//! §5.1.3), or, once the session enabled UTF8=ACCEPT (RFC 6855 §3, `utf8`), UTF-8 as it is;
//! `INBOX` in any case.

use imap_codec::imap_types::core::{AString, IString};
use imap_codec::imap_types::extensions::utf8::QuotedUtf8;
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox, MailboxOther};

use super::super::folders::Folders;
use super::super::response::other;
use super::super::state::Done;
use super::super::utf7;

/// The store's name for a wire mailbox name, or the NO to answer. With `utf8` the name is
/// taken as the UTF-8 it is, never decoded as modified UTF-7 (RFC 6855 §3: a client that
/// enabled UTF8=ACCEPT sends UTF-8; `&AOQ-` is then those five characters).
pub fn folder_name(mailbox: &Mailbox<'_>, utf8: bool) -> Result<String, Done> {
    match mailbox {
        Mailbox::Inbox => Ok("INBOX".to_string()),
        Mailbox::Other(other_name) => {
            let bytes: &[u8] = other_name.as_ref();
            let name = if utf8 {
                utf8_name(bytes)?
            } else {
                let wire = std::str::from_utf8(bytes)
                    .map_err(|_| Done::no_code(other("CANNOT"), "Folder name is not valid"))?;
                utf7::decode(wire).map_err(|why| {
                    Done::no_code(
                        other("CANNOT"),
                        format!("Folder name is not valid modified UTF-7: {why}"),
                    )
                })?
            };
            Ok(Folders::canonical(&name))
        }
    }
}

/// A UTF-8 mailbox name (RFC 6855 §3): valid UTF-8 without the characters the RFC excludes
/// (controls U+0000–U+001F and U+007F–U+009F, U+2028, U+2029).
fn utf8_name(bytes: &[u8]) -> Result<String, Done> {
    let name = std::str::from_utf8(bytes)
        .map_err(|_| Done::no_code(other("CANNOT"), "Folder name is not valid UTF-8"))?;
    if name
        .chars()
        .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
    {
        return Err(Done::no_code(
            other("CANNOT"),
            "Folder name holds a control character or a line or paragraph separator",
        ));
    }
    Ok(name.to_string())
}

/// The wire form of a store name: modified UTF-7, or with `utf8` the UTF-8 name as a quoted
/// string (RFC 6855 §3), as Dovecot 2.4 and Cyrus send it.
pub fn wire_mailbox(name: &str, utf8: bool) -> Mailbox<'static> {
    if name == "INBOX" {
        return Mailbox::Inbox;
    }
    if utf8 && !name.is_ascii() {
        let quoted = QuotedUtf8::try_from(name.to_string())
            .ok()
            .and_then(|q| MailboxOther::try_from(AString::String(IString::QuotedUtf8(q))).ok());
        if let Some(quoted) = quoted {
            return Mailbox::Other(quoted);
        }
    }
    if utf8 {
        // ASCII: an atom or a quoted string, as always (no modified UTF-7 to apply).
        return Mailbox::try_from(name.to_string()).unwrap_or(Mailbox::Inbox);
    }
    Mailbox::try_from(utf7::encode(name)).unwrap_or(Mailbox::Inbox)
}

/// A wire name or pattern as UTF-8: with `utf8` as it is; else decoded from modified UTF-7,
/// and one that is not valid modified UTF-7 (an `&` not starting a proper shift, say) is
/// taken as the characters it is, as Dovecot does: it then matches no folder (stored names
/// are canonical), and LIST answers OK with nothing rather than BAD.
pub fn wire_text(wire: &str, utf8: bool) -> String {
    if utf8 {
        return wire.to_string();
    }
    utf7::decode(wire).unwrap_or_else(|_| wire.to_string())
}

/// A LIST pattern as UTF-8 (wildcards are ASCII and survive decoding), as [`wire_text`].
pub fn pattern_text(pattern: &ListMailbox<'_>, utf8: bool) -> Result<String, Done> {
    let bytes: &[u8] = match pattern {
        ListMailbox::Token(token) => token.as_ref(),
        ListMailbox::String(string) => string.as_ref(),
    };
    let wire = std::str::from_utf8(bytes).map_err(|_| Done::bad("Pattern is not valid"))?;
    Ok(wire_text(wire, utf8))
}

/// A reference (LIST's first argument) as UTF-8: like a pattern.
pub fn reference_text(reference: &Mailbox<'_>, utf8: bool) -> Result<String, Done> {
    match reference {
        Mailbox::Inbox => Ok("INBOX".into()),
        Mailbox::Other(other_name) => {
            let bytes: &[u8] = other_name.as_ref();
            let wire =
                std::str::from_utf8(bytes).map_err(|_| Done::bad("Reference is not valid"))?;
            Ok(wire_text(wire, utf8))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::response::{encode_data, Kind};
    use super::*;
    use imap_codec::imap_types::core::QuotedChar;
    use imap_codec::imap_types::response::Data;

    /// A mailbox name as a literal (any bytes but NUL), as imap-codec would hand it over.
    fn mailbox(bytes: &[u8]) -> Mailbox<'static> {
        Mailbox::from(AString::String(IString::Literal(
            imap_codec::imap_types::core::Literal::try_from(bytes.to_vec()).unwrap(),
        )))
    }

    fn listed(name: &str, utf8: bool) -> String {
        let data = Data::List {
            items: Vec::new(),
            delimiter: QuotedChar::try_from('.').ok(),
            mailbox: wire_mailbox(name, utf8),
        };
        String::from_utf8(encode_data(data)).unwrap()
    }

    fn name(mailbox: &Mailbox<'_>, utf8: bool) -> Option<String> {
        folder_name(mailbox, utf8).ok()
    }

    #[test]
    fn names_from_the_wire() {
        let mutf7 = mailbox(b"Entw&APw-rfe.&ZeVnLIqe-");
        assert_eq!(name(&mutf7, false).as_deref(), Some("Entwürfe.日本語"));
        // After ENABLE UTF8=ACCEPT a modified UTF-7 spelling is not decoded.
        assert_eq!(
            name(&mutf7, true).as_deref(),
            Some("Entw&APw-rfe.&ZeVnLIqe-")
        );
        let utf8 = mailbox("Entwürfe.日本語".as_bytes());
        assert_eq!(name(&utf8, true).as_deref(), Some("Entwürfe.日本語"));
        // ... and before it, UTF-8 is no modified UTF-7.
        assert_eq!(name(&utf8, false), None);
        assert_eq!(name(&mailbox(b"inbox"), true).as_deref(), Some("INBOX"));
    }

    #[test]
    fn bad_utf8_names_are_refused() {
        for bad in [
            &b"caf\xc3"[..],
            b"\xff\xfe",
            b"a\x01b",
            "a\u{85}b".as_bytes(),
            "a\u{2028}b".as_bytes(),
            "a\u{2029}b".as_bytes(),
            b"a\x7fb",
        ] {
            let refused = folder_name(&mailbox(bad), true).err().map(|done| done.kind);
            assert!(matches!(refused, Some(Kind::No)), "{bad:?}");
        }
    }

    #[test]
    fn names_to_the_wire() {
        assert_eq!(
            listed("Entwürfe.日本語", false),
            "* LIST () \".\" Entw&APw-rfe.&ZeVnLIqe-\r\n"
        );
        assert_eq!(
            listed("Entwürfe.日本語", true),
            "* LIST () \".\" \"Entwürfe.日本語\"\r\n"
        );
        assert_eq!(
            listed("a \"q\"", true),
            "* LIST () \".\" \"a \\\"q\\\"\"\r\n"
        );
        assert_eq!(listed("Sent", true), "* LIST () \".\" Sent\r\n");
        assert_eq!(listed("a&b", true), "* LIST () \".\" a&b\r\n");
        assert_eq!(listed("a&b", false), "* LIST () \".\" a&-b\r\n");
        assert_eq!(listed("INBOX", true), "* LIST () \".\" INBOX\r\n");
        assert_eq!(wire_text("&AOQ-", true), "&AOQ-");
        assert_eq!(wire_text("&AOQ-", false), "ä");
        assert_eq!(wire_text("&", false), "&");
    }
}
