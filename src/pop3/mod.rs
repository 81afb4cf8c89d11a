//! The POP3 server: sans-I/O core (`proto`, `commands`, `response`), the maildrop (`maildrop`:
//! lock, snapshot, retrieval, update) and the tokio driver (`session`, `server`).

pub mod commands;
pub mod error;
pub mod maildrop;
pub mod proto;
pub mod response;
pub mod server;
pub mod session;

#[cfg(test)]
mod tests;
