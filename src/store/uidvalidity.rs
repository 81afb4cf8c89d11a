//! UIDVALIDITY: each folder's in `ics-uidvalidity` (written when the folder is created and
//! again only when its index is lost and its UIDs start over, see `index`), and the account's
//! last one in `ics-uidvalidity-last` at the mailbox root. A new folder (or a folder starting
//! over) takes a value larger than every one the account handed out before, so a name that is
//! deleted and created again, even within a second, never gets an old UIDVALIDITY back
//! (RFC 3501 §2.3.1.1): a client's cached UIDs can't be taken for other messages.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::atomic::write_atomically;

/// Per-folder file holding its UIDVALIDITY (decimal).
pub const UIDVALIDITY_FILE: &str = "ics-uidvalidity";
/// Mailbox-root file holding the last UIDVALIDITY the account handed out (decimal).
pub const LAST_FILE: &str = "ics-uidvalidity-last";
const LOCK_FILE: &str = "ics-uidvalidity.lock";

/// The folder's UIDVALIDITY: a non-zero 32-bit number (RFC 3501); creation stores seconds
/// since 1970, so a larger stored number is clamped.
pub fn read(dir: &Path) -> io::Result<u32> {
    let path = dir.join(UIDVALIDITY_FILE);
    let text = fs::read_to_string(&path)?;
    let value: u64 = text.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: not a number", path.display()),
        )
    })?;
    Ok(u32::try_from(value).unwrap_or(u32::MAX).max(1))
}

/// Stores `validity` durably.
pub fn write(dir: &Path, validity: u64) -> io::Result<()> {
    write_atomically(dir, UIDVALIDITY_FILE, format!("{validity}\n").as_bytes())
}

/// A new UIDVALIDITY for a folder of the account whose mailbox root is `root`: the current
/// time in seconds, or one more than the last one handed out if that is not smaller. The
/// account's last value is stored durably before this returns (under a lock, so concurrent
/// creations get different values).
pub fn allocate(root: &Path) -> io::Result<u32> {
    let _lock = lock(root)?;
    let last = match fs::read_to_string(root.join(LAST_FILE)) {
        Ok(text) => text.trim().parse::<u32>().ok(),
        Err(err) if err.kind() == io::ErrorKind::NotFound => None,
        Err(err) => return Err(err),
    };
    // No (readable) record yet, as in a mailbox made by an older version: the largest
    // UIDVALIDITY of its folders stands in for it.
    let last = match last {
        Some(last) => last,
        None => largest_in_use(root)?,
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(1);
    let next = last.checked_add(1).ok_or_else(|| {
        io::Error::other(format!(
            "{}: UIDVALIDITY space exhausted",
            root.join(LAST_FILE).display()
        ))
    })?;
    let validity = u32::try_from(now).unwrap_or(u32::MAX).max(next).max(1);
    write_atomically(root, LAST_FILE, format!("{validity}\n").as_bytes())?;
    Ok(validity)
}

/// The largest UIDVALIDITY among the folders of the mailbox at `root` (0 if none).
fn largest_in_use(root: &Path) -> io::Result<u32> {
    let mut largest = read(root).unwrap_or(0);
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        let is_folder = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with('.'));
        if is_folder {
            largest = largest.max(read(&entry.path()).unwrap_or(0));
        }
    }
    Ok(largest)
}

/// Holds the account's UIDVALIDITY lock until dropped.
fn lock(root: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(root.join(LOCK_FILE))?;
    // Blocks until other holders are done.
    file.lock()?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("icsmail-uidv-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("cur")).unwrap();
        dir
    }

    /// Issue 17, defect 3: values within one second are still all different and increasing.
    #[test]
    fn allocations_strictly_increase_and_persist() {
        let dir = root("increase");
        let values: Vec<u32> = (0..50).map(|_| allocate(&dir).unwrap()).collect();
        assert!(values.windows(2).all(|w| w[0] < w[1]), "{values:?}");
        let stored: u32 = fs::read_to_string(dir.join(LAST_FILE))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(stored, *values.last().unwrap());
        // Concurrent creations never share one.
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    (0..20)
                        .map(|_| allocate(&dir).unwrap())
                        .collect::<Vec<u32>>()
                })
            })
            .collect();
        let mut all: Vec<u32> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 160);
        assert!(all[0] > *values.last().unwrap());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_mailbox_without_the_record_starts_above_its_folders() {
        let dir = root("upgrade");
        let future = u64::from(u32::MAX - 10);
        fs::create_dir_all(dir.join(".Old")).unwrap();
        write(&dir.join(".Old"), future).unwrap();
        assert_eq!(u64::from(allocate(&dir).unwrap()), future + 1);
        fs::remove_dir_all(dir).unwrap();
    }
}
