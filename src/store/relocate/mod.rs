//! Moving the store to another tree while mail keeps flowing (docs/storage.md, "Moving the
//! store"): the D-Bus `Storage.Move` task and `icsmail storage-move` both run [`relocate`].
//!
//! 1. Copy passes while every daemon works on as before: a full pass, then passes of what
//!    changed meanwhile, until one finds little left to do.
//! 2. The pause ([`gate`](super::gate)): deliveries get `451`, IMAP and POP3 writes wait;
//!    one last pass, a sync of the target file system, then the switch of the `mail-root`
//!    link ([`root`](super::root)). The pause lasts as long as that last pass.
//! 3. The old tree stays, marked, for the administrator to remove.
//!
//! A target that already holds mail ([`root::holds_mail`]) is switched to without a copy.

mod apart;
mod tree;

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::{info, warn};

use super::gate;
use super::root::{self, INCOMPLETE_MARKER, MOVED_MARKER};
use tree::Mirror;

/// Copy passes before the pause is tried, at most (the first one included).
const MAX_PASSES_BEFORE_PAUSE: u32 = 6;
/// A pass that copied at most this many files means the pause will be short: take it.
const SMALL_PASS_FILES: u64 = 200;
/// How long the mover waits for the writes in flight once it has paused new ones.
const PAUSE_PATIENCE: Duration = Duration::from_secs(10);
/// Tries to pause before the move gives up (a pass runs between two tries).
const PAUSE_TRIES: u32 = 5;
/// Only one move at a time: held by the mover, in `stateDir`.
const MOVE_LOCK: &str = "storage-move.lock";
/// The per-mailbox quota count (docs/storage.md, "Quotas"); see [`forget_quota_counts`].
const QUOTA_COUNT_FILE: &str = "maildirsize";

/// What the mover reports, and how it learns that it is to stop.
pub trait Observer: Send + Sync {
    /// Bytes copied so far and the bytes known to copy (both grow with later passes).
    fn progress(&self, done: u64, total: u64);
    /// Whether the administrator asked to stop; asked between files.
    fn cancelled(&self) -> bool;
}

/// How a move ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The tree was already the store.
    AlreadyInForce,
    /// The target held mail: the store switched to it without a copy.
    Switched,
    /// The store was copied in `passes` passes, the last one under a pause of `pause`.
    Copied {
        files: u64,
        bytes: u64,
        passes: u32,
        pause: Duration,
    },
}

/// Why a move did not happen. The store stays where it was in every case.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error("the target {0} is not an absolute path")]
    NotAbsolute(PathBuf),
    #[error("{target} is inside {in_force}, the store in force")]
    InsideSource { target: PathBuf, in_force: PathBuf },
    #[error("{in_force}, the store in force, is inside the target {target}")]
    ContainsSource { target: PathBuf, in_force: PathBuf },
    #[error("another storage move is running")]
    AnotherMove,
    #[error("{tree} belongs to uid {owner} and this move runs as uid {me}: run it as the store's owner (e.g. `runuser -u icsmail -- icsmail storage-move …`), so that the copies are the daemons' own")]
    NotOwner { tree: PathBuf, owner: u32, me: u32 },
    #[error("the move was cancelled; the partial copy in {0} stays, marked as incomplete")]
    Cancelled(PathBuf),
    #[error("the writes in flight did not finish within {0:?} in {1} tries")]
    NoPause(Duration, u32),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> MoveError {
    let what = what.into();
    move |source| MoveError::Io { what, source }
}

/// What a move is asked to do.
pub struct MoveRequest<'a> {
    pub state_dir: &'a Path,
    pub target: &'a Path,
    /// Run under the pause just before the switch (the D-Bus move writes `storage.path`
    /// into the override layer here, so that a crash after the switch leaves no move back).
    pub before_switch: &'a mut dyn FnMut() -> io::Result<()>,
}

/// Moves the store in force to `request.target`; blocking, for minutes on a big store.
pub fn relocate(request: MoveRequest<'_>, observer: &dyn Observer) -> Result<Outcome, MoveError> {
    let MoveRequest {
        state_dir,
        target,
        before_switch,
    } = request;
    if !target.is_absolute() {
        return Err(MoveError::NotAbsolute(target.to_path_buf()));
    }
    let _one_move = exclusive(&state_dir.join(MOVE_LOCK))?;
    let source = root::in_force(state_dir)
        .map_err(io_error("reading the mail-root link"))?
        .ok_or_else(|| MoveError::Io {
            what: format!("{}", root::link_path(state_dir).display()),
            source: io::Error::new(io::ErrorKind::NotFound, "no store in force yet"),
        })?;
    fs::create_dir_all(target).map_err(io_error(format!("creating {}", target.display())))?;
    let source_real =
        fs::canonicalize(&source).map_err(io_error(format!("{}", source.display())))?;
    let target_real =
        fs::canonicalize(target).map_err(io_error(format!("{}", target.display())))?;
    check_owner(&source_real)?;
    clear_stale_markers(&source_real);
    if source_real == target_real {
        // storage.path may still name another tree (a crash after the override was written):
        // it names this one from now on.
        before_switch().map_err(io_error("writing the new storage.path"))?;
        return Ok(Outcome::AlreadyInForce);
    }
    if target_real.starts_with(&source_real) {
        return Err(MoveError::InsideSource {
            target: target.to_path_buf(),
            in_force: source,
        });
    }
    if source_real.starts_with(&target_real) {
        return Err(MoveError::ContainsSource {
            target: target.to_path_buf(),
            in_force: source,
        });
    }
    let holds_mail = root::holds_mail(target).map_err(io_error(format!("{}", target.display())))?;
    if holds_mail {
        info!(target = %target.display(), "the target holds mail: switching to it, no copy");
        let paused = pause_writers(state_dir, &mut || Ok(()))?;
        apart::keep_uidvalidities_apart(&source, target)
            .map_err(io_error("raising the target's UIDVALIDITY records"))?;
        switch(state_dir, &source, target, before_switch)?;
        drop(paused);
        return Ok(Outcome::Switched);
    }
    copy_and_switch(state_dir, &source, target, before_switch, observer)
}

fn copy_and_switch(
    state_dir: &Path,
    source: &Path,
    target: &Path,
    before_switch: &mut dyn FnMut() -> io::Result<()>,
    observer: &dyn Observer,
) -> Result<Outcome, MoveError> {
    // A tree this store left earlier is made an exact copy, top level included.
    let old_tree = target.join(MOVED_MARKER).exists();
    mark(&target.join(INCOMPLETE_MARKER), "")?;
    let (_, first_bytes) =
        tree::measure(source).map_err(io_error(format!("reading {}", source.display())))?;
    let mut total = first_bytes;
    let mut done = 0u64;
    let mut files = 0u64;
    let mut mirror = Mirror::new(old_tree);
    let mut passes = 0u32;
    let mut run_pass = |passes: &mut u32, files: &mut u64| -> Result<tree::PassCounts, MoveError> {
        *passes += 1;
        let pass_number = *passes;
        let counts = mirror
            .pass(
                source,
                target,
                &mut |bytes| {
                    done = done.saturating_add(bytes);
                    // What turns up after the first measure (later passes) adds to both.
                    total = total.max(done);
                    observer.progress(done, total);
                },
                &|| observer.cancelled(),
            )
            .map_err(|err| match err.kind() {
                io::ErrorKind::Interrupted => MoveError::Cancelled(target.to_path_buf()),
                _ => MoveError::Io {
                    what: format!("copying {} to {}", source.display(), target.display()),
                    source: err,
                },
            })?;
        *files += counts.files_copied;
        info!(
            pass = pass_number,
            files = counts.files_copied,
            bytes = counts.bytes_copied,
            removed = counts.removed,
            "storage move: pass done"
        );
        Ok(counts)
    };
    loop {
        let counts = run_pass(&mut passes, &mut files)?;
        if passes >= MAX_PASSES_BEFORE_PAUSE || counts.files_copied <= SMALL_PASS_FILES {
            break;
        }
    }
    // What is copied so far goes to disk now, so that the sync under the pause has only
    // the last pass to write.
    sync_file_system(target)?;
    let started = std::time::Instant::now();
    let mut between_tries = || run_pass(&mut passes, &mut files).map(|_| ());
    let paused = pause_writers(state_dir, &mut between_tries)?;
    let pause_began = std::time::Instant::now();
    run_pass(&mut passes, &mut files)?;
    sync_file_system(target)?;
    forget_quota_counts(target);
    switch(state_dir, source, target, before_switch)?;
    let pause = pause_began.elapsed();
    drop(paused);
    info!(
        target = %target.display(),
        passes,
        files,
        bytes = done,
        pause_ms = pause.as_millis() as u64,
        waited_ms = started.elapsed().as_millis() as u64,
        "storage move: switched to the new tree"
    );
    Ok(Outcome::Copied {
        files,
        bytes: done,
        passes,
        pause,
    })
}

/// Pauses the store's writers, running `between_tries` (another pass) when the writes in
/// flight take too long.
fn pause_writers(
    state_dir: &Path,
    between_tries: &mut dyn FnMut() -> Result<(), MoveError>,
) -> Result<gate::Paused, MoveError> {
    for attempt in 1..=PAUSE_TRIES {
        if let Some(paused) =
            gate::pause(state_dir, PAUSE_PATIENCE).map_err(io_error("pausing the store"))?
        {
            return Ok(paused);
        }
        warn!(
            attempt,
            "storage move: writes still in flight, copying more before the next try"
        );
        // A cancel or a copy error during this pass ends the move as it would any pass.
        between_tries()?;
    }
    Err(MoveError::NoPause(PAUSE_PATIENCE, PAUSE_TRIES))
}

/// The switch, under the pause, in the order that leaves no crash window pointing a later
/// move at a stale tree: `before_switch` (the override), the old tree marked as left, the
/// link renamed, the target's markers removed.
fn switch(
    state_dir: &Path,
    source: &Path,
    target: &Path,
    before_switch: &mut dyn FnMut() -> io::Result<()>,
) -> Result<(), MoveError> {
    before_switch().map_err(io_error("writing the new storage.path"))?;
    mark(
        &source.join(MOVED_MARKER),
        &format!("{}\n", target.display()),
    )?;
    root::switch_link(state_dir, target).map_err(io_error("switching the mail-root link"))?;
    // The target is the store now, whatever follows: a failure from here on is only logged
    // (the next move clears markers left in the tree in force).
    for marker in [INCOMPLETE_MARKER, MOVED_MARKER] {
        match fs::remove_file(target.join(marker)) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => warn!(
                marker,
                "storage move: switched, but the marker stays: {err}"
            ),
        }
    }
    if let Err(err) = fs::File::open(target).and_then(|dir| dir.sync_all()) {
        warn!(target = %target.display(), "storage move: switched, but syncing the tree: {err}");
    }
    Ok(())
}

/// The copies and the directories a move makes are its own: made by another user (root in
/// a shell), they would be unwritable for the daemons once the store switched to them.
fn check_owner(source: &Path) -> Result<(), MoveError> {
    use std::os::unix::fs::MetadataExt;
    let owner = fs::metadata(source)
        .map_err(io_error(format!("{}", source.display())))?
        .uid();
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if owner != me {
        return Err(MoveError::NotOwner {
            tree: source.to_path_buf(),
            owner,
            me,
        });
    }
    Ok(())
}

/// Markers a crash left in the tree in force (a move interrupted after its switch, or one
/// that marked the tree as left just before crashing): that tree is the store, so they go.
fn clear_stale_markers(in_force: &Path) {
    for marker in [INCOMPLETE_MARKER, MOVED_MARKER] {
        let _ = fs::remove_file(in_force.join(marker));
    }
}

/// Writes a marker file durably.
fn mark(path: &Path, text: &str) -> Result<(), MoveError> {
    let what = format!("writing {}", path.display());
    let write = || -> io::Result<()> {
        let file = fs::File::create(path)?;
        io::Write::write_all(&mut &file, text.as_bytes())?;
        file.sync_all()?;
        match path.parent() {
            Some(dir) => fs::File::open(dir)?.sync_all(),
            None => Ok(()),
        }
    };
    write().map_err(io_error(what))
}

/// Every copied file and directory on the target's disk, with one `syncfs(2)` rather than
/// one fsync per file.
fn sync_file_system(target: &Path) -> Result<(), MoveError> {
    let what = format!("syncing {}", target.display());
    let dir = fs::File::open(target).map_err(io_error(what.clone()))?;
    // SAFETY: syncfs on a descriptor we own.
    if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
        return Err(io_error(what)(io::Error::last_os_error()));
    }
    Ok(())
}

/// The copied Maildir++ quota counts are dropped: a change counted after the last pass
/// (an expunge finishing its count just after its index update) would be missing from them,
/// and the next check rebuilds a missing count from the mailbox (docs/storage.md).
fn forget_quota_counts(target: &Path) {
    for mailbox in root::mailboxes(target).unwrap_or_default() {
        let _ = fs::remove_file(mailbox.join(QUOTA_COUNT_FILE));
    }
}

/// An exclusive lock held for the move; `AnotherMove` when a move holds it.
fn exclusive(path: &Path) -> Result<fs::File, MoveError> {
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_error(format!("opening {}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(MoveError::AnotherMove),
        Err(fs::TryLockError::Error(err)) => {
            Err(io_error(format!("locking {}", path.display()))(err))
        }
    }
}

#[cfg(test)]
mod tests;
