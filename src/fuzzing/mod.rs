//! What the fuzz targets run (`fuzz/`, cargo-fuzz with libFuzzer; docs/reliability.md). Each
//! function takes the fuzzer's bytes, drives one parser or protocol core with them, and
//! panics only when a property the code promises fails; any other panic, a hang or unbounded
//! memory is the fuzzer's finding. They live in the crate so that they reach its internal
//! parsers without widening their visibility, and so that `cargo test` replays every seed and
//! every kept crash input through the same code (`replay`).
//!
//! Compiled for `cargo test` and for the fuzz build (`--cfg fuzzing`, which cargo-fuzz sets);
//! not part of the server.

mod alphabet;
pub mod config;
pub mod imap;
pub mod imap_list;
pub mod imap_session;
pub mod ldap;
pub mod mime;
pub mod pop3;
pub mod queue;
pub mod scan;
pub mod smtp;

#[cfg(test)]
mod replay;

/// What a target runs on one input.
pub type Target = fn(&[u8]);

/// Every target by the name of its file in `fuzz/fuzz_targets/` and of its seed and
/// regression folders (`fuzz/seeds/<name>/`, `fuzz/regressions/<name>/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("smtp_session", smtp::session),
    ("smtp_client_reply", queue::client_reply),
    ("dsn", queue::dsn),
    ("pop3_session", pop3::session),
    ("imap_guard", imap::guard),
    ("imap_command", imap::command),
    ("imap_names", imap::names),
    ("imap_session", imap_session::session),
    ("imap_list", imap_list::list),
    ("mime", mime::message),
    ("ldap_request", ldap::request),
    ("icap_reply", scan::icap_reply),
    ("clamd_reply", scan::clamd_reply),
    ("config", config::load),
];
