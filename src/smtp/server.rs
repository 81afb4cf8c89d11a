//! The SMTP daemon: its listeners, shared context and connection refusals.

use std::sync::Arc;

use super::reply::Reply;
use super::session::{run_session, Listener, SmtpContext};
use crate::config::Config;
use crate::daemon::{self, Service};
use crate::net::limits::Refusal;
use crate::net::listeners::ListenSpec;

/// The SMTP listeners: MX (`smtp`), `submission` when its port is set, `smtps` when enabled.
pub fn listen_specs(config: &Config) -> Vec<(ListenSpec, Listener)> {
    let spec = |name, port: u16, key| ListenSpec {
        name,
        port,
        interfaces: config.smtp.interfaces.clone(),
        key,
        implicit_tls: name == "smtps",
    };
    let mut specs = vec![(spec("smtp", config.smtp.port.0, "smtp.port"), Listener::Mx)];
    if let Some(port) = config.smtp.submission_port {
        specs.push((
            spec("submission", port.0, "smtp.submissionPort"),
            Listener::Submission,
        ));
    }
    if config.smtp.smtps.enable {
        specs.push((
            spec("smtps", config.smtp.smtps.port.0, "smtp.smtps.port"),
            Listener::Smtps,
        ));
    }
    specs
}

/// Builds the SMTP services (one per listener kind) on their sockets. Port 25 has its
/// connection budget, submission and SMTPS share another (the context holds both), so a flood
/// of MX connections never locks users out of sending.
pub fn services(config: &Config, ctx: Arc<SmtpContext>) -> anyhow::Result<Vec<Service>> {
    let specs = listen_specs(config)
        .into_iter()
        .map(|(spec, listener)| (spec, listener, ctx.connections(listener).clone()))
        .collect();
    daemon::services_with_limiters(specs, refusal, move |stream, peer, listener, shutdown| {
        Box::pin(run_session(stream, peer, ctx.clone(), listener, shutdown))
    })
}

fn refusal(why: Refusal) -> Vec<u8> {
    let text = match why {
        Refusal::PerKey => "Too many connections from your address, try again later",
        Refusal::Total => "Too many connections, try again later",
    };
    Reply::new(421, [4, 7, 0], text).to_wire()
}
