//! `org.icsmail.Mail1.Storage`: where the mail is, and `Move` (docs/dbus.md, "Storage").
//! The move itself is `store::relocate`; here it becomes a task, and its end writes the new
//! `storage.path` into the override layer (under the move's pause, just before its switch).

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::Mutex;
use tracing::{info, warn};
use zbus::object_server::SignalEmitter;
use zbus::OwnedObjectPath;

use super::error::AdminError;
use super::overrides::Overrides;
use super::settings::SettingsInterface;
use super::tasks::{TaskShared, TaskState, Tasks};
use crate::store::relocate::{self, MoveError, MoveRequest, Observer, Outcome};
use crate::store::root;

/// The task kind of a move.
const MOVE_TASK: &str = "storage-move";

pub struct StorageInterface {
    pub overrides: Arc<Overrides>,
    pub edits: Arc<Mutex<()>>,
    pub tasks: Arc<Tasks>,
}

#[zbus::interface(name = "org.icsmail.Mail1.Storage")]
impl StorageInterface {
    /// The tree that holds the mail now (the `mail-root` link's target).
    #[zbus(property(emits_changed_signal = "false"))]
    fn path(&self) -> zbus::fdo::Result<String> {
        match root::in_force(self.overrides.state_dir()) {
            Ok(Some(tree)) => Ok(tree.display().to_string()),
            Ok(None) => Err(zbus::fdo::Error::Failed(
                "no store yet: the daemons make it at their first start".into(),
            )),
            Err(err) => Err(zbus::fdo::Error::Failed(format!("mail-root: {err}"))),
        }
    }

    /// Moves the mail to the tree `path` (absolute); returns the task at once. The tree
    /// must be writable by the services. If it already holds mail, the store switches to it
    /// without a copy; otherwise everything is copied while mail keeps flowing, and the
    /// switch comes after a last pass under a short pause (docs/storage.md).
    #[zbus(name = "Move")]
    async fn move_to(
        &self,
        path: &str,
        #[zbus(header)] header: zbus::message::Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<OwnedObjectPath, AdminError> {
        super::polkit::authorize(&header, connection).await?;
        let target = PathBuf::from(path);
        if !target.is_absolute() {
            return Err(AdminError::InvalidArgument(format!(
                "{path}: the new storage path must be absolute"
            )));
        }
        if self.tasks.running(MOVE_TASK) {
            return Err(AdminError::Busy("a storage move is running".into()));
        }
        let state_dir = self.overrides.state_dir().to_path_buf();
        let from = root::in_force(&state_dir)
            .ok()
            .flatten()
            .map(|tree| tree.display().to_string())
            .unwrap_or_else(|| "?".into());
        let shared = TaskShared::new(MOVE_TASK, format!("{from} -> {path}"));
        let overrides = self.overrides.clone();
        let edits = self.edits.clone();
        let connection = connection.clone();
        let handle = tokio::runtime::Handle::current();
        let task = self
            .tasks
            .start(shared, move |task| {
                let result = run_move(&overrides, &edits, &target, task);
                if result.is_ok() {
                    handle.spawn(announce_new_path(connection));
                }
                result
            })
            .await?;
        info!(target = path, task = %task, "storage move started");
        Ok(task)
    }
}

/// The worker of a move task (blocking).
fn run_move(
    overrides: &Overrides,
    edits: &Mutex<()>,
    target: &std::path::Path,
    task: &TaskShared,
) -> Result<(), (TaskState, String)> {
    let setting = overrides
        .resolve("storage.path")
        .map_err(|err| (TaskState::Failed, err.to_string()))?;
    let mut write_override = || {
        let _edit = edits.blocking_lock();
        let value = serde_json::Value::String(target.display().to_string());
        overrides
            .set(&setting, value)
            .map_err(|err| std::io::Error::other(AdminError::from(err).to_string()))
    };
    let request = MoveRequest {
        state_dir: overrides.state_dir(),
        target,
        before_switch: &mut write_override,
    };
    match relocate::relocate(request, &TaskObserver(task)) {
        Ok(outcome) => {
            match outcome {
                Outcome::Copied {
                    files,
                    bytes,
                    passes,
                    pause,
                } => info!(
                    files,
                    bytes,
                    passes,
                    pause_ms = pause.as_millis() as u64,
                    "storage moved"
                ),
                other => info!(outcome = ?other, "storage move done"),
            }
            Ok(())
        }
        Err(MoveError::Cancelled(partial)) => Err((
            TaskState::Cancelled,
            format!(
                "cancelled; the partial copy in {} is marked incomplete",
                partial.display()
            ),
        )),
        Err(err) => {
            warn!("storage move failed: {err}");
            Err((TaskState::Failed, err.to_string()))
        }
    }
}

/// `Settings.Changed("storage.path")` once a move has switched.
async fn announce_new_path(connection: zbus::Connection) {
    let emitter = match SignalEmitter::new(&connection, super::OBJECT_PATH) {
        Ok(emitter) => emitter,
        Err(err) => return warn!("Changed signal: {err}"),
    };
    if let Err(err) = SettingsInterface::changed(&emitter, "storage.path").await {
        warn!("Changed signal: {err}");
    }
}

struct TaskObserver<'a>(&'a TaskShared);

impl Observer for TaskObserver<'_> {
    fn progress(&self, done: u64, total: u64) {
        self.0.set_bytes(done, total);
    }

    fn cancelled(&self) -> bool {
        self.0.cancel_requested()
    }
}
