//! `org.icsmail.Mail1.Statistics`: the counters the daemons keep in
//! `<stateDir>/statistics.json` (`crate::stats`) and the queue's length, as properties read
//! fresh at every Get. They change with every message, so no PropertiesChanged is sent for
//! them (annotated as such in the introspection data): poll them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tracing::info;

use super::error::AdminError;
use crate::queue::Spool;
use crate::stats::{self, Totals};

pub struct StatisticsInterface {
    pub state_dir: PathBuf,
}

impl StatisticsInterface {
    fn totals(&self) -> Result<Totals, AdminError> {
        stats::read(&self.state_dir)
            .map_err(|err| AdminError::Failed(format!("reading the statistics: {err}")))
    }

    fn counter(&self, key: &str) -> Result<u64, zbus::fdo::Error> {
        Ok(self.totals().map_err(fdo)?.get(key))
    }
}

fn fdo(err: AdminError) -> zbus::fdo::Error {
    zbus::fdo::Error::Failed(err.to_string())
}

#[zbus::interface(name = "org.icsmail.Mail1.Statistics")]
impl StatisticsInterface {
    /// When counting began: the first count, or the last `Reset` (RFC 3339, UTC).
    #[zbus(property(emits_changed_signal = "false"))]
    fn since(&self) -> Result<String, zbus::fdo::Error> {
        Ok(self.totals().map_err(fdo)?.since)
    }

    /// Connections accepted, by service (`smtp`, `submission`, `smtps`, `imap`, `imaps`,
    /// `pop3`, `pop3s`).
    #[zbus(property(emits_changed_signal = "false"))]
    fn connections(&self) -> Result<BTreeMap<String, u64>, zbus::fdo::Error> {
        Ok(self.totals().map_err(fdo)?.group("connections"))
    }

    /// Messages answered `250` at the end of their data (stored or queued).
    #[zbus(property(emits_changed_signal = "false"))]
    fn messages_received(&self) -> Result<u64, zbus::fdo::Error> {
        self.counter("messages.received")
    }

    /// Copies stored in local mailboxes (one per mailbox).
    #[zbus(property(emits_changed_signal = "false"))]
    fn messages_delivered(&self) -> Result<u64, zbus::fdo::Error> {
        self.counter("messages.delivered")
    }

    /// Messages spooled for remote recipients.
    #[zbus(property(emits_changed_signal = "false"))]
    fn messages_queued(&self) -> Result<u64, zbus::fdo::Error> {
        self.counter("messages.queued")
    }

    /// Recipients the queue delivered to remote servers.
    #[zbus(property(emits_changed_signal = "false"))]
    fn messages_relayed(&self) -> Result<u64, zbus::fdo::Error> {
        self.counter("messages.relayed")
    }

    /// Delivery status notifications sent to senders.
    #[zbus(property(emits_changed_signal = "false"))]
    fn messages_bounced(&self) -> Result<u64, zbus::fdo::Error> {
        self.counter("messages.bounced")
    }

    /// Refused SMTP commands, by reply code and enhanced code (`451 4.7.1`: greylisting or
    /// a policy's temporary refusal, `554 5.7.1`: blocked, `452 4.2.2`: mailbox full, …).
    #[zbus(property(emits_changed_signal = "false"))]
    fn refusals(&self) -> Result<BTreeMap<String, u64>, zbus::fdo::Error> {
        Ok(self.totals().map_err(fdo)?.group("refusals"))
    }

    /// Failed logins (SMTP AUTH, IMAP, POP3).
    #[zbus(property(emits_changed_signal = "false"))]
    fn auth_failures(&self) -> Result<u64, zbus::fdo::Error> {
        self.counter("auth.failures")
    }

    /// Messages in the outbound queue now.
    #[zbus(property(emits_changed_signal = "false"))]
    fn queue_length(&self) -> Result<u32, zbus::fdo::Error> {
        let ids = Spool::new(&self.state_dir)
            .list()
            .map_err(|err| zbus::fdo::Error::Failed(format!("{err:#}")))?;
        Ok(u32::try_from(ids.len()).unwrap_or(u32::MAX))
    }

    /// Sets every counter to zero; counting starts again now.
    async fn reset(
        &self,
        #[zbus(header)] header: zbus::message::Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<(), AdminError> {
        super::polkit::authorize(&header, connection).await?;
        let dir = self.state_dir.clone();
        tokio::task::spawn_blocking(move || stats::reset(&dir))
            .await?
            .map_err(|err| AdminError::Failed(format!("resetting the statistics: {err}")))?;
        info!("statistics reset");
        Ok(())
    }
}
