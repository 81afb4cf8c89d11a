//! The SMTP server session as a sans-I/O state machine: bytes in, [`Step`]s out.
//!
//! The driver (`session.rs`) pushes what it reads with [`Session::push_input`] and calls
//! [`Session::next`] until it asks for input; replies for pipelined commands come out in order.
//! When a message is complete the session yields [`Step::Deliver`] and waits for
//! [`Session::delivered`]. No I/O, clock or store here, so every rule is unit-testable.

use smtp_proto::request::receiver::{DummyDataReceiver, DummyLineReceiver};
use smtp_proto::{Error as ParseError, Request};

use super::chunk::{ChunkEnd, ChunkReceiver};
use super::data::{DataEnd, DataReceiver};
use super::error::SmtpError;
use super::pending::{Handling, Helo, Pending};
use super::reply::Reply;
use super::sizes;
use super::transaction::Transaction;
use crate::address::Address;
use crate::auth::sasl::{self, Credentials, SaslError};
use crate::auth::Recipient;

/// Longest command line accepted, CRLF included (framed here; the same 4096 as smtp-proto).
pub const MAX_COMMAND_LINE: usize = smtp_proto::request::receiver::MAX_LINE_LENGTH;

/// Fixed facts of one session.
#[derive(Debug, Clone)]
pub struct SessionParams {
    /// Our name (`heloName`).
    pub hostname: String,
    pub max_message_size: usize,
    pub smtputf8: bool,
    pub max_recipients: usize,
    pub max_errors: u32,
    /// Client address, for the EHLO greeting.
    pub peer_ip: String,
    pub security: Security,
}

/// What the listener and `tls.mode` allow (decided by the driver from the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Security {
    /// STARTTLS is offered (a certificate exists and `tls.mode` is not `none`).
    pub starttls: bool,
    /// AUTH is allowed before TLS (`tls.mode` `none` or `optional`).
    pub auth_in_plaintext: bool,
    /// Submission rules: MAIL needs AUTH.
    pub submission: bool,
}

/// Where a SASL exchange stands.
#[derive(Debug, Clone)]
pub enum SaslStep {
    PlainResponse,
    LoginUser,
    LoginPassword { user: String },
}

/// Answers "where does this address lead" for RCPT; the directory implements it.
pub trait RecipientResolver {
    fn resolve(&self, address: &Address) -> Recipient;
    fn is_local_domain(&self, domain: &str) -> bool;
    /// The mailbox behind `<postmaster>` without a domain, if any (RFC 5321 §4.5.1).
    fn postmaster(&self) -> Option<Address>;
    /// May `account` send as `sender` (its own address or an alias)?
    fn owns(&self, account: &Address, sender: &Address) -> bool;
}

/// What the driver must do next.
#[derive(Debug)]
pub enum Step {
    /// Send this reply (the driver may hold replies until it needs input: pipelining).
    Reply(Reply),
    /// A refusal: log it at its level, send its reply (held like any other).
    Refuse(SmtpError),
    /// Everything buffered is consumed: read more (with the data timeout when `in_data()`).
    NeedInput,
    /// A complete message: store it durably, then call [`Session::delivered`].
    Deliver(Box<Transaction>),
    /// Send pending replies, run the TLS handshake, then call [`Session::tls_started`].
    StartTls,
    /// Check these credentials, then call [`Session::auth_result`].
    Authenticate(Credentials),
    /// Ask the policy about [`Session::query`], then call [`Session::checked`].
    Check,
    /// Send pending replies and close the connection.
    Close,
}

pub(super) enum State {
    Command,
    /// A command (or the connection) waits for the policy's verdict.
    Checking(Pending),
    /// The policy refused the connection with a 5xx greeting: only QUIT is answered
    /// (RFC 5321 §3.1).
    Refused,
    /// Skipping the rest of an over-long command line.
    DiscardLine(DummyLineReceiver),
    Data(DataReceiver),
    /// Draining the octets of a BDAT chunk that was refused (its reply is already out).
    DrainChunk(DummyDataReceiver),
    Bdat(ChunkReceiver),
    /// The driver is delivering or checking a login: no input is processed until it reports.
    Waiting,
    /// `220` to STARTTLS is queued; next comes [`Step::StartTls`].
    StartTls,
    /// Reading a SASL response line.
    Sasl(SaslStep),
    Closed,
}

pub struct Session {
    pub(super) params: SessionParams,
    pub(super) state: State,
    /// The start of a command line that spans reads (at most [`MAX_COMMAND_LINE`] bytes).
    line: Vec<u8>,
    input: Vec<u8>,
    pos: usize,
    pub(super) helo: Option<Helo>,
    pub(super) tx: Option<Transaction>,
    /// The account logged in with AUTH.
    pub(super) user: Option<Address>,
    pub(super) tls_active: bool,
    errors: u32,
    /// The answer to a command that waited for the driver (login, policy, delivery).
    pub(super) pending: Option<Result<Reply, SmtpError>>,
    /// What a verdict at connect or EHLO said to do with every message of the session.
    pub(super) handling: Handling,
}

impl Session {
    pub fn new(params: SessionParams) -> Session {
        Session {
            params,
            state: State::Checking(Pending::Connect),
            line: Vec::new(),
            input: Vec::new(),
            pos: 0,
            helo: None,
            tx: None,
            user: None,
            tls_active: false,
            errors: 0,
            pending: None,
            handling: Handling::default(),
        }
    }

    /// The `220` greeting (once the policy accepted the connection).
    pub(super) fn greeting(&self) -> Reply {
        Reply::plain(
            220,
            vec![format!("{} ESMTP ics-mail", self.params.hostname)],
        )
    }

    /// True while message data is expected (the driver uses the data timeout then).
    pub fn in_data(&self) -> bool {
        matches!(
            self.state,
            State::Data(_) | State::Bdat(_) | State::DrainChunk(_)
        )
    }

    /// Appends bytes read from the client. Call only after [`Step::NeedInput`].
    pub fn push_input(&mut self, bytes: &[u8]) {
        self.input.drain(..self.pos);
        self.pos = 0;
        self.input.extend_from_slice(bytes);
    }

    /// Marks the connection as TLS from the start (implicit TLS ports).
    pub fn set_tls_active(&mut self) {
        self.tls_active = true;
    }

    /// True when bytes follow the command just handled (pipelining after STARTTLS is refused).
    pub(super) fn has_pending_input(&self) -> bool {
        self.pos < self.input.len()
    }

    /// The TLS handshake after STARTTLS succeeded: forget everything learnt before it
    /// (RFC 3207 §4.2); the client starts over with EHLO.
    pub fn tls_started(&mut self) {
        self.tls_active = true;
        self.helo = None;
        self.tx = None;
        self.user = None;
        self.input.clear();
        self.line.clear();
        self.pos = 0;
        self.state = State::Command;
    }

    /// Reports whether the [`Step::Authenticate`] credentials were valid.
    pub fn auth_result(&mut self, account: Option<Address>) {
        self.state = State::Command;
        self.pending = Some(match account {
            Some(account) => {
                self.user = Some(account);
                Ok(Reply::new(235, [2, 7, 0], "Authentication successful"))
            }
            None => Err(SmtpError::user(
                535,
                [5, 7, 8],
                "Authentication credentials invalid",
            )),
        });
    }

    /// Reports the answer to the [`Step::Deliver`] just handled (the inbound outcome's).
    pub fn delivered(&mut self, answer: Result<Reply, SmtpError>) {
        self.state = State::Command;
        self.tx = None;
        self.pending = Some(answer);
    }

    /// The account the client logged in as.
    pub fn user(&self) -> Option<&Address> {
        self.user.as_ref()
    }

    /// The next thing to do.
    pub fn next(&mut self, resolver: &dyn RecipientResolver) -> Step {
        if let Some(answer) = self.pending.take() {
            return self.answer(answer);
        }
        match std::mem::replace(&mut self.state, State::Closed) {
            State::Closed => Step::Close,
            State::Waiting => {
                self.state = State::Waiting;
                Step::NeedInput
            }
            State::StartTls => {
                self.state = State::Waiting;
                Step::StartTls
            }
            State::Checking(pending) => {
                self.state = State::Checking(pending);
                Step::Check
            }
            State::Refused => {
                self.state = State::Refused;
                self.next_command(resolver)
            }
            State::Sasl(step) => self.next_sasl(step),
            State::Command => {
                self.state = State::Command;
                self.next_command(resolver)
            }
            State::DiscardLine(mut receiver) => {
                let mut bytes = self.input[self.pos..].iter();
                let done = receiver.ingest(&mut bytes);
                self.pos = self.input.len() - bytes.as_slice().len();
                self.state = if done {
                    State::Command
                } else {
                    State::DiscardLine(receiver)
                };
                if done {
                    self.next(resolver)
                } else {
                    Step::NeedInput
                }
            }
            State::DrainChunk(receiver) => self.next_drain(receiver, resolver),
            State::Data(receiver) => self.next_data(receiver),
            State::Bdat(receiver) => self.next_bdat(receiver),
        }
    }

    /// Frames the next command line (bounded) and answers it. smtp-proto parses the complete
    /// line; the sizes in it are read again by [`sizes`].
    fn next_command(&mut self, resolver: &dyn RecipientResolver) -> Step {
        let pending = &self.input[self.pos..];
        if pending.is_empty() {
            return Step::NeedInput;
        }
        let Some(newline) = memchr::memchr(b'\n', pending) else {
            // With its LF still to come, a line this long is over the limit already.
            if self.line.len().saturating_add(pending.len()) >= MAX_COMMAND_LINE {
                self.line.clear();
                self.pos = self.input.len();
                self.state = State::DiscardLine(DummyLineReceiver::default());
                return self.refuse(line_too_long());
            }
            self.line.extend_from_slice(pending);
            self.pos = self.input.len();
            return Step::NeedInput;
        };
        let end = self.pos + newline + 1;
        if self.line.len() + newline + 1 > MAX_COMMAND_LINE {
            self.line.clear();
            self.pos = end;
            return self.refuse(line_too_long());
        }
        let mut line = std::mem::take(&mut self.line);
        line.extend_from_slice(&self.input[self.pos..end]);
        self.pos = end;
        let parsed = Request::parse(&mut line.iter()).map(Request::into_owned);
        match parsed {
            Ok(request) => {
                let request = with_declared_sizes(request, &line);
                // Keep the buffer (cleared) for the next line that spans reads.
                line.clear();
                self.line = line;
                self.command(request, resolver)
            }
            // smtp-proto refuses a chunk size of exactly usize::MAX as syntax; it is a size
            // like any other too big, and its octets must be drained all the same.
            Err(_) if sizes::bdat_chunk_size(&line) == Some(usize::MAX) => {
                let request = Request::Bdat {
                    chunk_size: usize::MAX,
                    is_last: false,
                };
                self.command(request, resolver)
            }
            // The same for `SIZE=` at or past usize::MAX: too big, not a syntax error.
            Err(_) if sizes::mail_size(&line) == Some(usize::MAX) => {
                self.refuse(too_big(self.params.max_message_size))
            }
            Err(err) => self.refuse(parse_error_reply(err)),
        }
    }

    fn next_data(&mut self, mut receiver: DataReceiver) -> Step {
        let Some(tx) = self.tx.as_mut() else {
            self.state = State::Command;
            return Step::NeedInput;
        };
        let (consumed, end) = receiver.ingest(&self.input[self.pos..], &mut tx.body);
        self.pos += consumed;
        match end {
            None => {
                self.state = State::Data(receiver);
                Step::NeedInput
            }
            Some(DataEnd::Complete) => match self.tx.take() {
                Some(tx) => {
                    self.state = State::Waiting;
                    Step::Deliver(Box::new(tx))
                }
                None => Step::NeedInput,
            },
            Some(DataEnd::TooBig) => {
                self.tx = None;
                self.state = State::Command;
                self.refuse(too_big(self.params.max_message_size))
            }
        }
    }

    /// Reads one SASL response line (bounded like a command line).
    fn next_sasl(&mut self, step: SaslStep) -> Step {
        let pending = &self.input[self.pos..];
        let Some(end) = pending.iter().position(|&b| b == b'\n') else {
            if pending.len() > MAX_COMMAND_LINE {
                self.state = State::DiscardLine(DummyLineReceiver::default());
                return self.refuse(SmtpError::syntax(500, [5, 5, 2], "Line too long"));
            }
            self.state = State::Sasl(step);
            return Step::NeedInput;
        };
        let line = String::from_utf8_lossy(&pending[..end])
            .trim_end()
            .to_string();
        self.pos += end + 1;
        self.state = State::Command;
        let result = match step {
            SaslStep::PlainResponse => sasl::decode_plain(&line),
            SaslStep::LoginUser => match sasl::decode_login_user(&line) {
                Ok(user) => {
                    self.state = State::Sasl(SaslStep::LoginPassword { user });
                    return Step::Reply(login_challenge(sasl::LOGIN_PASSWORD_CHALLENGE));
                }
                Err(err) => Err(err),
            },
            SaslStep::LoginPassword { user } => {
                sasl::decode_base64(&line).map(|password| Credentials {
                    login: user,
                    password,
                    authzid: None,
                })
            }
        };
        self.credentials_step(result)
    }

    /// Hands decoded credentials to the driver, or refuses a broken exchange.
    pub(super) fn credentials_step(&mut self, result: Result<Credentials, SaslError>) -> Step {
        match result {
            Ok(credentials) => {
                self.state = State::Waiting;
                Step::Authenticate(credentials)
            }
            Err(SaslError::Cancelled) => {
                self.refuse(SmtpError::user(501, [5, 0, 0], "Authentication cancelled"))
            }
            Err(err) => self.refuse(SmtpError::syntax(
                501,
                [5, 5, 2],
                format!("Cannot decode: {err}"),
            )),
        }
    }

    /// Drains the octets of a refused chunk; then commands follow.
    fn next_drain(
        &mut self,
        mut receiver: DummyDataReceiver,
        resolver: &dyn RecipientResolver,
    ) -> Step {
        let mut bytes = self.input[self.pos..].iter();
        let done = receiver.ingest(&mut bytes);
        self.pos = self.input.len() - bytes.as_slice().len();
        if done {
            self.state = State::Command;
            return self.next(resolver);
        }
        self.state = State::DrainChunk(receiver);
        Step::NeedInput
    }

    pub(super) fn next_bdat(&mut self, mut receiver: ChunkReceiver) -> Step {
        let limit = self.params.max_message_size;
        let Some(tx) = self.tx.as_mut() else {
            self.state = State::Command;
            return Step::NeedInput;
        };
        let input = &self.input[self.pos..];
        let (consumed, end) = receiver.ingest(input, &mut tx.bdat_line_ends, &mut tx.body, limit);
        self.pos += consumed;
        match end {
            None => {
                self.state = State::Bdat(receiver);
                Step::NeedInput
            }
            Some(ChunkEnd::TooBig) => {
                // RFC 3030 §2: the transaction failed; later chunks are refused (no MAIL).
                self.tx = None;
                self.state = State::Command;
                self.refuse(too_big(limit))
            }
            Some(ChunkEnd::Complete) if receiver.is_last() => match self.tx.take() {
                Some(tx) => {
                    self.state = State::Waiting;
                    Step::Deliver(Box::new(tx))
                }
                None => Step::NeedInput,
            },
            Some(ChunkEnd::Complete) => {
                self.state = State::Command;
                let size = tx.body.len();
                self.reply(Reply::new(
                    250,
                    [2, 0, 0],
                    format!("{size} octets received"),
                ))
            }
        }
    }

    /// A positive reply (or the closing `221`/`421`).
    pub(super) fn reply(&mut self, reply: Reply) -> Step {
        if reply.code == 421 || reply.code == 221 {
            self.state = State::Closed;
        }
        Step::Reply(reply)
    }

    /// A refusal, counted; past `max_errors` the session ends with `421`.
    pub(super) fn refuse(&mut self, mut err: SmtpError) -> Step {
        let Some(reply) = err.reply_mut() else {
            return Step::Refuse(err);
        };
        if reply.code == 421 {
            self.state = State::Closed;
            return Step::Refuse(err);
        }
        self.errors += 1;
        if self.errors >= self.params.max_errors {
            self.state = State::Closed;
            reply
                .lines
                .push("Too many errors, closing the connection".to_string());
            reply.code = 421;
            reply.enhanced = Some([4, 7, 0]);
        }
        Step::Refuse(err)
    }

    /// A reply or a refusal.
    pub(super) fn answer(&mut self, answer: Result<Reply, SmtpError>) -> Step {
        match answer {
            Ok(reply) => self.reply(reply),
            Err(err) => self.refuse(err),
        }
    }
}

/// A `334` challenge of the LOGIN mechanism.
pub(super) fn login_challenge(text: &str) -> Reply {
    Reply::plain(334, vec![text.to_string()])
}

fn line_too_long() -> SmtpError {
    SmtpError::syntax(
        500,
        [5, 5, 2],
        format!("Line too long (limit {MAX_COMMAND_LINE} bytes)"),
    )
}

/// The request with its declared sizes as [`sizes`] reads them from `line` (saturated, never
/// wrapped around).
fn with_declared_sizes(request: Request<String>, line: &[u8]) -> Request<String> {
    match request {
        Request::Bdat {
            chunk_size,
            is_last,
        } => Request::Bdat {
            chunk_size: sizes::bdat_chunk_size(line).unwrap_or(chunk_size),
            is_last,
        },
        Request::Mail { mut from } => {
            from.size = from.size.max(sizes::mail_size(line).unwrap_or(0));
            Request::Mail { from }
        }
        other => other,
    }
}

pub(super) fn too_big(limit: usize) -> SmtpError {
    SmtpError::user(
        552,
        [5, 3, 4],
        format!("Message size exceeds fixed maximum message size ({limit} bytes)"),
    )
}

fn parse_error_reply(err: ParseError) -> SmtpError {
    SmtpError::Syntax(match err {
        ParseError::UnknownCommand => Reply::new(500, [5, 5, 1], "Command unrecognized"),
        ParseError::InvalidSenderAddress => Reply::new(501, [5, 1, 7], "Bad sender address syntax"),
        ParseError::InvalidRecipientAddress => {
            Reply::new(501, [5, 1, 3], "Bad recipient address syntax")
        }
        ParseError::SyntaxError { syntax } => {
            Reply::new(501, [5, 5, 4], format!("Syntax: {syntax}"))
        }
        ParseError::InvalidParameter { param } => {
            Reply::new(501, [5, 5, 4], format!("Invalid value for {param}"))
        }
        ParseError::UnsupportedParameter { param } => Reply::new(
            555,
            [5, 5, 4],
            format!(
                "Unsupported parameter {}",
                param.chars().take(64).collect::<String>()
            ),
        ),
        ParseError::NeedsMoreData { .. }
        | ParseError::ResponseTooLong
        | ParseError::InvalidResponse { .. } => Reply::new(500, [5, 5, 2], "Syntax error"),
    })
}
