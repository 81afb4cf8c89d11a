//! What the IMAP layer knows about one message without reading it: the per-folder index entry
//! (UID, MODSEQ, flags) plus what the Maildir file itself tells (size, internal date).

use std::collections::BTreeSet;

/// The five system flags a message can carry permanently, plus keywords. `\Recent` is not
/// here: it belongs to a session, not to the message (RFC 3501 §2.3.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlagSet {
    pub seen: bool,
    pub answered: bool,
    pub flagged: bool,
    pub deleted: bool,
    pub draft: bool,
    /// Keywords as the client spelled them first; compared case-insensitively.
    pub keywords: BTreeSet<String>,
}

impl FlagSet {
    /// True when the keyword is set (keywords are case-insensitive, RFC 3501 §2.3.2 / §9).
    pub fn has_keyword(&self, keyword: &str) -> bool {
        self.keywords
            .iter()
            .any(|k| k.eq_ignore_ascii_case(keyword))
    }
}

/// One message of a folder, as a session sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    pub uid: u32,
    /// CONDSTORE modification sequence of the last flag change (or of the arrival).
    pub modseq: u64,
    pub flags: FlagSet,
    /// INTERNALDATE as seconds since the epoch (the file's mtime; APPEND sets it).
    pub internal_date: i64,
    /// RFC822.SIZE: the size of the message with CRLF line ends, as sent on the wire.
    pub size: u64,
}
