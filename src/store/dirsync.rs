//! Coalesced directory fsyncs (group commit).
//!
//! After a message file is renamed into `new/`, the directory must be fsync'd before the `250`.
//! When many sessions deliver into the same directory at once, one fsync that *starts after* a
//! caller's rename covers that caller: callers wait for such a sync instead of each running their
//! own. That keeps every acknowledged message durable while sharing the ~ms cost of a sync.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

#[derive(Default)]
struct SyncState {
    /// Number of syncs started so far.
    started: u64,
    /// Highest sync number known to have completed successfully.
    done: u64,
    running: bool,
    /// Error of the last sync, reported to the callers that waited for it.
    last_error: Option<(u64, io::ErrorKind, String)>,
}

#[derive(Default)]
struct DirState {
    state: Mutex<SyncState>,
    finished: Condvar,
}

/// Shares directory fsyncs between concurrent callers (blocking; call from blocking threads).
#[derive(Default, Clone)]
pub struct DirSyncer {
    dirs: Arc<Mutex<HashMap<PathBuf, Arc<DirState>>>>,
}

impl DirSyncer {
    /// Returns once a fsync of `dir` that began after this call has completed.
    pub fn sync(&self, dir: &Path) -> io::Result<()> {
        let entry = {
            let mut dirs = self.dirs.lock().unwrap_or_else(PoisonError::into_inner);
            dirs.entry(dir.to_path_buf()).or_default().clone()
        };
        let mut state = entry.state.lock().unwrap_or_else(PoisonError::into_inner);
        // A sync already running may have begun before our rename: we need the next one.
        let needed = state.started + 1;
        loop {
            if state.done >= needed {
                return Ok(());
            }
            if let Some((number, kind, message)) = &state.last_error {
                if *number >= needed {
                    return Err(io::Error::new(*kind, message.clone()));
                }
            }
            if state.running {
                state = entry
                    .finished
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            state.running = true;
            state.started += 1;
            let number = state.started;
            drop(state);
            let result = File::open(dir).and_then(|file| file.sync_all());
            state = entry.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.running = false;
            match result {
                Ok(()) => state.done = state.done.max(number),
                Err(err) => state.last_error = Some((number, err.kind(), err.to_string())),
            }
            entry.finished.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_callers_all_return() {
        let dir = std::env::temp_dir();
        let syncer = DirSyncer::default();
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let syncer = syncer.clone();
                let dir = dir.clone();
                std::thread::spawn(move || syncer.sync(&dir))
            })
            .collect();
        for thread in threads {
            thread.join().unwrap().unwrap();
        }
    }

    #[test]
    fn missing_directory_is_an_error() {
        let syncer = DirSyncer::default();
        assert!(syncer.sync(Path::new("/nonexistent/icsmail-test")).is_err());
    }
}
