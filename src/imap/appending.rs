//! The APPEND whose message is arriving (the session holds it while the literal streams to
//! disk; `commands::append` writes and finishes it), with the earlier messages of a
//! MULTIAPPEND, sealed in `tmp/` until the command ends.

use std::time::SystemTime;

use imap_codec::imap_types::core::Tag;

use crate::store::{FlagSet, Folder, IncomingMessage, SealedMessage};

/// An accepted APPEND whose message is arriving.
pub struct Appending {
    pub tag: Tag<'static>,
    pub(in crate::imap) folder: Folder,
    pub(in crate::imap) flags: FlagSet,
    pub(in crate::imap) mtime: SystemTime,
    /// None once a write failed (the file is gone; the rest of the message is read and dropped).
    pub(in crate::imap) message: Option<IncomingMessage>,
    pub(in crate::imap) failure: Option<std::io::Error>,
    pub(in crate::imap) pending: Vec<u8>,
    /// Earlier messages of this APPEND (MULTIAPPEND), written and fsync'd in `tmp/`; placed
    /// with the last one, or removed with this value.
    pub(in crate::imap) sealed: Vec<(SealedMessage, FlagSet)>,
    /// Message bytes (wire form) of the command so far, the current message included.
    pub(in crate::imap) total: u64,
    /// Bytes of the current message (wire form): its literal's size, or its CATENATE parts
    /// so far.
    pub(in crate::imap) current: u64,
    /// CATENATE parts of the command so far.
    pub(in crate::imap) parts: usize,
}
