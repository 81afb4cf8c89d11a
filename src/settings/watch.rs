//! Noticing that the override file changed, so that a change made over D-Bus (or by hand)
//! is put in force without a signal: the daemons look at the file's identity once a second.
//! A stat a second costs nothing, works the same under systemd and `icsmail serve`, and
//! survives the state directory being made after the daemon started (inotify would not).

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

/// How often the daemons look.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);

/// What identifies one version of the file: the admin service replaces it by rename (a new
/// inode); a hand edit changes its size or modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    device: u64,
    size: u64,
    modified_ns: i128,
}

pub struct FileWatch {
    path: PathBuf,
    last: Option<Stamp>,
}

impl FileWatch {
    /// Watches `path` from its present state (present or not).
    pub fn new(path: PathBuf) -> FileWatch {
        let last = stamp(&path);
        FileWatch { path, last }
    }

    /// True when the file appeared, went or was replaced since the last call.
    pub fn changed(&mut self) -> bool {
        let now = stamp(&self.path);
        let changed = now != self.last;
        self.last = now;
        changed
    }
}

fn stamp(path: &std::path::Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        inode: meta.ino(),
        device: meta.dev(),
        size: meta.len(),
        modified_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appearing_replacing_and_going_are_changes() {
        let dir = std::env::temp_dir().join(format!("ics-watch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("overrides.json");
        let mut watch = FileWatch::new(path.clone());
        assert!(!watch.changed());
        std::fs::write(&path, "{}").unwrap();
        assert!(watch.changed());
        assert!(!watch.changed());
        let new = dir.join("new");
        std::fs::write(&new, "{}").unwrap();
        std::fs::rename(&new, &path).unwrap();
        assert!(watch.changed(), "a rename over the file is a new version");
        std::fs::remove_file(&path).unwrap();
        assert!(watch.changed());
        let _ = std::fs::remove_dir_all(dir);
    }
}
