//! Greylisting as a rule of the engine (`spam.greylist.*`): *whether* a recipient is
//! greylisted — only mail from other servers (port 25) whose client did not log in and that
//! neither the client nor the sender whitelists — and the reply. What a triplet's history says
//! is the store's part ([`store`]).
//!
//! The store is opened on first need, in the `stateDir` the daemon started with (a restart key).
//! A store that cannot be opened or asked lets the mail through and says so in the log at
//! `warn`: greylisting only delays spam, and refusing every message for a broken file would be
//! the worse failure. A failed open is tried again after [`REOPEN_AFTER`], not on every
//! recipient.

pub mod store;

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::settings::Settings;
use store::{Decision, Greylist};

use super::{lists, Port, Query, Stage, Verdict};

/// How long after a failed open the store is tried again.
pub const REOPEN_AFTER: Duration = Duration::from_secs(60);

/// The greylist of this daemon: the store, once opened.
#[derive(Default)]
pub struct GreylistRule {
    store: Mutex<StoreState>,
}

#[derive(Default)]
enum StoreState {
    #[default]
    Closed,
    Open(Arc<Greylist>),
    Failed(Instant),
}

impl GreylistRule {
    /// The verdict on one RCPT of `query` (any other stage: `Accept`).
    pub async fn check(&self, settings: &Settings, query: &Query<'_>) -> Verdict {
        let Some(rules) = &settings.policy.greylist else {
            return Verdict::Accept;
        };
        let Stage::Rcpt {
            sender, recipient, ..
        } = query.stage
        else {
            return Verdict::Accept;
        };
        if !applies_to(settings, query, sender) {
            return Verdict::Accept;
        }
        let Some(store) = self.store(settings) else {
            return Verdict::Accept;
        };
        let (rules, ip) = (rules.clone(), query.client.ip);
        let (sender, recipient) = (sender.to_owned(), recipient.to_owned());
        let asked = tokio::task::spawn_blocking(move || {
            let decision = store.check(&rules, ip, &sender, &recipient, unix_now());
            (decision, recipient)
        })
        .await;
        match asked {
            Ok((Ok(decision), recipient)) => verdict(decision, ip, &recipient),
            Ok((Err(error), _)) => {
                tracing::warn!(rule = "greylist", "not asked, the mail goes on: {error}");
                Verdict::Accept
            }
            Err(error) => {
                tracing::warn!(rule = "greylist", "not asked, the mail goes on: {error}");
                Verdict::Accept
            }
        }
    }

    /// The store, opened now if need be; `None` while it cannot be opened.
    fn store(&self, settings: &Settings) -> Option<Arc<Greylist>> {
        let mut state = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        match &*state {
            StoreState::Open(store) => return Some(store.clone()),
            StoreState::Failed(at) if at.elapsed() < REOPEN_AFTER => return None,
            StoreState::Closed | StoreState::Failed(_) => {}
        }
        // Opening is a few file operations, done once per daemon: not worth a blocking task.
        match Greylist::open(&settings.queue.state_dir) {
            Ok(store) => {
                let store = Arc::new(store);
                *state = StoreState::Open(store.clone());
                Some(store)
            }
            Err(error) => {
                tracing::warn!(
                    rule = "greylist",
                    "the store cannot be opened, mail is not greylisted for {} s: {error}",
                    REOPEN_AFTER.as_secs()
                );
                *state = StoreState::Failed(Instant::now());
                None
            }
        }
    }
}

/// Greylisting is for unknown servers: not for port 587/465, a login, or a client or sender
/// on the whitelist.
fn applies_to(settings: &Settings, query: &Query<'_>, sender: &str) -> bool {
    let whitelist = &settings.policy.whitelist;
    query.client.port == Port::Mx
        && query.user.is_none()
        && lists::client_entry(whitelist, query.client).is_none()
        && lists::sender_entry(whitelist, sender).is_none()
}

fn verdict(decision: Decision, ip: IpAddr, recipient: &str) -> Verdict {
    match decision {
        Decision::Pass { .. } => Verdict::Accept,
        Decision::Wait { retry_after, first } => {
            let wait = retry_after.saturating_sub(unix_now()).max(1);
            tracing::info!(
                stage = "rcpt",
                rule = "greylist",
                network = store::client_network(ip),
                first,
                retry_in = wait,
                "policy decision"
            );
            Verdict::tempfail(
                451,
                [4, 7, 1],
                format!("<{recipient}>: Greylisted, please try again in {wait} seconds"),
            )
        }
    }
}

/// Seconds since the epoch (0 for a clock before 1970, which the store treats as a clock that
/// went back).
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| i64::try_from(since.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
