//! The tokio driver of one LDAP connection: frames read with their size checked first, decoded
//! by ldap3_proto, answered one by one (every operation here is quick and in memory, so
//! there is nothing to abandon), StartTLS in place, binds through the shared authenticator.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use ldap3_proto::proto::{
    LdapBindResponse, LdapExtendedRequest, LdapExtendedResponse, LdapMsg, LdapOp, LdapResult,
    LdapResultCode,
};
use ldap3_proto::LdapCodec;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::{Decoder, Encoder};
use tracing::{debug, info, Instrument};

use super::access::{may_read_entries, Denial, Identity};
use super::bind::{classify, Attempt};
use super::bounds::{frame_length, MAX_BER_DEPTH, MAX_REQUEST};
use super::entries::BookCache;
use super::error::LdapError;
use super::rootdse::{NOTICE_OF_DISCONNECTION_OID, STARTTLS_OID, WHOAMI_OID};
use super::search::{self, result, View};
use crate::auth::Authenticator;
use crate::net::driver::{record_user, Accept, Connection, Input};
use crate::net::ids::new_id;
use crate::settings::{Live, Settings};

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
        let mut session = Session {
            conn,
            ctx,
            identity: Identity::Anonymous,
            input: BytesMut::new(),
            codec: LdapCodec::new(Some(MAX_REQUEST), Some(MAX_BER_DEPTH)),
        };
        match session.drive().await {
            Ok(()) => info!("connection closed"),
            Err(err) if err.is_protocol() => {
                info!("closing the connection: {err}");
                session
                    .disconnect(LdapResultCode::ProtocolError, &err.to_string())
                    .await;
            }
            Err(err) => info!("connection ended: {err}"),
        }
    }
    .instrument(span)
    .await
}

struct Session {
    conn: Connection,
    ctx: Arc<LdapContext>,
    identity: Identity,
    /// Bytes read and not yet taken as a request: at most one request and one read.
    input: BytesMut,
    codec: LdapCodec,
}

/// What the driver does after a request.
enum Next {
    Continue,
    StartTls,
    Close,
}

impl Session {
    async fn drive(&mut self) -> Result<(), LdapError> {
        loop {
            let Some(message) = self.next_request().await? else {
                return Ok(());
            };
            match self.answer(message).await? {
                Next::Continue => {}
                Next::Close => return Ok(self.conn.close().await?),
                Next::StartTls => {
                    if !self.input.is_empty() {
                        return Err(LdapError::PipelinedStartTls);
                    }
                    let Some(acceptor) = self.ctx.tls.clone() else {
                        return Ok(self.conn.close().await?);
                    };
                    self.conn.start_tls(&acceptor, HANDSHAKE_TIMEOUT).await?;
                    debug!("TLS started");
                }
            }
        }
    }

    /// The next whole request, its size checked from its header before its body is waited
    /// for; `None` when the client closed, went silent or the daemon stops.
    async fn next_request(&mut self) -> Result<Option<LdapMsg>, LdapError> {
        loop {
            if let Some(length) = frame_length(&self.input)? {
                if self.input.len() >= length {
                    let mut frame = self.input.split_to(length);
                    return match self.codec.decode(&mut frame) {
                        Ok(Some(message)) => Ok(Some(message)),
                        Ok(None) => Err(LdapError::Decode("truncated message".into())),
                        Err(err) => Err(LdapError::Decode(err.to_string())),
                    };
                }
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

    async fn answer(&mut self, message: LdapMsg) -> Result<Next, LdapError> {
        let LdapMsg { msgid, op, ctrl } = message;
        let read_only = |code: fn(LdapResult) -> LdapOp| {
            code(result(
                LdapResultCode::UnwillingToPerform,
                "the address book is read-only",
            ))
        };
        let reply = match op {
            LdapOp::BindRequest(request) => {
                let res = self.bind(&request).await;
                LdapOp::BindResponse(LdapBindResponse {
                    res,
                    saslcreds: None,
                })
            }
            LdapOp::UnbindRequest => return Ok(Next::Close),
            LdapOp::SearchRequest(request) => {
                let settings = self.ctx.live.load();
                let book = self
                    .ctx
                    .books
                    .get(&settings.directory, &settings.model.address_book.base_dn);
                let view = View {
                    book: &book,
                    entries: self.may_read(&settings),
                    starttls: self.starttls_offered() && !self.conn.is_tls(),
                };
                let outcome = search::run(&view, &request, &ctrl);
                debug!(
                    base = request.base,
                    filter = ?request.filter,
                    entries = outcome.entries.len(),
                    code = ?outcome.result.code,
                    "search"
                );
                for entry in outcome.entries {
                    self.send(msgid, LdapOp::SearchResultEntry(entry), Vec::new())?;
                    self.conn.flush_above(READ_BUFFER).await?;
                }
                self.send(
                    msgid,
                    LdapOp::SearchResultDone(outcome.result),
                    outcome.controls,
                )?;
                return Ok(Next::Continue);
            }
            LdapOp::CompareRequest(request) => {
                let settings = self.ctx.live.load();
                let book = self
                    .ctx
                    .books
                    .get(&settings.directory, &settings.model.address_book.base_dn);
                let view = View {
                    book: &book,
                    entries: self.may_read(&settings),
                    starttls: false,
                };
                LdapOp::CompareResult(search::compare(&view, &request))
            }
            LdapOp::ExtendedRequest(request) => {
                let (response, next) = self.extended(&request);
                self.send(msgid, LdapOp::ExtendedResponse(response), Vec::new())?;
                return Ok(next);
            }
            LdapOp::AddRequest(_) => read_only(LdapOp::AddResponse),
            LdapOp::ModifyRequest(_) => read_only(LdapOp::ModifyResponse),
            LdapOp::DelRequest(_) => read_only(LdapOp::DelResponse),
            LdapOp::ModifyDNRequest(_) => read_only(LdapOp::ModifyDNResponse),
            // Every search is answered whole before the next request is read.
            LdapOp::AbandonRequest(_) => return Ok(Next::Continue),
            other => return Err(LdapError::NotARequest(op_name(&other))),
        };
        self.send(msgid, reply, Vec::new())?;
        Ok(Next::Continue)
    }

    async fn bind(&mut self, request: &ldap3_proto::proto::LdapBindRequest) -> LdapResult {
        let settings = self.ctx.live.load();
        let passwords_allowed = settings.access.tls.login_allowed(self.conn.is_tls());
        // Whatever the outcome, the connection is anonymous until a bind succeeds (RFC 4513
        // §4).
        self.identity = Identity::Anonymous;
        match classify(request, passwords_allowed) {
            Attempt::Anonymous => result(LdapResultCode::Success, ""),
            Attempt::Refused(code, message) => result(code, message),
            Attempt::Password(credentials) => {
                let peer = self.conn.peer().ip();
                match self
                    .ctx
                    .authenticator
                    .authenticate(&credentials, peer)
                    .await
                {
                    Ok(account) => {
                        record_user(&account);
                        self.identity = Identity::Account(account);
                        result(LdapResultCode::Success, "")
                    }
                    Err(_) => result(LdapResultCode::InvalidCredentials, "invalid credentials"),
                }
            }
        }
    }

    /// Whether this connection may read the entries under the settings in force.
    fn may_read(&self, settings: &Settings) -> Result<(), Denial> {
        may_read_entries(
            &self.identity.in_force(&settings.directory),
            self.conn.peer().ip(),
            settings.model.address_book.publish_to_clients,
        )
    }

    fn starttls_offered(&self) -> bool {
        self.ctx.tls.is_some() && self.ctx.live.load().access.tls.starttls
    }

    fn extended(&self, request: &LdapExtendedRequest) -> (LdapExtendedResponse, Next) {
        let response = |code, message: &str, name: Option<&str>, value: Option<Vec<u8>>| {
            LdapExtendedResponse {
                res: result(code, message),
                name: name.map(str::to_string),
                value,
            }
        };
        match request.name.as_str() {
            STARTTLS_OID if self.conn.is_tls() => (
                response(
                    LdapResultCode::OperationsError,
                    "TLS is already active",
                    None,
                    None,
                ),
                Next::Continue,
            ),
            STARTTLS_OID if !self.starttls_offered() => (
                response(
                    LdapResultCode::Unavailable,
                    "TLS is not available",
                    None,
                    None,
                ),
                Next::Continue,
            ),
            STARTTLS_OID => (
                response(LdapResultCode::Success, "", Some(STARTTLS_OID), None),
                Next::StartTls,
            ),
            // RFC 4532: "u:<login>" bound, empty when anonymous.
            WHOAMI_OID => {
                let value = match &self.identity {
                    Identity::Anonymous => Vec::new(),
                    Identity::Account(account) => format!("u:{account}").into_bytes(),
                };
                (
                    response(LdapResultCode::Success, "", None, Some(value)),
                    Next::Continue,
                )
            }
            _ => (
                response(
                    LdapResultCode::ProtocolError,
                    "unsupported extended operation",
                    None,
                    None,
                ),
                Next::Continue,
            ),
        }
    }

    fn send(
        &mut self,
        msgid: i32,
        op: LdapOp,
        ctrl: Vec<ldap3_proto::control::LdapControl>,
    ) -> Result<(), LdapError> {
        let mut out = BytesMut::new();
        self.codec.encode(LdapMsg { msgid, op, ctrl }, &mut out)?;
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

fn op_name(op: &LdapOp) -> &'static str {
    match op {
        LdapOp::BindResponse(_) => "bind response",
        LdapOp::SearchResultEntry(_)
        | LdapOp::SearchResultDone(_)
        | LdapOp::SearchResultReference(_) => "search result",
        LdapOp::IntermediateResponse(_) => "intermediate response",
        LdapOp::ExtendedResponse(_) => "extended response",
        _ => "response",
    }
}
