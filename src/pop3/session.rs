//! The tokio driver of one POP3 connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn, Instrument};

use super::maildrop::Maildrop;
use super::proto::{LoginError, MessageInfo, Security, Session, Step};
use super::response::Response;
use crate::auth::sasl::Credentials;
use crate::auth::Authenticator;
use crate::config::{Config, TlsMode};
use crate::net::ids::new_id;
use crate::net::io::{read_or_stop, ReadOutcome};
use crate::net::stream::MaybeTls;
use crate::store::MailStore;

const READ_BUFFER: usize = 16 * 1024;
/// Inactivity before the server closes the session (RFC 1939 §3: at least 10 minutes).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Protocol errors before the session is closed.
pub const MAX_ERRORS: u32 = 10;

pub struct Pop3Context {
    pub hostname: String,
    pub authenticator: Arc<Authenticator>,
    pub store: Arc<MailStore>,
    pub tls: Option<TlsAcceptor>,
    pub tls_mode: TlsMode,
}

impl Pop3Context {
    pub fn new(
        config: &Config,
        authenticator: Arc<Authenticator>,
        store: Arc<MailStore>,
        tls: Option<TlsAcceptor>,
    ) -> Pop3Context {
        Pop3Context {
            hostname: config.hostname(),
            authenticator,
            store,
            tls,
            tls_mode: config.tls.mode,
        }
    }
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
    let span = tracing::info_span!("pop3", cid = %id, peer = %peer.ip());
    async move {
        let Some(mut stream) =
            MaybeTls::accept(tcp, ctx.tls.as_ref(), implicit_tls, IDLE_TIMEOUT).await
        else {
            return;
        };
        match drive(&mut stream, peer, &ctx, shutdown).await {
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
    ctx: &Pop3Context,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let security = Security {
        stls: ctx.tls.is_some() && ctx.tls_mode != TlsMode::None,
        auth_in_plaintext: ctx.tls_mode != TlsMode::Required,
    };
    let mut session = Session::new(security, MAX_ERRORS);
    if stream.is_tls() {
        session.set_tls_active();
    }
    let mut out = session.greeting(&ctx.hostname).to_wire();
    let mut buf = vec![0u8; READ_BUFFER];
    let mut maildrop: Option<Arc<Maildrop>> = None;
    loop {
        match session.step() {
            Step::Reply(response) => {
                if response.is_err() {
                    info!(
                        "refused: {}",
                        String::from_utf8_lossy(&response.to_wire()).trim_end()
                    );
                }
                out.extend_from_slice(&response.to_wire());
                // Don't let a long listing pile up in memory.
                if out.len() > READ_BUFFER {
                    stream.write_all(&out).await?;
                    out.clear();
                }
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
                stream.upgrade(acceptor, IDLE_TIMEOUT).await?;
                session.tls_started();
            }
            Step::Authenticate(credentials) => {
                let result = login(ctx, &credentials, peer).await;
                let info = result.map(|(drop, info)| {
                    maildrop = Some(drop);
                    info
                });
                session.logged_in(info);
            }
            Step::Retrieve { index, top } => {
                let content = match &maildrop {
                    Some(drop) => {
                        let drop = drop.clone();
                        tokio::task::spawn_blocking(move || drop.read(index))
                            .await
                            .map_err(std::io::Error::other)
                            .and_then(|read| read)
                    }
                    None => Err(std::io::Error::other("no maildrop")),
                };
                if let Err(err) = &content {
                    warn!(index, "cannot read message: {err}");
                }
                session.message(index, top, content.map_err(|_| ()));
            }
            Step::Update(doomed) => {
                let ok = match &maildrop {
                    Some(drop) if !doomed.is_empty() => {
                        let drop = drop.clone();
                        let count = doomed.len();
                        let result =
                            tokio::task::spawn_blocking(move || drop.delete(&doomed)).await;
                        match result {
                            Ok(Ok(())) => {
                                info!(count, "deleted at QUIT");
                                true
                            }
                            Ok(Err(err)) => {
                                warn!("deleting at QUIT failed: {err}");
                                false
                            }
                            Err(err) => {
                                warn!("deleting at QUIT failed: {err}");
                                false
                            }
                        }
                    }
                    _ => true,
                };
                session.updated(ok);
            }
            Step::NeedInput => {
                if !out.is_empty() {
                    stream.write_all(&out).await?;
                    out.clear();
                }
                match read_or_stop(stream, &mut buf, IDLE_TIMEOUT, &mut shutdown, true).await? {
                    ReadOutcome::Data(n) => session.push_input(&buf[..n]),
                    // A dropped connection deletes nothing (RFC 1939 §6).
                    ReadOutcome::Closed => return Ok(()),
                    ReadOutcome::TimedOut => {
                        let bye = Response::err("Idle for too long, closing (nothing deleted)");
                        stream.write_all(&bye.to_wire()).await?;
                        return Ok(());
                    }
                    ReadOutcome::ShuttingDown => {
                        let bye = Response::err("Server shutting down (nothing deleted)");
                        stream.write_all(&bye.to_wire()).await?;
                        return Ok(());
                    }
                }
            }
        }
    }
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
    let store = ctx.store.clone();
    let opened = tokio::task::spawn_blocking(move || {
        let root = store
            .ensure_account(&account)
            .map_err(|_| LoginError::Temporary)?;
        Maildrop::open(&root)
    })
    .await
    .map_err(|_| LoginError::Temporary)??;
    let info = opened.info();
    Ok((Arc::new(opened), info))
}
