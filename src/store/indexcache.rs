//! This process's memory of folder indexes, so that an unchanged folder is neither re-read nor
//! re-listed on every command (all IMAP sessions of a daemon share it).
//!
//! An entry is trusted only while the index file still carries the random write id the entry
//! was made with (one small read), so a write by another process is always seen. Updates
//! take a copy under the folder lock ([`recall`]); sessions that only read get the shared
//! entry without the lock ([`current`]), so they don't wait for a writer's fsyncs. The directory listing is reused while `new/` and `cur/` are unchanged: file
//! times tick coarsely (`filekey::SETTLE`), so a file put there by another program in the same
//! tick as the look would not change them. A listing made when the directories had settled is
//! exact; one made sooner, or this process's own placing and deleting under the lock (which
//! it applies to the index without listing), is believed until the directories settle and
//! then checked by one more listing. A file dropped in by another program (the SMTP
//! delivery, which takes no folder lock) at that very moment therefore shows once the folder
//! has been quiet for `SETTLE`, at the next change that is not ours, or at the latest
//! [`RECHECK_AFTER`] after the last listing when the folder never goes quiet.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use super::filekey::{settled, FileKey};
use super::indexfile::FolderIndex;

/// Folders remembered; beyond that the memory starts over (it is only a cache).
const MAX_FOLDERS: usize = 2000;

/// How long a listing that was not exact is believed in a folder that keeps changing: the
/// bound on how late a delivery hidden by our own change in the same clock tick is seen, at
/// the cost of one listing per folder per period under constant writes.
pub const RECHECK_AFTER: Duration = Duration::from_secs(1);

struct Entry {
    write_id: u64,
    dirs: [FileKey; 2],
    exact: bool,
    /// When the folder was last listed.
    listed_at: Instant,
    /// As last written or read, shared with the sessions that last asked for it.
    index: Arc<FolderIndex>,
}

/// How far a remembered listing of `new/` and `cur/` can be believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// The directories are as remembered and had settled when a listing checked them.
    Exact,
    /// As remembered, but changed too recently for a listing to be sure (see the module
    /// text): believed until they settle or [`RECHECK_AFTER`] has passed.
    Tracked,
    /// Changed since, settled since they were tracked, or tracked for too long: list them.
    Stale,
}

fn entries() -> &'static Mutex<HashMap<PathBuf, Entry>> {
    static ENTRIES: OnceLock<Mutex<HashMap<PathBuf, Entry>>> = OnceLock::new();
    ENTRIES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The remembered index of `dir` if the file still is the one we remember, and how far its
/// listing holds for directories now at `dirs`: a copy, for the update under the folder lock
/// to change. Call under the folder lock.
pub fn recall(dir: &Path, index_file: &Path, dirs: [FileKey; 2]) -> Option<(FolderIndex, Listing)> {
    let (index, listing) = remembered(dir, index_file, dirs)?;
    Some((FolderIndex::clone(&index), listing))
}

/// The remembered index of `dir`, shared, when it is the folder as it stands: the file still
/// the one remembered and the listing good for directories now at `dirs`. Needs no lock, so
/// that reading sessions don't wait for a writer's fsyncs: a writer holding the lock has
/// either not replaced the file yet (then this is the folder as before its change) or has
/// (then the write ids differ, and the caller takes the lock).
pub fn current(dir: &Path, index_file: &Path, dirs: [FileKey; 2]) -> Option<Arc<FolderIndex>> {
    let (index, listing) = remembered(dir, index_file, dirs)?;
    (listing != Listing::Stale).then_some(index)
}

/// The entry of `dir` if the index file still carries its write id (read before the memory
/// is locked: the small read needn't hold up other folders), and how far its listing holds.
fn remembered(
    dir: &Path,
    index_file: &Path,
    dirs: [FileKey; 2],
) -> Option<(Arc<FolderIndex>, Listing)> {
    let write_id = read_write_id(index_file).ok()?;
    let entries = entries().lock().unwrap_or_else(PoisonError::into_inner);
    let entry = entries.get(dir)?;
    (entry.write_id == write_id).then(|| (Arc::clone(&entry.index), listing_of(entry, dirs)))
}

fn listing_of(entry: &Entry, dirs: [FileKey; 2]) -> Listing {
    if entry.dirs != dirs {
        Listing::Stale
    } else if entry.exact {
        Listing::Exact
    } else if dirs.iter().all(|key| settled(*key)) || entry.listed_at.elapsed() >= RECHECK_AFTER {
        Listing::Stale
    } else {
        Listing::Tracked
    }
}

/// Remembers `index` as written (or read) with `write_id`, its messages the files of the
/// directories at `dirs`; `exact` when a listing checked that after they had settled;
/// `listed` when this update listed the folder (otherwise the time of the last listing is
/// kept). Returns the index, shared with the memory.
pub fn remember(
    dir: &Path,
    write_id: u64,
    dirs: [FileKey; 2],
    exact: bool,
    listed: bool,
    index: FolderIndex,
) -> Arc<FolderIndex> {
    let index = Arc::new(index);
    let mut entries = entries().lock().unwrap_or_else(PoisonError::into_inner);
    if entries.len() >= MAX_FOLDERS && !entries.contains_key(dir) {
        entries.clear();
    }
    let listed_at = match entries.get(dir) {
        Some(entry) if !listed => entry.listed_at,
        _ => Instant::now(),
    };
    entries.insert(
        dir.to_path_buf(),
        Entry {
            write_id,
            dirs,
            exact,
            listed_at,
            index: Arc::clone(&index),
        },
    );
    index
}

/// \Recent claims made in this process's memory while the folder lock was busy (see
/// `Folder::claim_recent`): per folder, its UIDVALIDITY and the UID below which messages are
/// claimed. The next update under the lock writes them into the index; until then every
/// session of this process honours them, so a message is \Recent in one session only.
fn claims() -> &'static Mutex<HashMap<PathBuf, (u32, u32)>> {
    static CLAIMS: OnceLock<Mutex<HashMap<PathBuf, (u32, u32)>>> = OnceLock::new();
    CLAIMS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The UID below which the messages of `dir` (under `uid_validity`) are claimed in memory; 0
/// when none are.
pub fn claimed_below(dir: &Path, uid_validity: u32) -> u32 {
    let claims = claims().lock().unwrap_or_else(PoisonError::into_inner);
    match claims.get(dir) {
        Some(&(validity, below)) if validity == uid_validity => below,
        _ => 0,
    }
}

/// Claims the messages of `dir` from `first_recent` (the index's mark) up to `uid_next` in
/// memory; returns the first UID this claim got (those below were claimed before).
pub fn claim_in_memory(dir: &Path, uid_validity: u32, first_recent: u32, uid_next: u32) -> u32 {
    let mut claims = claims().lock().unwrap_or_else(PoisonError::into_inner);
    if claims.len() >= MAX_FOLDERS && !claims.contains_key(dir) {
        claims.clear();
    }
    let claim = claims.entry(dir.to_path_buf()).or_insert((uid_validity, 0));
    if claim.0 != uid_validity {
        *claim = (uid_validity, 0);
    }
    let from = first_recent.max(claim.1);
    claim.1 = claim.1.max(uid_next);
    from
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
