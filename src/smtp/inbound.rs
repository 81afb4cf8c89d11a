//! What happens to a message once its data is in (RFC 5321 §4.1.1.4): the policy's word on
//! the whole message, trace headers, then the outbound queue for remote recipients and the
//! mailboxes of local ones — `Accepted` only once all of it is durable (file and directory
//! fsync'd). One typed [`Outcome`], turned into the reply in one place
//! ([`Outcome::reply`]).

use std::sync::Arc;

use tracing::{info, warn};

use super::error::SmtpError;
use super::notice::quarantine_notice;
use super::reply::Reply;
use super::trace::{trace_headers, TraceInfo};
use super::transaction::Transaction;
use crate::filter::subject::recode_subject;
use crate::filter::verify::{self, Envelope};
use crate::policy::{Client, Engine, Query, Stage, Verdict};
use crate::queue::{NewMessage, Outbound};
use crate::settings::Settings;
use crate::stats::{self, Event};
use crate::store::space::is_out_of_space_anywhere;
use crate::store::{to_maildir_form, MailStore};

/// What became of a message.
#[derive(Debug)]
pub enum Outcome {
    /// Stored and queued durably.
    Accepted { id: String },
    /// Accepted, then dropped as a policy said.
    Discarded { id: String },
    /// The recipients got a notice instead, with the message attached.
    Quarantined { id: String },
    /// The policy refused the message (a 5xx or 4xx reply).
    Refused(Reply),
    /// Storing or queueing failed: nothing was kept, the client must try again.
    Failed { id: String, failure: StoreFailure },
}

impl Outcome {
    /// The answer to the end of the data: `250`, or the refusal (a failure's cause goes to
    /// the log, the client learns the id to quote).
    pub fn answer(self) -> Result<Reply, SmtpError> {
        match self {
            Outcome::Accepted { id } | Outcome::Discarded { id } | Outcome::Quarantined { id } => {
                Ok(Reply::new(250, [2, 0, 0], format!("Ok: queued as {id}")))
            }
            Outcome::Refused(reply) => Err(SmtpError::User(reply)),
            Outcome::Failed { id, failure } => Err(SmtpError::Server {
                reply: failure.reply(&id),
                cause: failure.cause,
            }),
        }
    }
}

/// Why a message could not be kept.
#[derive(Debug)]
pub struct StoreFailure {
    /// For the log: what failed for whom.
    pub cause: String,
    /// The disk (or the file system quota) is full.
    pub out_of_space: bool,
}

impl StoreFailure {
    /// Both are temporary: a full disk is `452 4.3.1` (RFC 5321 §4.2.3, RFC 3463 "mail system
    /// full"), as Postfix answers; anything else `451 4.3.0`.
    fn reply(&self, id: &str) -> Reply {
        if self.out_of_space {
            Reply::new(
                452,
                [4, 3, 1],
                format!("Insufficient system storage, please try again later ({id})"),
            )
        } else {
            Reply::new(
                451,
                [4, 3, 0],
                format!("Local delivery failed, please try again later ({id})"),
            )
        }
    }
}

/// Outgoing mail (docs/filters.md): sent by a logged-in client, or relayed to another domain
/// (which only logged-in and whitelisted clients may).
fn is_outgoing(logged_in: bool, tx: &Transaction) -> bool {
    logged_in || !tx.remote.is_empty()
}

/// What is written for one message: its trace fields, the body for the local mailboxes (the
/// signed one for local-to-local submission) and its queue id.
struct Stored<'a> {
    trace: &'a str,
    local_body: &'a [u8],
    id: &'a str,
    first_delay_minutes: u32,
}

/// The message with our `Authentication-Results:` on top, forged ones removed (`dkim.verify`,
/// docs/filters.md). Never fails: a check that cannot be made is a `temperror` result.
async fn authentication_results(
    settings: &Settings,
    tx: &Transaction,
    arrival: &Arrival<'_>,
) -> Vec<u8> {
    let hostname = settings.hostname.as_str();
    let envelope = Envelope {
        ip: arrival.client.ip,
        helo: &tx.helo,
        mail_from: &tx.mail_from,
    };
    let field = match settings.authenticator() {
        Some(authenticator) => {
            verify::authentication_results(
                &authenticator,
                &tx.body,
                &envelope,
                hostname,
                verify::CHECK_TIMEOUT,
            )
            .await
        }
        None => verify::unavailable(hostname),
    };
    let (body, removed) = verify::replace_results(&tx.body, &field, hostname);
    if removed > 0 {
        warn!(
            id = arrival.id,
            removed, "removed Authentication-Results fields claiming to be ours"
        );
    }
    info!(id = arrival.id, results = %verify::summary(&field), "authentication results");
    body
}

/// `body` signed with the key of its `From:` domain, `None` when it has none (or signing
/// failed, logged: the message then goes unsigned rather than not at all).
fn dkim_signed(settings: &Settings, body: &[u8], id: &str) -> Option<Vec<u8>> {
    match settings.dkim_keys().signed(body) {
        Ok(signed) => signed,
        Err(err) => {
            warn!(id, "not DKIM-signed: {err}");
            None
        }
    }
}

/// Where messages go: the mail store and the outbound queue.
pub struct Inbound {
    pub store: Arc<MailStore>,
    pub outbound: Outbound,
}

/// The facts of the session a message came in.
pub struct Arrival<'a> {
    pub id: &'a str,
    pub client: &'a Client,
    /// The client's address as written in the Received header.
    pub peer_ip: &'a str,
    pub user: Option<&'a crate::address::Address>,
}

impl Inbound {
    /// Takes a complete message: asks the policy, then stores and queues it.
    pub async fn accept(
        &self,
        engine: &Engine,
        settings: &Settings,
        tx: Transaction,
        arrival: &Arrival<'_>,
    ) -> Outcome {
        let id = arrival.id.to_string();
        let hostname = settings.hostname.as_str();
        let query = Query {
            stage: Stage::Data {
                sender: &tx.mail_from,
                recipients: &tx.rcpt_to,
                accounts: &tx.accounts,
                remote: &tx.remote,
                message: &tx.body,
            },
            client: arrival.client,
            helo: Some(&tx.helo),
            user: arrival.user,
        };
        let verdict = engine.check(settings, &query).await;
        let mut tx = tx;
        match verdict {
            Verdict::Accept => {}
            Verdict::Reject(reply) | Verdict::TempFail(reply) => return Outcome::Refused(reply),
            Verdict::Discard => tx.discard = true,
            Verdict::Quarantine(notice) => tx.quarantine = Some(notice),
        }
        if tx.discard {
            info!(id, from = %tx.mail_from, to = %tx.rcpt_to.join(","), "discarded by policy");
            return Outcome::Discarded { id };
        }
        let outgoing = is_outgoing(arrival.user.is_some(), &tx);
        if settings.model.dkim.verify && !outgoing {
            tx.body = authentication_results(settings, &tx, arrival).await;
        }
        if settings.model.recode_subject_utf8 && outgoing {
            if let Some(recoded) = recode_subject(&tx.body) {
                info!(id, "subject recoded to UTF-8");
                tx.body = recoded;
            }
        }
        let quarantined = tx.quarantine.take();
        if let Some(notice) = &quarantined {
            tx.body = quarantine_notice(hostname, &id, notice, &tx.body);
            info!(id, from = %tx.mail_from, to = %tx.rcpt_to.join(","), "quarantined: {notice}");
        }
        let trace = trace_headers(
            &tx,
            &TraceInfo {
                peer_ip: arrival.peer_ip,
                peer_name: arrival.client.name.verified(),
                hostname,
                id: &id,
            },
        );
        // Local-to-local submission is signed here, last (docs/filters.md); what the queue
        // sends is signed there, after its own rewriting.
        let signed_local = (settings.model.dkim.sign && arrival.user.is_some())
            .then(|| dkim_signed(settings, &tx.body, &id))
            .flatten();
        let first_delay = settings.queue.delay_min_minutes;
        let stored = Stored {
            trace: &trace,
            local_body: signed_local.as_deref().unwrap_or(&tx.body),
            id: &id,
            first_delay_minutes: first_delay,
        };
        if let Err(failure) = self.store_and_queue(&tx, &stored).await {
            return Outcome::Failed { id, failure };
        }
        stats::count(Event::Received);
        match quarantined {
            Some(_) => Outcome::Quarantined { id },
            None => Outcome::Accepted { id },
        }
    }

    /// Queues the message for its remote recipients and stores it in every local recipient's
    /// mailbox; `Ok` only once all of it is durable. On failure nothing stays queued, and the
    /// error says what failed for whom.
    async fn store_and_queue(
        &self,
        tx: &Transaction,
        stored: &Stored<'_>,
    ) -> Result<(), StoreFailure> {
        let (trace, id) = (stored.trace, stored.id);
        let rcpts = tx.rcpt_to.join(",");
        let failed = |what: &str, err: anyhow::Error| StoreFailure {
            cause: format!(
                "{what} of {id} from <{}> to {rcpts} failed: {err:#}",
                tx.mail_from
            ),
            out_of_space: is_out_of_space_anywhere(&err),
        };
        let queued = !tx.remote.is_empty();
        if queued {
            self.enqueue(tx, trace, id, stored.first_delay_minutes)
                .await
                .map_err(|err| failed("queueing", err))?;
        }
        if !tx.accounts.is_empty() {
            let message = to_maildir_form(trace, stored.local_body);
            let store = self.store.clone();
            let accounts = tx.accounts.clone();
            let size = message.len();
            let result = tokio::task::spawn_blocking(move || store.deliver(&accounts, &message))
                .await
                .map_err(anyhow::Error::from)
                .and_then(|r| r.map_err(anyhow::Error::from));
            if let Err(err) = result {
                if queued {
                    if let Err(err) = self.outbound.cancel(id) {
                        warn!(id, "cannot take the message back from the queue: {err:#}");
                    }
                }
                return Err(failed("delivery", err));
            }
            info!(id, from = %tx.mail_from, to = %rcpts, size, "delivered");
            for _ in &tx.accounts {
                stats::count(Event::Delivered);
            }
        }
        if queued {
            info!(id, from = %tx.mail_from, remote = %tx.remote.join(","), size = tx.body.len(), "queued");
            stats::count(Event::Queued);
            self.outbound.kick(id.to_string());
        }
        Ok(())
    }

    /// Spools the message (Received header first, CRLF wire form; no Return-Path, which only
    /// the final delivery adds) for the remote recipients.
    async fn enqueue(
        &self,
        tx: &Transaction,
        trace: &str,
        id: &str,
        first_delay_minutes: u32,
    ) -> anyhow::Result<()> {
        let received = trace
            .strip_prefix("Return-Path:")
            .and_then(|rest| rest.split_once('\n'))
            .map_or(trace, |(_, rest)| rest);
        let mut message = Vec::with_capacity(received.len() + 8 + tx.body.len());
        message.extend_from_slice(received.replace('\n', "\r\n").as_bytes());
        message.extend_from_slice(&tx.body);
        let sender = tx.mail_from.clone();
        let recipients = tx.remote.clone();
        let smtputf8 = tx.smtputf8;
        let id = id.to_string();
        // spawn_blocking wants 'static: queue through a clone of the writer.
        let outbound = self.outbound.handle();
        tokio::task::spawn_blocking(move || {
            outbound.enqueue(&NewMessage {
                id: &id,
                sender: &sender,
                recipients: &recipients,
                smtputf8,
                message: &message,
                first_delay_minutes,
            })
        })
        .await?
    }
}
