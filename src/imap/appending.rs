//! The APPEND whose message is arriving (the session holds it while the literal streams to
//! disk; `commands::append` writes and finishes it).

use std::time::SystemTime;

use imap_codec::imap_types::core::Tag;

use crate::store::{FlagSet, Folder, IncomingMessage};

/// An accepted APPEND whose message is arriving.
pub struct Appending {
    pub tag: Tag<'static>,
    pub(in crate::imap) folder: Folder,
    pub(in crate::imap) flags: FlagSet,
    pub(in crate::imap) mtime: SystemTime,
    /// None once a write failed (the file is gone; the rest of the message is read and dropped).
    pub(in crate::imap) message: Option<IncomingMessage>,
    pub(in crate::imap) failure: Option<String>,
    pub(in crate::imap) pending: Vec<u8>,
}
