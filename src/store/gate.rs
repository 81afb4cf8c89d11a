//! The store gate: how a storage move (`relocate`) stops every process from writing to the
//! old tree for the moment of its final pass and switch (docs/storage.md, "Moving the store").
//!
//! Two lock files in `stateDir`, shared by every process of the installation:
//!
//! - `storage.gate`: every write to the store holds a *shared* `flock` on it for as long as
//!   it writes (a delivery, one index update, a folder created); the mover takes it
//!   *exclusively*, which waits for the writes in flight and holds off new ones.
//! - `storage.pause`: the mover holds it exclusively before asking for the gate. A new write
//!   sees the pause first and does not queue up behind the mover; Linux grants a shared
//!   `flock` while an exclusive one waits, so without the pause a busy server could keep the
//!   mover waiting for ever.
//!
//! SMTP delivery does not wait: while paused it gets [`Paused`](io::ErrorKind::WouldBlock) and
//! answers `451` (the client retries in minutes). IMAP and POP3 wait, since the pause lasts
//! a moment and their clients would rather see a slow command than an error.
//!
//! The gate is process-wide state, installed once at start by the programs that run
//! against a live store ([`install`]); without it (unit tests, `check-config`) entering is
//! free. A lock is taken once per thread: nested store calls (an index update inside a
//! delivery) enter again for free, so a thread never waits on a pause it is itself holding up.

use std::cell::Cell;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// The lock file writers share and the mover takes exclusively.
pub const GATE_FILE: &str = "storage.gate";
/// The lock file the mover holds while it waits for the gate.
pub const PAUSE_FILE: &str = "storage.pause";
/// How often a waiting IMAP or POP3 write looks whether the pause is over.
const PAUSE_POLL: Duration = Duration::from_millis(20);

static STATE_DIR: OnceLock<PathBuf> = OnceLock::new();

thread_local! {
    /// How many gate guards this thread holds (only the outermost one holds the lock).
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Makes every later store write of this process go through the gate in `state_dir`.
pub fn install(state_dir: &Path) {
    let _ = STATE_DIR.set(state_dir.to_path_buf());
}

/// Held while a write to the store is in progress.
#[must_use = "the gate is held only while the guard lives"]
pub struct Entered {
    /// The shared lock; `None` when nested or when no gate is installed.
    _lock: Option<File>,
    /// Not `Send`: the depth it counts is its thread's.
    _thread: std::marker::PhantomData<*const ()>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        DEPTH.with(|depth| depth.set(depth.get().saturating_sub(1)));
    }
}

/// Enters for a write, waiting while a move pauses the store (IMAP, POP3, folder changes).
pub fn enter() -> io::Result<Entered> {
    enter_with(true)
}

/// Enters for a delivery: `WouldBlock` at once while a move pauses the store.
pub fn try_enter() -> io::Result<Entered> {
    enter_with(false)
}

fn enter_with(wait: bool) -> io::Result<Entered> {
    let nested = DEPTH.with(|depth| depth.get() > 0);
    let lock = match (nested, STATE_DIR.get()) {
        (false, Some(state_dir)) => Some(share(state_dir, wait)?),
        _ => None,
    };
    DEPTH.with(|depth| depth.set(depth.get() + 1));
    Ok(Entered {
        _lock: lock,
        _thread: std::marker::PhantomData,
    })
}

/// The shared lock on the gate, once no pause is in force.
fn share(state_dir: &Path, wait: bool) -> io::Result<File> {
    loop {
        if !paused(state_dir)? {
            let gate = open(&state_dir.join(GATE_FILE))?;
            if taken(gate.try_lock_shared())? {
                return Ok(gate);
            }
            // The mover holds the gate: it is in its final pass.
        }
        if !wait {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "the mail storage is being moved",
            ));
        }
        std::thread::sleep(PAUSE_POLL);
    }
}

/// Whether a mover holds the pause (a shared probe of it fails).
fn paused(state_dir: &Path) -> io::Result<bool> {
    let pause = open(&state_dir.join(PAUSE_FILE))?;
    Ok(!taken(pause.try_lock_shared())?)
}

/// The mover's hold on the store: writes in flight are done and no new one starts until it
/// is dropped.
pub struct Paused {
    _pause: File,
    _gate: File,
}

/// Pauses every writer of the store in `state_dir`: takes the pause, then waits up to
/// `patience` for the writes in flight. `Ok(None)` when they did not finish in time (the pause
/// is lifted again, so the caller can copy more and try later).
pub fn pause(state_dir: &Path, patience: Duration) -> io::Result<Option<Paused>> {
    let pause = open(&state_dir.join(PAUSE_FILE))?;
    pause.lock()?;
    let gate = open(&state_dir.join(GATE_FILE))?;
    let deadline = std::time::Instant::now() + patience;
    loop {
        if taken(gate.try_lock())? {
            return Ok(Some(Paused {
                _pause: pause,
                _gate: gate,
            }));
        }
        if std::time::Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(PAUSE_POLL);
    }
}

/// A lock file, opened for reading (all `flock` needs). Made readable by everyone when it is
/// missing: whoever makes it first (root running `icsmail queue run` by hand, say) must not
/// lock the daemons' user out of every write.
fn open(path: &Path) -> io::Result<File> {
    match File::open(path) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        opened => return opened,
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o644)
        .open(path)?;
    // Against the umask; fails only for a file another user made meanwhile, which is theirs.
    let _ = file.set_permissions(std::fs::Permissions::from_mode(0o644));
    Ok(file)
}

/// A non-blocking lock request: `Ok(false)` when someone else holds the lock.
fn taken(attempt: Result<(), std::fs::TryLockError>) -> io::Result<bool> {
    match attempt {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(err)) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_dir(name: &str) -> PathBuf {
        crate::test_support::fresh_dir(&format!("gate-{name}"))
    }

    #[test]
    fn a_pause_refuses_deliveries_and_holds_writers_until_it_ends() {
        let dir = state_dir("pause");
        let writer = share(&dir, false).unwrap();
        // A write in flight: the mover cannot finish pausing while it lasts.
        assert!(pause(&dir, Duration::from_millis(50)).unwrap().is_none());
        drop(writer);
        let paused = pause(&dir, Duration::from_secs(5))
            .unwrap()
            .expect("paused");
        let refused = share(&dir, false).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::WouldBlock);
        let waiting = {
            let dir = dir.clone();
            std::thread::spawn(move || share(&dir, true).map(|_| std::time::Instant::now()))
        };
        std::thread::sleep(Duration::from_millis(100));
        let lifted = std::time::Instant::now();
        drop(paused);
        let entered = waiting.join().unwrap().unwrap();
        assert!(
            entered >= lifted,
            "the waiting writer entered during the pause"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn writers_share_the_gate() {
        let dir = state_dir("share");
        let first = share(&dir, false).unwrap();
        let second = share(&dir, false).unwrap();
        drop((first, second));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
