//! Getting messages to one destination: the smarthost (`relay.*`) or the MX hosts of a domain,
//! tried in order, each of their addresses in turn, over as few connections as possible.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::ClientConfig;
use tracing::{debug, info, warn};

use super::client::tls::{opportunistic_config, server_name, verified_config};
use super::client::{
    AuthCredentials, ConnError, ConnectOptions, Connection, Outgoing, RcptOutcome, ServerReply,
    TlsPolicy,
};
use super::rewrite::rewrite_from;
use super::route::{self, RouteError};
use crate::dns::Resolver;
use crate::filter::sign::KeyRing;
use crate::settings::{Settings, Smarthost};

/// The SMTP port of MX hosts.
pub const SMTP_PORT: u16 = 25;

/// Where a recipient's mail goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Destination {
    Relay,
    Domain(String),
}

/// One message for one destination.
pub struct Job {
    /// Index of the message in the batch.
    pub work: usize,
    /// Indexes of its recipients in the envelope, with their addresses.
    pub recipients: Vec<(usize, String)>,
    pub sender: String,
    pub message: Arc<Vec<u8>>,
}

/// One recipient's result, with the host that gave it.
#[derive(Debug, Clone)]
pub struct Attempted {
    pub outcome: RcptOutcome,
    pub remote_mta: Option<String>,
}

/// Everything needed to talk to the next hops; shared by the deliveries of a pass.
pub struct Transport {
    helo_name: String,
    resolver: Arc<dyn Resolver>,
    opportunistic: Result<Arc<ClientConfig>, String>,
    relay: Option<Smarthost>,
    /// `smtp.smtputf8`.
    smtputf8: bool,
    /// The DKIM keys when `dkim.sign` is on.
    dkim_keys: Option<Arc<KeyRing>>,
}

/// How to reach a destination in this pass.
struct Plan {
    hosts: Vec<String>,
    port: u16,
    implicit_tls: bool,
    /// Verified TLS (smarthost with AUTH) instead of opportunistic.
    verified: Option<Arc<ClientConfig>>,
    auth: Option<AuthCredentials>,
    change_sender: Option<String>,
}

impl Transport {
    /// The transport of one pass, with the settings it started with.
    pub fn new(settings: &Settings) -> Transport {
        Transport {
            helo_name: settings.hostname.clone(),
            resolver: settings.resolver(),
            opportunistic: opportunistic_config().map_err(|e| format!("{e:#}")),
            relay: settings.relay.clone(),
            smtputf8: settings.smtp.smtputf8,
            dkim_keys: settings.model.dkim.sign.then(|| settings.dkim_keys()),
        }
    }

    /// The destination of a recipient address.
    pub fn destination(&self, address: &str) -> Destination {
        if self.relay.is_some() {
            return Destination::Relay;
        }
        let domain = address.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        Destination::Domain(domain.trim_end_matches('.').to_lowercase())
    }

    /// Delivers `jobs` to `destination`; returns each job with one result per recipient.
    pub async fn deliver(
        &self,
        destination: &Destination,
        jobs: Vec<Job>,
    ) -> Vec<(Job, Vec<Attempted>)> {
        let plan = match self.plan(destination).await {
            Ok(plan) => plan,
            Err(err) => {
                let outcome = match &err {
                    RouteError::Permanent(reply) => RcptOutcome::Failed(reply.clone()),
                    RouteError::Temporary(reply) => RcptOutcome::Deferred(reply.clone()),
                };
                return all_with(jobs, &outcome, None);
            }
        };
        let mut pending: VecDeque<Job> = jobs.into();
        let mut results = Vec::with_capacity(pending.len());
        let mut last_error = ServerReply::local(
            451,
            format!(
                "4.4.1 No host of {} could be reached",
                describe(destination)
            ),
        );
        'hosts: for host in &plan.hosts {
            let addresses = match self.addresses(host).await {
                Ok(addresses) if !addresses.is_empty() => addresses,
                Ok(_) => {
                    last_error =
                        ServerReply::local(451, format!("4.4.4 The host {host} has no address"));
                    continue;
                }
                Err(err) => {
                    last_error = err.reply().clone();
                    continue;
                }
            };
            for ip in addresses {
                let addr = SocketAddr::new(ip, plan.port);
                let mut conn = match self.connect(&plan, host, addr).await {
                    Ok(conn) => conn,
                    Err(err) => {
                        info!(host, %addr, "connection failed: {err}");
                        last_error = with_host(err.as_reply(), host, addr);
                        continue;
                    }
                };
                debug!(host, %addr, tls = conn.tls.as_deref().unwrap_or("none"), "connected");
                let mta = format!("{host} [{ip}]");
                let keys = self.dkim_keys.as_deref();
                match send_all(&mut conn, &plan, keys, &mta, &mut pending, &mut results).await {
                    Ok(()) => conn.quit().await,
                    Err(err) => {
                        info!(host, %addr, "connection lost: {err}");
                        last_error = with_host(err.as_reply(), host, addr);
                    }
                }
                if pending.is_empty() {
                    break 'hosts;
                }
            }
        }
        let outcome = RcptOutcome::Deferred(last_error);
        results.extend(all_with(pending.into(), &outcome, None));
        results
    }

    async fn addresses(&self, host: &str) -> Result<Vec<std::net::IpAddr>, RouteError> {
        route::addresses(self.resolver.as_ref(), host).await
    }

    async fn plan(&self, destination: &Destination) -> Result<Plan, RouteError> {
        let temporary = |text: String| RouteError::Temporary(ServerReply::local(451, text));
        match (destination, &self.relay) {
            (Destination::Relay, Some(relay)) => {
                let auth = relay.auth.as_ref().map(|(user, password)| AuthCredentials {
                    user: user.clone(),
                    password: password.clone(),
                });
                let verified = match auth {
                    Some(_) => Some(verified_config().map_err(|err| {
                        temporary(format!(
                            "4.7.5 Cannot verify the relay's certificate: {err:#}"
                        ))
                    })?),
                    None => None,
                };
                Ok(Plan {
                    hosts: vec![relay.host.clone()],
                    port: relay.port,
                    implicit_tls: relay.smtps,
                    verified,
                    auth,
                    change_sender: relay.change_sender.clone(),
                })
            }
            (Destination::Domain(domain), _) => Ok(Plan {
                hosts: route::mx_hosts(self.resolver.as_ref(), domain).await?,
                port: SMTP_PORT,
                implicit_tls: false,
                verified: None,
                auth: None,
                change_sender: None,
            }),
            (Destination::Relay, None) => Err(temporary(
                "4.3.5 Queued for the relay, but relay.host is no longer set".into(),
            )),
        }
    }

    /// Opens a session; an opportunistic STARTTLS that fails its handshake is retried in
    /// plain text (as Postfix does at security level "may").
    async fn connect(
        &self,
        plan: &Plan,
        host: &str,
        addr: SocketAddr,
    ) -> Result<Connection, ConnError> {
        let policy = self.tls_policy(plan, host)?;
        let options = ConnectOptions {
            helo_name: &self.helo_name,
            implicit_tls: policy.as_ref().filter(|_| plan.implicit_tls),
            starttls: policy.as_ref().filter(|_| !plan.implicit_tls),
            auth: plan.auth.as_ref(),
            smtputf8: self.smtputf8,
        };
        match Connection::open(addr, &options).await {
            Err(err) if err.is_tls() && options.starttls.is_some_and(|p| p.opportunistic) => {
                info!(host, %addr, "{err}; retrying without TLS");
                let plain = ConnectOptions {
                    starttls: None,
                    ..options
                };
                Connection::open(addr, &plain).await
            }
            result => result,
        }
    }

    fn tls_policy(&self, plan: &Plan, host: &str) -> Result<Option<TlsPolicy>, ConnError> {
        let name = match server_name(host) {
            Ok(name) => name,
            Err(err) if plan.verified.is_some() || plan.implicit_tls => {
                return Err(ConnError::Protocol(format!("{err:#}")))
            }
            Err(_) => return Ok(None),
        };
        if let Some(config) = &plan.verified {
            return Ok(Some(TlsPolicy {
                config: config.clone(),
                server_name: name,
                opportunistic: false,
            }));
        }
        match &self.opportunistic {
            Ok(config) => Ok(Some(TlsPolicy {
                config: config.clone(),
                server_name: name,
                opportunistic: true,
            })),
            Err(err) if plan.implicit_tls => Err(ConnError::Protocol(err.clone())),
            Err(_) => Ok(None),
        }
    }
}

/// Sends jobs over one connection until none is left or the connection breaks (the job in
/// flight is then deferred and the error returned). Each message is DKIM-signed with `keys`
/// last, after the plan's rewriting, so the signature covers what is sent.
async fn send_all(
    conn: &mut Connection,
    plan: &Plan,
    keys: Option<&KeyRing>,
    mta: &str,
    pending: &mut VecDeque<Job>,
    results: &mut Vec<(Job, Vec<Attempted>)>,
) -> Result<(), ConnError> {
    while let Some(job) = pending.pop_front() {
        let rewrite = plan
            .change_sender
            .as_ref()
            .filter(|_| !job.sender.is_empty());
        let sender = rewrite.unwrap_or(&job.sender).clone();
        let rewritten;
        let message: &[u8] = match rewrite {
            Some(address) => {
                rewritten = rewrite_from(&job.message, address);
                &rewritten
            }
            None => &job.message,
        };
        let signed = keys.and_then(|keys| match keys.signed(message) {
            Ok(signed) => signed,
            Err(err) => {
                // Unsigned rather than not sent: the receiver's policy decides.
                warn!(sender = %sender, "not DKIM-signed: {err}");
                None
            }
        });
        let message: &[u8] = signed.as_deref().unwrap_or(message);
        let recipients: Vec<String> = job.recipients.iter().map(|(_, r)| r.clone()).collect();
        let outgoing = Outgoing {
            sender: &sender,
            recipients: &recipients,
            message,
        };
        match conn.send(&outgoing).await {
            Ok(outcomes) => {
                let attempted = outcomes
                    .into_iter()
                    .map(|outcome| Attempted {
                        outcome,
                        remote_mta: Some(mta.to_string()),
                    })
                    .collect();
                results.push((job, attempted));
            }
            Err(err) => {
                let outcome = RcptOutcome::Deferred(err.as_reply());
                results.extend(all_with(vec![job], &outcome, Some(mta)));
                return Err(err);
            }
        }
    }
    Ok(())
}

/// A locally made reply, saying which host it is about.
fn with_host(reply: ServerReply, host: &str, addr: SocketAddr) -> ServerReply {
    let text = reply.lines.join(" ");
    ServerReply::local(reply.code, format!("{text} (host {host} [{addr}])"))
}

fn describe(destination: &Destination) -> String {
    match destination {
        Destination::Relay => "the relay".into(),
        Destination::Domain(domain) => domain.clone(),
    }
}

fn all_with(
    jobs: Vec<Job>,
    outcome: &RcptOutcome,
    mta: Option<&str>,
) -> Vec<(Job, Vec<Attempted>)> {
    jobs.into_iter()
        .map(|job| {
            let attempted = job
                .recipients
                .iter()
                .map(|_| Attempted {
                    outcome: outcome.clone(),
                    remote_mta: mta.map(str::to_string),
                })
                .collect();
            (job, attempted)
        })
        .collect()
}
