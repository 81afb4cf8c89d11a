//! A message written into a folder as it arrives (IMAP APPEND), so that none of it needs to
//! be held in memory: the bytes go to a file in the folder's `tmp/` in Maildir form (CRLF →
//! LF, also across the pieces it comes in), counted for the `,S=,W=` of its name; `finish`
//! then makes it durable and visible exactly as a delivery does (fsync the file, rename into
//! `new/`, fsync the directory). Dropped unfinished, the file is removed.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::deliver::MailStore;

/// CRLF → LF on a stream: the same result as [`super::to_maildir_form`] on the whole, however
/// the input is cut (a CR at the end of a piece waits for the next byte).
#[derive(Debug, Default)]
pub struct LfConverter {
    pending_cr: bool,
}

impl LfConverter {
    /// Appends the Maildir form of `input` to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let mut rest = input;
        if std::mem::take(&mut self.pending_cr) && rest.first() != Some(&b'\n') {
            out.push(b'\r');
        }
        while let Some(at) = memchr::memchr(b'\r', rest) {
            out.extend_from_slice(&rest[..at]);
            match rest.get(at + 1) {
                Some(b'\n') => {
                    out.push(b'\n');
                    rest = &rest[at + 2..];
                }
                Some(_) => {
                    out.push(b'\r');
                    rest = &rest[at + 1..];
                }
                None => {
                    self.pending_cr = true;
                    return;
                }
            }
        }
        out.extend_from_slice(rest);
    }

    /// The end of the input: a CR held back is a bare CR.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.pending_cr) {
            out.push(b'\r');
        }
    }
}

/// A message being written into a folder; see the module doc.
#[derive(Debug)]
pub struct IncomingMessage {
    folder: PathBuf,
    /// The unique part of the name; the sizes are added at the end.
    base: String,
    tmp: PathBuf,
    file: Option<fs::File>,
    converter: LfConverter,
    /// Bytes on disk so far, and LFs among them (each is a CRLF on the wire).
    disk: u64,
    lines: u64,
    scratch: Vec<u8>,
}

impl MailStore {
    /// Starts a message in the folder at `folder` (which must exist). Blocking.
    pub(super) fn begin_message(&self, folder: &Path) -> io::Result<IncomingMessage> {
        let base = self.unique_base();
        let tmp = folder.join("tmp").join(&base);
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        Ok(IncomingMessage {
            folder: folder.to_path_buf(),
            base,
            tmp,
            file: Some(file),
            converter: LfConverter::default(),
            disk: 0,
            lines: 0,
            scratch: Vec::new(),
        })
    }

    /// Ends `message` and makes its file durable in `tmp/` (INTERNALDATE `mtime` when given),
    /// not yet visible: [`place`] moves it into `new/`. Blocking.
    pub(super) fn seal_message(
        &self,
        mut message: IncomingMessage,
        mtime: Option<SystemTime>,
    ) -> io::Result<SealedMessage> {
        let mut tail = Vec::new();
        message.converter.finish(&mut tail);
        message.write_converted(&tail)?;
        let file = message
            .file
            .take()
            .ok_or_else(|| io::Error::other("message already finished"))?;
        if let Some(mtime) = mtime {
            file.set_modified(mtime)?;
        }
        file.sync_all()?;
        drop(file);
        let name = format!(
            "{},S={},W={}",
            message.base,
            message.disk,
            message.disk + message.lines
        );
        // The file is SealedMessage's to remove now.
        let tmp = std::mem::take(&mut message.tmp);
        Ok(SealedMessage {
            folder: message.folder.clone(),
            tmp,
            name,
        })
    }
}

/// A message written and fsync'd in its folder's `tmp/`, waiting to be placed; dropped
/// unplaced, its file is removed.
#[derive(Debug)]
pub struct SealedMessage {
    folder: PathBuf,
    /// Empty once placed.
    tmp: PathBuf,
    /// Its name in `new/`, with the sizes.
    name: String,
}

/// Renames every message into its folder's `new/` and makes the directories durable; all or
/// none: after a failure, those already renamed go back to `tmp/` (and are removed when
/// dropped). Returns their Maildir base names, in order. Blocking.
pub(super) fn place(store: &MailStore, sealed: &mut [SealedMessage]) -> io::Result<Vec<String>> {
    let mut done = 0;
    let mut failure = None;
    for message in sealed.iter() {
        let target = message.folder.join("new").join(&message.name);
        if let Err(err) = fs::rename(&message.tmp, &target) {
            failure = Some(err);
            break;
        }
        done += 1;
    }
    if failure.is_none() {
        let mut dirs: Vec<PathBuf> = sealed.iter().map(|m| m.folder.join("new")).collect();
        dirs.dedup();
        failure = dirs.iter().find_map(|dir| store.sync_dir(dir).err());
    }
    if let Some(err) = failure {
        for message in &sealed[..done] {
            let _ = fs::rename(message.folder.join("new").join(&message.name), &message.tmp);
        }
        // Durably out again: after a crash, a refused message must not reappear in new/.
        let mut dirs: Vec<PathBuf> = sealed[..done]
            .iter()
            .map(|m| m.folder.join("new"))
            .collect();
        dirs.dedup();
        for dir in dirs {
            let _ = store.sync_dir(&dir);
        }
        return Err(err);
    }
    Ok(sealed
        .iter_mut()
        .map(|message| {
            // Placed: nothing for Drop to remove.
            message.tmp = PathBuf::new();
            message.name.clone()
        })
        .collect())
}

/// Takes placed messages (`bases` in `folder`'s `new/`) out again, durably: their APPEND
/// failed after they were placed (the index could not be written) and is answered NO.
pub(super) fn unplace(store: &MailStore, folder: &Path, bases: &[String]) {
    let new = folder.join("new");
    for base in bases {
        if let Err(err) = fs::remove_file(new.join(base)) {
            tracing::warn!(file = %new.join(base).display(), "taking back a refused APPEND: {err}");
        }
    }
    if let Err(err) = store.sync_dir(&new) {
        tracing::warn!(dir = %new.display(), "taking back a refused APPEND: {err}");
    }
}

impl Drop for SealedMessage {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

impl IncomingMessage {
    /// Appends `piece` of the message (wire form, CRLF line ends). Blocking.
    pub fn write(&mut self, piece: &[u8]) -> io::Result<()> {
        let mut converted = std::mem::take(&mut self.scratch);
        converted.clear();
        self.converter.push(piece, &mut converted);
        let written = self.write_converted(&converted);
        self.scratch = converted;
        written
    }

    fn write_converted(&mut self, bytes: &[u8]) -> io::Result<()> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("message already finished"))?;
        file.write_all(bytes)?;
        self.disk += bytes.len() as u64;
        self.lines += memchr::memchr_iter(b'\n', bytes).count() as u64;
        Ok(())
    }
}

impl Drop for IncomingMessage {
    fn drop(&mut self) {
        // Unfinished (the client went away, the command failed): never half a message.
        if !self.tmp.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ensure_mailbox, to_maildir_form};

    /// The streaming conversion equals the whole-message one for every way of cutting it.
    #[test]
    fn conversion_does_not_depend_on_the_pieces() {
        let mut next = crate::test_support::xorshift(0xC0FF_EE00_1234_5678);
        for _ in 0..2000 {
            let input: Vec<u8> = (0..next() % 40)
                .map(|_| b"\r\nab"[(next() % 4) as usize])
                .collect();
            let mut converter = LfConverter::default();
            let mut out = Vec::new();
            let mut rest = &input[..];
            while !rest.is_empty() {
                let (piece, tail) = rest.split_at((1 + next() % 5).min(rest.len() as u64) as usize);
                converter.push(piece, &mut out);
                rest = tail;
            }
            converter.finish(&mut out);
            assert_eq!(out, to_maildir_form("", &input), "{input:?}");
        }
    }

    #[test]
    fn a_message_is_placed_with_its_sizes_or_not_at_all() {
        let root = std::env::temp_dir().join(format!("icsmail-incoming-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        ensure_mailbox(&root, &[]).unwrap();
        let store = MailStore::new(root.clone(), Vec::new());
        let mut message = store.begin_message(&root).unwrap();
        message.write(b"Subject: x\r").unwrap();
        message.write(b"\n\r\nbody\r\nbare\rcr\r").unwrap();
        let sealed = store.seal_message(message, None).unwrap();
        assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 1);
        let name = place(&store, &mut [sealed]).unwrap().remove(0);
        let stored = fs::read(root.join("new").join(&name)).unwrap();
        assert_eq!(stored, b"Subject: x\n\nbody\nbare\rcr\r");
        assert!(name.ends_with(&format!(",S={},W={}", stored.len(), stored.len() + 3)));
        assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
        // Dropped before the end: nothing stays.
        let mut message = store.begin_message(&root).unwrap();
        message.write(b"partial").unwrap();
        drop(message);
        assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
        assert_eq!(fs::read_dir(root.join("new")).unwrap().count(), 1);
        // Sealed but never placed (a MULTIAPPEND that failed later): nothing stays.
        let mut message = store.begin_message(&root).unwrap();
        message.write(b"sealed").unwrap();
        drop(store.seal_message(message, None).unwrap());
        assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
        fs::remove_dir_all(root).unwrap();
    }

    /// A batch whose second rename fails leaves the first back in tmp/, then removed.
    #[test]
    fn placing_is_all_or_none() {
        let root = std::env::temp_dir().join(format!("icsmail-place-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        ensure_mailbox(&root, &[]).unwrap();
        let store = MailStore::new(root.clone(), Vec::new());
        let mut batch = Vec::new();
        for text in [&b"one\r\n"[..], b"two\r\n"] {
            let mut message = store.begin_message(&root).unwrap();
            message.write(text).unwrap();
            batch.push(store.seal_message(message, None).unwrap());
        }
        // The second's tmp file vanished: its rename fails.
        fs::remove_file(&batch[1].tmp).unwrap();
        assert!(place(&store, &mut batch).is_err());
        assert_eq!(fs::read_dir(root.join("new")).unwrap().count(), 0);
        drop(batch);
        assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
        fs::remove_dir_all(root).unwrap();
    }
}
