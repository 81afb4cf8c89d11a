//! The sans-I/O core of one LDAP connection: a decoded request in, what to send and what to do
//! out. It keeps who the connection is bound as and whether TLS is on; the driver
//! (`session.rs`) reads, writes, runs the TLS handshake and asks the authenticator.

use std::net::IpAddr;

use ldap3_proto::control::LdapControl;
use ldap3_proto::proto::{
    LdapBindResponse, LdapExtendedRequest, LdapExtendedResponse, LdapMsg, LdapOp, LdapResult,
    LdapResultCode,
};
use tracing::debug;

use super::access::{may_read_entries, Denial, Identity};
use super::bind::{classify, Attempt};
use super::entries::Book;
use super::error::LdapError;
use super::rootdse::{STARTTLS_OID, WHOAMI_OID};
use super::search::{self, result, View};
use crate::address::Address;
use crate::auth::sasl::Credentials;
use crate::auth::{AuthFailure, Directory};

/// What a request is judged under: the settings in force when it arrives.
pub struct Conditions<'a> {
    pub book: &'a Book,
    pub directory: &'a Directory,
    pub peer: IpAddr,
    /// `addressBook.publishToClients`.
    pub publish_to_clients: bool,
    /// There is a certificate and `tls.mode` is not `none`.
    pub starttls_offered: bool,
    /// `tls.mode` lets a password travel on this connection as it is now.
    pub passwords_allowed: bool,
}

/// What the driver does next.
#[derive(Debug)]
pub enum Step {
    /// Send these messages, then read the next request.
    Send(Vec<LdapMsg>),
    /// Check these credentials, then give the outcome to [`Session::bound`].
    Authenticate {
        msgid: i32,
        credentials: Credentials,
    },
    /// Send this response in the clear, run the TLS handshake, then [`Session::tls_started`].
    StartTls(LdapMsg),
    /// The client unbound: close.
    Close,
}

pub struct Session {
    identity: Identity,
    tls: bool,
}

impl Session {
    /// A new, anonymous connection; `tls` on the LDAPS port.
    pub fn new(tls: bool) -> Session {
        Session {
            identity: Identity::Anonymous,
            tls,
        }
    }

    pub fn tls_started(&mut self) {
        self.tls = true;
    }

    /// One request. An error is the client's breach of the protocol: the connection closes.
    pub fn handle(&mut self, message: LdapMsg, now: &Conditions<'_>) -> Result<Step, LdapError> {
        let LdapMsg { msgid, op, ctrl } = message;
        let reply = |op| Step::Send(vec![message_of(msgid, op, Vec::new())]);
        let read_only = |code: fn(LdapResult) -> LdapOp| {
            reply(code(result(
                LdapResultCode::UnwillingToPerform,
                "the address book is read-only",
            )))
        };
        Ok(match op {
            LdapOp::BindRequest(request) => {
                // Whatever the outcome, the connection is anonymous until a bind succeeds
                // (RFC 4513 §4).
                self.identity = Identity::Anonymous;
                match classify(&request, now.passwords_allowed) {
                    Attempt::Anonymous => reply(bind_response(result(LdapResultCode::Success, ""))),
                    Attempt::Refused(code, message) => reply(bind_response(result(code, message))),
                    Attempt::Password(credentials) => Step::Authenticate { msgid, credentials },
                }
            }
            LdapOp::UnbindRequest => Step::Close,
            LdapOp::SearchRequest(request) => {
                let outcome = search::run(&self.view(now), &request, &ctrl);
                debug!(
                    base = request.base,
                    filter = ?request.filter,
                    entries = outcome.entries.len(),
                    code = ?outcome.result.code,
                    "search"
                );
                let mut messages: Vec<LdapMsg> = outcome
                    .entries
                    .into_iter()
                    .map(|entry| message_of(msgid, LdapOp::SearchResultEntry(entry), Vec::new()))
                    .collect();
                let done = LdapOp::SearchResultDone(outcome.result);
                messages.push(message_of(msgid, done, outcome.controls));
                Step::Send(messages)
            }
            LdapOp::CompareRequest(request) => reply(LdapOp::CompareResult(search::compare(
                &self.view(now),
                &request,
            ))),
            LdapOp::ExtendedRequest(request) => self.extended(msgid, &request, now),
            LdapOp::AddRequest(_) => read_only(LdapOp::AddResponse),
            LdapOp::ModifyRequest(_) => read_only(LdapOp::ModifyResponse),
            LdapOp::DelRequest(_) => read_only(LdapOp::DelResponse),
            LdapOp::ModifyDNRequest(_) => read_only(LdapOp::ModifyDNResponse),
            // Every search is answered whole before the next request is read.
            LdapOp::AbandonRequest(_) => Step::Send(Vec::new()),
            other => return Err(LdapError::NotARequest(op_name(&other))),
        })
    }

    /// The outcome of the authenticator for a [`Step::Authenticate`]: the bind response.
    pub fn bound(&mut self, msgid: i32, outcome: Result<Address, AuthFailure>) -> LdapMsg {
        let res = match outcome {
            Ok(account) => {
                self.identity = Identity::Account(account);
                result(LdapResultCode::Success, "")
            }
            Err(AuthFailure::Invalid) => {
                result(LdapResultCode::InvalidCredentials, "invalid credentials")
            }
        };
        message_of(msgid, bind_response(res), Vec::new())
    }

    fn view<'a>(&self, now: &Conditions<'a>) -> View<'a> {
        View {
            book: now.book,
            entries: self.may_read(now),
            starttls: now.starttls_offered && !self.tls,
        }
    }

    /// Whether this connection may read the entries now.
    fn may_read(&self, now: &Conditions<'_>) -> Result<(), Denial> {
        may_read_entries(
            &self.identity.in_force(now.directory),
            now.peer,
            now.publish_to_clients,
        )
    }

    fn extended(&self, msgid: i32, request: &LdapExtendedRequest, now: &Conditions<'_>) -> Step {
        let response = |code, message: &str, name: Option<&str>, value: Option<Vec<u8>>| {
            let op = LdapOp::ExtendedResponse(LdapExtendedResponse {
                res: result(code, message),
                name: name.map(str::to_string),
                value,
            });
            message_of(msgid, op, Vec::new())
        };
        let send = |message| Step::Send(vec![message]);
        match request.name.as_str() {
            STARTTLS_OID if self.tls => send(response(
                LdapResultCode::OperationsError,
                "TLS is already active",
                None,
                None,
            )),
            STARTTLS_OID if !now.starttls_offered => send(response(
                LdapResultCode::Unavailable,
                "TLS is not available",
                None,
                None,
            )),
            STARTTLS_OID => Step::StartTls(response(
                LdapResultCode::Success,
                "",
                Some(STARTTLS_OID),
                None,
            )),
            // RFC 4532: "u:<login>" bound, empty when anonymous.
            WHOAMI_OID => {
                let value = match self.identity.in_force(now.directory) {
                    Identity::Anonymous => Vec::new(),
                    Identity::Account(account) => format!("u:{account}").into_bytes(),
                };
                send(response(LdapResultCode::Success, "", None, Some(value)))
            }
            _ => send(response(
                LdapResultCode::ProtocolError,
                "unsupported extended operation",
                None,
                None,
            )),
        }
    }
}

fn message_of(msgid: i32, op: LdapOp, ctrl: Vec<LdapControl>) -> LdapMsg {
    LdapMsg { msgid, op, ctrl }
}

fn bind_response(res: LdapResult) -> LdapOp {
    LdapOp::BindResponse(LdapBindResponse {
        res,
        saslcreds: None,
    })
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
