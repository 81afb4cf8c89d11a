//! One pass of the queue runner: lock the messages that are due, deliver them grouped by
//! destination (several messages per connection), record each recipient's result, bounce what
//! failed or expired, and reschedule the rest (docs/queue.md).

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{info, warn};

use super::client::RcptOutcome;
use super::dsn::{self, FailedRecipient, Report};
use super::envelope::{Envelope, Kind, Status, Timestamp};
use super::schedule::Schedule;
use super::spool::{Locked, Spool};
use super::transport::{Attempted, Destination, Job, Transport};
use crate::address::Address;
use crate::auth::{Directory, Recipient};
use crate::net::ids::new_id;
use crate::settings::Settings;
use crate::store::{to_maildir_form, MailStore};

/// Messages locked and held in memory at once (each holds an open file).
pub const BATCH_MESSAGES: usize = 500;
/// Bytes of message data held in memory at once (a batch ends early past this).
pub const BATCH_BYTES: u64 = 256 * 1024 * 1024;
/// Connections open at once in a pass, over all destinations.
pub const MAX_CONNECTIONS: usize = 32;
/// Connections to one destination at once (when it has many messages).
pub const MAX_CONNECTIONS_PER_DESTINATION: usize = 4;
/// A destination gets another parallel connection per this many messages.
pub const MESSAGES_PER_CONNECTION: usize = 25;

/// The time the runner works with (tests of the schedule use other clocks).
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        chrono::Utc::now().timestamp()
    }
}

/// Which messages a pass looks at.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Every queued message whose retry time has come (the timer's pass).
    Due,
    /// Every queued message, due or not (`icsmail queue flush`).
    All,
    /// These messages, if due (new ones are: the first attempt right after acceptance).
    Only(Vec<String>),
}

/// What a pass did, message by message.
#[derive(Debug, Default, Clone, Copy)]
pub struct PassReport {
    /// Messages done: every recipient delivered or failed.
    pub finished: usize,
    /// Messages still queued after an attempt.
    pub deferred: usize,
    /// Messages in another runner's hands.
    pub busy: usize,
    /// Delivery status notifications sent.
    pub bounces: usize,
}

/// A locked message in a batch.
struct Work {
    locked: Locked,
    env: Envelope,
    message: Arc<Vec<u8>>,
    attempted: bool,
}

pub struct Runner {
    spool: Spool,
    schedule: Schedule,
    transport: Arc<Transport>,
    directory: Arc<Directory>,
    store: Arc<MailStore>,
    hostname: String,
    clock: Arc<dyn Clock>,
}

impl Runner {
    /// The runner of one pass, with `settings` as they are when the pass starts.
    pub fn new(settings: &Settings, store: Arc<MailStore>) -> Runner {
        Runner {
            spool: Spool::new(&settings.queue.state_dir),
            schedule: Schedule::new(&settings.queue),
            transport: Arc::new(Transport::new(settings)),
            directory: settings.directory.clone(),
            store,
            hostname: settings.hostname.clone(),
            clock: Arc::new(SystemClock),
        }
    }

    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// One pass over `selection`; bounces queued on the way are tried in the same pass.
    pub async fn run_pass(&self, selection: Selection) -> anyhow::Result<PassReport> {
        let (mut ids, flush) = match selection {
            Selection::Only(ids) => (ids, false),
            Selection::Due | Selection::All => {
                for name in self.spool.clean_orphans(std::time::SystemTime::now()) {
                    warn!(file = name, "removed a queue file without its partner");
                }
                (self.spool.list()?, matches!(selection, Selection::All))
            }
        };
        let mut report = PassReport::default();
        // New bounces: a few rounds at most (a bounce never bounces).
        for _ in 0..3 {
            let mut new_ids = Vec::new();
            let mut rest = ids.as_slice();
            while !rest.is_empty() {
                let used = self
                    .run_batch(rest, flush, &mut report, &mut new_ids)
                    .await?;
                rest = &rest[used..];
            }
            if new_ids.is_empty() {
                break;
            }
            ids = new_ids;
        }
        Ok(report)
    }

    /// Locks and delivers the first messages of `ids` (up to the batch limits); returns how
    /// many ids it used.
    async fn run_batch(
        &self,
        ids: &[String],
        flush: bool,
        report: &mut PassReport,
        new_ids: &mut Vec<String>,
    ) -> anyhow::Result<usize> {
        let mut works = Vec::new();
        let mut bytes = 0u64;
        let mut used = 0;
        for id in ids {
            if works.len() >= BATCH_MESSAGES || bytes >= BATCH_BYTES {
                break;
            }
            used += 1;
            let Some(work) = self.take(id, flush, report, new_ids).await? else {
                continue;
            };
            bytes += work.message.len() as u64;
            works.push(work);
        }
        let started = self.clock.now();
        let results = self.deliver(&works).await;
        for (job, attempted) in results {
            let work = &mut works[job.work];
            work.attempted = true;
            for ((index, address), result) in job.recipients.iter().zip(attempted) {
                apply(&mut work.env, *index, address, result);
            }
        }
        let now = self.clock.now();
        for mut work in works {
            if work.attempted {
                self.schedule.record_attempt(&mut work.env, started);
            }
            self.settle(work, now, report, new_ids).await;
        }
        Ok(used)
    }

    /// Locks one message and decides what to do with it: `Some` when it is to be tried now.
    async fn take(
        &self,
        id: &str,
        flush: bool,
        report: &mut PassReport,
        new_ids: &mut Vec<String>,
    ) -> anyhow::Result<Option<Work>> {
        let Some(mut locked) = self.spool.try_lock(id)? else {
            report.busy += 1;
            return Ok(None);
        };
        let env = match self.spool.load(id) {
            Ok(env) => env,
            Err(err) => {
                warn!(
                    id,
                    "skipping a message with an unreadable envelope: {err:#}"
                );
                return Ok(None);
            }
        };
        let now = self.clock.now();
        let expired = self.schedule.is_expired(&env, now);
        let leftover = env.is_finished() || !env.unnotified_failures().is_empty();
        if !(flush || expired || leftover || self.schedule.is_due(&env, now)) {
            return Ok(None);
        }
        let message = match locked.read_message() {
            Ok(message) => Arc::new(message),
            Err(err) => {
                warn!(id, "cannot read the queued message: {err}");
                return Ok(None);
            }
        };
        let mut work = Work {
            locked,
            env,
            message,
            attempted: false,
        };
        if expired || leftover {
            if expired {
                expire(&mut work.env, self.schedule.max_lifetime / 60);
            }
            self.settle(work, now, report, new_ids).await;
            return Ok(None);
        }
        Ok(Some(work))
    }

    /// Groups the open recipients of `works` by destination and delivers them concurrently.
    async fn deliver(&self, works: &[Work]) -> Vec<(Job, Vec<Attempted>)> {
        let mut groups: BTreeMap<Destination, Vec<Job>> = BTreeMap::new();
        for (index, work) in works.iter().enumerate() {
            let mut per_destination: BTreeMap<Destination, Vec<(usize, String)>> = BTreeMap::new();
            for (rcpt_index, rcpt) in work.env.recipients.iter().enumerate() {
                if rcpt.is_open() {
                    per_destination
                        .entry(self.transport.destination(&rcpt.address))
                        .or_default()
                        .push((rcpt_index, rcpt.address.clone()));
                }
            }
            for (destination, recipients) in per_destination {
                groups.entry(destination).or_default().push(Job {
                    work: index,
                    recipients,
                    sender: work.env.sender.clone(),
                    message: work.message.clone(),
                });
            }
        }
        let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut tasks = JoinSet::new();
        for (destination, jobs) in groups {
            let connections = jobs
                .len()
                .div_ceil(MESSAGES_PER_CONNECTION)
                .clamp(1, MAX_CONNECTIONS_PER_DESTINATION);
            let mut shares: Vec<Vec<Job>> = (0..connections).map(|_| Vec::new()).collect();
            for (index, job) in jobs.into_iter().enumerate() {
                shares[index % connections].push(job);
            }
            for share in shares {
                let transport = self.transport.clone();
                let destination = destination.clone();
                let limit = limit.clone();
                tasks.spawn(async move {
                    let _permit = limit.acquire_owned().await;
                    transport.deliver(&destination, share).await
                });
            }
        }
        let mut results = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(part) => results.extend(part),
                Err(err) => warn!("a delivery task failed: {err}"),
            }
        }
        results
    }

    /// After an attempt (or none): tell the sender about failures, then remove the message
    /// when it is done, or save it with its next retry time.
    async fn settle(
        &self,
        mut work: Work,
        now: Timestamp,
        report: &mut PassReport,
        new_ids: &mut Vec<String>,
    ) {
        let id = work.env.id.clone();
        let failed: Vec<usize> = (0..work.env.recipients.len())
            .filter(|&i| {
                let r = &work.env.recipients[i];
                r.status == Status::Failed && !r.notified
            })
            .collect();
        if !failed.is_empty() {
            let notified = self
                .notify(&work.env, &work.message, &failed, now, new_ids)
                .await;
            if notified {
                let bounced = work.env.kind == Kind::Message && !work.env.sender.is_empty();
                if bounced {
                    crate::stats::count(crate::stats::Event::Bounced);
                }
                report.bounces += usize::from(bounced);
                for index in failed {
                    work.env.recipients[index].notified = true;
                }
            }
        }
        let done = work.env.is_finished() && work.env.unnotified_failures().is_empty();
        if done {
            match self.spool.remove(work.locked) {
                Ok(()) => {
                    report.finished += 1;
                    info!(id, attempts = work.env.attempts, "removed from the queue");
                }
                Err(err) => warn!(id, "cannot remove the finished message: {err:#}"),
            }
            return;
        }
        if work.attempted {
            work.env.last_error = work
                .env
                .recipients
                .iter()
                .find(|r| r.status == Status::Deferred)
                .and_then(|r| r.reply.clone());
            self.schedule.defer(&mut work.env, now);
            report.deferred += 1;
        }
        if let Err(err) = self.spool.save(&work.env) {
            warn!(id, "cannot save the envelope: {err:#}");
        }
    }

    /// Sends the sender a notification for the recipients `failed`. A bounce never bounces:
    /// for the null sender the failure is only logged. True when nothing is left to do.
    /// A notification for a local sender goes straight into its mailbox.
    async fn store_dsn(&self, account: Address, dsn: &[u8]) -> anyhow::Result<String> {
        let store = self.store.clone();
        let stored = to_maildir_form("Return-Path: <>\n", dsn);
        tokio::task::spawn_blocking(move || store.deliver(&[account], &stored))
            .await
            .map_err(anyhow::Error::from)
            .and_then(|r| r.map_err(anyhow::Error::from))
            .map(|()| "stored in the sender's mailbox".to_string())
    }

    /// A notification for a remote sender is queued (and tried in this pass: `new_ids`).
    async fn queue_dsn(
        &self,
        env: &Envelope,
        dsn: Vec<u8>,
        now: Timestamp,
        new_ids: &mut Vec<String>,
    ) -> anyhow::Result<String> {
        let bounce_id = format!("{}.B{}", new_id(), env.attempts);
        let mut bounce = Envelope::new(
            bounce_id.clone(),
            Kind::Bounce,
            String::new(),
            vec![env.sender.clone()],
            dsn.len() as u64,
            now,
            self.schedule.delay_min,
        );
        bounce.smtputf8 = !env.sender.is_ascii();
        let spool = self.spool.clone();
        tokio::task::spawn_blocking(move || spool.enqueue(&bounce, &dsn))
            .await
            .map_err(anyhow::Error::from)
            .and_then(|r| r)?;
        new_ids.push(bounce_id.clone());
        Ok(format!("queued as {bounce_id}"))
    }

    async fn notify(
        &self,
        env: &Envelope,
        message: &[u8],
        failed: &[usize],
        now: Timestamp,
        new_ids: &mut Vec<String>,
    ) -> bool {
        if env.sender.is_empty() || env.kind == Kind::Bounce {
            for &index in failed {
                warn!(
                    id = env.id,
                    to = env.recipients[index].address,
                    "undeliverable notification dropped: {}",
                    env.recipients[index].reply.as_deref().unwrap_or("")
                );
            }
            return true;
        }
        let recipients: Vec<FailedRecipient> = failed
            .iter()
            .map(|&index| failed_recipient(&env.recipients[index]))
            .collect();
        let dsn = dsn::build(&Report {
            reporting_mta: &self.hostname,
            queue_id: &env.id,
            sender: &env.sender,
            arrival: env.created,
            now,
            failed: &recipients,
            original: message,
        });
        let local = Address::parse(&env.sender).ok().and_then(|sender| {
            match self.directory.resolve(&sender) {
                Recipient::Local(account) => Some(account),
                _ => None,
            }
        });
        let result = match local {
            Some(account) => self.store_dsn(account, &dsn).await,
            None => self.queue_dsn(env, dsn, now, new_ids).await,
        };
        match result {
            Ok(how) => {
                info!(
                    id = env.id,
                    to = env.sender,
                    "delivery status notification {how}"
                );
                true
            }
            Err(err) => {
                warn!(
                    id = env.id,
                    "cannot send the delivery status notification: {err:#}"
                );
                false
            }
        }
    }
}

/// Records one recipient's result and logs it (one line per recipient and attempt).
fn apply(env: &mut Envelope, index: usize, address: &str, result: Attempted) {
    let Some(rcpt) = env.recipients.get_mut(index) else {
        return;
    };
    let (status, word) = match &result.outcome {
        RcptOutcome::Delivered(_) => {
            crate::stats::count(crate::stats::Event::Relayed);
            (Status::Delivered, "delivered")
        }
        RcptOutcome::Deferred(_) => (Status::Deferred, "deferred"),
        RcptOutcome::Failed(_) => (Status::Failed, "failed"),
    };
    let reply = result.outcome.reply().to_string();
    info!(
        id = env.id,
        from = env.sender,
        to = address,
        relay = result.remote_mta.as_deref().unwrap_or("none"),
        status = word,
        "{reply}"
    );
    rcpt.status = status;
    rcpt.reply = Some(reply);
    rcpt.remote_mta = result.remote_mta;
}

/// The lifetime is over: every open recipient fails.
fn expire(env: &mut Envelope, lifetime_minutes: i64) {
    for rcpt in env.recipients.iter_mut().filter(|r| r.is_open()) {
        let last = rcpt
            .reply
            .take()
            .unwrap_or_else(|| "no attempt was made".into());
        rcpt.reply = Some(format!(
            "4.4.7 Message expired after {lifetime_minutes} minutes in the queue (queue.maxLifetime); last error: {last}"
        ));
        rcpt.status = Status::Failed;
        info!(
            id = env.id,
            to = rcpt.address,
            status = "expired",
            "bounced after its lifetime"
        );
    }
}

fn failed_recipient(rcpt: &super::envelope::RecipientState) -> FailedRecipient {
    let diagnostic = rcpt.reply.clone().unwrap_or_else(|| "5.0.0 failed".into());
    let expired = diagnostic.starts_with("4.4.7");
    let (status, remote_reply) = match diagnostic.split_whitespace().collect::<Vec<_>>().as_slice()
    {
        [code, enhanced, ..] if code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()) => {
            let status = if enhanced.split('.').count() == 3 {
                enhanced.to_string()
            } else {
                format!("{}.0.0", &code[..1])
            };
            (status, rcpt.remote_mta.is_some())
        }
        _ if expired => ("4.4.7".to_string(), false),
        _ => ("5.0.0".to_string(), false),
    };
    FailedRecipient {
        address: rcpt.address.clone(),
        status,
        diagnostic,
        remote_mta: rcpt.remote_mta.clone(),
        remote_reply,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::envelope::RecipientState;

    fn rcpt(reply: &str, mta: Option<&str>) -> RecipientState {
        RecipientState {
            address: "bob@remote.test".into(),
            status: Status::Failed,
            reply: Some(reply.into()),
            remote_mta: mta.map(str::to_string),
            notified: false,
        }
    }

    #[test]
    fn failure_status_comes_from_the_reply() {
        let failed = failed_recipient(&rcpt("550 5.1.1 no such user", Some("mx.remote.test")));
        assert_eq!(failed.status, "5.1.1");
        assert!(failed.remote_reply);
        let failed = failed_recipient(&rcpt("554 rejected", Some("mx.remote.test")));
        assert_eq!(failed.status, "5.0.0");
        let failed = failed_recipient(&rcpt("550 5.1.2 The domain does not exist", None));
        assert!(!failed.remote_reply, "our own DNS verdict");
    }

    #[test]
    fn expiry_fails_open_recipients_with_4_4_7() {
        let mut env = Envelope::new(
            "X".into(),
            Kind::Message,
            "a@b.test".into(),
            vec!["c@d.test".into(), "e@f.test".into()],
            1,
            0,
            1,
        );
        env.recipients[0].status = Status::Delivered;
        env.recipients[1].status = Status::Deferred;
        env.recipients[1].reply = Some("451 4.4.1 refused".into());
        expire(&mut env, 60);
        assert_eq!(env.recipients[0].status, Status::Delivered);
        assert_eq!(env.recipients[1].status, Status::Failed);
        let failed = failed_recipient(&env.recipients[1]);
        assert_eq!(failed.status, "4.4.7");
        assert!(failed.diagnostic.contains("last error: 451 4.4.1 refused"));
    }
}
