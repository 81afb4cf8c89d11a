//! The per-folder IMAP index, `ics-index` beside the folder's `cur/ new/ tmp/`: stable UIDs,
//! flags, keywords and CONDSTORE modification sequences, kept under an exclusive `flock` so
//! several sessions and processes (imapd, pop3d, smtpd) agree. This module is the one place
//! the index is read and written; `indexfile` has its format, `folder` the changes callers
//! make through it.
//!
//! Message files stay where delivery put them; flags live here, not in `:2,` file-name suffixes
//! (a file arriving with a suffix, e.g. copied from another Maildir server, has its flags
//! imported once).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use super::filekey::{file_key, settled, FileKey};
use super::flags::FlagSet;
use super::gate;
use super::inbox::{in_delivery_order, list_messages, StoredMessage};
use super::indexcache::{self, Listing};
use super::indexfile::{
    empty, read_index, write_index, FolderIndex, IndexEntry, Stamp, INDEX_FILE,
};
use super::modseqfloor;
use super::uidvalidity;

const LOCK_FILE: &str = "ics-index.lock";

/// Whether the folder at `dir` may have changed since `since` was taken (three `stat`s).
pub(super) fn changed_since(dir: &Path, since: &Stamp) -> bool {
    since.outdated_by(&stamp(dir))
}

/// The folder's current stamp (cheap: three `stat`s).
pub(super) fn stamp(dir: &Path) -> Stamp {
    let dirs = dir_keys(dir);
    Stamp {
        files: [file_key(&dir.join(INDEX_FILE)), dirs[0], dirs[1]],
        generation: indexcache::generation(dir),
        exact: false,
        dirs_settled: dirs.iter().all(|key| settled(*key)),
    }
}

/// `new/` and `cur/`, as they are now.
fn dir_keys(dir: &Path) -> [FileKey; 2] {
    [file_key(&dir.join("new")), file_key(&dir.join("cur"))]
}

/// The folder's index as it stands, without the lock, when this process remembers it and
/// nothing changed since (see `indexcache::current`); otherwise None and the caller
/// [`sync`]s. Blocking (a few `stat`s and one small read).
pub(super) fn current(dir: &Path) -> Option<Arc<FolderIndex>> {
    indexcache::current(dir, &dir.join(INDEX_FILE), dir_keys(dir))
}

/// Reads the folder, indexes new message files, forgets vanished ones and writes the index
/// back when it changed. Blocking.
pub(super) fn sync(dir: &Path) -> io::Result<Arc<FolderIndex>> {
    update(dir, |_| Ok(())).map(|(index, ())| index)
}

/// [`sync`], then `change` on the synced index under the same lock; the index is written back
/// when anything changed. A `change` that deletes message files takes their entries out of
/// the index too (that is how this update knows the files went: the folder is not listed
/// again for them). Blocking.
pub(super) fn update<R>(
    dir: &Path,
    change: impl FnOnce(&mut FolderIndex) -> io::Result<R>,
) -> io::Result<(Arc<FolderIndex>, R)> {
    let _lock = lock(dir)?;
    update_locked(
        dir,
        || Ok((Vec::new(), ())),
        |index, ()| change(index),
        |()| {},
    )
}

/// [`update`] if the folder lock is free at this moment; `None` when another holder has it.
pub(super) fn try_update<R>(
    dir: &Path,
    change: impl FnOnce(&mut FolderIndex) -> io::Result<R>,
) -> io::Result<Option<(Arc<FolderIndex>, R)>> {
    let Some(_lock) = try_lock(dir)? else {
        return Ok(None);
    };
    update_locked(
        dir,
        || Ok((Vec::new(), ())),
        |index, ()| change(index),
        |()| {},
    )
    .map(Some)
}

/// [`update`], `place` (putting message files into the folder's `new/`; it returns their base
/// names, in the order they get their UIDs, and what `change` needs) run first under the same
/// lock, so that no other reader of the index sees some of them without the rest.
///
/// If indexing them fails after they were placed (the index can't be read or written, the
/// MODSEQ ceiling can't be reserved), `undo` takes them out again, still under the lock: the
/// caller answers NO, and a message it refused must not turn up later (a retry would make it
/// twice).
pub(super) fn update_placing<P, R>(
    dir: &Path,
    place: impl FnOnce() -> io::Result<(Vec<String>, P)>,
    change: impl FnOnce(&mut FolderIndex, &P) -> io::Result<R>,
    undo: impl FnOnce(&P),
) -> io::Result<(Arc<FolderIndex>, R)> {
    let _lock = lock(dir)?;
    update_locked(dir, place, change, undo)
}

/// [`update_placing`]'s work, the folder lock held by the caller.
fn update_locked<P, R>(
    dir: &Path,
    place: impl FnOnce() -> io::Result<(Vec<String>, P)>,
    change: impl FnOnce(&mut FolderIndex, &P) -> io::Result<R>,
    undo: impl FnOnce(&P),
) -> io::Result<(Arc<FolderIndex>, R)> {
    // The directories as they were before this update touched them: what the remembered
    // listing is checked against.
    let dirs_before = dir_keys(dir);
    let (index, listing) = match indexcache::recall(dir, &dir.join(INDEX_FILE), dirs_before) {
        Some(remembered) => remembered,
        None => (read_or_recover(dir)?, Listing::Stale),
    };
    let (placed, data) = place()?;
    let indexed = index_and_change(dir, index, listing, dirs_before, &placed, |index| {
        change(index, &data)
    });
    if indexed.is_err() {
        undo(&data);
    }
    indexed
}

/// The rest of [`update_locked`], after the placing: brings `index` in line with the files,
/// applies `change` and writes the index back when anything changed.
fn index_and_change<R>(
    dir: &Path,
    mut index: FolderIndex,
    listing: Listing,
    dirs_before: [FileKey; 2],
    placed: &[String],
    change: impl FnOnce(&mut FolderIndex) -> io::Result<R>,
) -> io::Result<(Arc<FolderIndex>, R)> {
    let before = fingerprint(&index);
    let uids_before: Vec<u32> = index.messages.iter().map(|m| m.uid).collect();
    // \Recent claims this process made while the lock was busy are written with this update.
    let claimed = indexcache::claimed_below(dir, index.uid_validity).min(index.uid_next);
    index.first_recent = index.first_recent.max(claimed);
    if listing == Listing::Stale {
        // (The listing sees what was just placed, too.)
        reconcile(dir, &mut index)?;
    } else {
        let new = dir.join("new");
        for base in placed {
            index_new_file(&mut index, &StoredMessage::at(new.join(base), base.clone()))?;
        }
    }
    let listed_count = index.messages.len();
    let result = change(&mut index)?;
    // Placing or deleting files changed the directories: this update knows how (the placed
    // files were indexed above, `change` took out the entries of what it deleted), so what
    // is remembered is the directories as they are now, believed until they settle.
    let touched = !placed.is_empty() || index.messages.len() < listed_count;
    let (dirs, exact) = if touched {
        (dir_keys(dir), false)
    } else {
        let checked_now = listing == Listing::Stale && dirs_before.iter().all(|k| settled(*k));
        (dirs_before, listing == Listing::Exact || checked_now)
    };
    log_expunges(&mut index, &uids_before, before.1);
    if index.highest_modseq > index.modseq_ceiling {
        // Reserve the next batch durably before any of it is written in the index.
        let ceiling = index.highest_modseq.saturating_add(modseqfloor::BATCH);
        modseqfloor::write(dir, ceiling)?;
        index.modseq_ceiling = ceiling;
    }
    let after = fingerprint(&index);
    if after != before || index.write_id == 0 {
        index.write_id = rand::random::<u64>().max(1);
        // New UIDs must never be handed out twice: those writes are fsync'd. Flag, \Recent and
        // expunge changes are not (an old index after a crash costs a flag change, never mail;
        // vanished files are dropped again at the next read).
        write_index(dir, &index, after.0 != before.0)?;
    }
    index.stamp = Stamp {
        files: [file_key(&dir.join(INDEX_FILE)), dirs[0], dirs[1]],
        generation: index.write_id,
        exact,
        dirs_settled: false,
    };
    let listed = listing == Listing::Stale;
    let index = indexcache::remember(dir, index.write_id, dirs, exact, listed, index);
    Ok((index, result))
}

/// Records in the expunge log every UID that was in the index before this update and is not
/// now, whoever removed it (EXPUNGE, MOVE, POP3, a file deleted behind our back): done here,
/// in the one place every index write passes, no path can forget it. The log is in the same
/// file as the entries, so it is written (renamed into place) together with their removal.
fn log_expunges(index: &mut FolderIndex, uids_before: &[u32], modseq_before: u64) {
    let mut gone = Vec::new();
    let mut now = index.messages.iter().map(|m| m.uid).peekable();
    for &uid in uids_before {
        while now.peek().is_some_and(|&n| n < uid) {
            now.next();
        }
        if now.peek() != Some(&uid) {
            gone.push(uid);
        }
    }
    if gone.is_empty() {
        return;
    }
    if index.highest_modseq == modseq_before {
        // Every removal is a change a CONDSTORE client must be able to notice.
        index.bump_modseq();
    }
    let modseq = index.highest_modseq;
    index.expunged.record(modseq, &gone);
}

/// The index as stored, or a fresh start when it is lost or damaged; carried past the
/// mod-sequence ceiling when the machine restarted since it was reserved.
fn read_or_recover(dir: &Path) -> io::Result<FolderIndex> {
    let uid_validity = uidvalidity::read(dir)?;
    match read_index(dir, uid_validity) {
        Ok(Some(mut index)) => {
            if let Some(floor) = modseqfloor::read(dir)? {
                index.modseq_ceiling = floor.ceiling;
                if floor.boot != modseqfloor::current_boot() && index.highest_modseq < floor.ceiling
                {
                    carry_past_crash(dir, &mut index, floor.ceiling);
                }
            }
            Ok(index)
        }
        Ok(None) => recover(dir, uid_validity, "is missing"),
        Err(err) if err.kind() == io::ErrorKind::InvalidData => {
            recover(dir, uid_validity, &err.to_string())
        }
        Err(err) => Err(err),
    }
}

/// The machine restarted since the ceiling was reserved, and the index is below it: unsynced
/// index writes of the previous boot (flag changes, with mod-sequences up to the ceiling) may
/// be lost, and which messages they touched is unknown. Every message takes a mod-sequence
/// above the ceiling, so a CONDSTORE/QRESYNC client's `CHANGEDSINCE` sees them all again and
/// learns their flags as they are now, instead of keeping the lost ones and missing changes.
fn carry_past_crash(dir: &Path, index: &mut FolderIndex, ceiling: u64) {
    let modseq = ceiling.saturating_add(1);
    for message in &mut index.messages {
        Arc::make_mut(message).modseq = modseq;
    }
    index.highest_modseq = modseq;
    // Written back even if nothing else changes (a write id of 0 forces the write).
    index.write_id = 0;
    tracing::warn!(
        folder = %dir.display(),
        "the machine restarted since mod-sequences up to {ceiling} were reserved: \
         every message now has MODSEQ {modseq}, so clients resynchronise their flags"
    );
}

/// Cheap change detection: anything that changes the file changes one of these.
fn fingerprint(index: &FolderIndex) -> (u32, u64, u32, usize) {
    (
        index.uid_next,
        index.highest_modseq,
        index.first_recent,
        index.messages.len(),
    )
}

/// Brings the index in line with the files: new files get UIDs (in delivery order), vanished
/// ones are dropped (one modseq step, so CONDSTORE clients notice).
fn reconcile(dir: &Path, index: &mut FolderIndex) -> io::Result<()> {
    let present = list_messages(dir)?;
    let mut by_base: HashMap<&str, &StoredMessage> = HashMap::with_capacity(present.len());
    for message in &present {
        by_base.insert(message.base.as_str(), message);
    }
    let before = index.messages.len();
    index
        .messages
        .retain_mut(|entry| match by_base.remove(entry.base.as_str()) {
            Some(found) => {
                // (Copied only when it moved: this runs for every message of a folder each
                // time it is listed, up to once a `RECHECK_AFTER` under constant writes.)
                if entry.path.as_os_str() != found.path.as_os_str() {
                    Arc::make_mut(entry).path = found.path.clone();
                }
                true
            }
            None => false,
        });
    if index.messages.len() != before {
        index.bump_modseq();
    }
    // What is left in `by_base` is new: indexed in delivery order.
    let mut new: Vec<&StoredMessage> = by_base.into_values().collect();
    in_delivery_order(&mut new);
    for message in new {
        index_new_file(index, message)?;
    }
    Ok(())
}

/// Gives `message`, a file new to the index, the next UID and mod-sequence (with the flags of
/// its name's Maildir suffix, if any). A file that vanished since it was seen is left out.
fn index_new_file(index: &mut FolderIndex, message: &StoredMessage) -> io::Result<()> {
    // Only a message new to the index may be read (for its size, when its name lacks it).
    let size = match message.wire_size() {
        Ok(size) => size,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err),
    };
    let uid = index.uid_next;
    index.uid_next = uid.checked_add(1).ok_or_else(|| {
        io::Error::other("UID space exhausted: the folder needs a new UIDVALIDITY")
    })?;
    let modseq = index.bump_modseq();
    let internal_date = fs::metadata(&message.path)
        .map(|meta| meta.mtime())
        .unwrap_or(0);
    index.messages.push(Arc::new(IndexEntry {
        uid,
        modseq,
        internal_date,
        size,
        base: message.base.clone(),
        path: message.path.clone(),
        flags: flags_from_name(&message.path),
    }));
    Ok(())
}

/// Flags of the file's `:2,<letters>` Maildir suffix.
fn flags_from_name(path: &Path) -> FlagSet {
    FlagSet::from_maildir_name(path.file_name().and_then(|n| n.to_str()).unwrap_or(""))
}

/// The folder's index lock, and the store gate (a storage move's pause waits for it).
struct Locked {
    _file: File,
    _gate: gate::Entered,
}

/// Holds the folder's index lock until dropped.
fn lock(dir: &Path) -> io::Result<Locked> {
    let (gate, file) = open_lock(dir)?;
    // Blocks until other holders are done.
    file.lock()?;
    Ok(Locked {
        _file: file,
        _gate: gate,
    })
}

/// The storage-move gate entered and the folder's lock file opened, not yet locked.
fn open_lock(dir: &Path) -> io::Result<(gate::Entered, File)> {
    let gate = gate::enter()?;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))?;
    Ok((gate, file))
}

/// [`lock`] without waiting: `None` while another holder has it.
fn try_lock(dir: &Path) -> io::Result<Option<Locked>> {
    let (gate, file) = open_lock(dir)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(Locked {
            _file: file,
            _gate: gate,
        })),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(err)) => Err(err),
    }
}

/// A lost or damaged index: the UIDs it handed out are unknown, so the folder starts over
/// under a new, larger UIDVALIDITY (RFC 3501 §2.3.1.1) and clients resynchronise. A damaged
/// file is kept beside it for the administrator.
fn recover(dir: &Path, old_validity: u32, why: &str) -> io::Result<FolderIndex> {
    // Larger than every UIDVALIDITY of the account so far, so also than the old one.
    let validity = uidvalidity::allocate(&super::quota::mailbox_root(dir))?
        .max(old_validity.saturating_add(1));
    tracing::error!(
        folder = %dir.display(),
        "{INDEX_FILE} {why}: starting over with UIDVALIDITY {validity}"
    );
    let path = dir.join(INDEX_FILE);
    if path.exists() {
        fs::rename(&path, dir.join(format!("{INDEX_FILE}.broken")))?;
    }
    uidvalidity::write(dir, u64::from(validity))?;
    Ok(empty(validity))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ensure_mailbox;
    use std::path::PathBuf;

    fn folder(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("icsmail-index-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        ensure_mailbox(&dir, &[]).unwrap();
        dir
    }

    fn deliver(dir: &Path, seconds: u64, n: u32) -> PathBuf {
        let path = dir
            .join("new")
            .join(format!("{seconds}.M1P1Q{n}.h,S=2,W=3"));
        fs::write(&path, b"x\n").unwrap();
        path
    }

    fn uids(index: &FolderIndex) -> Vec<u32> {
        index.messages.iter().map(|m| m.uid).collect()
    }

    #[test]
    fn uids_are_stable_and_increasing() {
        let dir = folder("stable");
        deliver(&dir, 100, 1);
        deliver(&dir, 200, 2);
        let first = sync(&dir).unwrap();
        assert_eq!(uids(&first), [1, 2]);
        assert_eq!(first.uid_next, 3);
        fs::remove_file(&first.messages[0].path).unwrap();
        deliver(&dir, 50, 3); // older timestamp, but new: still the next UID
        let second = sync(&dir).unwrap();
        assert_eq!(uids(&second), [2, 3]);
        assert_eq!(second.messages[1].base, "50.M1P1Q3.h,S=2,W=3");
        assert!(second.highest_modseq > first.highest_modseq);
        // Moving to cur/ with a flag suffix keeps the UID.
        let moved = dir.join("cur").join("200.M1P1Q2.h,S=2,W=3:2,S");
        fs::rename(&second.messages[0].path, &moved).unwrap();
        let third = sync(&dir).unwrap();
        assert_eq!(third.messages[0].uid, 2);
        assert_eq!(third.messages[0].path, moved);
        assert_eq!(third.uid_validity, first.uid_validity);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn flags_and_modseqs_survive_a_reread() {
        let dir = folder("flags");
        deliver(&dir, 100, 1);
        let (_, modseq) = update(&dir, |index| {
            let modseq = index.bump_modseq();
            let entry = Arc::make_mut(&mut index.messages[0]);
            entry.flags.seen = true;
            entry.flags.keywords = ["$Forwarded", "Work"].map(String::from).into();
            entry.modseq = modseq;
            Ok(modseq)
        })
        .unwrap();
        let again = sync(&dir).unwrap();
        let entry = &again.messages[0];
        assert!(entry.flags.seen && !entry.flags.deleted);
        assert!(entry.flags.has_keyword("work"));
        assert_eq!(entry.modseq, modseq);
        assert_eq!(again.highest_modseq, modseq);
        assert_eq!(entry.size, 3);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn imported_files_keep_their_maildir_flags() {
        let dir = folder("import");
        fs::write(dir.join("cur").join("1.M1P1Q1.other:2,FRS"), b"x\n").unwrap();
        let index = sync(&dir).unwrap();
        let flags = &index.messages[0].flags;
        assert!(flags.flagged && flags.answered && flags.seen && !flags.draft);
        assert_eq!(index.messages[0].size, 3);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_lost_or_damaged_index_means_a_new_uidvalidity() {
        let dir = folder("damaged");
        deliver(&dir, 100, 1);
        let first = sync(&dir).unwrap();
        fs::write(dir.join(INDEX_FILE), "ics-index 1 garbage\n").unwrap();
        let second = sync(&dir).unwrap();
        assert!(second.uid_validity > first.uid_validity);
        assert!(dir.join("ics-index.broken").exists());
        fs::remove_file(dir.join(INDEX_FILE)).unwrap();
        let third = sync(&dir).unwrap();
        assert!(third.uid_validity > second.uid_validity);
        assert_eq!(uids(&third), [1]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn stamp_changes_with_delivery_and_index_writes() {
        let dir = folder("stamp");
        let before = stamp(&dir);
        std::thread::sleep(std::time::Duration::from_millis(10));
        deliver(&dir, 100, 1);
        let delivered = stamp(&dir);
        assert_ne!(before, delivered);
        sync(&dir).unwrap();
        assert_ne!(stamp(&dir), delivered);
        fs::remove_dir_all(dir).unwrap();
    }

    fn age_dirs(dir: &Path) {
        set_dir_times(
            dir,
            std::time::SystemTime::now() - std::time::Duration::from_secs(3600),
        );
    }

    #[test]
    fn remembered_index_still_sees_deliveries_and_other_writers() {
        let dir = folder("cache");
        deliver(&dir, 100, 1);
        age_dirs(&dir);
        assert_eq!(uids(&sync(&dir).unwrap()), [1]);
        // Settled and unchanged: the remembered listing is used, and still right.
        assert_eq!(uids(&sync(&dir).unwrap()), [1]);
        deliver(&dir, 200, 2);
        assert_eq!(uids(&sync(&dir).unwrap()), [1, 2]);
        // Another process rewrites the index (new write id, a flag set): it is read again.
        let text = fs::read_to_string(dir.join(INDEX_FILE)).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let mut header: Vec<&str> = lines[0].split(' ').collect();
        header[6] = "12345";
        lines[0] = header.join(" ");
        lines[1].push_str(" \\Flagged");
        fs::write(dir.join(INDEX_FILE), lines.join("\n") + "\n").unwrap();
        let index = sync(&dir).unwrap();
        assert!(index.messages[0].flags.flagged);
        assert_eq!(index.write_id, 12345);
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
                        sync(&dir).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let index = sync(&dir).unwrap();
        assert_eq!(uids(&index), (1..=80).collect::<Vec<_>>());
        fs::remove_dir_all(dir).unwrap();
    }

    /// Every removal, by a change under the lock or a file gone behind our back, is in the
    /// expunge log (in the index file) at a mod-sequence above what was handed out before it.
    #[test]
    fn every_removal_is_logged_durably_with_its_modseq() {
        let dir = folder("expungelog");
        for n in 1..=5 {
            deliver(&dir, 100 + u64::from(n), n);
        }
        let first = sync(&dir).unwrap();
        assert_eq!(first.expunged_since(0).unwrap().to_text(), "");
        let seen = first.highest_modseq;
        let (_, ()) = update(&dir, |index| {
            index.messages.retain(|m| m.uid != 2 && m.uid != 3);
            Ok(())
        })
        .unwrap();
        fs::remove_file(&first.messages[4].path).unwrap();
        let index = sync(&dir).unwrap();
        assert_eq!(index.expunged_since(seen).unwrap().to_text(), "2:3,5");
        let middle = index.highest_modseq - 1;
        assert_eq!(index.expunged_since(middle).unwrap().to_text(), "5");
        assert_eq!(
            index
                .expunged_since(index.highest_modseq)
                .unwrap()
                .to_text(),
            ""
        );
        // Read back from the file (another process), the log is the same.
        let reread = read_index(&dir, index.uid_validity).unwrap().unwrap();
        assert_eq!(reread.expunged_since(seen).unwrap().to_text(), "2:3,5");
        fs::remove_dir_all(dir).unwrap();
    }

    /// A machine crash that loses an expunge's index write loses its log line with it, but
    /// not the VANISHED: the files are gone durably, so the next read drops them again and
    /// logs them above the durable ceiling, above anything a client could have seen.
    #[test]
    fn an_expunge_lost_in_a_crash_is_logged_again_above_the_ceiling() {
        let dir = folder("lostexpunge");
        for n in 1..=3 {
            deliver(&dir, 100 + u64::from(n), n);
        }
        let index = sync(&dir).unwrap();
        let synced = fs::read(dir.join(INDEX_FILE)).unwrap();
        let doomed = index.messages[1].path.clone();
        let (after, ()) = update(&dir, |index| {
            fs::remove_file(&doomed)?;
            index.messages.retain(|m| m.uid != 2);
            Ok(())
        })
        .unwrap();
        let seen = after.highest_modseq;
        assert_eq!(after.expunged_since(seen - 1).unwrap().to_text(), "2");
        // Power loss: the unsynced index write is gone, the ceiling (previous boot) is not.
        fs::write(dir.join(INDEX_FILE), &synced).unwrap();
        let floor = modseqfloor::read(&dir).unwrap().unwrap();
        fs::write(
            dir.join(modseqfloor::MODSEQ_FILE),
            format!("{} previous-boot\n", floor.ceiling),
        )
        .unwrap();
        let index = sync(&dir).unwrap();
        assert_eq!(uids(&index), [1, 3]);
        // A client that saw everything before the crash (up to `seen`, even the ceiling) is
        // still told.
        assert_eq!(index.expunged_since(seen).unwrap().to_text(), "2");
        assert_eq!(index.expunged_since(floor.ceiling).unwrap().to_text(), "2");
        fs::remove_dir_all(dir).unwrap();
    }

    /// An index written before the log existed knows nothing of expunges before its
    /// HIGHESTMODSEQ.
    #[test]
    fn an_index_without_a_log_knows_nothing_older() {
        let dir = folder("oldformat");
        deliver(&dir, 100, 1);
        let index = sync(&dir).unwrap();
        let text = fs::read_to_string(dir.join(INDEX_FILE)).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let mut header: Vec<&str> = lines[0].split(' ').collect();
        header.truncate(7);
        lines[0] = header.join(" ");
        fs::write(dir.join(INDEX_FILE), lines.join("\n") + "\n").unwrap();
        let old = read_index(&dir, index.uid_validity).unwrap().unwrap();
        assert_eq!(old.expunged_since(index.highest_modseq - 1), None);
        assert!(old.expunged_since(index.highest_modseq).is_some());
        fs::remove_dir_all(dir).unwrap();
    }

    fn bump_flags(dir: &Path, uid: u32) -> u64 {
        let (_, modseq) = update(dir, |index| {
            let modseq = index.bump_modseq();
            let position = index.position(uid).unwrap();
            let entry = Arc::make_mut(&mut index.messages[position]);
            entry.flags.flagged ^= true;
            entry.modseq = modseq;
            Ok(modseq)
        })
        .unwrap();
        modseq
    }

    #[test]
    fn modseqs_stay_below_a_durable_ceiling_reserved_in_batches() {
        let dir = folder("ceiling");
        deliver(&dir, 100, 1);
        sync(&dir).unwrap();
        let mut ceilings = std::collections::BTreeSet::new();
        for _ in 0..(2 * modseqfloor::BATCH + 10) {
            let modseq = bump_flags(&dir, 1);
            let floor = modseqfloor::read(&dir).unwrap().unwrap();
            assert!(modseq <= floor.ceiling, "{modseq} above {floor:?}");
            assert_eq!(floor.boot, modseqfloor::current_boot());
            ceilings.insert(floor.ceiling);
        }
        // One durable write per batch, not per change.
        assert_eq!(ceilings.len(), 3, "{ceilings:?}");
        fs::remove_dir_all(dir).unwrap();
    }

    /// Issue 17, defect 2: what a power loss leaves (the index as before its unsynced flag
    /// writes, the ceiling reserved in the previous boot) must not make MODSEQs go back.
    #[test]
    fn a_lost_index_write_after_a_restart_never_lowers_modseqs() {
        let dir = folder("rollback");
        for n in 1..=3 {
            deliver(&dir, 100 + u64::from(n), n);
        }
        sync(&dir).unwrap();
        let synced = fs::read(dir.join(INDEX_FILE)).unwrap();
        let handed_out = (0..5).map(|i| bump_flags(&dir, 1 + i % 3)).max().unwrap();
        // The same boot: a process crash loses nothing, the index is as written.
        let index = sync(&dir).unwrap();
        assert_eq!(index.highest_modseq, handed_out);
        // The machine restarts: the unsynced writes are gone, the ceiling is not.
        fs::write(dir.join(INDEX_FILE), &synced).unwrap();
        let floor = modseqfloor::read(&dir).unwrap().unwrap();
        fs::write(
            dir.join(modseqfloor::MODSEQ_FILE),
            format!("{} previous-boot\n", floor.ceiling),
        )
        .unwrap();
        let index = sync(&dir).unwrap();
        assert!(
            index.highest_modseq > handed_out,
            "{}",
            index.highest_modseq
        );
        assert!(index.messages.iter().all(|m| m.modseq > handed_out));
        assert!(index.messages.iter().all(|m| !m.flags.flagged));
        // Once: the next read keeps those numbers, and the next change goes above them.
        let again = sync(&dir).unwrap();
        assert_eq!(again.highest_modseq, index.highest_modseq);
        assert!(bump_flags(&dir, 2) > index.highest_modseq);
        let floor = modseqfloor::read(&dir).unwrap().unwrap();
        assert_eq!(floor.boot, modseqfloor::current_boot());
        assert!(floor.ceiling > index.highest_modseq);
        fs::remove_dir_all(dir).unwrap();
    }

    fn set_dir_times(dir: &Path, time: std::time::SystemTime) {
        for sub in ["new", "cur"] {
            File::open(dir.join(sub))
                .unwrap()
                .set_modified(time)
                .unwrap();
        }
    }

    /// Places `our` (a file of this server, under the lock) and, in the same moment as far
    /// as the directory times tell, `foreign` (a file dropped in without the lock, as the SMTP
    /// delivery does): the directories are then given `time`.
    fn place_with_a_foreign_file(dir: &Path, our: u32, foreign: u32, time: std::time::SystemTime) {
        let (index, ()) = update_placing(
            dir,
            || {
                let ours = deliver(dir, 300, our);
                deliver(dir, 301, foreign);
                set_dir_times(dir, time);
                let base = ours.file_name().unwrap().to_str().unwrap().to_string();
                Ok((vec![base], ()))
            },
            |_, ()| Ok(()),
            |()| {},
        )
        .unwrap();
        // Ours is indexed from its name: the folder was not listed for it.
        assert_eq!(
            index.messages.last().unwrap().base,
            format!("300.M1P1Q{our}.h,S=2,W=3")
        );
        assert!(!index.messages.iter().any(|m| m.base.starts_with("301.")));
    }

    /// Our own placing is indexed without listing the folder, and a file another program
    /// dropped in at the same moment is seen once the directories have been quiet for
    /// `SETTLE`.
    #[test]
    fn a_file_hidden_by_our_own_placing_shows_once_the_folder_settles() {
        let dir = folder("settle");
        deliver(&dir, 100, 1);
        age_dirs(&dir);
        assert_eq!(uids(&sync(&dir).unwrap()), [1]);
        place_with_a_foreign_file(&dir, 2, 3, std::time::SystemTime::now());
        std::thread::sleep(crate::store::filekey::SETTLE + std::time::Duration::from_millis(50));
        let index = sync(&dir).unwrap();
        assert_eq!(uids(&index), [1, 2, 3]);
        assert!(index.messages[2].base.starts_with("301."));
        fs::remove_dir_all(dir).unwrap();
    }

    /// In a folder that never goes quiet (its times stay unsettled), the hidden file is seen
    /// at the latest `RECHECK_AFTER` after the last listing.
    #[test]
    fn a_file_hidden_in_a_busy_folder_shows_within_the_recheck_period() {
        let dir = folder("recheck");
        deliver(&dir, 100, 1);
        age_dirs(&dir);
        assert_eq!(uids(&sync(&dir).unwrap()), [1]);
        // A time in the future never settles while the test runs.
        let future = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
        place_with_a_foreign_file(&dir, 2, 3, future);
        assert_eq!(
            uids(&sync(&dir).unwrap()),
            [1, 2],
            "believed until rechecked"
        );
        std::thread::sleep(indexcache::RECHECK_AFTER + std::time::Duration::from_millis(50));
        assert_eq!(uids(&sync(&dir).unwrap()), [1, 2, 3]);
        fs::remove_dir_all(dir).unwrap();
    }

    /// A session's stamp after our own change holds while the directories are unsettled,
    /// turns outdated once when they settle (the check that finds a hidden file), and holds
    /// again after that check.
    #[test]
    fn a_stamp_after_our_own_change_is_checked_once_the_folder_settles() {
        let dir = folder("stampsettle");
        deliver(&dir, 100, 1);
        age_dirs(&dir);
        sync(&dir).unwrap();
        let soon = std::time::SystemTime::now() + std::time::Duration::from_millis(300);
        let (index, ()) = update_placing(
            &dir,
            || {
                let ours = deliver(&dir, 300, 2);
                set_dir_times(&dir, soon);
                Ok((
                    vec![ours.file_name().unwrap().to_str().unwrap().to_string()],
                    (),
                ))
            },
            |_, ()| Ok(()),
            |()| {},
        )
        .unwrap();
        assert!(!changed_since(&dir, &index.stamp));
        std::thread::sleep(std::time::Duration::from_millis(500));
        assert!(changed_since(&dir, &index.stamp));
        let checked = sync(&dir).unwrap();
        assert_eq!(uids(&checked), [1, 2]);
        assert!(!changed_since(&dir, &checked.stamp));
        std::thread::sleep(crate::store::filekey::SETTLE + std::time::Duration::from_millis(50));
        assert!(!changed_since(&dir, &checked.stamp));
        fs::remove_dir_all(dir).unwrap();
    }
}
