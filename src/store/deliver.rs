//! Durable delivery into Maildir: write to `tmp/`, fsync the file, link into each recipient's
//! `new/`, fsync those directories (coalesced, see `dirsync`), and only then report success.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use super::create::{clean_stale_tmp, ensure_mailbox};
use super::dirsync::DirSyncer;
use super::gate;
use super::quota;
use crate::address::Address;
use crate::config::model::DefaultFolder;

/// The mailbox of `account` in the store rooted at `root`: `<root>/<domain>/<local part>`.
pub fn mailbox_dir(root: &Path, account: &Address) -> PathBuf {
    root.join(account.domain()).join(account.local())
}

/// The mail store rooted at `storage.path`. Cheap to share behind an `Arc`.
pub struct MailStore {
    root: PathBuf,
    /// `storage.defaultFolders`, for mailboxes made from now on (a reload may change them).
    default_folders: RwLock<Vec<DefaultFolder>>,
    syncer: DirSyncer,
    /// Mailboxes known to exist, so the hot path skips `ensure_mailbox`, and the tree the
    /// root named when they were checked (a storage move's switch makes them unknown again:
    /// a tree switched to may lack this server's own files, such as `ics-uidvalidity`).
    known: Mutex<(Option<PathBuf>, HashSet<PathBuf>)>,
    counter: AtomicU64,
    host: String,
}

impl MailStore {
    pub fn new(root: PathBuf, default_folders: Vec<DefaultFolder>) -> MailStore {
        // Maildir names must not contain '/' or ':' (the flag separator).
        let host = gethostname::gethostname()
            .to_string_lossy()
            .replace('/', "\\057")
            .replace(':', "\\072");
        MailStore {
            root,
            default_folders: RwLock::new(default_folders),
            syncer: DirSyncer::default(),
            known: Mutex::new((None, HashSet::new())),
            counter: AtomicU64::new(0),
            host,
        }
    }

    /// The folders made with mailboxes created from now on.
    pub fn set_default_folders(&self, folders: Vec<DefaultFolder>) {
        *self
            .default_folders
            .write()
            .unwrap_or_else(PoisonError::into_inner) = folders;
    }

    /// `<root>/<domain>/<local part>`.
    pub fn mailbox_path(&self, account: &Address) -> PathBuf {
        mailbox_dir(&self.root, account)
    }

    /// Creates the account's mailbox and default folders if missing.
    pub fn ensure_account(&self, account: &Address) -> io::Result<PathBuf> {
        let path = self.mailbox_path(account);
        let _gate = gate::enter()?;
        // The root is the `mail-root` link in a running server (one readlink), else a tree.
        let tree = fs::read_link(&self.root).ok();
        let mut guard = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        let (known_tree, known) = &mut *guard;
        if *known_tree != tree {
            known.clear();
            *known_tree = tree;
        }
        if !known.contains(&path) {
            let folders = self
                .default_folders
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            ensure_mailbox(&path, &folders)?;
            // Best effort: a leftover in tmp/ harms nothing but space.
            let _ = clean_stale_tmp(&path);
            known.insert(path.clone());
        }
        Ok(path)
    }

    /// Delivers `message` (already in Maildir form, see [`to_maildir_form`]) to the INBOX of
    /// every account in `accounts`. Blocking; returns only when the message is durable in all of
    /// them. On error, no mailbox reported as delivered is left without the message, but some
    /// may hold it (the caller answers 4xx and the client retries).
    pub fn deliver(&self, accounts: &[Address], message: &[u8]) -> io::Result<()> {
        let Some(first) = accounts.first() else {
            return Ok(());
        };
        // During a storage move's last pass: `WouldBlock`, which SMTP answers with 451.
        let _gate = gate::try_enter()?;
        let mut mailboxes = Vec::with_capacity(accounts.len());
        for account in accounts {
            let path = self.ensure_account(account)?;
            if !mailboxes.contains(&path) {
                mailboxes.push(path);
            }
        }
        let name = self.unique_name(message);
        let tmp = self.mailbox_path(first).join("tmp").join(&name);
        let result = self.write_and_link(&tmp, &name, &mailboxes, message);
        // The tmp name is only a staging name; on success the message lives in new/ (for one
        // mailbox it was renamed away already).
        if result.is_err() || mailboxes.len() > 1 {
            let _ = fs::remove_file(&tmp);
        }
        if result.is_ok() {
            for mailbox in &mailboxes {
                quota::note(mailbox, message.len() as u64, 1, true);
            }
        }
        result
    }

    /// What the mailbox of `account` holds, against its quota `limit` (bytes); blocking.
    pub fn usage(&self, account: &Address, limit: u64) -> io::Result<quota::Usage> {
        quota::usage(&self.mailbox_path(account), limit)
    }

    fn write_and_link(
        &self,
        tmp: &Path,
        name: &str,
        mailboxes: &[PathBuf],
        message: &[u8],
    ) -> io::Result<()> {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(tmp)?;
        file.write_all(message)?;
        file.sync_all()?;
        drop(file);
        if let [only] = mailboxes {
            // One mailbox (the usual case): the classic Maildir rename, tmp/ is its own.
            fs::rename(tmp, only.join("new").join(name))?;
            return self.syncer.sync(&only.join("new"));
        }
        for mailbox in mailboxes {
            let target = mailbox.join("new").join(name);
            if let Err(err) = fs::hard_link(tmp, &target) {
                // Another file system (a mailbox moved elsewhere): copy instead.
                if err.raw_os_error() != Some(libc::EXDEV) {
                    return Err(err);
                }
                copy_durably(tmp, &mailbox.join("tmp").join(name), &target)?;
            }
        }
        for mailbox in mailboxes {
            self.syncer.sync(&mailbox.join("new"))?;
        }
        Ok(())
    }

    /// Links (or copies, across file systems) an existing message file into the folder at
    /// `folder` under a new name, keeping its mtime (INTERNALDATE). The caller syncs the
    /// target's `new/` once for a batch ([`MailStore::sync_dir`]). Used by `Folder::copy_to`.
    pub(super) fn link_into(
        &self,
        source: &Path,
        folder: &Path,
        wire_size: u64,
    ) -> io::Result<String> {
        let size = fs::metadata(source)?.len();
        let name = self.unique_name_sized(size, Some(wire_size));
        let target = folder.join("new").join(&name);
        if let Err(err) = fs::hard_link(source, &target) {
            if err.raw_os_error() != Some(libc::EXDEV) {
                return Err(err);
            }
            let tmp = folder.join("tmp").join(&name);
            copy_durably(source, &tmp, &target)?;
        }
        Ok(name)
    }

    /// Makes the entries of `dir` durable (shares fsyncs with concurrent deliveries).
    pub(super) fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.syncer.sync(dir)
    }

    /// `<secs>.M<µs>P<pid>Q<n>.<host>,S=<size>,W=<crlf size>` (Maildir and Dovecot conventions).
    fn unique_name(&self, message: &[u8]) -> String {
        let lines = message.iter().filter(|&&b| b == b'\n').count() as u64;
        self.unique_name_sized(message.len() as u64, Some(message.len() as u64 + lines))
    }

    /// A new unique name for a message of `size` bytes on disk and `wire` bytes in CRLF form
    fn unique_name_sized(&self, size: u64, wire: Option<u64>) -> String {
        let wire = wire.map(|w| format!(",W={w}")).unwrap_or_default();
        format!("{},S={size}{wire}", self.unique_base())
    }

    /// `<secs>.M<µs>P<pid>Q<n>.<host>`: the unique part of a new message's name.
    pub(super) fn unique_base(&self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let sequence = self.counter.fetch_add(1, Ordering::Relaxed);
        format!(
            "{}.M{}P{}Q{}.{}",
            now.as_secs(),
            now.subsec_micros(),
            std::process::id(),
            sequence,
            self.host,
        )
    }
}

fn copy_durably(source: &Path, tmp: &Path, target: &Path) -> io::Result<()> {
    fs::copy(source, tmp)?;
    fs::File::open(tmp)?.sync_all()?;
    fs::rename(tmp, target)
}

/// Converts a received message (CRLF line ends) to the form stored on disk: `prefix` (trace
/// headers, already with LF ends) followed by the body with every CRLF turned into LF.
pub fn to_maildir_form(prefix: &str, message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + message.len());
    out.extend_from_slice(prefix.as_bytes());
    let mut rest = message;
    while let Some(pos) = rest.windows(2).position(|w| w == b"\r\n") {
        out.extend_from_slice(&rest[..pos]);
        out.push(b'\n');
        rest = &rest[pos + 2..];
    }
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_becomes_lf() {
        let out = to_maildir_form(
            "Return-Path: <a@b>\n",
            b"Subject: x\r\n\r\nbody\r\nbare\rcr\n",
        );
        assert_eq!(out, b"Return-Path: <a@b>\nSubject: x\n\nbody\nbare\rcr\n");
    }

    #[test]
    fn delivers_to_two_mailboxes() {
        let root = std::env::temp_dir().join(format!("icsmail-deliver-{}", std::process::id()));
        let store = MailStore::new(root.clone(), Vec::new());
        let a = Address::parse("a@d.test").unwrap();
        let b = Address::parse("b@d.test").unwrap();
        store
            .deliver(&[a.clone(), b.clone()], b"Subject: hi\n\nx\n")
            .unwrap();
        for account in [&a, &b] {
            let new = store.mailbox_path(account).join("new");
            let names: Vec<_> = fs::read_dir(&new).unwrap().collect();
            assert_eq!(names.len(), 1);
            let tmp = store.mailbox_path(account).join("tmp");
            assert_eq!(fs::read_dir(tmp).unwrap().count(), 0);
        }
        fs::remove_dir_all(root).unwrap();
    }
}
