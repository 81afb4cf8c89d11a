//! The LDAP daemon's listeners, on `access.interfaces` like IMAP and POP3: `ldap`
//! (`addressBook.port`, StartTLS) and, with `access.implicitTls.enable`, `ldaps`
//! (`addressBook.ldapsPort`, TLS from the first byte).

use std::sync::Arc;

use ldap3_proto::proto::LdapResultCode;

use super::session::{notice_of_disconnection, run_session, LdapContext};
use crate::config::Config;
use crate::daemon::{self, Service};
use crate::net::limits::{ConnectionLimiter, Refusal};

/// Simultaneous LDAP connections from one address, and in all.
pub const CONNECTIONS_PER_IP: u32 = 20;
pub const MAX_CONNECTIONS: u32 = 500;

pub fn services(config: &Config, ctx: Arc<LdapContext>) -> anyhow::Result<Vec<Service>> {
    let book = &config.address_book;
    let specs = daemon::access_specs(
        config,
        ("ldap", book.port.0, "addressBook.port"),
        ("ldaps", book.ldaps_port.0, "addressBook.ldapsPort"),
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

/// A refused connection gets a Notice of Disconnection saying `busy`.
fn refusal(_why: Refusal) -> Vec<u8> {
    notice_of_disconnection(
        LdapResultCode::Busy,
        "too many connections, try again later",
    )
    .unwrap_or_default()
}
