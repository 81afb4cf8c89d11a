//! The tokio driver of one SMTP connection: reads, feeds the sans-I/O [`Session`], writes its
//! replies, enforces timeouts and hands complete messages to the store.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn, Instrument};

use super::commands::Transaction;
use super::proto::{RecipientResolver, Security, Session, SessionParams, Step};
use super::reply::Reply;
use super::trace::{trace_headers, TraceInfo};
use crate::address::Address;
use crate::auth::{Authenticator, Directory, Recipient};
use crate::config::{Config, TlsMode};
use crate::net::ids::new_id;
use crate::net::io::{read_or_stop, ReadOutcome};
use crate::net::limits::ConnectionLimiter;
use crate::net::stream::MaybeTls;
use crate::policy::RateLimiter;
use crate::queue::{NewMessage, Outbound};
use crate::store::{to_maildir_form, MailStore};

/// Bytes read from the socket at a time; also the most the session buffers beyond its limits.
const READ_BUFFER: usize = 64 * 1024;

/// A connection budget this full (in percent of `smtp.limits.maxConnections`) is under stress:
/// its sessions then wait at most [`STRESS_COMMAND_TIMEOUT`] for a command, as Postfix does in
/// its stress mode, so idle connections cannot hold the budget for the whole command timeout.
pub const STRESS_PERCENT: u32 = 75;
/// The command timeout under stress (or `smtp.limits.commandTimeout` if that is shorter).
pub const STRESS_COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything sessions share: settings, accounts, the store.
pub struct SmtpContext {
    pub hostname: String,
    pub max_message_size: usize,
    pub smtputf8: bool,
    pub max_recipients: usize,
    pub max_errors: u32,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    pub directory: Arc<Directory>,
    pub store: Arc<MailStore>,
    pub authenticator: Arc<Authenticator>,
    /// Present when `smtp.certificate` is set.
    pub tls: Option<TlsAcceptor>,
    pub tls_mode: TlsMode,
    /// The outbound queue (remote recipients of authenticated senders).
    pub outbound: Outbound,
    /// `rateLimit.*`, when enabled.
    pub rate_limit: Option<RateLimiter>,
    /// The connection budget of port 25 (`smtp.limits.connectionsPerIp`, `maxConnections`).
    pub mx_connections: ConnectionLimiter,
    /// The budget of submission and SMTPS together: the same numbers, counted apart.
    pub submission_connections: ConnectionLimiter,
}

/// Which port a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// Port 25: mail from other servers; AUTH optional.
    Mx,
    /// Port 587: AUTH required to send.
    Submission,
    /// Port 465: implicit TLS, then as submission.
    Smtps,
}

impl SmtpContext {
    pub fn new(
        config: &Config,
        directory: Arc<Directory>,
        store: Arc<MailStore>,
        authenticator: Arc<Authenticator>,
        tls: Option<TlsAcceptor>,
    ) -> SmtpContext {
        let limits = &config.smtp.limits;
        let outbound = Outbound::start(config, directory.clone(), store.clone());
        let budget = || ConnectionLimiter::new(limits.connections_per_ip, limits.max_connections);
        SmtpContext {
            hostname: config.hostname(),
            max_message_size: usize::try_from(config.smtp.max_message_size).unwrap_or(usize::MAX),
            smtputf8: config.smtp.smtputf8,
            max_recipients: limits.max_recipients as usize,
            max_errors: limits.max_errors,
            command_timeout: Duration::from_secs(limits.command_timeout.into()),
            data_timeout: Duration::from_secs(limits.data_timeout.into()),
            directory,
            store,
            authenticator,
            tls,
            tls_mode: config.tls.mode,
            outbound,
            rate_limit: RateLimiter::from_config(config),
            mx_connections: budget(),
            submission_connections: budget(),
        }
    }

    /// The connection budget `listener` draws on.
    pub fn connections(&self, listener: Listener) -> &ConnectionLimiter {
        match listener {
            Listener::Mx => &self.mx_connections,
            Listener::Submission | Listener::Smtps => &self.submission_connections,
        }
    }

    /// How long a session on `listener` may wait for a command now: the short stress timeout
    /// while its budget is [`STRESS_PERCENT`] full, else `smtp.limits.commandTimeout`.
    pub fn command_timeout_now(&self, listener: Listener) -> Duration {
        if self.connections(listener).used_percent() >= STRESS_PERCENT {
            self.command_timeout.min(STRESS_COMMAND_TIMEOUT)
        } else {
            self.command_timeout
        }
    }

    fn security(&self, listener: Listener) -> Security {
        Security {
            starttls: self.tls.is_some()
                && self.tls_mode != TlsMode::None
                && listener != Listener::Smtps,
            auth_in_plaintext: self.tls_mode != TlsMode::Required,
            submission: listener != Listener::Mx,
        }
    }
}

impl RecipientResolver for Directory {
    fn resolve(&self, address: &Address) -> Recipient {
        Directory::resolve(self, address)
    }

    fn is_local_domain(&self, domain: &str) -> bool {
        Directory::is_local_domain(self, domain)
    }

    fn owns(&self, account: &Address, sender: &Address) -> bool {
        Directory::owns(self, account, sender)
    }

    fn postmaster(&self) -> Option<Address> {
        self.domains().find_map(|domain| {
            let address = Address::parse(&format!("postmaster@{domain}")).ok()?;
            match Directory::resolve(self, &address) {
                Recipient::Local(account) => Some(account),
                _ => None,
            }
        })
    }
}

/// The directory and the per-client policies, as one session sees them.
struct SessionPolicy<'a> {
    ctx: &'a SmtpContext,
    peer: IpAddr,
}

impl RecipientResolver for SessionPolicy<'_> {
    fn resolve(&self, address: &Address) -> Recipient {
        self.ctx.directory.resolve(address)
    }

    fn is_local_domain(&self, domain: &str) -> bool {
        self.ctx.directory.is_local_domain(domain)
    }

    fn postmaster(&self) -> Option<Address> {
        RecipientResolver::postmaster(self.ctx.directory.as_ref())
    }

    fn owns(&self, account: &Address, sender: &Address) -> bool {
        self.ctx.directory.owns(account, sender)
    }

    fn message_allowed(&self) -> bool {
        self.ctx
            .rate_limit
            .as_ref()
            .is_none_or(|limiter| limiter.allow(self.peer, Instant::now()))
    }
}

/// Runs one session to its end. `shutdown` turning true asks idle sessions to close with 421.
pub async fn run_session(
    tcp: TcpStream,
    peer: SocketAddr,
    ctx: Arc<SmtpContext>,
    listener: Listener,
    shutdown: watch::Receiver<bool>,
) {
    let id = new_id();
    let span = tracing::info_span!("smtp", cid = %id, peer = %peer.ip(), port = ?listener);
    async move {
        let implicit = listener == Listener::Smtps;
        let Some(mut stream) = MaybeTls::accept(
            tcp,
            ctx.tls.as_ref(),
            implicit,
            ctx.command_timeout_now(listener),
        )
        .await
        else {
            return;
        };
        match drive(&mut stream, peer, &ctx, &id, listener, shutdown).await {
            Ok(()) => info!("session closed"),
            Err(err) => info!("session ended: {err}"),
        }
    }
    .instrument(span)
    .await
}

async fn drive(
    stream: &mut MaybeTls,
    peer: SocketAddr,
    ctx: &SmtpContext,
    cid: &str,
    listener: Listener,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let peer_ip = peer.ip().to_canonical().to_string();
    let mut session = Session::new(SessionParams {
        hostname: ctx.hostname.clone(),
        max_message_size: ctx.max_message_size,
        smtputf8: ctx.smtputf8,
        max_recipients: ctx.max_recipients,
        max_errors: ctx.max_errors,
        peer_ip: peer_ip.clone(),
        security: ctx.security(listener),
    });
    if stream.is_tls() {
        session.set_tls_active();
    }
    let mut out = session.greeting().to_wire();
    let mut buf = vec![0u8; READ_BUFFER];
    let mut messages = 0u32;
    let policy = SessionPolicy {
        ctx,
        peer: peer.ip(),
    };
    loop {
        match session.next(&policy) {
            Step::Reply(reply) => {
                if reply.is_error() {
                    // One line per refusal, with the client address in the span (for fail2ban).
                    info!(code = reply.code, "refused: {}", reply.lines.join(" / "));
                }
                out.extend_from_slice(&reply.to_wire());
            }
            Step::Close => {
                stream.write_all(&out).await?;
                return stream.shutdown().await;
            }
            Step::StartTls => {
                stream.write_all(&out).await?;
                out.clear();
                let Some(acceptor) = &ctx.tls else {
                    return Ok(());
                };
                stream
                    .upgrade(acceptor, ctx.command_timeout_now(listener))
                    .await?;
                info!(tls = stream.tls_info().unwrap_or_default(), "STARTTLS");
                session.tls_started();
            }
            Step::Authenticate(credentials) => {
                let account = ctx
                    .authenticator
                    .authenticate(&credentials, peer.ip())
                    .await
                    .ok();
                session.auth_result(account);
            }
            Step::Deliver(tx) => {
                messages += 1;
                let id = format!("{cid}.{messages}");
                let outcome = deliver(ctx, &tx, &peer_ip, &id).await;
                session.delivered(outcome);
            }
            Step::NeedInput => {
                if !out.is_empty() {
                    stream.write_all(&out).await?;
                    out.clear();
                }
                let read = if session.in_data() {
                    read_or_stop(stream, &mut buf, ctx.data_timeout, &mut shutdown, false).await?
                } else {
                    read_command(stream, &mut buf, ctx, listener, &mut shutdown).await?
                };
                match read {
                    ReadOutcome::Data(n) => session.push_input(&buf[..n]),
                    ReadOutcome::Closed => return Ok(()),
                    ReadOutcome::ShuttingDown => {
                        let reply = Reply::new(
                            421,
                            [4, 3, 2],
                            format!("{} Service shutting down", ctx.hostname),
                        );
                        stream.write_all(&reply.to_wire()).await?;
                        return Ok(());
                    }
                    ReadOutcome::TimedOut => {
                        let reply = Reply::new(
                            421,
                            [4, 4, 2],
                            format!("{} Timeout exceeded, closing connection", ctx.hostname),
                        );
                        stream.write_all(&reply.to_wire()).await?;
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// Waits for command bytes. The timeout is looked at again at least every
/// [`STRESS_COMMAND_TIMEOUT`]: a session that began before its budget came under stress gets
/// the short timeout too once it has waited that long.
async fn read_command(
    stream: &mut MaybeTls,
    buf: &mut [u8],
    ctx: &SmtpContext,
    listener: Listener,
    shutdown: &mut watch::Receiver<bool>,
) -> std::io::Result<ReadOutcome> {
    let started = Instant::now();
    loop {
        let timeout = ctx.command_timeout_now(listener);
        let remaining = timeout.saturating_sub(started.elapsed());
        if remaining.is_zero() {
            if timeout < ctx.command_timeout {
                info!("idle while the connection budget is under stress: closing");
            }
            return Ok(ReadOutcome::TimedOut);
        }
        let wait = remaining.min(STRESS_COMMAND_TIMEOUT);
        match read_or_stop(stream, buf, wait, shutdown, true).await? {
            ReadOutcome::TimedOut => continue,
            outcome => return Ok(outcome),
        }
    }
}

/// Queues the message for its remote recipients and stores it in every local recipient's
/// mailbox; `Ok(id)` only once all of it is durable. On failure nothing stays queued (the
/// client retries).
async fn deliver(
    ctx: &SmtpContext,
    tx: &Transaction,
    peer_ip: &str,
    id: &str,
) -> Result<String, String> {
    let info = TraceInfo {
        peer_ip,
        hostname: &ctx.hostname,
        id,
    };
    let trace = trace_headers(tx, &info);
    let rcpts = tx.rcpt_to.join(",");
    let queued = !tx.remote.is_empty();
    if queued {
        if let Err(err) = enqueue(ctx, tx, &trace, id).await {
            warn!(id, from = %tx.mail_from, to = %rcpts, "queueing failed: {err:#}");
            return Err(id.to_string());
        }
    }
    if !tx.accounts.is_empty() {
        let message = to_maildir_form(&trace, &tx.body);
        let store = ctx.store.clone();
        let accounts = tx.accounts.clone();
        let size = message.len();
        let result = tokio::task::spawn_blocking(move || store.deliver(&accounts, &message))
            .await
            .map_err(anyhow::Error::from)
            .and_then(|r| r.map_err(anyhow::Error::from));
        if let Err(err) = result {
            warn!(id, from = %tx.mail_from, to = %rcpts, "delivery failed: {err:#}");
            if queued {
                if let Err(err) = ctx.outbound.cancel(id) {
                    warn!(id, "cannot take the message back from the queue: {err:#}");
                }
            }
            return Err(id.to_string());
        }
        info!(id, from = %tx.mail_from, to = %rcpts, size, "delivered");
    }
    if queued {
        info!(id, from = %tx.mail_from, remote = %tx.remote.join(","), size = tx.body.len(), "queued");
        ctx.outbound.kick(id.to_string());
    }
    Ok(id.to_string())
}

/// Spools the message (Received header first, CRLF wire form; no Return-Path, which only the
/// final delivery adds) for the remote recipients.
async fn enqueue(ctx: &SmtpContext, tx: &Transaction, trace: &str, id: &str) -> anyhow::Result<()> {
    let received = trace
        .strip_prefix("Return-Path:")
        .and_then(|rest| rest.split_once('\n'))
        .map_or(trace, |(_, rest)| rest);
    let mut message = Vec::with_capacity(received.len() + 8 + tx.body.len());
    message.extend_from_slice(received.replace('\n', "\r\n").as_bytes());
    message.extend_from_slice(&tx.body);
    let sender = tx.mail_from.clone();
    let recipients = tx.remote.clone();
    let smtputf8 = tx.smtputf8;
    let id = id.to_string();
    // spawn_blocking wants 'static: queue through a clone of the writer.
    let outbound = ctx.outbound.handle();
    tokio::task::spawn_blocking(move || {
        outbound.enqueue(&NewMessage {
            id: &id,
            sender: &sender,
            recipients: &recipients,
            smtputf8,
            message: &message,
        })
    })
    .await?
}
