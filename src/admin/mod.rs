//! `icsmail admind`: the administration service on the system bus (docs/dbus.md). It owns
//! `org.icsmail.Mail1` and serves, on `/org/icsmail/Mail1`, the settings (`settings`), the
//! white- and blacklists (`lists`), the accounts (`mailboxes`), the outbound queue
//! (`queue`) and the statistics (`statistics`). Every change goes to the override layer
//! (`overrides`); the daemons notice the file and reload, keeping their connections. Who
//! may call is the bus policy's decision (units/dbus/org.icsmail.Mail1.conf: root and the
//! `icsmail-admin` group); the service itself trusts the bus.
//!
//! The bus is the system bus, or the one `DBUS_SYSTEM_BUS_ADDRESS` names (the tests' private
//! bus).

mod error;
pub mod keys;
mod lists;
mod mailboxes;
pub mod overrides;
mod queue;
mod settings;
mod statistics;

use std::sync::Arc;

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Mutex;
use tracing::info;

use crate::config::layers::Source;
use crate::net::notify;
use lists::ListsInterface;
use mailboxes::MailboxesInterface;
use overrides::Overrides;
use queue::QueueInterface;
use settings::SettingsInterface;
use statistics::StatisticsInterface;

/// The service's well-known name on the bus.
pub const BUS_NAME: &str = "org.icsmail.Mail1";
/// The object that carries the interfaces.
pub const OBJECT_PATH: &str = "/org/icsmail/Mail1";

/// Serves the admin interfaces for `source`'s configuration until SIGTERM.
pub fn run(source: Source) -> anyhow::Result<()> {
    crate::logging::init();
    let name = source.name();
    let overrides =
        Overrides::new(source.clone()).map_err(|errors| anyhow::anyhow!("{name}:\n{errors}"))?;
    let overrides = Arc::new(overrides);
    let state_dir = overrides.state_dir().to_path_buf();
    let edits = Arc::new(Mutex::new(()));
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let _connection = zbus::connection::Builder::system()
            .name(BUS_NAME)
            .serve_at(
                OBJECT_PATH,
                SettingsInterface {
                    overrides: overrides.clone(),
                    edits: edits.clone(),
                },
            )
            .serve_at(
                OBJECT_PATH,
                ListsInterface {
                    overrides: overrides.clone(),
                    edits: edits.clone(),
                },
            )
            .serve_at(
                OBJECT_PATH,
                MailboxesInterface {
                    overrides: overrides.clone(),
                    edits,
                },
            )
            .serve_at(OBJECT_PATH, QueueInterface { source })
            .serve_at(OBJECT_PATH, StatisticsInterface { state_dir })
            .build()
            .await
            .with_context(|| format!("taking the name {BUS_NAME} on the system bus"))?;
        info!(name = BUS_NAME, overrides = %overrides.path().display(), "admin service ready");
        notify::ready(&format!("serving {BUS_NAME}"));
        let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("SIGINT handler")?;
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        info!("admin service stopping");
        Ok(())
    })
}
