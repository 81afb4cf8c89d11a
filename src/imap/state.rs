//! One IMAP session's state, as the command handlers see it: where it is (`Phase`), its
//! account and selected folder, the settings it started with, its connection and parser, and
//! what a handler ends with (`Done`). The driver that runs it is `session`; the handlers are
//! `commands/`; this module depends on neither.

use std::sync::Arc;
use std::time::Duration;

use imap_codec::imap_types::core::Tag;
use imap_codec::imap_types::response::{Code, Data, Greeting, GreetingKind, Status};
use imap_next::server::{Event, Options, Server};
use imap_next::{Interrupt, Io, State as _};

use super::appending::Appending;
use super::buffer::InputBuffer;
use super::context::{ImapContext, Offer, UserSlot};
use super::folders::Folders;
use super::guard::{InputGuard, MAX_COMMAND, MAX_LITERAL};
use super::response::{self, bye, encode_data, encode_status, status, Kind, LITERAL_ACCEPT_TEXT};
use super::selected::Selected;
use crate::address::Address;
use crate::net::driver::{record_user, Connection, ReadOutcome};
use crate::settings::Settings;

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
    Selected(Box<Selected>),
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
}

pub(super) struct Session<'a> {
    pub ctx: &'a ImapContext,
    /// The settings in force when the session began, kept to its end.
    pub settings: Arc<Settings>,
    pub conn: Connection,
    pub server: Server,
    pub phase: Phase,
    pub account: Option<(Address, Folders)>,
    pub user_slot: Option<UserSlot>,
    /// CONDSTORE is on (ENABLE, SELECT (CONDSTORE) or a command using it): MODSEQ in FETCH.
    pub condstore: bool,
    /// QRESYNC is on (ENABLE QRESYNC, RFC 7162 §3.2.3): expunges are told as `VANISHED`.
    pub qresync: bool,
    /// `ENABLE UTF8=ACCEPT` is on (RFC 6855): mailbox names are UTF-8 on the wire both ways,
    /// APPEND takes the `UTF8 (literal8)` form, SEARCH takes no CHARSET.
    pub utf8: bool,
    /// `ENABLE IMAP4rev2` is on (RFC 9051 Appendix A): mailbox names are UTF-8 both ways,
    /// \Recent and RECENT are never sent, SELECT answers with a LIST and without UNSEEN, and
    /// every SEARCH answers with ESEARCH.
    pub rev2: bool,
    pub errors: u32,
    /// Tag of the AUTHENTICATE exchange in progress.
    pub auth_tag: Option<Tag<'static>>,
    pub guard: InputGuard,
    pub input: InputBuffer,
    /// The APPEND whose message is arriving.
    pub appending: Option<Appending>,
    /// The SPECIAL-USE attributes of the CREATE being run (CREATE-SPECIAL-USE; the guard
    /// takes them off the command).
    pub create_use: Option<Vec<String>>,
    /// The tag and RETURN options of the SEARCH being run (ESEARCH; the guard takes them off).
    pub search_return: Option<(String, Vec<String>)>,
    /// The STATUS being run asked for APPENDLIMIT (the guard takes it out).
    pub status_appendlimit: Option<super::guard::AppendLimitTaken>,
    /// COMPRESS succeeded: switch once its OK is written.
    pub compress_next: bool,
    /// The UIDs the last `SEARCH RETURN (SAVE)` saved (SEARCHRES, RFC 5182), ascending;
    /// emptied by SELECT and EXAMINE.
    pub search_saved: Vec<u32>,
    /// Where the `$` rewrite stands in the command being passed (`searchres`).
    pub dollar_scan: super::searchres::Scan,
}

pub(super) fn new_server(greeting: Option<Greeting<'static>>) -> Server {
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

impl Session<'_> {
    /// What the session offers now (STARTTLS, logins), from its settings and its TLS state.
    pub fn offer(&self) -> Offer {
        self.ctx.offer(&self.settings, self.conn.is_tls())
    }

    pub fn timeout(&self) -> Duration {
        match self.phase {
            Phase::NotAuthenticated => PRE_AUTH_TIMEOUT,
            _ => IDLE_TIMEOUT,
        }
    }

    /// Waits for client bytes (into `input`); false when the session is over (closed, timed
    /// out, shutting down: the last two get a BYE).
    pub async fn read_more(&mut self) -> std::io::Result<bool> {
        let timeout = self.timeout();
        let space = self.input.space();
        match self.conn.read_into(space, timeout, true).await? {
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

    /// What imap-next wrote (the greeting, `+` continuations, the statuses we hand it).
    pub fn parser_output(&mut self, mut bytes: Vec<u8>) {
        response::spell_imap4rev1(&mut bytes);
        self.conn.send(&bytes);
    }

    pub fn send_status(&mut self, status: Status<'static>) {
        self.conn.send(&encode_status(status));
    }

    pub fn send_data(&mut self, data: Data<'static>) {
        self.conn.send(&encode_data(data));
    }

    pub async fn flush(&mut self) -> std::io::Result<()> {
        self.conn.flush().await
    }

    /// Writes pending output once there is a lot of it.
    pub async fn flush_if_big(&mut self) -> std::io::Result<()> {
        self.conn.flush_above(FLUSH_AT - 1).await
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
        self.conn.start_tls(&acceptor, PRE_AUTH_TIMEOUT).await
    }

    /// COMPRESS=DEFLATE: writes the OK uncompressed, then compresses both ways. What the
    /// client sent after the command and was read with it is compressed data already.
    pub async fn start_compress(&mut self) -> std::io::Result<()> {
        self.flush().await?;
        let already_read = self.input.pending().to_vec();
        self.input.clear();
        self.conn.start_deflate(&already_read).await
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

    /// Mailbox names are UTF-8 on the wire, not modified UTF-7 (UTF8=ACCEPT or IMAP4rev2).
    pub fn utf8_names(&self) -> bool {
        self.utf8 || self.rev2
    }

    /// \Recent and `* n RECENT` are sent (IMAP4rev1; IMAP4rev2 has neither).
    pub fn shows_recent(&self) -> bool {
        !self.rev2
    }

    /// How this session's untagged FETCH responses show flags.
    pub fn flags_shown(&self) -> super::flagdata::FlagsShown {
        super::flagdata::FlagsShown {
            condstore: self.condstore,
            recent: self.shows_recent(),
        }
    }

    pub fn is_selected(&self) -> bool {
        matches!(self.phase, Phase::Selected(_))
    }

    pub fn selected(&mut self) -> Option<&mut Selected> {
        match &mut self.phase {
            Phase::Selected(selected) => Some(&mut **selected),
            _ => None,
        }
    }

    /// Logged in: remembers the account and its folders.
    pub fn logged_in(&mut self, account: Address, root: std::path::PathBuf, slot: UserSlot) {
        record_user(&account);
        self.account = Some((account, Folders::new(root)));
        self.user_slot = Some(slot);
        self.phase = Phase::Authenticated;
        self.guard.logged_in();
    }
}
