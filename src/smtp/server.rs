//! The SMTP daemon: its listeners, shared context and connection refusals.

use std::sync::Arc;

use anyhow::bail;

use super::reply::Reply;
use super::session::{run_session, SmtpContext};
use crate::config::{Config, TlsMode};
use crate::daemon::{Handler, Service};
use crate::net::limits::{ConnectionLimiter, Refusal};
use crate::net::listeners::{self, ListenSpec};

/// The SMTP listeners this build serves. Submission and SMTPS need AUTH and TLS (later work):
/// they are refused at start rather than served insecurely.
pub fn listen_specs(config: &Config) -> anyhow::Result<Vec<ListenSpec>> {
    if config.tls.mode != TlsMode::None {
        bail!("tls.mode: TLS is not implemented in this version yet; use \"none\"");
    }
    if config.smtp.smtps.enable {
        bail!("smtp.smtps.enable: SMTPS is not implemented in this version yet");
    }
    Ok(vec![ListenSpec {
        name: "smtp",
        port: config.smtp.port.0,
        interfaces: config.smtp.interfaces.clone(),
        key: "smtp.port",
    }])
}

/// Builds the SMTP service on already opened listeners.
pub fn service(config: &Config, ctx: Arc<SmtpContext>) -> anyhow::Result<Service> {
    let specs = listen_specs(config)?;
    let listeners = listeners::open(&specs)?
        .into_iter()
        .map(|(_, listener)| listener)
        .collect();
    let handler: Handler = Arc::new(move |stream, peer, shutdown| {
        Box::pin(run_session(stream, peer, ctx.clone(), shutdown))
    });
    let limits = &config.smtp.limits;
    Ok(Service {
        name: "smtp",
        listeners,
        handler,
        limiter: ConnectionLimiter::new(limits.connections_per_ip, limits.max_connections),
        refusal,
    })
}

fn refusal(why: Refusal) -> Vec<u8> {
    let text = match why {
        Refusal::PerIp => "Too many connections from your address, try again later",
        Refusal::Total => "Too many connections, try again later",
    };
    Reply::new(421, [4, 7, 0], text).to_wire()
}
