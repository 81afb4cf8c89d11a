//! Networking shared by the daemons: listening sockets (systemd or bound), connection limits,
//! readiness notification, ids.

pub mod ids;
pub mod io;
pub mod limits;
pub mod listeners;
pub mod notify;
pub mod stream;
