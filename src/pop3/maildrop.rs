//! The POP3 maildrop: the account's INBOX, locked for one session at a time, numbered once at
//! login (RFC 1939: messages arriving later show in the next session).

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

use super::proto::{LoginError, MessageInfo};
use crate::store::{delivery_order, to_wire_form, Folder, IndexEntry};

/// Lock file in the mailbox root; its `flock` is held for the whole session.
pub const LOCK_FILE: &str = "ics-pop3.lock";
/// Longest UIDL value (RFC 1939 §7: 1 to 70 characters 0x21–0x7E).
pub const MAX_UIDL: usize = 70;

pub struct Maildrop {
    /// Holding the open file holds the lock; dropping it releases the lock.
    _lock: File,
    inbox: Folder,
    /// The index's UIDVALIDITY when the messages were numbered: deletions are by UID.
    uid_validity: u32,
    messages: Vec<std::sync::Arc<IndexEntry>>,
}

impl Maildrop {
    /// Locks the INBOX at `root` and numbers its messages (blocking).
    pub fn open(root: &Path) -> Result<Maildrop, LoginError> {
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(root.join(LOCK_FILE))
            .map_err(|err| LoginError::Temporary(format!("opening the lock file: {err}")))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(LoginError::InUse),
            Err(std::fs::TryLockError::Error(err)) => {
                return Err(LoginError::Temporary(format!(
                    "locking the maildrop: {err}"
                )))
            }
        }
        let inbox = Folder::inbox(root);
        let index = inbox
            .sync()
            .map_err(|err| LoginError::Temporary(format!("reading the INBOX index: {err}")))?;
        let index = std::sync::Arc::unwrap_or_clone(index);
        let mut messages = index.messages;
        // Numbered in delivery order (the index's UID order differs for a file that arrives
        // with an older name).
        messages.sort_by_cached_key(|m| delivery_order(&m.base));
        Ok(Maildrop {
            _lock: lock,
            inbox,
            uid_validity: index.uid_validity,
            messages,
        })
    }

    pub fn info(&self) -> Vec<MessageInfo> {
        self.messages
            .iter()
            .map(|m| MessageInfo {
                uid: uidl_for(&m.base),
                size: m.size,
            })
            .collect()
    }

    /// Message `index` in CRLF form (blocking).
    pub fn read(&self, index: usize) -> io::Result<Vec<u8>> {
        let message = self
            .messages
            .get(index)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such message"))?;
        Ok(to_wire_form(&std::fs::read(&message.path)?))
    }

    /// Removes messages `indices` for good (blocking): an expunge of their UIDs, so IMAP
    /// sessions see it as one. Those already gone (expunged over IMAP meanwhile) are skipped.
    pub fn delete(&self, indices: &[usize]) -> io::Result<()> {
        let uids: Vec<u32> = indices
            .iter()
            .filter_map(|&i| self.messages.get(i).map(|m| m.uid))
            .collect();
        self.inbox.remove(self.uid_validity, &uids).map(|_| ())
    }
}

/// The UIDL of a message: its Maildir base name, which never changes; names that are too long or
/// have characters UIDL can't carry are replaced by a stable 64-bit FNV-1a hash.
pub fn uidl_for(base: &str) -> String {
    let usable = !base.is_empty()
        && base.len() <= MAX_UIDL
        && base.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if usable {
        return base.to_string();
    }
    let hash = base.bytes().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("h{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uidl_is_the_base_or_a_stable_hash() {
        assert_eq!(
            uidl_for("123.M4P5Q6.host,S=1,W=2"),
            "123.M4P5Q6.host,S=1,W=2"
        );
        let long = "x".repeat(100);
        assert_eq!(uidl_for(&long), uidl_for(&long));
        assert_eq!(uidl_for(&long).len(), 17);
        assert_ne!(uidl_for("a b"), "a b");
    }

    fn deliver(root: &Path, name: &str) -> std::path::PathBuf {
        let path = root.join("new").join(name);
        std::fs::write(&path, b"Subject: x\n\nbody\n").unwrap();
        path
    }

    #[test]
    fn numbered_in_delivery_order_and_deleted_as_an_expunge() {
        let root =
            std::env::temp_dir().join(format!("icsmail-maildrop-del-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        crate::store::ensure_mailbox(&root, &[]).unwrap();
        let inbox = Folder::inbox(&root);
        let b = deliver(&root, "200.M1P1Q2.h,S=17,W=20");
        inbox.sync().unwrap();
        // Arrives later with an older name: a higher UID, but first in POP3's numbering.
        let a = deliver(&root, "100.M1P1Q1.h,S=17,W=20");
        let c = deliver(&root, "300.M1P1Q3.h,S=17,W=20");
        let drop = Maildrop::open(&root).unwrap();
        let info = drop.info();
        let uidls: Vec<&str> = info.iter().map(|m| m.uid.as_str()).collect();
        assert_eq!(
            uidls,
            [
                "100.M1P1Q1.h,S=17,W=20",
                "200.M1P1Q2.h,S=17,W=20",
                "300.M1P1Q3.h,S=17,W=20"
            ]
        );
        assert!(info.iter().all(|m| m.size == 20));
        assert_eq!(drop.read(0).unwrap(), b"Subject: x\r\n\r\nbody\r\n");
        let before = inbox.sync().unwrap();
        assert_eq!(before.messages.len(), 3);
        drop.delete(&[0, 1]).unwrap();
        assert!(!a.exists() && !b.exists() && c.exists());
        let after = inbox.sync().unwrap();
        assert_eq!(after.messages.len(), 1);
        assert_eq!(after.messages[0].base, "300.M1P1Q3.h,S=17,W=20");
        assert!(after.highest_modseq > before.highest_modseq);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn deletions_never_hit_renumbered_messages() {
        let root = std::env::temp_dir().join(format!("icsmail-maildrop-uv-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        crate::store::ensure_mailbox(&root, &[]).unwrap();
        let first = deliver(&root, "100.M1P1Q1.h,S=17,W=20");
        let drop = Maildrop::open(&root).unwrap();
        // The index is lost: UIDs start over under a new UIDVALIDITY.
        std::fs::remove_file(root.join(crate::store::INDEX_FILE)).unwrap();
        // Now UID 1 of the new numbering: a deletion by the old UID would remove it.
        let other = deliver(&root, "50.M1P1Q2.h,S=17,W=20");
        assert!(drop.delete(&[0]).is_err());
        assert!(first.exists() && other.exists());
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn second_open_is_in_use() {
        let dir = std::env::temp_dir().join(format!("icsmail-maildrop-{}", std::process::id()));
        crate::store::ensure_mailbox(&dir, &[]).unwrap();
        let first = Maildrop::open(&dir).unwrap();
        assert_eq!(Maildrop::open(&dir).err(), Some(LoginError::InUse));
        drop(first);
        assert!(Maildrop::open(&dir).is_ok());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
