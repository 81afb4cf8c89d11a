//! What the IMAP layer knows about one message without reading it: the per-folder index entry
//! (UID, MODSEQ, flags) plus what the Maildir file itself tells (size, internal date).

use crate::store::FlagSet;

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
