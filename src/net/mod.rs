//! Networking shared by the daemons: listening sockets (systemd or bound), connection limits,
//! readiness notification, ids.

pub mod deflate;
pub mod driver;
pub mod ids;
pub mod io;
pub mod limits;
pub mod listeners;
pub mod network;
pub mod notify;
pub mod stream;
