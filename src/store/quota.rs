//! How much a mailbox holds, kept in its Maildir++ `maildirsize` file (the format Courier,
//! Dovecot, maildrop and Exim share), so the use is known without summing the mailbox on every
//! delivery.
//!
//! The file's first line is the limit (`<bytes>S`); every later line is a change, `<bytes>
//! <messages>`, appended by whoever changed the mailbox (a delivery, an APPEND or COPY, an
//! expunge). The use is the sum of the lines. The file is rebuilt from the mailbox itself —
//! every message file of the INBOX and its folders — when it is missing, unreadable, says
//! another limit, sums to less than nothing, or has grown past [`REBUILD_ABOVE_BYTES`] and is
//! older than [`REBUILD_AFTER`] (the Maildir++ rules). So a change this server did not make
//! (an administrator moving files) is noticed at the latest then.
//!
//! Only mailboxes with a quota have the file: [`record`] appends to an existing file and
//! never creates one, so mailboxes without a quota cost nothing. Appends are single `write`s
//! with `O_APPEND`, so processes (smtpd, imapd, pop3d) do not interleave lines. The file is not
//! fsync'd: after a crash it may be off by the last changes, which the next rebuild corrects;
//! a quota is a limit, not a record of mail.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::atomic::write_atomically;

/// The file's name, in the mailbox root.
pub const MAILDIRSIZE: &str = "maildirsize";
/// A file longer than this is rebuilt (once it is also older than [`REBUILD_AFTER`]).
pub const REBUILD_ABOVE_BYTES: u64 = 5120;
/// How old a long file must be before it is rebuilt (Maildir++: 15 minutes).
pub const REBUILD_AFTER: Duration = Duration::from_secs(15 * 60);
/// A file longer than this is not read at all but rebuilt: nothing we write gets near it.
const READ_LIMIT_BYTES: u64 = 1 << 20;

/// What a mailbox holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub bytes: u64,
    pub messages: u64,
}

/// The use of the mailbox at `root` with the limit `limit` (bytes), from its `maildirsize`,
/// rebuilt first when need be. Blocking.
pub fn usage(root: &Path, limit: u64) -> io::Result<Usage> {
    let path = root.join(MAILDIRSIZE);
    if let Some(usage) = read_current(&path, limit)? {
        return Ok(usage);
    }
    rebuild(root, limit)
}

/// Adds a change of the mailbox at `root` (negative when messages went) to its `maildirsize`,
/// if it has one. Blocking; a failure only makes the next rebuild come sooner, so callers log
/// it and go on.
pub fn record(root: &Path, bytes: i64, messages: i64) -> io::Result<()> {
    if bytes == 0 && messages == 0 {
        return Ok(());
    }
    let path = root.join(MAILDIRSIZE);
    let mut file = match OpenOptions::new().append(true).open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    // One write: O_APPEND keeps concurrent lines whole.
    file.write_all(format!("{bytes} {messages}\n").as_bytes())
}

/// Drops the count of the mailbox at `root`, so the next [`usage`] rebuilds it (after a change
/// too big to count, such as deleting a whole folder). Blocking; a failure is logged.
pub fn invalidate(root: &Path) {
    match fs::remove_file(root.join(MAILDIRSIZE)) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => {
            tracing::warn!(mailbox = %root.display(), "cannot remove {MAILDIRSIZE}: {error}")
        }
    }
}

/// [`record`] for the store's own changes: a failure is logged, not returned (the mail is
/// already safe; the next rebuild corrects the count).
pub(super) fn note(root: &Path, bytes: u64, messages: usize, added: bool) {
    let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
    let messages = i64::try_from(messages).unwrap_or(i64::MAX);
    let (bytes, messages) = if added {
        (bytes, messages)
    } else {
        (-bytes, -messages)
    };
    if let Err(error) = record(root, bytes, messages) {
        tracing::warn!(mailbox = %root.display(), "cannot update {MAILDIRSIZE}: {error}");
    }
}

/// The bytes a message file counts for: the `,S=` of its name, else its length (0 when gone).
pub(super) fn message_bytes(path: &Path) -> u64 {
    path.file_name()
        .and_then(|name| name.to_str())
        .and_then(size_in_name)
        .or_else(|| fs::metadata(path).ok().map(|meta| meta.len()))
        .unwrap_or(0)
}

/// The mailbox root a folder directory belongs to: the folder itself for the INBOX, its
/// parent for a Maildir++ sub-folder (`<root>/.Name`).
pub fn mailbox_root(folder_dir: &Path) -> PathBuf {
    let is_subfolder = folder_dir
        .file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with('.'));
    match folder_dir.parent() {
        Some(parent) if is_subfolder && parent.join("cur").is_dir() => parent.to_path_buf(),
        _ => folder_dir.to_path_buf(),
    }
}

/// The sum of the file when it can be trusted; `None` when it must be rebuilt.
fn read_current(path: &Path, limit: u64) -> io::Result<Option<Usage>> {
    let file = match fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let meta = file.metadata()?;
    if meta.len() > READ_LIMIT_BYTES {
        return Ok(None);
    }
    if meta.len() > REBUILD_ABOVE_BYTES {
        let age = meta
            .modified()
            .ok()
            .and_then(|modified| SystemTime::now().duration_since(modified).ok());
        if age.is_none_or(|age| age >= REBUILD_AFTER) {
            return Ok(None);
        }
    }
    let mut text = String::new();
    if file
        .take(READ_LIMIT_BYTES)
        .read_to_string(&mut text)
        .is_err()
    {
        return Ok(None);
    }
    Ok(parse(&text, limit))
}

/// The sum of a `maildirsize` text whose limit line is `limit`; `None` when it says another
/// limit, has a line that is not two numbers, or sums below zero.
fn parse(text: &str, limit: u64) -> Option<Usage> {
    let mut lines = text.lines();
    if lines.next()? != limit_line(limit) {
        return None;
    }
    let (mut bytes, mut messages) = (0i64, 0i64);
    for line in lines {
        // A line cut short by a crash mid-write is the last one: ignore it rather than
        // rebuild for it.
        if !text.ends_with('\n') && text.ends_with(line) {
            break;
        }
        let mut numbers = line.split_ascii_whitespace().map(str::parse::<i64>);
        let (Some(Ok(b)), Some(Ok(m)), None) = (numbers.next(), numbers.next(), numbers.next())
        else {
            return None;
        };
        bytes = bytes.checked_add(b)?;
        messages = messages.checked_add(m)?;
    }
    Some(Usage {
        bytes: u64::try_from(bytes).ok()?,
        messages: u64::try_from(messages).ok()?,
    })
}

fn limit_line(limit: u64) -> String {
    format!("{limit}S")
}

/// Sums the mailbox and writes a fresh file (atomically, so readers see the old or the new).
fn rebuild(root: &Path, limit: u64) -> io::Result<Usage> {
    let usage = measure(root)?;
    let text = format!(
        "{}\n{} {}\n",
        limit_line(limit),
        usage.bytes,
        usage.messages
    );
    write_atomically(root, MAILDIRSIZE, text.as_bytes())?;
    Ok(usage)
}

/// Every message file of the INBOX and of each `.Folder`, in `cur/` and `new/`.
fn measure(root: &Path) -> io::Result<Usage> {
    let mut usage = Usage::default();
    add_folder(&root.join("cur"), &mut usage)?;
    add_folder(&root.join("new"), &mut usage)?;
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        let name = entry.file_name();
        let is_folder =
            name.to_str().is_some_and(|name| name.starts_with('.')) && entry.file_type()?.is_dir();
        if is_folder {
            add_folder(&entry.path().join("cur"), &mut usage)?;
            add_folder(&entry.path().join("new"), &mut usage)?;
        }
    }
    Ok(usage)
}

fn add_folder(dir: &Path, usage: &mut Usage) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') {
            continue;
        }
        let size = match size_in_name(name) {
            Some(size) => size,
            // A file removed since the listing counts for nothing.
            None => match entry.metadata() {
                Ok(meta) if meta.is_file() => meta.len(),
                _ => continue,
            },
        };
        usage.bytes = usage.bytes.saturating_add(size);
        usage.messages = usage.messages.saturating_add(1);
    }
    Ok(())
}

/// The `,S=<size>` a Maildir name carries (what Maildir++ counts), if any.
fn size_in_name(name: &str) -> Option<u64> {
    let base = name.split(':').next()?;
    base.split(',')
        .find_map(|part| part.strip_prefix("S="))
        .and_then(|size| size.parse().ok())
}

#[cfg(test)]
mod tests;
