//! `org.icsmail.Mail1.Queue`: the outbound queue — what waits, and trying, returning or
//! deleting a message. A pass that tries messages runs in the background (a delivery can take
//! minutes, longer than a D-Bus call may), with the same runner as the timer's; `List` shows
//! its results.

use std::sync::Arc;

use tracing::{info, warn};

use super::error::AdminError;
use crate::config::layers::Source;
use crate::queue::manage::{self, Handled};
use crate::queue::{Runner, Selection, Spool};
use crate::settings::Settings;
use crate::store::MailStore;

pub struct QueueInterface {
    pub source: Source,
}

/// One queued message as `List` gives it: id, sender, the recipients still open, size in
/// bytes, age in seconds, attempts so far, seconds until the next attempt (negative: due),
/// the last error ("" when none).
pub type Listed = (String, String, Vec<String>, u64, u64, u32, i64, String);

impl QueueInterface {
    fn settings(&self) -> Result<Settings, AdminError> {
        Ok(Settings::load(&self.source)?)
    }

    /// Runs one runner pass over `selection` in the background, logging what it did.
    fn pass_in_background(&self, settings: Settings, selection: Selection, why: &'static str) {
        tokio::spawn(async move {
            let storage = &settings.storage;
            let store = Arc::new(MailStore::new(
                storage.root.clone(),
                storage.default_folders.clone(),
            ));
            let runner = Runner::new(&settings, store);
            match runner.run_pass(selection).await {
                Ok(report) => info!(
                    why,
                    finished = report.finished,
                    deferred = report.deferred,
                    busy = report.busy,
                    bounces = report.bounces,
                    "queue pass done"
                ),
                Err(err) => warn!(why, "queue pass failed: {err:#}"),
            }
            if let Err(err) = crate::stats::persist(&settings.queue.state_dir) {
                warn!("cannot write the statistics: {err}");
            }
        });
    }

    /// Applies `change` to the message `id` under its lock, then tries it in the background.
    async fn one(
        &self,
        id: &str,
        why: &'static str,
        change: fn(&Spool, &str, i64) -> anyhow::Result<Handled>,
    ) -> Result<(), AdminError> {
        let settings = self.settings()?;
        let spool = Spool::new(&settings.queue.state_dir);
        let owned = id.to_string();
        let now = chrono::Utc::now().timestamp();
        let handled = tokio::task::spawn_blocking(move || change(&spool, &owned, now))
            .await?
            .map_err(|err| AdminError::Failed(format!("{err:#}")))?;
        handled_or_error(id, handled)?;
        info!(id, why, "queue: by the administrator");
        self.pass_in_background(settings, Selection::Only(vec![id.to_string()]), why);
        Ok(())
    }
}

fn handled_or_error(id: &str, handled: Handled) -> Result<(), AdminError> {
    match handled {
        Handled::Done => Ok(()),
        Handled::NotQueued => Err(AdminError::NoSuchMessage(format!("{id}: not in the queue"))),
        Handled::Busy => Err(AdminError::Busy(format!(
            "{id} is being delivered right now; try again"
        ))),
    }
}

#[zbus::interface(name = "org.icsmail.Mail1.Queue")]
impl QueueInterface {
    /// Every queued message: (id, sender, open recipients, size, age s, attempts, next
    /// attempt in s, last error).
    async fn list(&self) -> Result<Vec<Listed>, AdminError> {
        let spool = Spool::new(&self.settings()?.queue.state_dir);
        let envelopes = tokio::task::spawn_blocking(move || manage::envelopes(&spool))
            .await?
            .map_err(|err| AdminError::Failed(format!("{err:#}")))?;
        let now = chrono::Utc::now().timestamp();
        Ok(envelopes
            .into_iter()
            .map(|env| {
                let open = env.open_recipients().map(|r| r.address.clone()).collect();
                (
                    env.id,
                    env.sender,
                    open,
                    env.size,
                    u64::try_from(now.saturating_sub(env.created)).unwrap_or(0),
                    env.attempts,
                    env.next_attempt.saturating_sub(now),
                    env.last_error.unwrap_or_default(),
                )
            })
            .collect())
    }

    /// Tries every queued message now, whatever its retry time; returns how many there are
    /// (the pass runs in the background).
    async fn flush(
        &self,
        #[zbus(header)] header: zbus::message::Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<u32, AdminError> {
        super::polkit::authorize(&header, connection).await?;
        let settings = self.settings()?;
        let spool = Spool::new(&settings.queue.state_dir);
        let count = tokio::task::spawn_blocking(move || spool.list().map(|ids| ids.len()))
            .await?
            .map_err(|err| AdminError::Failed(format!("{err:#}")))?;
        info!(messages = count, "queue: flushed by the administrator");
        self.pass_in_background(settings, Selection::All, "flush");
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    /// Tries the message `id` now (in the background).
    async fn retry(
        &self,
        id: &str,
        #[zbus(header)] header: zbus::message::Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<(), AdminError> {
        super::polkit::authorize(&header, connection).await?;
        self.one(id, "retry", manage::make_due).await
    }

    /// Returns the message `id` to its sender: a delivery status notification for every
    /// recipient still open (5.0.0, "returned by the mail administrator"), then it leaves the
    /// queue.
    async fn bounce(
        &self,
        id: &str,
        #[zbus(header)] header: zbus::message::Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<(), AdminError> {
        super::polkit::authorize(&header, connection).await?;
        self.one(id, "bounce", manage::mark_returned).await
    }

    /// Removes the message `id` without telling its sender.
    async fn delete(
        &self,
        id: &str,
        #[zbus(header)] header: zbus::message::Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<(), AdminError> {
        super::polkit::authorize(&header, connection).await?;
        let spool = Spool::new(&self.settings()?.queue.state_dir);
        let owned = id.to_string();
        let handled = tokio::task::spawn_blocking(move || manage::delete(&spool, &owned))
            .await?
            .map_err(|err| AdminError::Failed(format!("{err:#}")))?;
        handled_or_error(id, handled)?;
        info!(id, "queue: deleted by the administrator (no bounce)");
        Ok(())
    }
}
