//! The tokio driver of one LDAP connection: frames read with their size checked first, decoded
//! by ldap3_proto, handed to the core (`proto.rs`) with the settings in force, and its steps
//! carried out: replies written, StartTLS in place, binds through the shared authenticator.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use ldap3_proto::proto::{LdapExtendedResponse, LdapMsg, LdapOp, LdapResultCode};
use ldap3_proto::LdapCodec;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::{Decoder, Encoder};
use tracing::{debug, info, Instrument};

use super::bounds::{frame_length, MAX_BER_DEPTH, MAX_REQUEST};
use super::entries::BookCache;
use super::error::LdapError;
use super::proto::{Conditions, Session, Step};
use super::rootdse::NOTICE_OF_DISCONNECTION_OID;
use super::search::result;
use crate::auth::Authenticator;
use crate::net::driver::{record_user, Accept, Connection, Input};
use crate::net::ids::new_id;
use crate::settings::Live;

const READ_BUFFER: usize = 16 * 1024;
/// Silence before the server closes the connection (address-book clients reconnect at will).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a TLS handshake (LDAPS or StartTLS) may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the connections of one daemon share. Each request reads the settings in force when it
/// arrives, so a reload (an account added, a base DN changed) shows on open connections too.
pub struct LdapContext {
    pub live: Arc<Live>,
    pub authenticator: Arc<Authenticator>,
    /// Present when `access.certificate` was set at start.
    pub tls: Option<TlsAcceptor>,
    pub books: BookCache,
}

/// Runs one connection; `implicit_tls` for the LDAPS port.
pub async fn run_session(
    tcp: TcpStream,
    peer: SocketAddr,
    ctx: Arc<LdapContext>,
    implicit_tls: bool,
    shutdown: watch::Receiver<bool>,
) {
    let id = new_id();
    let span =
        tracing::info_span!("ldap", cid = %id, peer = %peer.ip(), user = tracing::field::Empty);
    async move {
        let how = Accept {
            tls: ctx.tls.as_ref(),
            implicit_tls,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            read_buffer: READ_BUFFER,
        };
        let Some(conn) = Connection::accept(tcp, peer, how, shutdown).await else {
            return;
        };
        let mut driver = Driver {
            session: Session::new(conn.is_tls()),
            conn,
            ctx,
            input: BytesMut::new(),
            codec: LdapCodec::new(Some(MAX_REQUEST), Some(MAX_BER_DEPTH)),
        };
        match driver.drive().await {
            Ok(()) => info!("connection closed"),
            Err(err) if err.is_protocol() => {
                info!("closing the connection: {err}");
                driver
                    .disconnect(LdapResultCode::ProtocolError, &err.to_string())
                    .await;
            }
            Err(err) => info!("connection ended: {err}"),
        }
    }
    .instrument(span)
    .await
}

struct Driver {
    session: Session,
    conn: Connection,
    ctx: Arc<LdapContext>,
    /// Bytes read and not yet taken as a request: at most one request and one read.
    input: BytesMut,
    codec: LdapCodec,
}

/// The next whole request at the start of `input`, taken out of it, or None until all of it
/// has arrived. The BER length is checked (`frame_length`) before anything is decoded, so a
/// request over the limit is an error before its bytes are read.
pub fn take_request(
    input: &mut BytesMut,
    codec: &mut LdapCodec,
) -> Result<Option<LdapMsg>, LdapError> {
    let Some(length) = frame_length(input)? else {
        return Ok(None);
    };
    if input.len() < length {
        return Ok(None);
    }
    let mut frame = input.split_to(length);
    match codec.decode(&mut frame) {
        Ok(Some(message)) => Ok(Some(message)),
        Ok(None) => Err(LdapError::Decode("truncated message".into())),
        Err(err) => Err(LdapError::Decode(err.to_string())),
    }
}

impl Driver {
    async fn drive(&mut self) -> Result<(), LdapError> {
        loop {
            let Some(message) = self.next_request().await? else {
                return Ok(());
            };
            let settings = self.ctx.live.load();
            let book = self
                .ctx
                .books
                .get(&settings.directory, &settings.model.address_book.base_dn);
            let now = Conditions {
                book: &book,
                directory: &settings.directory,
                peer: self.conn.peer().ip(),
                publish_to_clients: settings.model.address_book.publish_to_clients,
                starttls_offered: self.ctx.tls.is_some() && settings.access.tls.starttls,
                passwords_allowed: settings.access.tls.login_allowed(self.conn.is_tls()),
            };
            match self.session.handle(message, &now)? {
                Step::Send(messages) => {
                    for message in messages {
                        self.send(message)?;
                        // A long result does not pile up in memory.
                        self.conn.flush_above(READ_BUFFER).await?;
                    }
                }
                Step::Authenticate { msgid, credentials } => {
                    let peer = self.conn.peer().ip();
                    let outcome = self
                        .ctx
                        .authenticator
                        .authenticate(&credentials, peer)
                        .await;
                    if let Ok(account) = &outcome {
                        record_user(account);
                    }
                    let response = self.session.bound(msgid, outcome);
                    self.send(response)?;
                }
                Step::StartTls(response) => {
                    if !self.input.is_empty() {
                        return Err(LdapError::PipelinedStartTls);
                    }
                    let Some(acceptor) = self.ctx.tls.clone() else {
                        return Ok(self.conn.close().await?);
                    };
                    self.send(response)?;
                    self.conn.start_tls(&acceptor, HANDSHAKE_TIMEOUT).await?;
                    self.session.tls_started();
                    debug!("TLS started");
                }
                Step::Close => return Ok(self.conn.close().await?),
            }
        }
    }

    /// The next whole request, its size checked from its header before its body is waited
    /// for; `None` when the client closed, went silent or the daemon stops.
    async fn next_request(&mut self) -> Result<Option<LdapMsg>, LdapError> {
        loop {
            if let Some(message) = take_request(&mut self.input, &mut self.codec)? {
                return Ok(Some(message));
            }
            match self.conn.read(IDLE_TIMEOUT, true).await? {
                Input::Data(bytes) => self.input.extend_from_slice(bytes),
                Input::Closed => return Ok(None),
                Input::TimedOut => {
                    self.disconnect(LdapResultCode::Unavailable, "idle for too long")
                        .await;
                    return Ok(None);
                }
                Input::ShuttingDown => {
                    self.disconnect(LdapResultCode::Unavailable, "server shutting down")
                        .await;
                    return Ok(None);
                }
            }
        }
    }

    /// Queues one message (written at the next flush, read or close).
    fn send(&mut self, message: LdapMsg) -> Result<(), LdapError> {
        let mut out = BytesMut::new();
        self.codec.encode(message, &mut out)?;
        self.conn.send(&out);
        Ok(())
    }

    /// The Notice of Disconnection (RFC 4511 §4.4.1), then the close; errors are moot here.
    async fn disconnect(&mut self, code: LdapResultCode, message: &str) {
        if let Ok(notice) = notice_of_disconnection(code, message) {
            let _ = self.conn.farewell(&notice).await;
        }
    }
}

/// The unsolicited notification that the server is closing the connection.
pub fn notice_of_disconnection(code: LdapResultCode, message: &str) -> std::io::Result<Vec<u8>> {
    let op = LdapOp::ExtendedResponse(LdapExtendedResponse {
        res: result(code, message),
        name: Some(NOTICE_OF_DISCONNECTION_OID.to_string()),
        value: None,
    });
    let mut out = BytesMut::new();
    LdapCodec::default().encode(
        LdapMsg {
            msgid: 0,
            op,
            ctrl: Vec::new(),
        },
        &mut out,
    )?;
    Ok(out.to_vec())
}
