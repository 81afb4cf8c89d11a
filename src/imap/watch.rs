//! Change notification for IDLE: one inotify instance per daemon watches the folders that IDLE
//! sessions have selected (`new/`, `cur/` and the index file's directory entry) and bumps a
//! per-folder counter that those sessions wait on. Idle sessions then cost nothing until mail
//! arrives or flags change. Where inotify is unavailable or out of watches, sessions fall back
//! to polling (the caller sees `None`).

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tokio::io::unix::AsyncFd;
use tokio::sync::watch;

/// Entries appearing or going. Not IN_CLOSE_WRITE: every index read opens the lock file for
/// writing, and waking on that would have idle sessions wake each other for ever.
const EVENTS: u32 = libc::IN_CREATE | libc::IN_MOVED_TO | libc::IN_MOVED_FROM | libc::IN_DELETE;

struct Folder {
    descriptors: Vec<i32>,
    changes: watch::Sender<u64>,
    users: usize,
}

struct Watcher {
    fd: Arc<AsyncFd<OwnedFd>>,
    folders: HashMap<PathBuf, Folder>,
    by_descriptor: HashMap<i32, PathBuf>,
}

/// A session's interest in one folder; dropping it ends the watch when it was the last.
pub struct FolderWatch {
    dir: PathBuf,
    pub changes: watch::Receiver<u64>,
}

impl Drop for FolderWatch {
    fn drop(&mut self) {
        let Some(watcher) = watcher() else {
            return;
        };
        let mut watcher = watcher.lock().unwrap_or_else(PoisonError::into_inner);
        let fd = watcher.fd.get_ref().as_raw_fd();
        let done = match watcher.folders.get_mut(&self.dir) {
            Some(folder) => {
                folder.users -= 1;
                folder.users == 0
            }
            None => false,
        };
        if done {
            if let Some(folder) = watcher.folders.remove(&self.dir) {
                for wd in folder.descriptors {
                    // SAFETY: removing a watch from our own inotify descriptor.
                    unsafe { libc::inotify_rm_watch(fd, wd) };
                    watcher.by_descriptor.remove(&wd);
                }
            }
        }
    }
}

/// The daemon's watcher, started on first use (inside the tokio runtime); None when inotify
/// can't be had.
fn watcher() -> Option<&'static Mutex<Watcher>> {
    static WATCHER: OnceLock<Option<Mutex<Watcher>>> = OnceLock::new();
    WATCHER
        .get_or_init(|| match start() {
            Ok(watcher) => Some(Mutex::new(watcher)),
            Err(err) => {
                tracing::warn!("inotify unavailable, IDLE falls back to polling: {err}");
                None
            }
        })
        .as_ref()
}

fn start() -> io::Result<Watcher> {
    // SAFETY: plain syscall; the descriptor is owned right away.
    let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor nobody else owns; the OwnedFd keeps it open for as
    // long as the AsyncFd lives (register's contract).
    let fd = unsafe { AsyncFd::register(OwnedFd::from_raw_fd(raw)) }
        .map_err(|err| io::Error::other(err.to_string()))?;
    let fd = Arc::new(fd);
    tokio::spawn(read_events(fd.clone()));
    Ok(Watcher {
        fd,
        folders: HashMap::new(),
        by_descriptor: HashMap::new(),
    })
}

/// Watches `dir` (a folder) for changes; None when that isn't possible (then poll).
pub fn watch_folder(dir: &Path) -> Option<FolderWatch> {
    // Keyed by the real directory: the store is reached through the `mail-root` link, and
    // after a storage move the same path is another directory, which needs its own watch.
    let real = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let dir = real.as_path();
    let watcher = watcher()?;
    let mut watcher = watcher.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(folder) = watcher.folders.get_mut(dir) {
        folder.users += 1;
        return Some(FolderWatch {
            dir: dir.to_path_buf(),
            changes: folder.changes.subscribe(),
        });
    }
    let fd = watcher.fd.get_ref().as_raw_fd();
    let mut descriptors = Vec::new();
    for target in [dir.join("new"), dir.join("cur"), dir.to_path_buf()] {
        let Ok(path) = CString::new(target.as_os_str().as_bytes()) else {
            continue;
        };
        // SAFETY: a valid C string and our own inotify descriptor.
        let wd = unsafe { libc::inotify_add_watch(fd, path.as_ptr(), EVENTS) };
        if wd < 0 {
            for wd in descriptors {
                // SAFETY: as above.
                unsafe { libc::inotify_rm_watch(fd, wd) };
            }
            tracing::debug!(
                "inotify watch on {}: {}",
                target.display(),
                io::Error::last_os_error()
            );
            return None;
        }
        descriptors.push(wd);
    }
    let (changes, receiver) = watch::channel(0);
    for wd in &descriptors {
        watcher.by_descriptor.insert(*wd, dir.to_path_buf());
    }
    watcher.folders.insert(
        dir.to_path_buf(),
        Folder {
            descriptors,
            changes,
            users: 1,
        },
    );
    Some(FolderWatch {
        dir: dir.to_path_buf(),
        changes: receiver,
    })
}

/// Reads inotify events for ever and bumps the counters of the folders they concern.
async fn read_events(fd: Arc<AsyncFd<OwnedFd>>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let Ok(mut ready) = fd.readable().await else {
            return;
        };
        // SAFETY: reading into our own buffer from our own descriptor.
        let read =
            unsafe { libc::read(fd.get_ref().as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if read < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::WouldBlock {
                ready.clear_ready();
                continue;
            }
            tracing::warn!("reading inotify events: {err}");
            return;
        }
        let Some(watcher) = watcher() else {
            return;
        };
        let watcher = watcher.lock().unwrap_or_else(PoisonError::into_inner);
        let mut offset = 0usize;
        let header = std::mem::size_of::<libc::inotify_event>();
        while offset + header <= read as usize {
            // SAFETY: the kernel wrote whole events; read_unaligned copes with alignment.
            let event: libc::inotify_event =
                unsafe { std::ptr::read_unaligned(buf.as_ptr().add(offset).cast()) };
            offset += header + event.len as usize;
            let overflow = event.mask & libc::IN_Q_OVERFLOW != 0;
            let folders: Vec<&Folder> = if overflow {
                watcher.folders.values().collect()
            } else {
                watcher
                    .by_descriptor
                    .get(&event.wd)
                    .and_then(|dir| watcher.folders.get(dir))
                    .into_iter()
                    .collect()
            };
            for folder in folders {
                folder.changes.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
    }
}
