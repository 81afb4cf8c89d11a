//! Folder names between the wire (modified UTF-7, `INBOX` in any case) and the store (UTF-8).

use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};

use super::super::folders::Folders;
use super::super::response::other;
use super::super::state::Done;
use super::super::utf7;

/// The store's name for a wire mailbox name, or the NO to answer.
pub fn folder_name(mailbox: &Mailbox<'_>) -> Result<String, Done> {
    match mailbox {
        Mailbox::Inbox => Ok("INBOX".to_string()),
        Mailbox::Other(other_name) => {
            let bytes: &[u8] = other_name.as_ref();
            let wire = std::str::from_utf8(bytes)
                .map_err(|_| Done::no_code(other("CANNOT"), "Folder name is not valid"))?;
            let name = utf7::decode(wire).map_err(|why| {
                Done::no_code(
                    other("CANNOT"),
                    format!("Folder name is not valid modified UTF-7: {why}"),
                )
            })?;
            Ok(Folders::canonical(&name))
        }
    }
}

/// The wire form of a store name.
pub fn wire_mailbox(name: &str) -> Mailbox<'static> {
    if name == "INBOX" {
        return Mailbox::Inbox;
    }
    Mailbox::try_from(utf7::encode(name)).unwrap_or(Mailbox::Inbox)
}

/// A LIST pattern as UTF-8 (wildcards are ASCII and survive decoding). A pattern that is not
/// valid modified UTF-7 (an `&` not starting a proper shift, say) is taken as the characters
/// it is, as Dovecot does: it then matches no folder (stored names are canonical), and LIST
/// answers OK with nothing rather than BAD.
pub fn pattern_text(pattern: &ListMailbox<'_>) -> Result<String, Done> {
    let bytes: &[u8] = match pattern {
        ListMailbox::Token(token) => token.as_ref(),
        ListMailbox::String(string) => string.as_ref(),
    };
    let wire = std::str::from_utf8(bytes).map_err(|_| Done::bad("Pattern is not valid"))?;
    Ok(utf7::decode(wire).unwrap_or_else(|_| wire.to_string()))
}

/// A reference (LIST's first argument) as UTF-8.
pub fn reference_text(reference: &Mailbox<'_>) -> Result<String, Done> {
    match reference {
        Mailbox::Inbox => Ok("INBOX".into()),
        Mailbox::Other(other_name) => {
            let bytes: &[u8] = other_name.as_ref();
            let wire =
                std::str::from_utf8(bytes).map_err(|_| Done::bad("Reference is not valid"))?;
            // Like a pattern: odd modified UTF-7 is taken literally.
            Ok(utf7::decode(wire).unwrap_or_else(|_| wire.to_string()))
        }
    }
}
