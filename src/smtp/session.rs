//! The tokio driver of one SMTP connection: feeds what it reads to the sans-I/O [`Session`]
//! and does what its steps ask — writes replies, runs STARTTLS and logins, asks the policy
//! engine, hands complete messages to the inbound processing — with the command and data
//! timeouts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::{info, Instrument};

use super::error::SmtpError;
use super::inbound::{Arrival, Inbound};
use super::proto::{RecipientResolver, Security, Session, SessionParams, Step};
use super::reply::Reply;
use super::transaction::Transaction;
use crate::address::Address;
use crate::auth::{Authenticator, Directory, Recipient};
use crate::net::driver::{record_user, Accept, Connection, Input};
use crate::net::ids::new_id;
use crate::net::limits::ConnectionLimiter;
use crate::policy::{self, Client, ClientName, Engine, Verdict};
use crate::settings::{ListenerRules, Live, Settings, SmtpSettings};

/// Bytes read from the socket at a time; also the most the session buffers beyond its limits.
const READ_BUFFER: usize = 64 * 1024;

/// A connection budget this full (in percent of `smtp.limits.maxConnections`) is under stress:
/// its sessions then wait at most [`STRESS_COMMAND_TIMEOUT`] for a command, as Postfix does in
/// its stress mode, so idle connections cannot hold the budget for the whole command timeout.
pub const STRESS_PERCENT: u32 = 75;
/// The command timeout under stress (or `smtp.limits.commandTimeout` if that is shorter).
pub const STRESS_COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// What the sessions of one daemon share. Settings are not here: each session takes the
/// settings in force when it starts ([`Live::load`]) and keeps them.
pub struct SmtpContext {
    pub live: Arc<Live>,
    pub authenticator: Arc<Authenticator>,
    /// Present when `smtp.certificate` was set at start.
    pub tls: Option<TlsAcceptor>,
    /// The policy engine (what its rules remember between sessions).
    pub policy: Engine,
    /// Where complete messages go (mailboxes, the outbound queue).
    pub inbound: Inbound,
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

impl Listener {
    /// The port as the policy sees it.
    pub fn port(self) -> policy::Port {
        match self {
            Listener::Mx => policy::Port::Mx,
            Listener::Submission => policy::Port::Submission,
            Listener::Smtps => policy::Port::Smtps,
        }
    }
}

impl SmtpContext {
    pub fn new(
        live: Arc<Live>,
        authenticator: Arc<Authenticator>,
        tls: Option<TlsAcceptor>,
        inbound: Inbound,
    ) -> SmtpContext {
        let smtp = &live.load().smtp;
        let budget = || ConnectionLimiter::new(smtp.connections_per_ip, smtp.max_connections);
        SmtpContext {
            mx_connections: budget(),
            submission_connections: budget(),
            live: live.clone(),
            authenticator,
            tls,
            policy: Engine::new(),
            inbound,
        }
    }

    /// Reload: the connection budgets take the new limits (held connections stay).
    pub fn apply(&self, settings: &Settings) {
        let smtp = &settings.smtp;
        for budget in [&self.mx_connections, &self.submission_connections] {
            budget.set_limits(smtp.connections_per_ip, smtp.max_connections);
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
    pub fn command_timeout_now(&self, smtp: &SmtpSettings, listener: Listener) -> Duration {
        if self.connections(listener).used_percent() >= STRESS_PERCENT {
            smtp.command_timeout.min(STRESS_COMMAND_TIMEOUT)
        } else {
            smtp.command_timeout
        }
    }

    /// What this listener allows under the session's TLS rules.
    fn security(&self, rules: ListenerRules, listener: Listener) -> Security {
        Security {
            starttls: rules.starttls && self.tls.is_some() && listener != Listener::Smtps,
            auth_in_plaintext: rules.auth_in_plaintext,
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
    let span = tracing::info_span!(
        "smtp",
        cid = %id,
        peer = %peer.ip(),
        port = ?listener,
        user = tracing::field::Empty
    );
    async move {
        let settings = ctx.live.load();
        let how = Accept {
            tls: ctx.tls.as_ref(),
            implicit_tls: listener == Listener::Smtps,
            handshake_timeout: ctx.command_timeout_now(&settings.smtp, listener),
            read_buffer: READ_BUFFER,
        };
        let Some(mut conn) = Connection::accept(tcp, peer, how, shutdown).await else {
            return;
        };
        let session = SessionFacts {
            ctx: &ctx,
            settings: &settings,
            cid: &id,
            listener,
        };
        match drive(&mut conn, &session).await {
            Ok(()) => info!("session closed"),
            Err(err) => info!("session ended: {err}"),
        }
    }
    .instrument(span)
    .await
}

/// One session's fixed facts: the daemon's context, the settings it started with, its id and
/// port.
struct SessionFacts<'a> {
    ctx: &'a SmtpContext,
    settings: &'a Settings,
    cid: &'a str,
    listener: Listener,
}

async fn drive(conn: &mut Connection, facts: &SessionFacts<'_>) -> std::io::Result<()> {
    let SessionFacts {
        ctx,
        settings,
        listener,
        ..
    } = *facts;
    let smtp = &settings.smtp;
    let peer = conn.peer();
    let ip = peer.ip().to_canonical();
    let name = match settings.policy.needs_client_name() {
        true => policy::rdns::lookup(settings.resolver().as_ref(), ip).await,
        false => ClientName::NotLooked,
    };
    let client = Client {
        ip,
        port: listener.port(),
        name,
    };
    let mut session = new_session(facts, &client, conn.is_tls());
    let mut messages = 0u32;
    loop {
        match session.next(settings.directory.as_ref()) {
            Step::Reply(reply) => {
                count_refusal(&reply);
                conn.send(&reply.to_wire());
            }
            Step::Refuse(err) => {
                err.log();
                if let Some(reply) = err.reply() {
                    count_refusal(reply);
                    conn.send(&reply.to_wire());
                }
            }
            Step::Close => return conn.close().await,
            Step::StartTls => {
                let Some(acceptor) = &ctx.tls else {
                    return conn.close().await;
                };
                conn.start_tls(acceptor, ctx.command_timeout_now(smtp, listener))
                    .await?;
                info!(tls = conn.tls_info().unwrap_or_default(), "STARTTLS");
                session.tls_started();
            }
            Step::Authenticate(credentials) => {
                let account = ctx
                    .authenticator
                    .authenticate(&credentials, peer.ip())
                    .await;
                if let Ok(account) = &account {
                    record_user(account);
                }
                session.auth_result(account.ok());
            }
            Step::Check => {
                let verdict = match session.query(&client) {
                    Some(query) => ctx.policy.check(settings, &query).await,
                    None => Verdict::Accept,
                };
                session.checked(verdict);
            }
            Step::Deliver(tx) => {
                messages += 1;
                let answer = deliver(facts, &session, &client, *tx, messages).await;
                session.delivered(answer);
            }
            Step::NeedInput => {
                let input = if session.in_data() {
                    conn.read(smtp.data_timeout, false).await?
                } else {
                    read_command(conn, facts).await?
                };
                let last_words = match input {
                    Input::Data(bytes) => {
                        session.push_input(bytes);
                        continue;
                    }
                    Input::Closed => return Ok(()),
                    other => farewell(&other, settings),
                };
                return conn.farewell(&last_words).await;
            }
        }
    }
}

/// A 4xx or 5xx reply counts as a refusal in the statistics, by its codes.
fn count_refusal(reply: &Reply) {
    if reply.is_error() {
        crate::stats::count(crate::stats::Event::Refused {
            code: reply.code,
            enhanced: reply.enhanced,
        });
    }
}

/// The core of a session with the settings it started with.
fn new_session(facts: &SessionFacts<'_>, client: &Client, tls: bool) -> Session {
    let smtp = &facts.settings.smtp;
    let mut session = Session::new(SessionParams {
        hostname: facts.settings.hostname.clone(),
        max_message_size: smtp.max_message_size,
        smtputf8: smtp.smtputf8,
        max_recipients: smtp.max_recipients,
        max_errors: smtp.max_errors,
        peer_ip: client.ip.to_string(),
        security: facts.ctx.security(smtp.tls, facts.listener),
    });
    if tls {
        session.set_tls_active();
    }
    session
}

/// The `number`th message of the session, to the inbound processing; the answer to its end of
/// data. Its id is the connection's with the number.
async fn deliver(
    facts: &SessionFacts<'_>,
    session: &Session,
    client: &Client,
    tx: Transaction,
    number: u32,
) -> Result<Reply, SmtpError> {
    let id = format!("{}.{number}", facts.cid);
    let peer_ip = client.ip.to_string();
    let arrival = Arrival {
        id: &id,
        client,
        peer_ip: &peer_ip,
        user: session.user(),
    };
    let ctx = facts.ctx;
    ctx.inbound
        .accept(&ctx.policy, facts.settings, tx, &arrival)
        .await
        .answer()
}

/// The last words when a wait ends without input: the daemon is stopping, or the client was
/// silent too long.
fn farewell(input: &Input<'_>, settings: &Settings) -> Vec<u8> {
    let reply = match input {
        Input::ShuttingDown => Reply::new(
            421,
            [4, 3, 2],
            format!("{} Service shutting down", settings.hostname),
        ),
        _ => Reply::new(
            421,
            [4, 4, 2],
            format!("{} Timeout exceeded, closing connection", settings.hostname),
        ),
    };
    reply.to_wire()
}

/// Waits for command bytes. The timeout is looked at again at least every
/// [`STRESS_COMMAND_TIMEOUT`]: a session that began before its budget came under stress gets
/// the short timeout too once it has waited that long.
async fn read_command<'c>(
    conn: &'c mut Connection,
    facts: &SessionFacts<'_>,
) -> std::io::Result<Input<'c>> {
    let smtp = &facts.settings.smtp;
    let timeout_now = || facts.ctx.command_timeout_now(smtp, facts.listener);
    let input = conn
        .read_rechecking(timeout_now, STRESS_COMMAND_TIMEOUT, true)
        .await?;
    if matches!(input, Input::TimedOut) && timeout_now() < smtp.command_timeout {
        info!("idle while the connection budget is under stress: closing");
    }
    Ok(input)
}
