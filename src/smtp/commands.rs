//! The reply to each SMTP command (RFC 5321 §4.1, RFC 1870 SIZE, RFC 3030 CHUNKING,
//! RFC 6531 SMTPUTF8). Pure functions of the session state.

use smtp_proto::request::receiver::DummyDataReceiver;
use smtp_proto::{
    MailFrom, RcptTo, Request, AUTH_LOGIN, AUTH_PLAIN, MAIL_BODY_8BITMIME, MAIL_BODY_BINARYMIME,
    MAIL_SMTPUTF8,
};

use super::chunk::ChunkReceiver;
use super::data::DataReceiver;
use super::error::SmtpError;
use super::pending::{Helo, Pending};
use super::proto::{login_challenge, too_big, RecipientResolver, SaslStep, Session, State, Step};
use super::reply::Reply;
use super::transaction::Transaction;
use crate::address::Address;
use crate::auth::sasl;
use crate::auth::Recipient;
use crate::policy::Destination;

fn ok(text: &str) -> Reply {
    Reply::new(250, [2, 0, 0], text)
}

fn bad_sequence(text: &str) -> SmtpError {
    SmtpError::user(503, [5, 5, 1], text)
}

fn not_implemented() -> SmtpError {
    SmtpError::user(502, [5, 5, 1], "Command not implemented")
}

impl Session {
    pub(super) fn command(
        &mut self,
        request: Request<String>,
        resolver: &dyn RecipientResolver,
    ) -> Step {
        let answer = match request {
            Request::Quit => Ok(Reply::new(221, [2, 0, 0], "Bye")),
            _ if matches!(self.state, State::Refused) => Err(bad_sequence(
                "This server refused the connection: send QUIT",
            )),
            Request::Ehlo { host } => return self.ehlo(host, true),
            Request::Helo { host } => return self.ehlo(host, false),
            Request::Mail { from } => match self.mail(from, resolver) {
                Ok(tx) => return self.check(Pending::Mail(tx)),
                Err(err) => Err(err),
            },
            Request::Rcpt { to } => match self.rcpt(to, resolver) {
                Ok(pending) => return self.check(pending),
                Err(err) => Err(err),
            },
            Request::Data => return self.data(),
            Request::Bdat {
                chunk_size,
                is_last,
            } => return self.bdat(chunk_size, is_last),
            Request::Rset => {
                self.tx = None;
                Ok(ok("Reset"))
            }
            Request::Noop { .. } => Ok(ok("OK")),
            Request::Vrfy { .. } => Ok(Reply::new(
                252,
                [2, 5, 2],
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Request::Help { .. } => Ok(Reply::new(214, [2, 0, 0], "See RFC 5321")),
            Request::Lhlo { .. } => Err(SmtpError::user(
                500,
                [5, 5, 1],
                "This is not an LMTP server",
            )),
            Request::StartTls => return self.starttls(),
            Request::Auth {
                mechanism,
                initial_response,
            } => return self.auth(mechanism, initial_response),
            Request::Expn { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => Err(not_implemented()),
        };
        self.answer(answer)
    }

    /// EHLO/HELO ends any transaction (RFC 5321 §4.1.4); the policy has its say on the name.
    fn ehlo(&mut self, name: String, extended: bool) -> Step {
        self.tx = None;
        self.check(Pending::Helo(Helo { name, extended }))
    }

    /// Stops for the policy's verdict on `pending` ([`Session::checked`] goes on).
    fn check(&mut self, pending: Pending) -> Step {
        self.state = State::Checking(pending);
        Step::Check
    }

    /// The reply to an accepted EHLO/HELO, which is now the session's.
    pub(super) fn greet(&mut self, helo: Helo) -> Reply {
        let params = &self.params;
        let greeting = format!(
            "{} Hello {} [{}]",
            params.hostname, helo.name, params.peer_ip
        );
        let extended = helo.extended;
        self.helo = Some(helo);
        let params = &self.params;
        if !extended {
            return Reply::plain(250, vec![greeting]);
        }
        let mut lines = vec![
            greeting,
            "PIPELINING".to_string(),
            format!("SIZE {}", params.max_message_size),
            "8BITMIME".to_string(),
            "ENHANCEDSTATUSCODES".to_string(),
            "CHUNKING".to_string(),
        ];
        if params.smtputf8 {
            lines.push("SMTPUTF8".to_string());
        }
        if params.security.starttls && !self.tls_active {
            lines.push("STARTTLS".to_string());
        }
        if self.auth_allowed() && self.user.is_none() {
            lines.push("AUTH PLAIN LOGIN".to_string());
        }
        Reply::plain(250, lines)
    }

    /// Passwords travel only where `tls.mode` allows: inside TLS, or anywhere unless `required`.
    fn auth_allowed(&self) -> bool {
        self.tls_active || self.params.security.auth_in_plaintext
    }

    fn starttls(&mut self) -> Step {
        let refusal = if self.tls_active {
            bad_sequence("TLS is already active")
        } else if !self.params.security.starttls {
            not_implemented()
        } else if self.has_pending_input() {
            // RFC 3207 §6 / CVE-2011-0411: nothing may be pipelined after STARTTLS.
            self.state = State::Closed;
            return Step::Refuse(SmtpError::user(
                554,
                [5, 5, 0],
                "Commands pipelined after STARTTLS are not allowed, closing",
            ));
        } else {
            self.state = State::StartTls;
            return Step::Reply(Reply::new(220, [2, 0, 0], "Ready to start TLS"));
        };
        self.refuse(refusal)
    }

    fn auth(&mut self, mechanism: u64, initial: String) -> Step {
        let refusal = if self.user.is_some() {
            Some(bad_sequence("Already authenticated"))
        } else if self.tx.is_some() {
            Some(bad_sequence(
                "AUTH is not allowed during a mail transaction",
            ))
        } else if self.helo.is_none() {
            Some(bad_sequence("Send EHLO first"))
        } else if !self.auth_allowed() {
            Some(SmtpError::user(
                538,
                [5, 7, 11],
                "Encryption required for requested authentication mechanism",
            ))
        } else {
            None
        };
        if let Some(err) = refusal {
            return self.refuse(err);
        }
        let initial = (!initial.is_empty()).then_some(initial);
        match (mechanism, initial) {
            (AUTH_PLAIN, Some(response)) => self.credentials_step(sasl::decode_plain(&response)),
            (AUTH_PLAIN, None) => {
                self.state = State::Sasl(SaslStep::PlainResponse);
                Step::Reply(Reply::plain(334, vec![String::new()]))
            }
            (AUTH_LOGIN, Some(user)) => match sasl::decode_login_user(&user) {
                Ok(user) => {
                    self.state = State::Sasl(SaslStep::LoginPassword { user });
                    Step::Reply(login_challenge(sasl::LOGIN_PASSWORD_CHALLENGE))
                }
                Err(err) => self.credentials_step(Err(err)),
            },
            (AUTH_LOGIN, None) => {
                self.state = State::Sasl(SaslStep::LoginUser);
                Step::Reply(login_challenge(sasl::LOGIN_USER_CHALLENGE))
            }
            _ => self.refuse(SmtpError::user(
                504,
                [5, 5, 4],
                "Unrecognized authentication mechanism",
            )),
        }
    }

    /// MAIL: the transaction it starts once the policy agrees, or the refusal.
    fn mail(
        &mut self,
        from: MailFrom<String>,
        resolver: &dyn RecipientResolver,
    ) -> Result<Transaction, SmtpError> {
        let Some(helo) = &self.helo else {
            return Err(bad_sequence("Send EHLO or HELO first"));
        };
        if self.tx.is_some() {
            return Err(bad_sequence("Nested MAIL command"));
        }
        if self.params.security.submission && self.user.is_none() {
            return Err(SmtpError::user(530, [5, 7, 0], "Authentication required"));
        }
        if let Some(user) = &self.user {
            let owned =
                Address::parse(&from.address).is_ok_and(|sender| resolver.owns(user, &sender));
            if !owned {
                return Err(SmtpError::user(
                    553,
                    [5, 7, 1],
                    format!(
                        "<{}>: Sender address rejected: not owned by user {user}",
                        from.address
                    ),
                ));
            }
        }
        let smtputf8 = from.flags & MAIL_SMTPUTF8 != 0;
        if smtputf8 && !self.params.smtputf8 {
            // RFC 6531 §3.7.4.1's code for mail that needs SMTPUTF8 where it is not offered.
            return Err(SmtpError::user(
                553,
                [5, 6, 7],
                "SMTPUTF8 is turned off on this server",
            ));
        }
        if from.flags & MAIL_BODY_BINARYMIME != 0 {
            return Err(SmtpError::user(
                555,
                [5, 5, 4],
                "BODY=BINARYMIME is not supported",
            ));
        }
        if !from.address.is_ascii() && !smtputf8 {
            return Err(non_ascii_refused());
        }
        if from.size > self.params.max_message_size {
            return Err(too_big(self.params.max_message_size));
        }
        Ok(Transaction {
            mail_from: from.address,
            smtputf8,
            eight_bit: from.flags & MAIL_BODY_8BITMIME != 0,
            helo: helo.name.clone(),
            esmtp: helo.extended,
            tls: self.tls_active,
            authenticated: self.user.is_some(),
            ..Transaction::default()
        })
    }

    /// RCPT: where the recipient leads (for the policy to judge), or the refusal.
    fn rcpt(
        &mut self,
        to: RcptTo<String>,
        resolver: &dyn RecipientResolver,
    ) -> Result<Pending, SmtpError> {
        let Some(tx) = self.tx.as_ref() else {
            return Err(bad_sequence("Need MAIL before RCPT"));
        };
        if !to.address.is_ascii() && !tx.smtputf8 {
            return Err(non_ascii_refused());
        }
        if tx.rcpt_to.len() >= self.params.max_recipients {
            return Err(SmtpError::user(452, [4, 5, 3], "Too many recipients"));
        }
        let destination = resolve(&to.address, resolver)?;
        Ok(Pending::Rcpt {
            path: to.address,
            destination,
        })
    }

    fn data(&mut self) -> Step {
        if let Err(err) = self.ready_for_data(false) {
            return self.refuse(err);
        }
        self.state = State::Data(DataReceiver::new(self.params.max_message_size));
        Step::Reply(Reply::plain(
            354,
            vec!["End data with <CR><LF>.<CR><LF>".to_string()],
        ))
    }

    /// A chunk that cannot be taken is refused at once (its size is known now; waiting for
    /// octets that may never come helps nobody) and its octets are drained as they arrive.
    fn bdat(&mut self, chunk_size: usize, is_last: bool) -> Step {
        let limit = self.params.max_message_size;
        let refusal = match self.ready_for_data(true) {
            Err(err) => Some(err),
            Ok(()) => self.tx.as_ref().and_then(|tx| {
                let fits = tx
                    .body
                    .len()
                    .checked_add(chunk_size)
                    .is_some_and(|total| total <= limit);
                (!fits).then(|| too_big(limit))
            }),
        };
        if let Some(err) = refusal {
            self.tx = None;
            self.state = State::DrainChunk(DummyDataReceiver::new_bdat(chunk_size));
            return self.refuse(err);
        }
        if let Some(tx) = self.tx.as_mut() {
            tx.chunking = true;
        }
        // No reserve(chunk_size): memory grows with the octets that actually arrive.
        self.next_bdat(ChunkReceiver::new(chunk_size, is_last))
    }

    /// MAIL and at least one accepted RCPT are needed; DATA and BDAT don't mix.
    fn ready_for_data(&self, bdat: bool) -> Result<(), SmtpError> {
        match &self.tx {
            None => Err(bad_sequence("Need MAIL command")),
            Some(tx) if tx.accounts.is_empty() && tx.remote.is_empty() => {
                Err(SmtpError::user(554, [5, 5, 1], "No valid recipients"))
            }
            Some(tx) if tx.chunking && !bdat => Err(bad_sequence("DATA is not allowed after BDAT")),
            Some(_) => Ok(()),
        }
    }
}

fn non_ascii_refused() -> SmtpError {
    SmtpError::user(
        553,
        [5, 6, 7],
        "Non-ASCII addresses need MAIL FROM with SMTPUTF8",
    )
}

/// Where a forward path leads, or the refusal: an unknown user of a local domain gets
/// `550 5.1.1`; whether a remote one may be relayed to is the policy's call.
fn resolve(path: &str, resolver: &dyn RecipientResolver) -> Result<Destination, SmtpError> {
    let unknown = || {
        SmtpError::user(
            550,
            [5, 1, 1],
            format!("<{path}>: Recipient address rejected: user unknown"),
        )
    };
    if path.is_empty() {
        // smtp-proto reports "<postmaster>" as the empty path.
        return resolver
            .postmaster()
            .map(Destination::Local)
            .ok_or_else(unknown);
    }
    match Address::parse(path) {
        Ok(address) => match resolver.resolve(&address) {
            Recipient::Local(account) => Ok(Destination::Local(account)),
            Recipient::UnknownLocal => Err(unknown()),
            Recipient::Remote => Ok(Destination::Remote),
        },
        // Unparseable (quoted routing, `%`, literals…): "unknown user" for a local domain,
        // and never relayed (there is no telling where it would lead).
        Err(_) => {
            let domain = path.rsplit('@').next().unwrap_or("");
            let local = crate::address::normalize_domain(domain)
                .is_some_and(|d| resolver.is_local_domain(&d));
            Err(if local {
                unknown()
            } else {
                SmtpError::user(554, [5, 7, 1], format!("<{path}>: Relay access denied"))
            })
        }
    }
}
