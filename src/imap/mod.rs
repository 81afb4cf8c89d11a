//! IMAP4rev1 server (RFC 3501 plus IDLE, UIDPLUS, MOVE, SPECIAL-USE, NAMESPACE, ID, ENABLE,
//! LITERAL+, UNSELECT, CONDSTORE) on imap-codec / imap-next. docs/imap.md describes it.

pub mod message;
pub mod mime;
pub mod search;
pub mod utf7;
