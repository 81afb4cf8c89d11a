//! The SMTP policy engine: asked at every stage of a session — connect, HELO, MAIL, RCPT and
//! the message data — with what is known of the client by then, it answers with a
//! [`Verdict`]. Today's rules: relaying (`relay`: a remote recipient needs a logged-in or
//! whitelisted client) and the per-client sending rate (`ratelimit`). The lists, DNSBL and greylisting of
//! the policy issue come here as further rules.
//!
//! Rules are asked in a fixed order and the first answer that is not `Accept` wins. The engine
//! holds what rules remember between sessions (rate counters); what they are configured with
//! comes from the settings each session started with, so a reload never drops that memory.

pub mod greylist;
pub mod ratelimit;
mod relay;

use std::net::IpAddr;
use std::time::Instant;

pub use ratelimit::RateLimiter;

use crate::address::Address;
use crate::settings::PolicySettings;
use crate::smtp::reply::Reply;

/// What a rule says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go on.
    Accept,
    /// Refuse for good (a 5xx reply).
    Reject(Reply),
    /// Refuse for now (a 4xx reply): the client tries again later.
    TempFail(Reply),
    /// Say yes to the client, then drop the message (logged).
    Discard,
    /// Say yes to the client; the recipients get this notice with the original attached
    /// instead of the message.
    Quarantine(String),
}

impl Verdict {
    /// A permanent refusal; a reply that is not 5xx is made one.
    pub fn reject(code: u16, enhanced: [u8; 3], text: impl Into<String>) -> Verdict {
        debug_assert!((500..600).contains(&code));
        Verdict::Reject(Reply::new(code, enhanced, text))
    }

    /// A temporary refusal (4xx).
    pub fn tempfail(code: u16, enhanced: [u8; 3], text: impl Into<String>) -> Verdict {
        debug_assert!((400..500).contains(&code));
        Verdict::TempFail(Reply::new(code, enhanced, text))
    }
}

/// Which port the client came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// Port 25: mail from other servers.
    Mx,
    /// Port 587 (AUTH required).
    Submission,
    /// Port 465: implicit TLS, then as submission.
    Smtps,
}

/// What is known of the client from its connection.
#[derive(Debug, Clone)]
pub struct Client {
    pub ip: IpAddr,
    pub port: Port,
}

/// Where an accepted recipient address leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// The mailbox of this account (aliases expanded).
    Local(Address),
    /// Another server: relaying.
    Remote,
}

/// The stage a question is asked at, with what that stage adds.
#[derive(Debug, Clone, Copy)]
pub enum Stage<'a> {
    /// The connection is open; nothing has been said.
    Connect,
    /// EHLO or HELO with this name.
    Helo { name: &'a str },
    /// MAIL FROM with this reverse path (empty for the null sender).
    Mail { sender: &'a str },
    /// RCPT TO with this forward path, as resolved.
    Rcpt {
        sender: &'a str,
        recipient: &'a str,
        destination: &'a Destination,
    },
    /// The complete message (CRLF line ends) for these recipients.
    Data {
        sender: &'a str,
        recipients: &'a [String],
        message: &'a [u8],
    },
}

/// One question to the engine.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    pub stage: Stage<'a>,
    pub client: &'a Client,
    /// The name given with EHLO/HELO, once given.
    pub helo: Option<&'a str>,
    /// The account the client logged in as.
    pub user: Option<&'a Address>,
}

/// The rules and what they remember between sessions.
#[derive(Default)]
pub struct Engine {
    rate: RateLimiter,
}

impl Engine {
    pub fn new() -> Engine {
        Engine::default()
    }

    /// Asks every rule about `query`, configured with the session's `rules`.
    pub async fn check(&self, rules: &PolicySettings, query: &Query<'_>) -> Verdict {
        let verdict = relay::check(rules, query);
        if verdict != Verdict::Accept {
            return verdict;
        }
        if let (Stage::Mail { .. }, Some(limit)) = (query.stage, &rules.rate_limit) {
            if !self.rate.allow(limit, query.client.ip, Instant::now()) {
                return Verdict::tempfail(
                    450,
                    [4, 7, 1],
                    "Too many messages from your address, try again later",
                );
            }
        }
        Verdict::Accept
    }
}
