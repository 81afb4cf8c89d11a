//! IMAP4rev1 and IMAP4rev2 server (RFC 3501, RFC 9051, and the extensions docs/imap.md
//! lists) on imap-codec / imap-next. docs/imap.md describes it.

mod appending;
mod buffer;
pub mod cache;
mod commands;
pub mod context;
pub mod error;
mod flagdata;
pub mod folders;
pub mod guard;
mod input;
pub mod message;
pub mod mime;
// The configuration the in-process session tests and the imap_session fuzz target share.
#[cfg(any(test, fuzzing))]
pub(crate) mod one_account;
pub mod qresync;
pub mod response;
pub mod search;
pub mod searchres;
pub mod selected;
pub mod sequence;
pub mod server;
pub mod session;
pub mod sort;
mod state;
#[cfg(test)]
mod tests;
pub mod utf7;
pub mod watch;

// Mailbox-name handling for the fuzz targets (`crate::fuzzing`).
#[cfg(any(test, fuzzing))]
pub(crate) use commands::names::{wire_mailbox, wire_text};
#[cfg(any(test, fuzzing))]
pub(crate) mod list_parse {
    pub(crate) use super::commands::list::{parse, Request as ListRequest};
}
