//! The tokio driver of one SMTP connection: reads, feeds the sans-I/O [`Session`], writes its
//! replies, enforces timeouts and hands complete messages to the store.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

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
use crate::net::stream::MaybeTls;
use crate::store::{to_maildir_form, MailStore};

/// Bytes read from the socket at a time; also the most the session buffers beyond its limits.
const READ_BUFFER: usize = 64 * 1024;

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
        SmtpContext {
            hostname: config
                .helo_name
                .clone()
                .unwrap_or_else(|| "localhost".into()),
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
        let implicit = if listener == Listener::Smtps {
            ctx.tls.as_ref()
        } else {
            None
        };
        if listener == Listener::Smtps && implicit.is_none() {
            return;
        }
        let mut stream = match MaybeTls::accept(tcp, implicit, ctx.command_timeout).await {
            Ok(stream) => stream,
            Err(err) => {
                info!("TLS handshake failed: {err}");
                return;
            }
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
    loop {
        match session.next(ctx.directory.as_ref()) {
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
                stream.upgrade(acceptor, ctx.command_timeout).await?;
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
                let in_data = session.in_data();
                let timeout = if in_data {
                    ctx.data_timeout
                } else {
                    ctx.command_timeout
                };
                let read = read_or_stop(stream, &mut buf, timeout, &mut shutdown, !in_data).await?;
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

/// Stores the message in every recipient's mailbox; `Ok(id)` only once it is durable.
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
    let message = to_maildir_form(&trace_headers(tx, &info), &tx.body);
    let store = ctx.store.clone();
    let accounts = tx.accounts.clone();
    let size = message.len();
    let result = tokio::task::spawn_blocking(move || store.deliver(&accounts, &message)).await;
    let rcpts = tx.rcpt_to.join(",");
    match result {
        Ok(Ok(())) => {
            info!(id, from = %tx.mail_from, to = %rcpts, size, "delivered");
            Ok(id.to_string())
        }
        Ok(Err(err)) => {
            warn!(id, from = %tx.mail_from, to = %rcpts, "delivery failed: {err}");
            Err(id.to_string())
        }
        Err(err) => {
            warn!(id, "delivery task failed: {err}");
            Err(id.to_string())
        }
    }
}
