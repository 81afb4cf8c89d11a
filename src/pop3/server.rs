//! The POP3 daemon's listeners: `pop3` (110) and, with `access.implicitTls.enable`, `pop3s`.

use std::sync::Arc;

use super::response::{Code, Response};
use super::session::{run_session, Pop3Context};
use crate::config::Config;
use crate::daemon::{self, Service};
use crate::net::limits::{ConnectionLimiter, Refusal};

/// Simultaneous POP3 connections from one address, and in all.
pub const CONNECTIONS_PER_IP: u32 = 20;
pub const MAX_CONNECTIONS: u32 = 1000;

pub fn services(config: &Config, ctx: Arc<Pop3Context>) -> anyhow::Result<Vec<Service>> {
    let specs = daemon::access_specs(
        config,
        ("pop3", config.pop3.port.0, "pop3.port"),
        ("pop3s", config.pop3.pop3s_port.0, "pop3.pop3sPort"),
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
    Response::err_code(Code::SysTemp, "Too many connections, try again later").to_wire()
}
