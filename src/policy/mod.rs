//! The SMTP policy engine: asked at every stage of a session — connect, HELO, MAIL, RCPT and
//! the message data — with what is known of the client by then, it answers with a
//! [`Verdict`]. The rules: the white- and blacklists (`lists`), the reverse DNS check
//! (`rdns`), the DNSBLs (`dnsbl`), the per-client sending rate (`ratelimit`), relaying
//! (`relay`: a remote recipient needs a logged-in or whitelisted client), greylisting
//! (`greylist`), and on the whole message the quotas (`quota`), the virus scanners
//! (`antivirus`) and, for outgoing mail, data loss prevention (`dlp`).
//!
//! Rules are asked in a fixed order (docs/policy.md) and the first answer that is not `Accept`
//! wins. The engine holds what rules remember between sessions (rate counters, the greylist
//! store); what they are configured with comes from the settings each session started with, so
//! a reload never drops that memory.

mod antivirus;
mod dlp;
pub mod dnsbl;
pub mod greylist;
pub mod lists;
mod quota;
pub mod ratelimit;
pub mod rdns;
mod relay;

use std::net::IpAddr;
use std::time::Instant;

use greylist::GreylistRule;
pub use ratelimit::RateLimiter;

use crate::address::Address;
use crate::config::model::DnsblUnreachable;
use crate::config::syntax::ListEntry;
use crate::settings::{PolicySettings, Settings};
use crate::smtp::reply::Reply;
use dnsbl::Listing;
pub use rdns::ClientName;

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
    /// Its forward-confirmed host name, when a rule needs it (looked up at connect).
    pub name: ClientName,
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
        /// The local accounts among them (aliases expanded).
        accounts: &'a [Address],
        /// The remote ones (relayed).
        remote: &'a [String],
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
    greylist: GreylistRule,
}

impl Engine {
    pub fn new() -> Engine {
        Engine::default()
    }

    /// Asks every rule about `query`, configured with the session's `settings`; the first
    /// answer that is not `Accept` wins (docs/policy.md, "Order of the checks").
    pub async fn check(&self, settings: &Settings, query: &Query<'_>) -> Verdict {
        let rules = &settings.policy;
        match query.stage {
            Stage::Connect => at_connect(rules, query.client),
            Stage::Mail { sender } => {
                let verdict = match query.user {
                    // A logged-in client is judged by its login, not by the lists.
                    Some(_) => Verdict::Accept,
                    None => mail_checks(settings, query.client, sender).await,
                };
                if verdict != Verdict::Accept {
                    return verdict;
                }
                self.rate_limit(rules, query.client)
            }
            Stage::Rcpt { destination, .. } => {
                let verdict = match relay::check(rules, query) {
                    Verdict::Accept => self.greylist.check(settings, query).await,
                    refused => refused,
                };
                match (verdict, destination) {
                    (Verdict::Accept, Destination::Local(account)) => {
                        quota::at_rcpt(settings, account).await
                    }
                    (verdict, _) => verdict,
                }
            }
            Stage::Data {
                accounts,
                remote,
                message,
                ..
            } => {
                // The quota first: a file read, where a scan costs the scanner's time.
                let verdict = quota::at_data(settings, accounts, remote, message.len()).await;
                if verdict != Verdict::Accept {
                    return verdict;
                }
                let hostname = &settings.hostname;
                let verdict = antivirus::check(&rules.antivirus, hostname, message).await;
                if verdict != Verdict::Accept {
                    return verdict;
                }
                match &rules.dlp {
                    // Outgoing (docs/filters.md): logged in, or relayed (only a logged-in or
                    // whitelisted client gets a remote recipient past RCPT).
                    Some(url) if query.user.is_some() || !remote.is_empty() => {
                        dlp::check(url, hostname, message).await
                    }
                    _ => Verdict::Accept,
                }
            }
            Stage::Helo { .. } => Verdict::Accept,
        }
    }

    fn rate_limit(&self, rules: &PolicySettings, client: &Client) -> Verdict {
        match &rules.rate_limit {
            Some(limit) if !self.rate.allow(limit, client.ip, Instant::now()) => {
                log_decision("mail", "rateLimit", None);
                Verdict::tempfail(
                    450,
                    [4, 7, 1],
                    "Too many messages from your address, try again later",
                )
            }
            _ => Verdict::Accept,
        }
    }
}

/// Connect: a whitelisted client goes on; one the blacklist names by its address, network or
/// verified host name is refused before the greeting.
fn at_connect(rules: &PolicySettings, client: &Client) -> Verdict {
    if let Some(entry) = lists::client_entry(&rules.whitelist, client) {
        log_decision("connect", "whitelist", Some(entry));
        return Verdict::Accept;
    }
    match lists::client_entry(&rules.blacklist, client) {
        Some(entry) => {
            log_decision("connect", "blacklist", Some(entry));
            Verdict::reject(
                554,
                [5, 7, 1],
                format!("Client host [{}] blocked by local policy", client.ip),
            )
        }
        None => Verdict::Accept,
    }
}

/// MAIL of a client that did not log in: the sender on the lists, then the reverse DNS and
/// the DNSBLs, which a whitelisted client or sender skips.
async fn mail_checks(settings: &Settings, client: &Client, sender: &str) -> Verdict {
    let rules = &settings.policy;
    if lists::client_entry(&rules.whitelist, client).is_some() {
        return Verdict::Accept;
    }
    if let Some(entry) = lists::sender_entry(&rules.whitelist, sender) {
        log_decision("mail", "whitelist", Some(entry));
        return Verdict::Accept;
    }
    if let Some(entry) = lists::sender_entry(&rules.blacklist, sender) {
        log_decision("mail", "blacklist", Some(entry));
        return Verdict::reject(
            554,
            [5, 7, 1],
            format!("<{sender}>: Sender address rejected by local policy"),
        );
    }
    if rules.require_reverse_dns && client.name.verified().is_none() {
        log_decision("mail", "requireReverseDns", None);
        return Verdict::tempfail(
            450,
            [4, 7, 25],
            format!(
                "Client host rejected: cannot find your hostname, [{}] ({})",
                client.ip,
                client.name.why_not_verified()
            ),
        );
    }
    if rules.dnsbl.is_empty() {
        return Verdict::Accept;
    }
    match dnsbl::check(settings.resolver(), client.ip, &rules.dnsbl).await {
        Listing::NotListed => Verdict::Accept,
        Listing::Listed { zone, reason } => {
            tracing::info!(stage = "mail", rule = "dnsbl", zone, reason, "refused");
            let why = reason.map(|r| format!(": {r}")).unwrap_or_default();
            Verdict::reject(
                554,
                [5, 7, 1],
                format!(
                    "Service unavailable; client [{}] blocked using {zone}{why}",
                    client.ip
                ),
            )
        }
        Listing::Unreachable { zone, why } => {
            tracing::warn!(
                stage = "mail",
                rule = "dnsbl",
                zone,
                "the list could not be asked: {why}"
            );
            let text = format!(
                "Client host [{}] could not be checked against {zone}, try again later",
                client.ip
            );
            match rules.dnsbl_unreachable {
                DnsblUnreachable::Tempfail => Verdict::tempfail(451, [4, 7, 1], text),
                DnsblUnreachable::Reject => Verdict::reject(554, [5, 7, 1], text),
            }
        }
    }
}

/// One line per decision (the span carries the connection id and the client address).
fn log_decision(stage: &str, rule: &str, entry: Option<&ListEntry>) {
    let entry = entry.map(lists::show).unwrap_or_default();
    tracing::info!(stage, rule, entry, "policy decision");
}
