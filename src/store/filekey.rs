//! A file's identity and change time, compared between looks to tell whether a folder (its
//! index file, `new/` and `cur/`) may have changed without reading it.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How old a directory change must be before "unchanged" can be believed: file times tick
/// coarsely (a few milliseconds), so a delivery in the same tick as a look would otherwise go
/// unseen.
pub const SETTLE: Duration = Duration::from_secs(2);

/// A file's inode, change second and (nanoseconds ^ size); all zero when it is missing.
pub type FileKey = (u64, i64, i64);

pub fn file_key(path: &Path) -> FileKey {
    match std::fs::metadata(path) {
        Ok(meta) => (
            meta.ino(),
            meta.mtime(),
            meta.mtime_nsec() ^ (meta.size() as i64),
        ),
        Err(_) => (0, 0, 0),
    }
}

/// Whether a file last changed at `key` is old enough (see `SETTLE`).
pub fn settled(key: FileKey) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    key.1 + (SETTLE.as_secs() as i64) < now
}
