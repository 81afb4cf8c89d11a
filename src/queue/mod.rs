//! The outbound queue (docs/queue.md): the spool on disk (`spool`, `envelope`), the retry
//! schedule (`schedule`), routing by MX or smarthost (`route`, `transport`), the SMTP client
//! (`client`), delivery status notifications (`dsn`), header rewriting (`rewrite`), the runner
//! (`runner`), the daemon's side (`outbound`) and `icsmail queue …` (`cli`).

pub mod cli;
pub mod client;
pub mod dsn;
pub mod envelope;
pub mod manage;
pub mod outbound;
pub mod rewrite;
pub mod route;
pub mod runner;
pub mod schedule;
pub mod spool;
pub mod transport;

pub use outbound::{start_delivery, NewMessage, Outbound};
pub use runner::{Runner, Selection};
pub use spool::Spool;
