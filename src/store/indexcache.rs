//! This process's memory of folder indexes, so that an unchanged folder is neither re-read nor
//! re-listed on every command (all IMAP sessions of a daemon share it).
//!
//! An entry is trusted only while the index file still carries the random write id the entry
//! was made with (one small read, under the folder lock), so a write by another process is
//! always seen. The directory listing is reused only while `new/` and `cur/` are unchanged
//! *and* were last changed more than `filekey::SETTLE` before they were looked at: file times
//! tick coarsely (a few milliseconds), so a delivery in the same tick as the look would
//! otherwise go unseen.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use super::filekey::{settled, FileKey};
use super::indexfile::FolderIndex;

/// Folders remembered; beyond that the memory starts over (it is only a cache).
const MAX_FOLDERS: usize = 2000;

struct Entry {
    write_id: u64,
    dirs: [FileKey; 2],
    dirs_settled: bool,
    index: FolderIndex,
}

fn entries() -> &'static Mutex<HashMap<PathBuf, Entry>> {
    static ENTRIES: OnceLock<Mutex<HashMap<PathBuf, Entry>>> = OnceLock::new();
    ENTRIES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The remembered index of `dir` if the file still is the one we remember, and whether its
/// listing can be reused for directories now at `dirs`. Call under the folder lock.
pub fn recall(dir: &Path, index_file: &Path, dirs: [FileKey; 2]) -> Option<(FolderIndex, bool)> {
    let entries = entries().lock().unwrap_or_else(PoisonError::into_inner);
    let entry = entries.get(dir)?;
    if read_write_id(index_file).ok()? != entry.write_id {
        return None;
    }
    let listing_current = entry.dirs_settled && entry.dirs == dirs;
    Some((entry.index.clone(), listing_current))
}

/// Remembers `index` as written (or read) with `write_id`, listed when the directories were at
/// `dirs`.
pub fn remember(dir: &Path, write_id: u64, dirs: [FileKey; 2], index: &FolderIndex) {
    let mut entries = entries().lock().unwrap_or_else(PoisonError::into_inner);
    if entries.len() >= MAX_FOLDERS && !entries.contains_key(dir) {
        entries.clear();
    }
    entries.insert(
        dir.to_path_buf(),
        Entry {
            write_id,
            dirs,
            dirs_settled: dirs.iter().all(|key| settled(*key)),
            index: index.clone(),
        },
    );
}

/// The write id this process last remembered for `dir` (0 if none): changes whenever an
/// index write by this process changed the folder.
pub fn generation(dir: &Path) -> u64 {
    let entries = entries().lock().unwrap_or_else(PoisonError::into_inner);
    entries.get(dir).map_or(0, |e| e.write_id)
}

/// The write id in the index file's first line (its last number).
fn read_write_id(index_file: &Path) -> io::Result<u64> {
    let mut head = [0u8; 128];
    let read = File::open(index_file)?.read(&mut head)?;
    let line = head[..read].split(|&b| b == b'\n').next().unwrap_or(&[]);
    std::str::from_utf8(line)
        .ok()
        .and_then(|line| line.split(' ').nth(6))
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no write id"))
}
