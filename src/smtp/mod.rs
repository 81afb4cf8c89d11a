//! The SMTP server: sans-I/O protocol core (`proto`, `commands`, `reply`; message data in
//! `data` and `chunk`, declared sizes in `sizes`), trace headers (`trace`) and the tokio driver
//! (`session`, `server`).

pub mod check;
pub mod chunk;
pub mod commands;
pub mod data;
pub mod error;
pub mod inbound;
mod notice;
mod pending;
pub mod proto;
pub mod reply;
pub mod server;
pub mod session;
pub mod sizes;
pub mod trace;
pub mod transaction;

#[cfg(test)]
mod tests;
