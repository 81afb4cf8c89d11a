//! ics-mail: a mail server appliance (SMTP, IMAP, POP3, queue, policy, D-Bus admin).
//! See docs/architecture.md for how the modules fit together.

pub mod address;
pub mod auth;

pub mod config;

pub mod smtp;
pub mod store;
