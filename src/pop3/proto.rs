//! The POP3 server session as a sans-I/O state machine (RFC 1939, 2449 CAPA, 2595 STLS,
//! 5034 AUTH). Bytes in, [`Step`]s out; the driver does the I/O, logins and file access.

use super::error::Pop3Error;
use super::response::{Code, Response};
use crate::auth::sasl::{self, Credentials, SaslError};

/// Longest command line (RFC 2449 allows 255; AUTH PLAIN responses may be longer).
pub const MAX_COMMAND_LINE: usize = 2048;

/// What `tls.mode` and the listener allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Security {
    /// STLS is offered (a certificate exists and `tls.mode` is not `none`).
    pub stls: bool,
    /// USER/PASS and AUTH allowed before TLS (`tls.mode` `none` or `optional`).
    pub auth_in_plaintext: bool,
}

/// One message of the maildrop as the session numbers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageInfo {
    pub uid: String,
    pub size: u64,
}

/// Why opening the maildrop after a login failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginError {
    Invalid,
    InUse,
    /// The store failed (the cause, for the log).
    Temporary(String),
}

#[derive(Debug)]
pub enum Step {
    Reply(Response),
    /// A refusal: log it at its level, send its response.
    Refuse(Pop3Error),
    NeedInput,
    /// Run the TLS handshake, then call [`Session::tls_started`].
    StartTls,
    /// Check credentials and lock + list the maildrop, then call [`Session::logged_in`].
    Authenticate(Credentials),
    /// Read message `index` (0-based) and call [`Session::message`]; `top` = body lines for TOP.
    Retrieve {
        index: usize,
        top: Option<usize>,
    },
    /// QUIT in the transaction state: delete these (0-based), then call [`Session::updated`].
    Update(Vec<usize>),
    Close,
}

#[derive(Debug)]
pub(super) enum State {
    Authorization {
        user: Option<String>,
    },
    /// Waiting for the client's response to an AUTH PLAIN continuation.
    SaslPlain,
    Transaction,
    /// The driver works (login, file read, update); input waits.
    Waiting,
    /// `+OK` to STLS is queued; next comes [`Step::StartTls`].
    StartTls,
    Closed,
}

pub struct Session {
    pub(super) security: Security,
    pub(super) tls_active: bool,
    pub(super) state: State,
    pub(super) messages: Vec<MessageInfo>,
    pub(super) deleted: Vec<bool>,
    input: Vec<u8>,
    pos: usize,
    errors: u32,
    max_errors: u32,
    /// The answer to a command that waited for the driver (login, file access).
    pending: Option<Result<Response, Pop3Error>>,
    /// The rest of an over-long line is being dropped up to its end.
    discarding_line: bool,
}

impl Session {
    pub fn new(security: Security, max_errors: u32) -> Session {
        Session {
            security,
            tls_active: false,
            state: State::Authorization { user: None },
            messages: Vec::new(),
            deleted: Vec::new(),
            input: Vec::new(),
            pos: 0,
            errors: 0,
            max_errors,
            pending: None,
            discarding_line: false,
        }
    }

    pub fn greeting(&self, hostname: &str) -> Response {
        Response::ok(format!("{hostname} POP3 ics-mail ready"))
    }

    pub fn set_tls_active(&mut self) {
        self.tls_active = true;
    }

    pub fn push_input(&mut self, bytes: &[u8]) {
        self.input.drain(..self.pos);
        self.pos = 0;
        self.input.extend_from_slice(bytes);
    }

    /// After STLS: back to the authorization state, buffered input dropped (RFC 2595 §4).
    pub fn tls_started(&mut self) {
        self.tls_active = true;
        self.input.clear();
        self.pos = 0;
        self.state = State::Authorization { user: None };
    }

    /// Result of [`Step::Authenticate`]: the maildrop's messages, or why not.
    pub fn logged_in(&mut self, result: Result<Vec<MessageInfo>, LoginError>) {
        self.pending = Some(match result {
            Ok(messages) => {
                let count = messages.len();
                let octets: u64 = messages.iter().map(|m| m.size).sum();
                self.deleted = vec![false; count];
                self.messages = messages;
                self.state = State::Transaction;
                Ok(Response::ok(format!(
                    "Logged in, {count} messages ({octets} octets)"
                )))
            }
            Err(error) => {
                self.state = State::Authorization { user: None };
                Err(match error {
                    LoginError::Invalid => {
                        Pop3Error::user_code(Code::Auth, "Authentication failed")
                    }
                    LoginError::InUse => Pop3Error::user_code(
                        Code::InUse,
                        "Mailbox is locked by another POP3 session",
                    ),
                    LoginError::Temporary(cause) => Pop3Error::server(
                        "Mailbox is temporarily unavailable, try again later",
                        format!("opening the maildrop: {cause}"),
                    ),
                })
            }
        });
    }

    /// Result of [`Step::Retrieve`]: the message in CRLF form (or why it could not be read).
    pub fn message(&mut self, index: usize, top: Option<usize>, content: std::io::Result<Vec<u8>>) {
        self.state = State::Transaction;
        self.pending = Some(match content {
            Ok(bytes) => {
                let size = self.messages.get(index).map_or(0, |m| m.size);
                Ok(match top {
                    Some(lines) => Response::Multi(String::new(), top_of(&bytes, lines)),
                    None => Response::Multi(format!("{size} octets"), bytes),
                })
            }
            Err(err) => Err(Pop3Error::server(
                "The message cannot be read now (deleted by another client?)",
                format!("reading message {}: {err}", index + 1),
            )),
        });
    }

    /// Result of [`Step::Update`].
    pub fn updated(&mut self, result: std::io::Result<()>) {
        self.state = State::Closed;
        self.pending = Some(match result {
            Ok(()) => Ok(Response::ok("Bye, deleted messages removed")),
            Err(err) => Err(Pop3Error::server(
                "Some deleted messages were not removed",
                format!("deleting at QUIT: {err}"),
            )),
        });
    }

    pub fn step(&mut self) -> Step {
        match self.pending.take() {
            Some(Ok(response)) => return Step::Reply(response),
            Some(Err(err)) => return self.refuse(err),
            None => {}
        }
        match self.state {
            State::Closed => return Step::Close,
            State::Waiting => return Step::NeedInput,
            State::StartTls => {
                self.state = State::Waiting;
                return Step::StartTls;
            }
            _ => {}
        }
        let Some(line) = self.take_line() else {
            return Step::NeedInput;
        };
        let line = match line {
            Ok(line) => line,
            Err(err) => return self.refuse(err),
        };
        if matches!(self.state, State::SaslPlain) {
            self.state = State::Authorization { user: None };
            return self.credentials(sasl::decode_plain(&line));
        }
        self.command(&line)
    }

    /// The next complete line, or a refusal for an over-long one (then drained).
    fn take_line(&mut self) -> Option<Result<String, Pop3Error>> {
        let pending = &self.input[self.pos..];
        match pending.iter().position(|&b| b == b'\n') {
            Some(end) => {
                let discarding = std::mem::take(&mut self.discarding_line);
                let line = &pending[..end];
                self.pos += end + 1;
                if discarding || end > MAX_COMMAND_LINE {
                    return Some(Err(too_long()));
                }
                let line = String::from_utf8_lossy(line);
                Some(Ok(line.trim_end_matches('\r').to_string()))
            }
            None if pending.len() > MAX_COMMAND_LINE => {
                // Drop what we have and the rest of the line when it comes.
                self.pos = self.input.len();
                self.discarding_line = true;
                None
            }
            None => None,
        }
    }

    pub(super) fn has_pending_input(&self) -> bool {
        self.pos < self.input.len()
    }

    pub(super) fn credentials(&mut self, result: Result<Credentials, SaslError>) -> Step {
        match result {
            Ok(credentials) => {
                self.state = State::Waiting;
                Step::Authenticate(credentials)
            }
            Err(SaslError::Cancelled) => self.refuse(Pop3Error::user("Authentication cancelled")),
            Err(err) => self.refuse(Pop3Error::syntax(format!("Cannot decode: {err}"))),
        }
    }

    /// A refusal, counted; past the limit the session ends.
    pub(super) fn refuse(&mut self, err: Pop3Error) -> Step {
        self.errors += 1;
        if self.errors >= self.max_errors {
            self.state = State::Closed;
            return Step::Refuse(Pop3Error::user("Too many errors, closing the connection"));
        }
        Step::Refuse(err)
    }
}

fn too_long() -> Pop3Error {
    Pop3Error::syntax(format!("Line too long (limit {MAX_COMMAND_LINE} bytes)"))
}

/// Headers, the blank line and the first `lines` body lines of a CRLF message (RFC 1939 TOP).
fn top_of(message: &[u8], lines: usize) -> Vec<u8> {
    let mut end = crate::mailtext::header_end(message);
    for _ in 0..lines {
        match message[end..].windows(2).position(|w| w == b"\r\n") {
            Some(pos) => end += pos + 2,
            None => {
                end = message.len();
                break;
            }
        }
    }
    message[..end].to_vec()
}
