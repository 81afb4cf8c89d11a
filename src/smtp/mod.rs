//! The SMTP server: sans-I/O protocol core (`proto`, `commands`, `reply`), trace headers
//! (`trace`) and the tokio driver (`session`, `server`).

pub mod commands;
pub mod proto;
pub mod reply;
pub mod server;
pub mod session;
pub mod trace;

#[cfg(test)]
mod tests;
