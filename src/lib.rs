//! ics-mail: a mail server appliance (SMTP, IMAP, POP3, queue, policy, D-Bus admin).
//! docs/architecture.md describes how the modules fit together.

pub mod address;
pub mod admin;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod dns;
pub mod filter;
// What the fuzz targets run (fuzz/, docs/reliability.md); cargo-fuzz sets `--cfg fuzzing`.
#[cfg(any(test, fuzzing))]
pub mod fuzzing;
pub mod imap;
pub mod ldap;
pub mod logging;
pub mod mailtext;
pub mod net;
pub mod policy;
pub mod pop3;
pub mod queue;
pub mod scan;
pub mod settings;
pub mod smtp;
pub mod stats;
pub mod store;
pub mod tls;

#[cfg(test)]
mod test_support;
