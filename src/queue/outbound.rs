//! The queue as the SMTP daemon sees it: spool a message before the `250`, then have it tried
//! at once by a delivery task inside the daemon (a new message never waits for the timer).
//! The same task also runs a full pass every `queue.interval` minutes, so a daemon without the
//! systemd timer (`icsmail serve`) retries too; the per-message lock keeps it and the timer's
//! runner from ever delivering one message twice at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};
use tracing::warn;

use super::envelope::{Envelope, Kind};
use super::runner::{Clock, Runner, Selection, SystemClock};
use super::spool::Spool;
use crate::auth::Directory;
use crate::config::Config;
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
}

pub struct Outbound {
    writer: QueueWriter,
    kicks: Option<mpsc::UnboundedSender<String>>,
}

/// Writes new messages into the queue; cheap to clone into a blocking task.
#[derive(Clone)]
pub struct QueueWriter {
    spool: Spool,
    delay_min: u32,
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
            self.delay_min,
        );
        envelope.smtputf8 = new.smtputf8;
        self.spool.enqueue(&envelope, new.message)
    }
}

impl Outbound {
    /// The queue of `config`; inside a tokio runtime it also starts the delivery task.
    pub fn start(config: &Config, directory: Arc<Directory>, store: Arc<MailStore>) -> Outbound {
        let spool = Spool::new(&config.state_dir.0);
        let kicks = tokio::runtime::Handle::try_current().ok().map(|handle| {
            let (sender, receiver) = mpsc::unbounded_channel();
            let runner = Arc::new(Runner::new(config, directory, store));
            let interval = Duration::from_secs(u64::from(config.queue.interval) * 60);
            handle.spawn(delivery_task(runner, receiver, interval));
            sender
        });
        Outbound {
            writer: QueueWriter {
                spool,
                delay_min: config.queue.delay_min,
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

async fn delivery_task(
    runner: Arc<Runner>,
    mut kicks: mpsc::UnboundedReceiver<String>,
    interval: Duration,
) {
    let passes = Arc::new(Semaphore::new(MAX_KICK_PASSES));
    let periodic = Arc::new(Semaphore::new(1));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
                let runner = runner.clone();
                tokio::spawn(async move {
                    if let Err(err) = runner.run_pass(Selection::Only(ids)).await {
                        warn!("queue pass for new messages failed: {err:#}");
                    }
                    drop(permit);
                });
            }
            _ = ticker.tick() => {
                drop(permit);
                let Ok(only_one) = periodic.clone().try_acquire_owned() else { continue };
                let runner = runner.clone();
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
