//! The tokio driver of one POP3 connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::{info, Instrument};

use super::maildrop::Maildrop;
use super::proto::{LoginError, MessageInfo, Security, Session, Step};
use super::response::Response;
use crate::auth::sasl::Credentials;
use crate::auth::Authenticator;
use crate::net::driver::{record_user, Accept, Connection, Input};
use crate::net::ids::new_id;
use crate::settings::{Live, Settings};
use crate::store::MailStore;

const READ_BUFFER: usize = 16 * 1024;
/// Inactivity before the server closes the session (RFC 1939 §3: at least 10 minutes).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Protocol errors before the session is closed.
pub const MAX_ERRORS: u32 = 10;

/// What the sessions of one daemon share; each session takes the settings in force when it
/// starts.
pub struct Pop3Context {
    pub live: Arc<Live>,
    pub authenticator: Arc<Authenticator>,
    pub store: Arc<MailStore>,
    /// Present when `access.certificate` was set at start.
    pub tls: Option<TlsAcceptor>,
}

/// Runs one session; `implicit_tls` for the POP3S port.
pub async fn run_session(
    tcp: TcpStream,
    peer: SocketAddr,
    ctx: Arc<Pop3Context>,
    implicit_tls: bool,
    shutdown: watch::Receiver<bool>,
) {
    let id = new_id();
    let span =
        tracing::info_span!("pop3", cid = %id, peer = %peer.ip(), user = tracing::field::Empty);
    async move {
        let how = Accept {
            tls: ctx.tls.as_ref(),
            implicit_tls,
            handshake_timeout: IDLE_TIMEOUT,
            read_buffer: READ_BUFFER,
        };
        let Some(mut conn) = Connection::accept(tcp, peer, how, shutdown).await else {
            return;
        };
        let settings = ctx.live.load();
        match drive(&mut conn, &ctx, &settings).await {
            Ok(()) => info!("session closed"),
            Err(err) => info!("session ended: {err}"),
        }
    }
    .instrument(span)
    .await
}

async fn drive(
    conn: &mut Connection,
    ctx: &Pop3Context,
    settings: &Settings,
) -> std::io::Result<()> {
    let rules = settings.access.tls;
    let security = Security {
        stls: ctx.tls.is_some() && rules.starttls,
        auth_in_plaintext: rules.auth_in_plaintext,
    };
    let mut session = Session::new(security, MAX_ERRORS);
    if conn.is_tls() {
        session.set_tls_active();
    }
    conn.send(&session.greeting(&settings.hostname).to_wire());
    let mut maildrop: Option<Arc<Maildrop>> = None;
    loop {
        match session.step() {
            Step::Reply(response) => {
                conn.send(&response.to_wire());
                // Don't let a long listing pile up in memory.
                conn.flush_above(READ_BUFFER).await?;
            }
            Step::Refuse(err) => {
                err.log();
                if let Some(response) = err.response() {
                    conn.send(&response.to_wire());
                }
            }
            Step::Close => return conn.close().await,
            Step::StartTls => {
                let Some(acceptor) = &ctx.tls else {
                    return conn.close().await;
                };
                conn.start_tls(acceptor, IDLE_TIMEOUT).await?;
                session.tls_started();
            }
            Step::Authenticate(credentials) => {
                let result = login(ctx, &credentials, conn.peer()).await;
                let info = result.map(|(drop, info)| {
                    maildrop = Some(drop);
                    info
                });
                session.logged_in(info);
            }
            Step::Retrieve { index, top } => {
                let content = read_message(maildrop.as_ref(), index).await;
                session.message(index, top, content);
            }
            Step::Update(doomed) => {
                let result = delete_at_quit(maildrop.as_ref(), doomed).await;
                // Unlock before the +OK: a client that logs in again as soon as it has the
                // reply must find the maildrop free (the session holds the only reference).
                maildrop = None;
                session.updated(result);
            }
            Step::NeedInput => match conn.read(IDLE_TIMEOUT, true).await? {
                Input::Data(bytes) => session.push_input(bytes),
                // A dropped connection deletes nothing (RFC 1939 §6).
                Input::Closed => return Ok(()),
                Input::TimedOut => {
                    let bye = Response::err("Idle for too long, closing (nothing deleted)");
                    return conn.farewell(&bye.to_wire()).await;
                }
                Input::ShuttingDown => {
                    let bye = Response::err("Server shutting down (nothing deleted)");
                    return conn.farewell(&bye.to_wire()).await;
                }
            },
        }
    }
}

/// One message of the maildrop, read on a blocking thread.
async fn read_message(maildrop: Option<&Arc<Maildrop>>, index: usize) -> std::io::Result<Vec<u8>> {
    let content = match maildrop {
        Some(drop) => {
            let drop = drop.clone();
            tokio::task::spawn_blocking(move || drop.read(index))
                .await
                .map_err(std::io::Error::other)
                .and_then(|read| read)
        }
        None => Err(std::io::Error::other("no maildrop")),
    };
    content
}

/// The deletions of the UPDATE state (QUIT).
async fn delete_at_quit(
    maildrop: Option<&Arc<Maildrop>>,
    doomed: Vec<usize>,
) -> std::io::Result<()> {
    let Some(drop) = maildrop.filter(|_| !doomed.is_empty()).cloned() else {
        return Ok(());
    };
    let count = doomed.len();
    tokio::task::spawn_blocking(move || drop.delete(&doomed))
        .await
        .map_err(std::io::Error::other)
        .and_then(|deleted| deleted)?;
    info!(count, "deleted at QUIT");
    Ok(())
}

/// Checks the credentials, then locks and lists the account's INBOX.
async fn login(
    ctx: &Pop3Context,
    credentials: &Credentials,
    peer: SocketAddr,
) -> Result<(Arc<Maildrop>, Vec<MessageInfo>), LoginError> {
    let account = ctx
        .authenticator
        .authenticate(credentials, peer.ip())
        .await
        .map_err(|_| LoginError::Invalid)?;
    record_user(&account);
    let store = ctx.store.clone();
    let opened = tokio::task::spawn_blocking(move || {
        let root = store
            .ensure_account(&account)
            .map_err(|err| LoginError::Temporary(format!("opening the mailbox: {err}")))?;
        Maildrop::open(&root)
    })
    .await
    .map_err(|err| LoginError::Temporary(err.to_string()))??;
    let info = opened.info();
    Ok((Arc::new(opened), info))
}
