//! Long operations as bus objects: `/org/icsmail/Mail1/tasks/<n>` with
//! `org.icsmail.Mail1.Task` (progress, state, bytes, `Cancel`, the `Finished` signal), listed
//! by `org.icsmail.Mail1.Tasks.List` (docs/dbus.md, "Tasks"). The work runs on a blocking
//! thread and reports into [`TaskShared`]; a ticker turns what changed into
//! `PropertiesChanged` twice a second, so a copy of millions of files sends no flood.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tracing::warn;
use zbus::object_server::SignalEmitter;
use zbus::OwnedObjectPath;

use super::error::AdminError;

/// How often the progress properties are signalled while a task runs.
const TICK: Duration = Duration::from_millis(500);
/// Finished tasks kept on the bus for a late reader; older ones are removed.
const KEPT_FINISHED: usize = 16;

/// A task's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    Running,
    Done,
    Failed,
    Cancelled,
}

impl TaskState {
    fn as_str(self) -> &'static str {
        match self {
            TaskState::Running => "running",
            TaskState::Done => "done",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
        }
    }
}

/// What the worker thread and the bus object share.
pub struct TaskShared {
    kind: &'static str,
    description: String,
    bytes_done: AtomicU64,
    bytes_total: AtomicU64,
    cancel: AtomicBool,
    end: Mutex<Option<(TaskState, String)>>,
}

impl TaskShared {
    pub fn new(kind: &'static str, description: String) -> Arc<TaskShared> {
        Arc::new(TaskShared {
            kind,
            description,
            bytes_done: AtomicU64::new(0),
            bytes_total: AtomicU64::new(0),
            cancel: AtomicBool::new(false),
            end: Mutex::new(None),
        })
    }

    pub fn set_bytes(&self, done: u64, total: u64) {
        self.bytes_done.store(done, Ordering::Relaxed);
        self.bytes_total.store(total, Ordering::Relaxed);
    }

    pub fn cancel_requested(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    fn state(&self) -> (TaskState, String) {
        self.end
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or((TaskState::Running, String::new()))
    }

    /// 0–100 from the bytes; 99 at most until the task is done (a move's switch is still to
    /// come when the last byte is copied).
    fn progress(&self) -> u32 {
        if self.state().0 == TaskState::Done {
            return 100;
        }
        let done = self.bytes_done.load(Ordering::Relaxed);
        let total = self.bytes_total.load(Ordering::Relaxed);
        if total == 0 {
            return 0;
        }
        let percent = (u128::from(done) * 100 / u128::from(total)).min(99);
        u32::try_from(percent).unwrap_or(99)
    }

    fn snapshot(&self) -> (u32, u64, u64, TaskState) {
        (
            self.progress(),
            self.bytes_done.load(Ordering::Relaxed),
            self.bytes_total.load(Ordering::Relaxed),
            self.state().0,
        )
    }
}

/// `org.icsmail.Mail1.Task` on `/org/icsmail/Mail1/tasks/<n>`.
pub struct TaskInterface {
    shared: Arc<TaskShared>,
}

#[zbus::interface(name = "org.icsmail.Mail1.Task")]
impl TaskInterface {
    /// What the task does: `storage-move`.
    #[zbus(property(emits_changed_signal = "const"))]
    fn kind(&self) -> String {
        self.shared.kind.to_string()
    }

    /// In words, e.g. `/var/lib/icsmail/mail -> /srv/mail`.
    #[zbus(property(emits_changed_signal = "const"))]
    fn description(&self) -> String {
        self.shared.description.clone()
    }

    /// 0–100.
    #[zbus(property)]
    fn progress(&self) -> u32 {
        self.shared.progress()
    }

    /// `running`, `done`, `failed` or `cancelled`.
    #[zbus(property)]
    fn state(&self) -> String {
        self.shared.state().0.as_str().to_string()
    }

    /// Why it failed (empty otherwise).
    #[zbus(property)]
    fn error(&self) -> String {
        self.shared.state().1
    }

    #[zbus(property)]
    fn bytes_done(&self) -> u64 {
        self.shared.bytes_done.load(Ordering::Relaxed)
    }

    /// Grows when more turns up to copy (mail that arrived during the copy).
    #[zbus(property)]
    fn bytes_total(&self) -> u64 {
        self.shared.bytes_total.load(Ordering::Relaxed)
    }

    /// Asks the task to stop; false when it had finished. A cancelled move leaves the store
    /// where it was.
    async fn cancel(
        &self,
        #[zbus(header)] header: zbus::message::Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<bool, AdminError> {
        super::polkit::authorize(&header, connection).await?;
        if self.shared.state().0 != TaskState::Running {
            return Ok(false);
        }
        self.shared.cancel.store(true, Ordering::Relaxed);
        Ok(true)
    }

    /// The task ended: its state and its error (empty when done).
    #[zbus(signal)]
    async fn finished(emitter: &SignalEmitter<'_>, state: &str, error: &str) -> zbus::Result<()>;
}

/// The tasks on the bus.
pub struct Tasks {
    connection: zbus::Connection,
    next: AtomicU32,
    paths: Mutex<VecDeque<(OwnedObjectPath, Arc<TaskShared>)>>,
}

impl Tasks {
    pub fn new(connection: zbus::Connection) -> Arc<Tasks> {
        Arc::new(Tasks {
            connection,
            next: AtomicU32::new(1),
            paths: Mutex::new(VecDeque::new()),
        })
    }

    /// Every task on the bus, oldest first.
    pub fn list(&self) -> Vec<OwnedObjectPath> {
        self.paths
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(path, _)| path.clone())
            .collect()
    }

    /// Whether a task of `kind` runs now.
    pub fn running(&self, kind: &str) -> bool {
        self.paths
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|(_, task)| task.kind == kind && task.state().0 == TaskState::Running)
    }

    /// Puts `shared` on the bus and runs `work` for it on a blocking thread; returns the
    /// task's path at once. `work`'s error text becomes the task's `Error`.
    pub async fn start(
        self: &Arc<Tasks>,
        shared: Arc<TaskShared>,
        work: impl FnOnce(&TaskShared) -> Result<(), (TaskState, String)> + Send + 'static,
    ) -> Result<OwnedObjectPath, AdminError> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let path = OwnedObjectPath::try_from(format!("{}/tasks/{n}", super::OBJECT_PATH))
            .map_err(|err| AdminError::Failed(format!("task path: {err}")))?;
        self.connection
            .object_server()
            .at(
                path.clone(),
                TaskInterface {
                    shared: shared.clone(),
                },
            )
            .await?;
        self.remember(path.clone(), shared.clone()).await;
        let worker = shared.clone();
        let handle = tokio::task::spawn_blocking(move || {
            let end = match work(&worker) {
                Ok(()) => (TaskState::Done, String::new()),
                Err(end) => end,
            };
            *worker.end.lock().unwrap_or_else(PoisonError::into_inner) = Some(end);
        });
        let tasks = self.clone();
        let watched = path.clone();
        tokio::spawn(async move {
            if let Err(err) = tasks.watch(&watched, &shared, handle).await {
                warn!(task = %watched, "task signals: {err}");
            }
        });
        Ok(path)
    }

    /// Signals property changes while `handle` runs, then the end.
    async fn watch(
        &self,
        path: &OwnedObjectPath,
        shared: &TaskShared,
        mut handle: tokio::task::JoinHandle<()>,
    ) -> zbus::Result<()> {
        let iface = self
            .connection
            .object_server()
            .interface::<_, TaskInterface>(path.as_ref())
            .await?;
        let mut last = shared.snapshot();
        loop {
            let finished = tokio::time::timeout(TICK, &mut handle).await.is_ok();
            if finished && shared.state().0 == TaskState::Running {
                // The worker panicked before recording its end.
                *shared.end.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some((TaskState::Failed, "the task stopped unexpectedly".into()));
            }
            let now = shared.snapshot();
            let task = iface.get().await;
            let emitter = iface.signal_emitter();
            if now.0 != last.0 {
                task.progress_changed(emitter).await?;
            }
            if now.1 != last.1 {
                task.bytes_done_changed(emitter).await?;
            }
            if now.2 != last.2 {
                task.bytes_total_changed(emitter).await?;
            }
            if now.3 != last.3 {
                task.state_changed(emitter).await?;
                task.error_changed(emitter).await?;
            }
            last = now;
            if finished {
                let (state, error) = shared.state();
                TaskInterface::finished(emitter, state.as_str(), &error).await?;
                return Ok(());
            }
        }
    }

    /// Records a new task, removing the oldest finished ones beyond [`KEPT_FINISHED`].
    async fn remember(&self, path: OwnedObjectPath, shared: Arc<TaskShared>) {
        let dropped: Vec<OwnedObjectPath> = {
            let mut paths = self.paths.lock().unwrap_or_else(PoisonError::into_inner);
            paths.push_back((path, shared));
            let finished = paths
                .iter()
                .filter(|(_, task)| task.state().0 != TaskState::Running)
                .count();
            let mut excess = finished.saturating_sub(KEPT_FINISHED);
            let mut dropped = Vec::new();
            paths.retain(|(path, task)| {
                if excess > 0 && task.state().0 != TaskState::Running {
                    excess -= 1;
                    dropped.push(path.clone());
                    return false;
                }
                true
            });
            dropped
        };
        for path in dropped {
            let _ = self
                .connection
                .object_server()
                .remove::<TaskInterface, _>(path.as_ref())
                .await;
        }
    }
}

/// `org.icsmail.Mail1.Tasks` on the main object.
pub struct TasksInterface {
    pub tasks: Arc<Tasks>,
}

#[zbus::interface(name = "org.icsmail.Mail1.Tasks")]
impl TasksInterface {
    /// The tasks on the bus: those running and the last finished ones, oldest first.
    fn list(&self) -> Vec<OwnedObjectPath> {
        self.tasks.list()
    }
}
