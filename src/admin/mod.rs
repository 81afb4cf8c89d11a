//! `icsmail admind`: the administration service on the system bus (docs/dbus.md). It owns
//! `org.icsmail.Mail1` and serves, on `/org/icsmail/Mail1`, the settings (`settings`), the
//! white- and blacklists (`lists`), the accounts (`mailboxes`), the outbound queue
//! (`queue`) and the statistics (`statistics`); each settings group has an object of its
//! own under `/org/icsmail/Mail1/settings` (`groups`). Every change goes to the override layer
//! (`overrides`); the daemons notice the file and reload, keeping their connections. Who
//! may call is the bus policy's decision (units/dbus/org.icsmail.Mail1.conf: root and the
//! `icsmail-admin` group); the service itself trusts the bus.
//!
//! The bus is the system bus, or the one `DBUS_SYSTEM_BUS_ADDRESS` names (the tests' private
//! bus).

mod edit;
mod error;
mod groups;
pub mod keys;
mod lists;
mod mailboxes;
pub mod overrides;
mod polkit;
mod queue;
mod settings;
mod statistics;
mod storage;
mod tasks;
mod typed;

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
use storage::StorageInterface;
use tasks::{Tasks, TasksInterface};

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
    attach_store(&source)?;
    let edits = Arc::new(Mutex::new(()));
    let groups = groups::Groups::new(overrides.clone(), edits.clone())?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let connection = zbus::connection::Builder::system()
            .serve_at(
                OBJECT_PATH,
                SettingsInterface {
                    overrides: overrides.clone(),
                    edits: edits.clone(),
                    groups: groups.clone(),
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
                    edits: edits.clone(),
                },
            )
            .serve_at(OBJECT_PATH, QueueInterface { source })
            .serve_at(OBJECT_PATH, StatisticsInterface { state_dir })
            .build()
            .await
            .context("connecting to the system bus")?;
        // The tasks need the connection; the name comes last, so that a caller started by
        // bus activation finds every interface in place.
        let tasks = Tasks::new(connection.clone());
        let server = connection.object_server();
        server
            .at(
                OBJECT_PATH,
                StorageInterface {
                    overrides: overrides.clone(),
                    edits,
                    tasks: tasks.clone(),
                },
            )
            .await?;
        server.at(OBJECT_PATH, TasksInterface { tasks }).await?;
        for group in groups.names() {
            let iface = groups::SettingsGroup {
                group: group.clone(),
                groups: groups.clone(),
            };
            server.at(groups::object_path(&group), iface).await?;
        }
        // Changes the service did not make (the files edited underneath, the lists, the
        // mailboxes, a move) are signalled within a second, as the daemons reload them.
        let watcher = connection.clone();
        let watched = groups.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
                watched.refresh(&watcher).await;
            }
        });
        connection
            .request_name(BUS_NAME)
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

/// The store gate and the `mail-root` link, as the daemons have them: a mailbox this
/// service creates goes where the mail is, and a storage move pauses it too.
fn attach_store(source: &Source) -> anyhow::Result<()> {
    // The two paths are all it takes: the layers, not a whole Settings build.
    let config = crate::config::layers::read(source)
        .map_err(|errors| anyhow::anyhow!("{}:\n{errors}", source.name()))?;
    let path = &config.storage.path;
    crate::store::root::attach(&config.state_dir.0, path)
        .with_context(|| format!("storage.path: opening the store {}", path.display()))
}
