//! The SMTP server session as a sans-I/O state machine: bytes in, [`Step`]s out.
//!
//! The driver (`session.rs`) pushes what it reads with [`Session::push_input`] and calls
//! [`Session::next`] until it asks for input; replies for pipelined commands come out in order.
//! When a message is complete the session yields [`Step::Deliver`] and waits for
//! [`Session::delivered`]. No I/O, clock or store here, so every rule is unit-testable.

use smtp_proto::request::receiver::{
    BdatReceiver, DataReceiver, DummyDataReceiver, DummyLineReceiver, RequestReceiver,
};
use smtp_proto::{Error as ParseError, Request};

use super::commands::Transaction;
use super::reply::Reply;
use crate::address::Address;
use crate::auth::Recipient;

/// Longest command line accepted, CRLF included (smtp-proto's own buffer limit).
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
}

/// Answers "where does this address lead" for RCPT; the directory implements it.
pub trait RecipientResolver {
    fn resolve(&self, address: &Address) -> Recipient;
    fn is_local_domain(&self, domain: &str) -> bool;
    /// The mailbox behind `<postmaster>` without a domain, if any (RFC 5321 §4.5.1).
    fn postmaster(&self) -> Option<Address>;
}

/// What the driver must do next.
#[derive(Debug)]
pub enum Step {
    /// Send this reply (the driver may hold replies until it needs input: pipelining).
    Reply(Reply),
    /// Everything buffered is consumed: read more (with the data timeout when `in_data()`).
    NeedInput,
    /// A complete message: store it durably, then call [`Session::delivered`].
    Deliver(Box<Transaction>),
    /// Send pending replies and close the connection.
    Close,
}

pub(super) enum State {
    Command,
    /// Skipping the rest of an over-long command line.
    DiscardLine(DummyLineReceiver),
    Data(DataReceiver),
    /// Draining a message or chunk that will be refused; then send `reply`.
    Discard(DummyDataReceiver, Reply),
    Bdat(BdatReceiver),
    /// A delivery is in progress: no input is processed until `delivered`.
    Delivering,
    Closed,
}

pub struct Session {
    pub(super) params: SessionParams,
    pub(super) state: State,
    receiver: RequestReceiver,
    input: Vec<u8>,
    pos: usize,
    pub(super) helo: Option<Helo>,
    pub(super) tx: Option<Transaction>,
    errors: u32,
    pending: Option<Reply>,
}

#[derive(Debug, Clone)]
pub struct Helo {
    pub name: String,
    pub extended: bool,
}

impl Session {
    pub fn new(params: SessionParams) -> Session {
        Session {
            params,
            state: State::Command,
            receiver: RequestReceiver::default(),
            input: Vec::new(),
            pos: 0,
            helo: None,
            tx: None,
            errors: 0,
            pending: None,
        }
    }

    /// The `220` greeting.
    pub fn greeting(&self) -> Reply {
        Reply::plain(
            220,
            vec![format!("{} ESMTP ics-mail", self.params.hostname)],
        )
    }

    /// True while message data is expected (the driver uses the data timeout then).
    pub fn in_data(&self) -> bool {
        matches!(
            self.state,
            State::Data(_) | State::Bdat(_) | State::Discard(..)
        )
    }

    /// Appends bytes read from the client. Call only after [`Step::NeedInput`].
    pub fn push_input(&mut self, bytes: &[u8]) {
        self.input.drain(..self.pos);
        self.pos = 0;
        self.input.extend_from_slice(bytes);
    }

    /// Reports the outcome of the [`Step::Deliver`] just handled.
    pub fn delivered(&mut self, outcome: Result<String, String>) {
        self.state = State::Command;
        self.tx = None;
        self.pending = Some(match outcome {
            Ok(id) => Reply::new(250, [2, 0, 0], format!("Ok: queued as {id}")),
            Err(id) => Reply::new(
                451,
                [4, 3, 0],
                format!("Local delivery failed, please try again later ({id})"),
            ),
        });
    }

    /// The next thing to do.
    pub fn next(&mut self, resolver: &dyn RecipientResolver) -> Step {
        if let Some(reply) = self.pending.take() {
            return self.reply(reply);
        }
        match std::mem::replace(&mut self.state, State::Closed) {
            State::Closed => Step::Close,
            State::Delivering => {
                self.state = State::Delivering;
                Step::NeedInput
            }
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
            discard @ State::Discard(..) => {
                self.state = discard;
                self.next_discard()
            }
            State::Data(receiver) => self.next_data(receiver),
            State::Bdat(receiver) => self.next_bdat(receiver),
        }
    }

    fn next_command(&mut self, resolver: &dyn RecipientResolver) -> Step {
        if self.pos >= self.input.len() {
            return Step::NeedInput;
        }
        let mut bytes = self.input[self.pos..].iter();
        let start = bytes.as_slice().len();
        let parsed = self.receiver.ingest(&mut bytes).map(Request::into_owned);
        let consumed = start - bytes.as_slice().len();
        self.pos += consumed;
        match parsed {
            Ok(_) if consumed > MAX_COMMAND_LINE => {
                self.reply(Reply::new(500, [5, 5, 2], "Line too long"))
            }
            Ok(request) => self.command(request, resolver),
            Err(ParseError::NeedsMoreData { .. }) => Step::NeedInput,
            Err(ParseError::ResponseTooLong) => {
                self.state = State::DiscardLine(DummyLineReceiver::default());
                self.reply(Reply::new(
                    500,
                    [5, 5, 2],
                    format!("Line too long (limit {MAX_COMMAND_LINE} bytes)"),
                ))
            }
            Err(err) => self.reply(parse_error_reply(err)),
        }
    }

    fn next_data(&mut self, mut receiver: DataReceiver) -> Step {
        let Some(tx) = self.tx.as_mut() else {
            self.state = State::Command;
            return Step::NeedInput;
        };
        // Everything read is fed at once: the body may pass the limit by at most one read
        // buffer before the check below stops it.
        let mut bytes = self.input[self.pos..].iter();
        let done = receiver.ingest(&mut bytes, &mut tx.body);
        self.pos = self.input.len() - bytes.as_slice().len();
        let limit = self.params.max_message_size;
        if done {
            self.state = State::Command;
            let tx = self.tx.take();
            return match tx {
                Some(tx) if tx.body.len() <= limit => {
                    self.state = State::Delivering;
                    Step::Deliver(Box::new(tx))
                }
                _ => self.reply(too_big(limit)),
            };
        }
        // Two bytes of slack: a pending "\r" may still turn out to end the message.
        if tx.body.len() > limit + 2 {
            self.tx = None;
            self.state = State::Discard(DummyDataReceiver::new_data(&receiver), too_big(limit));
            return self.next_discard();
        }
        self.state = State::Data(receiver);
        Step::NeedInput
    }

    /// Drains a refused message or chunk; its reply is sent once the end is seen.
    pub(super) fn next_discard(&mut self) -> Step {
        let State::Discard(mut receiver, reply) = std::mem::replace(&mut self.state, State::Closed)
        else {
            return Step::NeedInput;
        };
        let mut bytes = self.input[self.pos..].iter();
        let done = receiver.ingest(&mut bytes);
        self.pos = self.input.len() - bytes.as_slice().len();
        if done {
            self.state = State::Command;
            return self.reply(reply);
        }
        self.state = State::Discard(receiver, reply);
        Step::NeedInput
    }

    pub(super) fn next_bdat(&mut self, mut receiver: BdatReceiver) -> Step {
        let Some(tx) = self.tx.as_mut() else {
            self.state = State::Command;
            return Step::NeedInput;
        };
        let mut bytes = self.input[self.pos..].iter();
        let done = receiver.ingest(&mut bytes, &mut tx.body);
        self.pos = self.input.len() - bytes.as_slice().len();
        if !done {
            self.state = State::Bdat(receiver);
            return Step::NeedInput;
        }
        if receiver.is_last {
            self.state = State::Delivering;
            return match self.tx.take() {
                Some(tx) => Step::Deliver(Box::new(tx)),
                None => Step::NeedInput,
            };
        }
        self.state = State::Command;
        let size = tx.body.len();
        self.reply(Reply::new(
            250,
            [2, 0, 0],
            format!("{size} octets received"),
        ))
    }

    /// Counts errors; past `max_errors` the session ends with `421`.
    pub(super) fn reply(&mut self, reply: Reply) -> Step {
        if reply.is_error() && reply.code != 421 {
            self.errors += 1;
            if self.errors >= self.params.max_errors {
                self.state = State::Closed;
                let mut wire = reply;
                wire.lines
                    .push("Too many errors, closing the connection".to_string());
                wire.code = 421;
                wire.enhanced = Some([4, 7, 0]);
                return Step::Reply(wire);
            }
        }
        if reply.code == 421 || reply.code == 221 {
            self.state = State::Closed;
        }
        Step::Reply(reply)
    }
}

pub(super) fn too_big(limit: usize) -> Reply {
    Reply::new(
        552,
        [5, 3, 4],
        format!("Message size exceeds fixed maximum message size ({limit} bytes)"),
    )
}

fn parse_error_reply(err: ParseError) -> Reply {
    match err {
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
    }
}
