//! The tokio driver of one IMAP connection: imap-next's sans-I/O server parses commands
//! (literals, AUTHENTICATE, IDLE framing) from what the input guard lets through (`input`,
//! `guard`); this file accepts the connection, runs the loop over imap-next's events and hands
//! each command to its handler in `commands/`. The session's state and its I/O helpers are in
//! `state`. Responses are encoded with imap-codec and written in order; a large FETCH is
//! flushed as it goes.

use std::net::SocketAddr;
use std::sync::Arc;

use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::Tag;
use imap_codec::imap_types::response::{Code, Greeting, GreetingKind};
use imap_next::server::{Error as NextError, Event};
use imap_next::{Interrupt, Io, State as _};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{info, Instrument};

use super::buffer::InputBuffer;
use super::context::{ImapContext, Offer};
use super::guard::InputGuard;
use super::response::{bye, status, Kind};
use super::state::{new_server, Phase, Session, MAX_ERRORS, PRE_AUTH_TIMEOUT};
use crate::net::driver::{Accept, Connection};
use crate::net::ids::new_id;

/// Runs one session; `implicit_tls` for the IMAPS port.
pub async fn run_session(
    tcp: TcpStream,
    peer: SocketAddr,
    ctx: Arc<ImapContext>,
    implicit_tls: bool,
    shutdown: watch::Receiver<bool>,
) {
    let id = new_id();
    let span = tracing::info_span!(
        "imap",
        cid = %id,
        peer = %peer.ip(),
        user = tracing::field::Empty
    );
    async move {
        let how = Accept {
            tls: ctx.tls.as_ref(),
            implicit_tls,
            handshake_timeout: PRE_AUTH_TIMEOUT,
            read_buffer: 0,
        };
        let Some(conn) = Connection::accept(tcp, peer, how, shutdown).await else {
            return;
        };
        let settings = ctx.live.load();
        let offer = ctx.offer(&settings, conn.is_tls());
        let server = new_server(Some(greeting(&settings.hostname, offer)));
        let mut session = Session {
            ctx: &ctx,
            settings,
            conn,
            server,
            phase: Phase::NotAuthenticated,
            account: None,
            user_slot: None,
            condstore: false,
            qresync: false,
            utf8: false,
            rev2: false,
            errors: 0,
            auth_tag: None,
            guard: InputGuard::new(),
            input: InputBuffer::default(),
            appending: None,
            create_use: None,
            search_return: None,
            status_appendlimit: None,
            compress_next: false,
            search_saved: Vec::new(),
            dollar_scan: Default::default(),
        };
        match session.drive().await {
            Ok(()) => info!("session closed"),
            Err(err) => info!("session ended: {err}"),
        }
    }
    .instrument(span)
    .await
}

fn greeting(hostname: &str, offer: Offer) -> Greeting<'static> {
    let capabilities = super::commands::misc::capabilities(offer, false);
    Greeting {
        kind: GreetingKind::Ok,
        code: Some(Code::Capability(capabilities)),
        text: imap_codec::imap_types::core::Text::try_from(format!(
            "{hostname} ics-mail IMAP4rev1 ready"
        ))
        .unwrap_or_else(|_| imap_codec::imap_types::core::Text::unvalidated("ready")),
    }
}

impl Session<'_> {
    async fn drive(&mut self) -> std::io::Result<()> {
        loop {
            if matches!(self.phase, Phase::Logout) {
                return self.conn.close().await;
            }
            match self.server.next() {
                Ok(Event::GreetingSent { .. }) | Ok(Event::ResponseSent { .. }) => {}
                Ok(Event::CommandReceived { command }) => {
                    self.command(command).await?;
                }
                Ok(Event::CommandAuthenticateReceived {
                    command_authenticate,
                }) => {
                    self.authenticate(command_authenticate).await?;
                }
                Ok(Event::AuthenticateDataReceived { authenticate_data }) => {
                    self.authenticate_data(authenticate_data).await?;
                }
                Ok(Event::IdleCommandReceived { tag }) => {
                    self.idle(tag).await?;
                }
                Ok(Event::IdleDoneReceived) => {}
                Err(Interrupt::Io(Io::Output(bytes))) => self.parser_output(bytes),
                Err(Interrupt::Io(Io::NeedMoreInput)) => {
                    if !self.supply_reading().await? {
                        self.flush().await?;
                        if matches!(self.phase, Phase::Logout) {
                            return self.conn.close().await;
                        }
                        return Ok(());
                    }
                }
                Err(Interrupt::Error(err)) => {
                    if !self.protocol_error(err) {
                        self.flush().await?;
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Bad input the parser discarded; false when the connection must close.
    fn protocol_error(&mut self, err: NextError) -> bool {
        self.errors += 1;
        let (discarded, text, fatal) = match &err {
            NextError::ExpectedCrlfGotLf { discarded_bytes } => {
                (discarded_bytes, "Lines must end with CRLF", false)
            }
            NextError::MalformedMessage { discarded_bytes } => {
                (discarded_bytes, "Syntax error in command", false)
            }
            // imap-next has already answered the tagged BAD [TOOBIG].
            NextError::LiteralTooLong { discarded_bytes } => (discarded_bytes, "", false),
            // The stream can't be trusted to be in step any more.
            NextError::CommandTooLong { discarded_bytes } => {
                (discarded_bytes, "Command too long", true)
            }
        };
        info!(errors = self.errors, "bad command: {err}");
        if fatal {
            self.send_status(bye(&format!("[TOOBIG] {text}")));
            return false;
        }
        if !text.is_empty() {
            let tag = tag_of(discarded.declassify());
            self.send_status(status(Kind::Bad, tag, None, text));
        }
        if self.errors >= MAX_ERRORS {
            self.send_status(bye("Too many invalid commands"));
            return false;
        }
        true
    }

    async fn command(&mut self, command: Command<'static>) -> std::io::Result<()> {
        let tag = command.tag.clone();
        let name = command.body.name();
        self.create_use = self.guard.take_create_use(tag.inner());
        self.status_appendlimit = self.guard.take_status_appendlimit(tag.inner());
        let mut returns = self.guard.take_search_return(tag.inner());
        if self.rev2 && returns.is_none() && matches!(command.body, CommandBody::Search { .. }) {
            // RFC 9051 §6.4.4: a SEARCH without RETURN answers as RETURN (ALL), with ESEARCH.
            returns = Some(Vec::new());
        }
        self.search_return = returns.map(|options| (tag.inner().to_string(), options));
        let done = super::commands::dispatch(self, command.body).await?;
        if done.kind == Kind::Bad {
            info!(command = name, "BAD: {}", done.text);
        }
        let starttls = done.starttls;
        self.complete(tag, done);
        if starttls {
            self.start_tls().await?;
        }
        if std::mem::take(&mut self.compress_next) {
            self.start_compress().await?;
        }
        Ok(())
    }
}

/// The tag at the start of discarded bytes, if it is a valid one.
fn tag_of(bytes: &[u8]) -> Option<Tag<'static>> {
    let end = bytes.iter().position(|&b| b == b' ')?;
    let text = std::str::from_utf8(&bytes[..end]).ok()?;
    Tag::try_from(text.to_string()).ok()
}
