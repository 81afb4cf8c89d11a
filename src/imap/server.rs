//! The IMAP daemon's listeners: `imap` (143) and, with `access.implicitTls.enable`, `imaps`.

use std::sync::Arc;

use super::context::ImapContext;
use super::response::{bye, encode_status};
use super::session::run_session;
use crate::config::Config;
use crate::daemon::{self, Service};
use crate::net::limits::{ConnectionLimiter, Refusal};

/// Simultaneous IMAP connections from one address, and in all. Clients keep one connection
/// per watched folder and webmail connects from one address, so the per-address cap is high.
pub const CONNECTIONS_PER_IP: u32 = 1000;
pub const MAX_CONNECTIONS: u32 = 20_000;

pub fn services(config: &Config, ctx: Arc<ImapContext>) -> anyhow::Result<Vec<Service>> {
    let specs = daemon::access_specs(
        config,
        ("imap", config.imap.port.0, "imap.port"),
        ("imaps", config.imap.imaps_port.0, "imap.imapsPort"),
    );
    let limiter = ConnectionLimiter::new(CONNECTIONS_PER_IP, MAX_CONNECTIONS);
    daemon::services_for(
        specs,
        limiter,
        refusal,
        move |stream, peer, implicit_tls, shutdown| {
            Box::pin(run_session(
                stream,
                peer,
                ctx.clone(),
                implicit_tls,
                shutdown,
            ))
        },
    )
}

fn refusal(_why: Refusal) -> Vec<u8> {
    encode_status(bye("Too many connections, try again later"))
}
