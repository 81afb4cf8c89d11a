//! The queue as the SMTP daemon sees it: spool a message before the `250`, then have it tried
//! at once by a delivery task inside the daemon (a new message never waits for the timer). The
//! task is started by the process (`app`), not by whoever writes to the queue.
//! The same task also runs a full pass every `queue.interval` minutes, so a daemon without the
//! systemd timer (`icsmail serve`) retries too; the per-message lock keeps it and the timer's
//! runner from ever delivering one message twice at once.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::{mpsc, Semaphore};
use tracing::warn;

use super::envelope::{Envelope, Kind};
use super::runner::{Clock, Runner, Selection, SystemClock};
use super::spool::Spool;
use crate::settings::Live;
use crate::store::MailStore;

/// Passes for new messages running at once (more kicks wait and are batched together).
pub const MAX_KICK_PASSES: usize = 4;
/// New messages handed to one pass at most.
pub const KICK_BATCH: usize = 500;

/// What a message to queue is.
pub struct NewMessage<'a> {
    pub id: &'a str,
    pub sender: &'a str,
    pub recipients: &'a [String],
    pub smtputf8: bool,
    /// CRLF form, trace header first.
    pub message: &'a [u8],
    /// The first retry delay (`queue.delayMin` of the session's settings).
    pub first_delay_minutes: u32,
}

/// The queue as the SMTP daemon sees it: it writes new messages and asks the delivery task
/// for a first attempt.
pub struct Outbound {
    writer: QueueWriter,
    kicks: Option<mpsc::UnboundedSender<String>>,
}

/// Writes new messages into the queue; cheap to clone into a blocking task.
#[derive(Clone)]
pub struct QueueWriter {
    spool: Spool,
}

impl QueueWriter {
    /// Queues a message durably. Blocking: call from a blocking thread.
    pub fn enqueue(&self, new: &NewMessage<'_>) -> anyhow::Result<()> {
        let mut envelope = Envelope::new(
            new.id.to_string(),
            Kind::Message,
            new.sender.to_string(),
            new.recipients.to_vec(),
            new.message.len() as u64,
            SystemClock.now(),
            new.first_delay_minutes,
        );
        envelope.smtputf8 = new.smtputf8;
        self.spool.enqueue(&envelope, new.message)
    }
}

impl Outbound {
    /// The queue in `state_dir`; `kicks` go to the delivery task ([`start_delivery`]), when
    /// this process runs one.
    pub fn new(state_dir: &Path, kicks: Option<mpsc::UnboundedSender<String>>) -> Outbound {
        Outbound {
            writer: QueueWriter {
                spool: Spool::new(state_dir),
            },
            kicks,
        }
    }

    pub fn handle(&self) -> QueueWriter {
        self.writer.clone()
    }

    /// Takes back a message queued for a transaction that then failed (the client retries).
    pub fn cancel(&self, id: &str) -> anyhow::Result<()> {
        let spool = &self.writer.spool;
        match spool.try_lock(id)? {
            Some(locked) => spool.remove(locked),
            None => anyhow::bail!("{id} is not in the queue or is being delivered"),
        }
    }

    /// Asks for a first attempt right away.
    pub fn kick(&self, id: String) {
        if let Some(kicks) = &self.kicks {
            let _ = kicks.send(id);
        }
    }
}

/// Starts the delivery task of this process (in the running tokio runtime) and returns where
/// to send the ids of new messages. Each pass runs with the settings in force when it starts.
pub fn start_delivery(live: Arc<Live>, store: Arc<MailStore>) -> mpsc::UnboundedSender<String> {
    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(delivery_task(live, store, receiver));
    sender
}

async fn delivery_task(
    live: Arc<Live>,
    store: Arc<MailStore>,
    mut kicks: mpsc::UnboundedReceiver<String>,
) {
    let passes = Arc::new(Semaphore::new(MAX_KICK_PASSES));
    let periodic = Arc::new(Semaphore::new(1));
    let mut interval = live.load().queue.interval;
    let mut ticker = periodic_ticker(interval);
    loop {
        let Ok(permit) = passes.clone().acquire_owned().await else {
            return;
        };
        tokio::select! {
            first = kicks.recv() => {
                let Some(first) = first else { return };
                let mut ids = vec![first];
                while ids.len() < KICK_BATCH {
                    match kicks.try_recv() {
                        Ok(id) => ids.push(id),
                        Err(_) => break,
                    }
                }
                let runner = Runner::new(&live.load(), store.clone());
                tokio::spawn(async move {
                    if let Err(err) = runner.run_pass(Selection::Only(ids)).await {
                        warn!("queue pass for new messages failed: {err:#}");
                    }
                    drop(permit);
                });
            }
            _ = ticker.tick() => {
                drop(permit);
                let settings = live.load();
                if settings.queue.interval != interval {
                    // `queue.interval` changed by a reload: the next pass comes at the new pace.
                    interval = settings.queue.interval;
                    ticker = periodic_ticker(interval);
                }
                let Ok(only_one) = periodic.clone().try_acquire_owned() else { continue };
                let runner = Runner::new(&settings, store.clone());
                tokio::spawn(async move {
                    if let Err(err) = runner.run_pass(Selection::Due).await {
                        warn!("periodic queue pass failed: {err:#}");
                    }
                    drop(only_one);
                });
            }
        }
    }
}

/// A ticker every `interval`, the first tick one interval from now.
fn periodic_ticker(interval: std::time::Duration) -> tokio::time::Interval {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker
}
