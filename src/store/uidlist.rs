//! Stable IMAP UIDs per folder: `ics-uidlist` beside the folder's `cur/ new/ tmp/` maps Maildir
//! base names to UIDs, assigned in delivery order under an exclusive `flock`, so UIDs survive
//! restarts and re-scans and two processes never hand out the same UID.
//!
//! File format (text, one entry a line): a header `<uidvalidity> <uidnext>`, then
//! `<uid> <base name>` for every message still present, ascending.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

use super::create::UIDVALIDITY_FILE;
use super::inbox::{list_messages, StoredMessage};

pub const UIDLIST_FILE: &str = "ics-uidlist";
const LOCK_FILE: &str = "ics-uidlist.lock";

/// A folder's messages with their UIDs, ascending.
#[derive(Debug, Clone)]
pub struct UidMap {
    pub uid_validity: u32,
    pub uid_next: u32,
    pub messages: Vec<(u32, StoredMessage)>,
}

/// Reads the folder at `dir`, gives new messages the next UIDs and forgets vanished ones;
/// writes the list back (durably) when it changed. Blocking.
pub fn sync_uids(dir: &Path) -> io::Result<UidMap> {
    let _lock = lock(dir)?;
    let uid_validity = read_uid_validity(dir)?;
    let (mut uid_next, known) = read_list(dir, uid_validity)?;
    let present = list_messages(dir)?;
    let mut changed = false;
    let mut messages = Vec::with_capacity(present.len());
    for message in present {
        let uid = match known.get(&message.base) {
            Some(&uid) => uid,
            None => {
                let uid = uid_next;
                uid_next = uid_next.checked_add(1).ok_or_else(|| {
                    io::Error::other("UID space exhausted: the folder needs a new UIDVALIDITY")
                })?;
                changed = true;
                uid
            }
        };
        messages.push((uid, message));
    }
    messages.sort_by_key(|(uid, _)| *uid);
    if changed || messages.len() != known.len() {
        write_list(dir, uid_validity, uid_next, &messages)?;
    }
    Ok(UidMap {
        uid_validity,
        uid_next,
        messages,
    })
}

/// Holds the folder's UID lock until dropped.
fn lock(dir: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))?;
    // SAFETY: flock on a descriptor we own; blocking until other holders are done.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(file)
}

fn read_uid_validity(dir: &Path) -> io::Result<u32> {
    let text = fs::read_to_string(dir.join(UIDVALIDITY_FILE))?;
    let value: u64 = text.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: not a number", dir.join(UIDVALIDITY_FILE).display()),
        )
    })?;
    // UIDVALIDITY is a non-zero 32-bit number (RFC 3501); creation stores seconds since 1970.
    Ok(u32::try_from(value).unwrap_or(u32::MAX).max(1))
}

/// The list's UIDNEXT and base → UID map; an absent or stale (other UIDVALIDITY) list is empty.
fn read_list(dir: &Path, uid_validity: u32) -> io::Result<(u32, HashMap<String, u32>)> {
    let text = match fs::read_to_string(dir.join(UIDLIST_FILE)) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok((1, HashMap::new())),
        Err(err) => return Err(err),
    };
    let bad = |line: usize| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: line {line} is malformed",
                dir.join(UIDLIST_FILE).display()
            ),
        )
    };
    let mut lines = text.lines();
    let header = lines.next().ok_or_else(|| bad(1))?;
    let (validity, next) = header.split_once(' ').ok_or_else(|| bad(1))?;
    let validity: u32 = validity.parse().map_err(|_| bad(1))?;
    let mut uid_next: u32 = next.parse().map_err(|_| bad(1))?;
    if validity != uid_validity {
        return Ok((1, HashMap::new()));
    }
    let mut known = HashMap::new();
    for (index, line) in lines.enumerate() {
        let (uid, base) = line.split_once(' ').ok_or_else(|| bad(index + 2))?;
        let uid: u32 = uid.parse().map_err(|_| bad(index + 2))?;
        uid_next = uid_next.max(uid.saturating_add(1));
        known.insert(base.to_string(), uid);
    }
    Ok((uid_next, known))
}

fn write_list(
    dir: &Path,
    uid_validity: u32,
    uid_next: u32,
    messages: &[(u32, StoredMessage)],
) -> io::Result<()> {
    let mut text = format!("{uid_validity} {uid_next}\n");
    for (uid, message) in messages {
        text.push_str(&format!("{uid} {}\n", message.base));
    }
    let tmp = dir.join(format!(".{UIDLIST_FILE}.tmp"));
    let mut file = File::create(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    fs::rename(&tmp, dir.join(UIDLIST_FILE))?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ensure_mailbox;

    fn folder(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("icsmail-uid-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        ensure_mailbox(&dir, &[]).unwrap();
        dir
    }

    fn deliver(dir: &Path, seconds: u64, n: u32) -> std::path::PathBuf {
        let path = dir
            .join("new")
            .join(format!("{seconds}.M1P1Q{n}.h,S=2,W=3"));
        fs::write(&path, b"x\n").unwrap();
        path
    }

    #[test]
    fn uids_are_stable_and_increasing() {
        let dir = folder("stable");
        deliver(&dir, 100, 1);
        deliver(&dir, 200, 2);
        let first = sync_uids(&dir).unwrap();
        assert_eq!(
            first.messages.iter().map(|(u, _)| *u).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(first.uid_next, 3);
        let gone = first.messages[0].1.path.clone();
        fs::remove_file(gone).unwrap();
        deliver(&dir, 50, 3); // older timestamp, but new: still the next UID
        let second = sync_uids(&dir).unwrap();
        let uids: Vec<_> = second
            .messages
            .iter()
            .map(|(u, m)| (*u, m.base.clone()))
            .collect();
        assert_eq!(uids[0], (2, "200.M1P1Q2.h,S=2,W=3".to_string()));
        assert_eq!(uids[1], (3, "50.M1P1Q3.h,S=2,W=3".to_string()));
        // Moving to cur/ with flags keeps the UID.
        let moved = dir.join("cur").join("200.M1P1Q2.h,S=2,W=3:2,S");
        fs::rename(&second.messages[0].1.path, &moved).unwrap();
        let third = sync_uids(&dir).unwrap();
        assert_eq!(third.messages[0].0, 2);
        assert_eq!(third.uid_validity, first.uid_validity);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn concurrent_syncs_never_share_a_uid() {
        let dir = folder("concurrent");
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    for i in 0..10 {
                        deliver(&dir, 1000 + t * 100 + i, (t * 100 + i) as u32);
                        sync_uids(&dir).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let map = sync_uids(&dir).unwrap();
        let mut uids: Vec<_> = map.messages.iter().map(|(u, _)| *u).collect();
        uids.dedup();
        assert_eq!(uids.len(), 80);
        assert_eq!(map.uid_next, 81);
        fs::remove_dir_all(dir).unwrap();
    }
}
