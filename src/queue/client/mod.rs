//! The outbound SMTP client: sans-I/O reply parsing (`reply`), EHLO capabilities (`ehlo`) and
//! transaction rules (`transaction`), the TLS client setups (`tls`) and the tokio driver
//! (`conn`).

pub mod conn;
pub mod ehlo;
pub mod reply;
pub mod tls;
pub mod transaction;

pub use conn::{AuthCredentials, ConnError, ConnectOptions, Connection};
pub use reply::ServerReply;
pub use tls::TlsPolicy;
pub use transaction::{Outgoing, RcptOutcome};
