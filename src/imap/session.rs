//! The tokio driver of one IMAP connection: imap-next's sans-I/O server parses commands
//! (literals, AUTHENTICATE, IDLE framing) from what the input guard lets through (`input`,
//! `guard`); this file does the socket, STARTTLS, timeouts and hands each command to its
//! handler in `commands/`. Responses are encoded with imap-codec and written in order; a large
//! FETCH is flushed as it goes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use imap_codec::imap_types::command::Command;
use imap_codec::imap_types::core::Tag;
use imap_codec::imap_types::response::{Code, Data, Greeting, GreetingKind, Status};
use imap_next::server::{Error as NextError, Event, Options, Server};
use imap_next::{Interrupt, Io, State as _};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{info, warn, Instrument};

use super::commands::append::Appending;
use super::context::{ImapContext, UserSlot};
use super::folders::Folders;
use super::guard::{InputGuard, MAX_COMMAND, MAX_LITERAL};
use super::input::InputBuffer;
use super::response::{self, bye, encode_data, encode_status, status, Kind, LITERAL_ACCEPT_TEXT};
use super::selected::Selected;
use crate::address::Address;
use crate::net::ids::new_id;
use crate::net::io::{read_or_stop, ReadOutcome};
use crate::net::stream::MaybeTls;

/// Output is written once this much is pending, so a big FETCH doesn't pile up in memory.
const FLUSH_AT: usize = 256 * 1024;
/// Inactivity allowed before login.
pub const PRE_AUTH_TIMEOUT: Duration = Duration::from_secs(180);
/// Inactivity allowed after login: RFC 3501 §5.4 asks for at least 30 minutes.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(31 * 60);
/// Protocol errors (BAD replies) in a row before the connection is closed.
pub const MAX_ERRORS: u32 = 20;
/// How often IDLE looks for changes to the folder when inotify can't tell it.
pub const IDLE_POLL: Duration = Duration::from_millis(400);
/// How often IDLE looks anyway while inotify watches (a safety net, cheap).
pub const IDLE_SAFETY_POLL: Duration = Duration::from_secs(60);

/// Where the session is (RFC 3501 §3).
pub(super) enum Phase {
    NotAuthenticated,
    Authenticated,
    Selected(Selected),
    Logout,
}

/// What a command handler ends with: the tagged status (OK/NO/BAD) and its code and text.
pub(super) struct Done {
    pub kind: Kind,
    pub code: Option<Code<'static>>,
    pub text: String,
    /// STARTTLS: switch to TLS once this completion is written.
    pub starttls: bool,
}

impl Done {
    pub fn ok(text: impl Into<String>) -> Done {
        Done {
            kind: Kind::Ok,
            code: None,
            text: text.into(),
            starttls: false,
        }
    }
    pub fn ok_code(code: Code<'static>, text: impl Into<String>) -> Done {
        Done {
            kind: Kind::Ok,
            code: Some(code),
            text: text.into(),
            starttls: false,
        }
    }
    pub fn no(text: impl Into<String>) -> Done {
        Done {
            kind: Kind::No,
            code: None,
            text: text.into(),
            starttls: false,
        }
    }
    pub fn no_code(code: Code<'static>, text: impl Into<String>) -> Done {
        Done {
            kind: Kind::No,
            code: Some(code),
            text: text.into(),
            starttls: false,
        }
    }
    pub fn bad(text: impl Into<String>) -> Done {
        Done {
            kind: Kind::Bad,
            code: None,
            text: text.into(),
            starttls: false,
        }
    }
    /// A store failure: logged with its cause, the client learns only that it failed.
    pub fn server_error(context: &str, err: impl std::fmt::Display) -> Done {
        warn!("{context}: {err}");
        Done::no_code(response::other("SERVERBUG"), format!("{context} failed"))
    }
}

pub(super) struct Session<'a> {
    pub ctx: &'a ImapContext,
    pub peer: SocketAddr,
    pub stream: MaybeTls,
    pub server: Server,
    pub out: Vec<u8>,
    pub phase: Phase,
    pub account: Option<(Address, Folders)>,
    pub user_slot: Option<UserSlot>,
    /// CONDSTORE is on (ENABLE, SELECT (CONDSTORE) or a command using it): MODSEQ in FETCH.
    pub condstore: bool,
    pub errors: u32,
    /// Tag of the AUTHENTICATE exchange in progress.
    pub auth_tag: Option<Tag<'static>>,
    pub shutdown: watch::Receiver<bool>,
    pub guard: InputGuard,
    pub input: InputBuffer,
    /// The APPEND whose message is arriving.
    pub appending: Option<Appending>,
}

/// Runs one session; `implicit_tls` for the IMAPS port.
pub async fn run_session(
    tcp: TcpStream,
    peer: SocketAddr,
    ctx: Arc<ImapContext>,
    implicit_tls: bool,
    shutdown: watch::Receiver<bool>,
) {
    let id = new_id();
    let span = tracing::info_span!("imap", cid = %id, peer = %peer.ip());
    async move {
        let Some(stream) =
            MaybeTls::accept(tcp, ctx.tls.as_ref(), implicit_tls, PRE_AUTH_TIMEOUT).await
        else {
            return;
        };
        let server = new_server(Some(greeting(&ctx, stream.is_tls())));
        let mut session = Session {
            ctx: &ctx,
            peer,
            stream,
            server,
            out: Vec::new(),
            phase: Phase::NotAuthenticated,
            account: None,
            user_slot: None,
            condstore: false,
            errors: 0,
            auth_tag: None,
            shutdown,
            guard: InputGuard::new(),
            input: InputBuffer::default(),
            appending: None,
        };
        match session.drive().await {
            Ok(()) => info!("session closed"),
            Err(err) => info!("session ended: {err}"),
        }
    }
    .instrument(span)
    .await
}

fn new_server(greeting: Option<Greeting<'static>>) -> Server {
    // The guard refuses every literal and command beyond these before imap-next sees it (and
    // takes APPEND's message itself): they only back it up, and bound what imap-next buffers.
    let mut options = Options::default();
    options.max_literal_size = MAX_LITERAL;
    options.max_command_size = u32::try_from(MAX_COMMAND).unwrap_or(u32::MAX);
    let _ = options
        .set_literal_reject_text(format!("Literal too big: the limit is {MAX_LITERAL} bytes"));
    let _ = options.set_literal_accept_text(LITERAL_ACCEPT_TEXT.to_string());
    // After STARTTLS there is no second greeting; a placeholder one is sent nowhere (see
    // `start_tls`).
    let greeting = greeting.unwrap_or_else(|| Greeting {
        kind: GreetingKind::Ok,
        code: None,
        text: imap_codec::imap_types::core::Text::unvalidated("tls"),
    });
    Server::new(options, greeting)
}

fn greeting(ctx: &ImapContext, tls: bool) -> Greeting<'static> {
    let capabilities = super::commands::misc::capabilities(ctx, tls, false);
    Greeting {
        kind: GreetingKind::Ok,
        code: Some(Code::Capability(capabilities)),
        text: imap_codec::imap_types::core::Text::try_from(format!(
            "{} ics-mail IMAP4rev1 ready",
            ctx.hostname
        ))
        .unwrap_or_else(|_| imap_codec::imap_types::core::Text::unvalidated("ready")),
    }
}

impl Session<'_> {
    pub fn timeout(&self) -> Duration {
        match self.phase {
            Phase::NotAuthenticated => PRE_AUTH_TIMEOUT,
            _ => IDLE_TIMEOUT,
        }
    }

    async fn drive(&mut self) -> std::io::Result<()> {
        loop {
            if matches!(self.phase, Phase::Logout) {
                self.flush().await?;
                return self.stream.shutdown().await;
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
                            return self.stream.shutdown().await;
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

    /// Waits for client bytes (into `input`); false when the session is over (closed, timed
    /// out, shutting down: the last two get a BYE).
    pub async fn read_more(&mut self) -> std::io::Result<bool> {
        let timeout = self.timeout();
        let space = self.input.space();
        match read_or_stop(&mut self.stream, space, timeout, &mut self.shutdown, true).await? {
            ReadOutcome::Data(n) => {
                self.input.filled(n);
                Ok(true)
            }
            ReadOutcome::Closed => Ok(false),
            ReadOutcome::TimedOut => {
                self.send_status(bye("Autologout; idle for too long"));
                self.flush().await?;
                Ok(false)
            }
            ReadOutcome::ShuttingDown => {
                self.send_status(bye("Server shutting down"));
                self.flush().await?;
                Ok(false)
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

    /// What imap-next wrote (the greeting, `+` continuations, the statuses we hand it).
    pub fn parser_output(&mut self, mut bytes: Vec<u8>) {
        response::spell_imap4rev1(&mut bytes);
        self.out.extend_from_slice(&bytes);
    }

    pub fn send_status(&mut self, status: Status<'static>) {
        self.out.extend_from_slice(&encode_status(status));
    }

    pub fn send_data(&mut self, data: Data<'static>) {
        self.out.extend_from_slice(&encode_data(data));
    }

    pub async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            let out = std::mem::take(&mut self.out);
            self.stream.write_all(&out).await?;
            self.stream.flush().await?;
        }
        Ok(())
    }

    /// Writes pending output once there is a lot of it.
    pub async fn flush_if_big(&mut self) -> std::io::Result<()> {
        if self.out.len() >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }

    async fn command(&mut self, command: Command<'static>) -> std::io::Result<()> {
        let tag = command.tag.clone();
        let name = command.body.name();
        let done = super::commands::dispatch(self, command.body).await?;
        if done.kind == Kind::Bad {
            info!(command = name, "BAD: {}", done.text);
        }
        let starttls = done.starttls;
        self.complete(tag, done);
        if starttls {
            self.start_tls().await?;
        }
        Ok(())
    }

    /// Sends a command's tagged completion; too many BADs in a row end the session.
    pub fn complete(&mut self, tag: Tag<'static>, done: Done) {
        if done.kind == Kind::Bad {
            self.errors += 1;
        } else {
            self.errors = 0;
        }
        self.send_status(status(done.kind, Some(tag), done.code, &done.text));
        if self.errors >= MAX_ERRORS {
            self.send_status(bye("Too many invalid commands"));
            self.phase = Phase::Logout;
        }
    }

    /// STARTTLS after its OK was queued: write it, then handshake. Bytes the client pipelined
    /// after STARTTLS are dropped with the old parser (RFC 3501 §6.2.1; no plaintext injection).
    pub async fn start_tls(&mut self) -> std::io::Result<()> {
        self.flush().await?;
        let Some(acceptor) = self.ctx.tls.clone() else {
            return Ok(());
        };
        self.input.clear();
        self.guard = InputGuard::new();
        self.reset_parser();
        self.stream.upgrade(&acceptor, PRE_AUTH_TIMEOUT).await?;
        Ok(())
    }

    /// A fresh imap-next, which forgets what it had of a command (one the guard refused
    /// half-way, or plaintext before STARTTLS).
    pub fn reset_parser(&mut self) {
        self.server = new_server(None);
        self.auth_tag = None;
        // Swallow the placeholder greeting the new parser wants to send.
        loop {
            match self.server.next() {
                Err(Interrupt::Io(Io::Output(_))) => continue,
                Ok(Event::GreetingSent { .. }) => break,
                _ => break,
            }
        }
    }

    pub fn is_selected(&self) -> bool {
        matches!(self.phase, Phase::Selected(_))
    }

    pub fn selected(&mut self) -> Option<&mut Selected> {
        match &mut self.phase {
            Phase::Selected(selected) => Some(selected),
            _ => None,
        }
    }

    /// Logged in: remembers the account and its folders.
    pub fn logged_in(&mut self, account: Address, root: std::path::PathBuf, slot: UserSlot) {
        self.account = Some((account, Folders::new(root)));
        self.user_slot = Some(slot);
        self.phase = Phase::Authenticated;
        self.guard.logged_in();
    }
}

/// The tag at the start of discarded bytes, if it is a valid one.
fn tag_of(bytes: &[u8]) -> Option<Tag<'static>> {
    let end = bytes.iter().position(|&b| b == b' ')?;
    let text = std::str::from_utf8(&bytes[..end]).ok()?;
    Tag::try_from(text.to_string()).ok()
}
