//! A file's identity and change time, compared between looks to tell whether a folder (its
//! index file, `new/` and `cur/`) may have changed without reading it.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How old a directory change must be before "unchanged" can be believed where the file
/// system keeps nanosecond times: they are taken from the kernel's coarse clock, which ticks
/// every 1–10 ms, so two changes in one tick carry the same time and the second would go
/// unseen by a look between them. Ten ticks of the slowest clock.
pub const SETTLE: Duration = Duration::from_millis(100);

/// [`SETTLE`] where times are whole seconds (a time with no nanosecond part is taken as that:
/// on a file system that has them, one change in a billion is re-checked for nothing).
pub const SETTLE_WHOLE_SECONDS: Duration = Duration::from_secs(2);

/// A file's identity and last change; all zero when it is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileKey {
    inode: u64,
    mtime_s: i64,
    mtime_ns: i64,
    size: u64,
}

pub fn file_key(path: &Path) -> FileKey {
    match std::fs::metadata(path) {
        Ok(meta) => FileKey {
            inode: meta.ino(),
            mtime_s: meta.mtime(),
            mtime_ns: meta.mtime_nsec(),
            size: meta.size(),
        },
        Err(_) => FileKey::default(),
    }
}

/// Whether a file last changed at `key` changed long enough ago (see [`SETTLE`]) that a
/// change made now would give it another time.
pub fn settled(key: FileKey) -> bool {
    settled_at(key, SystemTime::now())
}

fn settled_at(key: FileKey, now: SystemTime) -> bool {
    let now = now
        .duration_since(UNIX_EPOCH)
        .map(|d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
        .unwrap_or(0);
    let changed = i128::from(key.mtime_s) * 1_000_000_000 + i128::from(key.mtime_ns);
    let settle = if key.mtime_ns == 0 {
        SETTLE_WHOLE_SECONDS
    } else {
        SETTLE
    };
    // A whole-second time may stand for any moment of that second: count from its end.
    let changed = if key.mtime_ns == 0 {
        changed + 1_000_000_000
    } else {
        changed
    };
    now.saturating_sub(changed) > settle.as_nanos() as i128
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(mtime_s: i64, mtime_ns: i64) -> FileKey {
        FileKey {
            inode: 1,
            mtime_s,
            mtime_ns,
            size: 4096,
        }
    }

    fn at(seconds: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(seconds, nanos)
    }

    #[test]
    fn nanosecond_times_settle_after_a_tenth_of_a_second() {
        let changed = key(1_000, 500_000_000);
        assert!(!settled_at(changed, at(1_000, 550_000_000)));
        assert!(!settled_at(changed, at(1_000, 600_000_000)));
        assert!(settled_at(changed, at(1_000, 600_000_001)));
    }

    #[test]
    fn whole_second_times_settle_two_seconds_after_their_second_ends() {
        let changed = key(1_000, 0);
        assert!(!settled_at(changed, at(1_002, 900_000_000)));
        assert!(!settled_at(changed, at(1_003, 0)));
        assert!(settled_at(changed, at(1_003, 1)));
    }

    #[test]
    fn a_time_in_the_future_is_not_settled() {
        assert!(!settled_at(key(2_000, 5), at(1_000, 0)));
    }

    #[test]
    fn a_missing_file_counts_as_settled() {
        assert!(settled_at(FileKey::default(), at(1_000, 0)));
    }
}
