//! Policy questions of the core: at connect, EHLO/HELO, MAIL and RCPT the session stops with
//! [`Step::Check`](super::proto::Step::Check); the driver asks the policy engine with
//! [`Session::query`] and reports the verdict with [`Session::checked`], which finishes the
//! command (like the authenticate step). The message itself is checked after DATA by the
//! inbound processing.

use super::error::SmtpError;
use super::pending::{Handling, Pending};
use super::proto::{Session, State};
use super::reply::Reply;
use crate::policy::{Client, Destination, Query, Stage, Verdict};

impl Session {
    /// The question the session waits on, with `client`'s facts (after [`Step::Check`]).
    pub fn query<'a>(&'a self, client: &'a Client) -> Option<Query<'a>> {
        let State::Checking(pending) = &self.state else {
            return None;
        };
        let sender = self.tx.as_ref().map_or("", |tx| tx.mail_from.as_str());
        let stage = match pending {
            Pending::Connect => Stage::Connect,
            Pending::Helo(helo) => Stage::Helo { name: &helo.name },
            Pending::Mail(tx) => Stage::Mail {
                sender: &tx.mail_from,
            },
            Pending::Rcpt { path, destination } => Stage::Rcpt {
                sender,
                recipient: path,
                destination,
            },
        };
        Some(Query {
            stage,
            client,
            helo: self.helo.as_ref().map(|helo| helo.name.as_str()),
            user: self.user.as_ref(),
        })
    }

    /// Finishes the command that waited for `verdict`.
    pub fn checked(&mut self, verdict: Verdict) {
        let State::Checking(pending) = std::mem::replace(&mut self.state, State::Command) else {
            return;
        };
        let refusal = match &verdict {
            Verdict::Reject(reply) | Verdict::TempFail(reply) => Some(reply.clone()),
            Verdict::Accept | Verdict::Discard | Verdict::Quarantine(_) => None,
        };
        let answer = match (pending, refusal) {
            (Pending::Connect, None) => {
                self.handling = Handling::from_verdict(&verdict);
                Ok(self.greeting())
            }
            (Pending::Connect, Some(reply)) => Err(self.refuse_connection(reply)),
            (Pending::Helo(helo), None) => {
                self.handling = Handling::from_verdict(&verdict);
                Ok(self.greet(helo))
            }
            (Pending::Mail(mut tx), None) => {
                self.handling.apply(&mut tx);
                Handling::from_verdict(&verdict).apply(&mut tx);
                self.tx = Some(tx);
                Ok(Reply::new(250, [2, 1, 0], "Sender OK"))
            }
            (Pending::Rcpt { path, destination }, None) => {
                self.add_recipient(path, destination, &verdict)
            }
            (_, Some(reply)) => Err(SmtpError::User(reply)),
        };
        self.pending = Some(answer);
    }

    /// A refusal at connect: `5xx` means the session may only QUIT (RFC 5321 §3.1), `4xx`
    /// ends it (`421`).
    fn refuse_connection(&mut self, mut reply: Reply) -> SmtpError {
        if reply.code < 500 {
            reply.code = 421;
            self.state = State::Closed;
        } else {
            self.state = State::Refused;
        }
        SmtpError::User(reply)
    }

    fn add_recipient(
        &mut self,
        path: String,
        destination: Destination,
        verdict: &Verdict,
    ) -> Result<Reply, SmtpError> {
        let Some(tx) = self.tx.as_mut() else {
            return Err(SmtpError::user(503, [5, 5, 1], "Need MAIL before RCPT"));
        };
        Handling::from_verdict(verdict).apply(tx);
        match destination {
            Destination::Local(account) => {
                if !tx.accounts.contains(&account) {
                    tx.accounts.push(account);
                }
            }
            Destination::Remote => {
                if !tx.remote.contains(&path) {
                    tx.remote.push(path.clone());
                }
            }
        }
        tx.rcpt_to.push(path);
        Ok(Reply::new(250, [2, 1, 5], "Recipient OK"))
    }
}
