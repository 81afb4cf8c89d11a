//! The POP3 maildrop: the account's INBOX, locked for one session at a time, numbered once at
//! login (RFC 1939: messages arriving later show in the next session).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::proto::{LoginError, MessageInfo};
use crate::store::{delete_messages, list_messages, to_wire_form, StoredMessage};

/// Lock file in the mailbox root; its `flock` is held for the whole session.
pub const LOCK_FILE: &str = "ics-pop3.lock";
/// Longest UIDL value (RFC 1939 §7: 1 to 70 characters 0x21–0x7E).
pub const MAX_UIDL: usize = 70;

pub struct Maildrop {
    /// Holding the open file holds the lock; dropping it releases the lock.
    _lock: File,
    messages: Vec<StoredMessage>,
}

impl Maildrop {
    /// Locks and lists the INBOX at `root` (blocking).
    pub fn open(root: &Path) -> Result<Maildrop, LoginError> {
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(root.join(LOCK_FILE))
            .map_err(|_| LoginError::Temporary)?;
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(match io::Error::last_os_error().raw_os_error() {
                Some(libc::EWOULDBLOCK) => LoginError::InUse,
                _ => LoginError::Temporary,
            });
        }
        let messages = list_messages(root).map_err(|_| LoginError::Temporary)?;
        Ok(Maildrop {
            _lock: lock,
            messages,
        })
    }

    pub fn info(&self) -> Vec<MessageInfo> {
        self.messages
            .iter()
            .map(|m| MessageInfo {
                uid: uidl_for(&m.base),
                size: m.wire_size,
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

    /// Removes messages `indices` for good (blocking).
    pub fn delete(&self, indices: &[usize]) -> io::Result<()> {
        let paths: Vec<PathBuf> = indices
            .iter()
            .filter_map(|&i| self.messages.get(i).map(|m| m.path.clone()))
            .collect();
        delete_messages(&paths)
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

    #[test]
    fn second_open_is_in_use() {
        let dir = std::env::temp_dir().join(format!("icsmail-maildrop-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("new")).unwrap();
        let first = Maildrop::open(&dir).unwrap();
        assert_eq!(Maildrop::open(&dir).err(), Some(LoginError::InUse));
        drop(first);
        assert!(Maildrop::open(&dir).is_ok());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
