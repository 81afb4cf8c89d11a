//! One folder of a mailbox (the INBOX or a Maildir++ sub-folder) and every change to its
//! messages: flags, \Recent, copy, move, expunge, append. The rules about UIDs, modification
//! sequences, flags and \Recent live here and in `index` (which reads and writes the index
//! under the folder lock); the protocols (IMAP, POP3) only call these methods.
//!
//! Durability is that of the pieces: message files and their directory entries are fsync'd
//! (delivery, append, copy, removal), index writes that hand out UIDs are fsync'd, flag,
//! \Recent and removal updates of the index are not (see `index::update`).
//!
//! Every method blocks: call them from blocking threads.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use super::deliver::MailStore;
use super::flags::{FlagChange, FlagSet};
use super::gate;
use super::inbox::delete_messages;
use super::incoming::{place, unplace, IncomingMessage, SealedMessage};
use super::index;
use super::indexcache;
use super::indexfile::{FolderIndex, IndexEntry, Recent, Stamp};
use super::quota;

/// A folder, by its directory (the one holding `cur/ new/ tmp/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    dir: PathBuf,
    /// The UIDVALIDITY the holder's UIDs belong to ([`Folder::pinned`]): changes by UID are
    /// refused once the folder has another (its index was lost and started over, or a storage
    /// move switched to a tree that already held mail), so no UID names a stranger.
    pinned: Option<u32>,
}

/// A message's flags after a change, with the modification sequence they carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagUpdate {
    pub uid: u32,
    pub flags: FlagSet,
    pub modseq: u64,
}

/// What [`Folder::store_flags`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlagsStored {
    /// Messages whose flags changed; under UNCHANGEDSINCE also those that already had the
    /// new flags (RFC 7162 §3.2 reports them all the same), with their unchanged MODSEQ.
    pub changed: Vec<FlagUpdate>,
    /// Messages changed since the UNCHANGEDSINCE value: left as they were.
    pub refused: Vec<u32>,
}

/// A message to copy or move, as the caller last saw it: its flags go with the copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySource {
    pub uid: u32,
    pub path: PathBuf,
    /// Size in CRLF form.
    pub size: u64,
    pub flags: FlagSet,
}

impl From<&IndexEntry> for CopySource {
    fn from(entry: &IndexEntry) -> CopySource {
        CopySource {
            uid: entry.uid,
            path: entry.path.clone(),
            size: entry.size,
            flags: entry.flags.clone(),
        }
    }
}

impl From<&Arc<IndexEntry>> for CopySource {
    fn from(entry: &Arc<IndexEntry>) -> CopySource {
        CopySource::from(&**entry)
    }
}

/// Where copied messages went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    /// The target folder's UIDVALIDITY.
    pub uid_validity: u32,
    /// (source UID, target UID), in the order of the sources.
    pub pairs: Vec<(u32, u32)>,
}

/// Where an appended message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub uid_validity: u32,
    /// None only if the message vanished (another process removed it) before it was indexed.
    pub uid: Option<u32>,
}

impl Folder {
    /// The folder whose directory is `dir`.
    pub fn at(dir: PathBuf) -> Folder {
        Folder { dir, pinned: None }
    }

    /// This folder, its changes by UID refused unless its UIDVALIDITY is `uid_validity`.
    pub fn pinned(&self, uid_validity: u32) -> Folder {
        Folder {
            dir: self.dir.clone(),
            pinned: Some(uid_validity),
        }
    }

    /// Err when the index is not of the pinned UIDVALIDITY.
    fn check_pinned(&self, index: &FolderIndex) -> io::Result<()> {
        match self.pinned {
            Some(expected) if expected != index.uid_validity => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: UIDVALIDITY changed from {expected} to {}, nothing changed",
                    self.dir.display(),
                    index.uid_validity
                ),
            )),
            _ => Ok(()),
        }
    }

    /// The INBOX of the mailbox at `root` (the root itself, Maildir++).
    pub fn inbox(root: &Path) -> Folder {
        Folder::at(root.to_path_buf())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The index, brought in line with the folder's files (new files get UIDs).
    pub fn sync(&self) -> io::Result<Arc<FolderIndex>> {
        match index::current(&self.dir) {
            Some(index) => Ok(index),
            None => index::sync(&self.dir),
        }
    }

    /// Whether the folder may have changed since `since` (an index's `stamp`) was taken:
    /// three `stat`s, no read.
    pub fn changed_since(&self, since: &Stamp) -> bool {
        index::changed_since(&self.dir, since)
    }

    /// [`Folder::sync`], taking the \Recent messages for the caller: they are \Recent for it
    /// and for no later claim (SELECT; EXAMINE uses [`FolderIndex::recent`] instead).
    pub fn claim_recent(&self) -> io::Result<(Arc<FolderIndex>, Recent)> {
        let claim = |index: &mut FolderIndex| {
            let recent = index.recent();
            index.first_recent = index.uid_next;
            Ok(recent)
        };
        let Some(index) = index::current(&self.dir) else {
            return index::update(&self.dir, claim);
        };
        let unclaimed = self.unclaimed_recent(&index);
        if unclaimed.from >= index.uid_next {
            // Nothing new to claim (the usual case): no lock.
            return Ok((index, unclaimed));
        }
        if let Some(claimed) = index::try_update(&self.dir, claim)? {
            return Ok(claimed);
        }
        // The lock is busy (a writer's fsyncs): claimed in memory, and written into the index
        // by the next update, instead of waiting for it.
        let from = indexcache::claim_in_memory(
            &self.dir,
            index.uid_validity,
            index.first_recent,
            index.uid_next,
        );
        Ok((index, Recent { from }))
    }

    /// The messages of `index` still \Recent for the next session that claims them: as the
    /// index says, less those this process claimed in memory and has not written yet (see
    /// [`Folder::claim_recent`]). What EXAMINE and STATUS (RECENT) show.
    pub fn unclaimed_recent(&self, index: &FolderIndex) -> Recent {
        let claimed = indexcache::claimed_below(&self.dir, index.uid_validity);
        Recent {
            from: index.first_recent.max(claimed),
        }
    }

    /// Changes the flags of the messages `uids` (those still there), each change with a new
    /// modification sequence. With `unchanged_since` (CONDSTORE), a message whose MODSEQ is
    /// greater is refused and left alone.
    pub fn store_flags(
        &self,
        uids: &[u32],
        change: &FlagChange,
        unchanged_since: Option<u64>,
    ) -> io::Result<(Arc<FolderIndex>, FlagsStored)> {
        index::update(&self.dir, |index| {
            self.check_pinned(index)?;
            let mut stored = FlagsStored::default();
            for &uid in uids {
                let Some(position) = index.position(uid) else {
                    continue; // expunged meanwhile
                };
                let current = &index.messages[position];
                if unchanged_since.is_some_and(|limit| current.modseq > limit) {
                    stored.refused.push(uid);
                    continue;
                }
                let flags = current.flags.after(change);
                if flags != current.flags {
                    let modseq = index.bump_modseq();
                    let entry = Arc::make_mut(&mut index.messages[position]);
                    entry.flags = flags.clone();
                    entry.modseq = modseq;
                    stored.changed.push(FlagUpdate { uid, flags, modseq });
                } else if unchanged_since.is_some() {
                    let modseq = current.modseq;
                    stored.changed.push(FlagUpdate { uid, flags, modseq });
                }
            }
            Ok(stored)
        })
    }

    /// Sets \Seen on the messages `uids` that lack it (a body was read); returns those changed.
    pub fn mark_seen(&self, uids: &[u32]) -> io::Result<(Arc<FolderIndex>, Vec<FlagUpdate>)> {
        let seen = FlagChange::Add(FlagSet {
            seen: true,
            ..FlagSet::default()
        });
        let (index, stored) = self.store_flags(uids, &seen, None)?;
        Ok((index, stored.changed))
    }

    /// Removes the messages marked \Deleted, only those among `only` when given; returns the
    /// UIDs removed, ascending. The files go durably before the index forgets them.
    pub fn expunge(&self, only: Option<&[u32]>) -> io::Result<Vec<u32>> {
        let only = only.map(sorted);
        let (_, removed) = index::update(&self.dir, |index| {
            self.check_pinned(index)?;
            let doomed: Vec<&Arc<IndexEntry>> = index
                .messages
                .iter()
                .filter(|m| m.flags.deleted)
                .filter(|m| {
                    only.as_ref()
                        .is_none_or(|uids| uids.binary_search(&m.uid).is_ok())
                })
                .collect();
            if doomed.is_empty() {
                return Ok(Vec::new());
            }
            let paths: Vec<PathBuf> = doomed.iter().map(|m| m.path.clone()).collect();
            let uids: Vec<u32> = doomed.iter().map(|m| m.uid).collect();
            self.delete_counted(&paths)?;
            index
                .messages
                .retain(|m| uids.binary_search(&m.uid).is_err());
            index.bump_modseq();
            Ok(uids)
        })?;
        Ok(removed)
    }

    /// Removes the messages `uids`, flagged or not (MOVE, POP3's deletions at QUIT), if the
    /// folder still has the UIDVALIDITY `uid_validity` the caller took them from (else they
    /// may name other messages: an error, and nothing is removed). Returns the UIDs removed.
    pub fn remove(&self, uid_validity: u32, uids: &[u32]) -> io::Result<Vec<u32>> {
        let uids = sorted(uids);
        let (_, removed) = index::update(&self.dir, |index| {
            if index.uid_validity != uid_validity {
                return Err(io::Error::other(format!(
                    "{}: UIDVALIDITY changed from {uid_validity} to {}, nothing removed",
                    self.dir.display(),
                    index.uid_validity
                )));
            }
            if uids.is_empty() {
                return Ok(Vec::new());
            }
            let doomed: Vec<&Arc<IndexEntry>> = index
                .messages
                .iter()
                .filter(|m| uids.binary_search(&m.uid).is_ok())
                .collect();
            let paths: Vec<PathBuf> = doomed.iter().map(|m| m.path.clone()).collect();
            let removed: Vec<u32> = doomed.iter().map(|m| m.uid).collect();
            self.delete_counted(&paths)?;
            index
                .messages
                .retain(|m| uids.binary_search(&m.uid).is_err());
            index.bump_modseq();
            Ok(removed)
        })?;
        Ok(removed)
    }

    /// Copies `messages` of this folder into `target` (links where the file system allows),
    /// keeping their flags and INTERNALDATE; the target assigns their UIDs in order.
    pub fn copy_to(
        &self,
        store: &MailStore,
        target: &Folder,
        messages: &[CopySource],
    ) -> io::Result<Copied> {
        // A storage move's last pass waits for the files and the index together.
        let _gate = gate::enter()?;
        let mut bytes = 0u64;
        // Linked under the target's lock, so that its index learns of the copies from this
        // update instead of a listing (and no other session indexes them without flags).
        let link_all = || -> io::Result<(Vec<String>, Vec<LinkedCopy>)> {
            let mut placed = Vec::with_capacity(messages.len());
            for message in messages {
                let base = match store.link_into(&message.path, &target.dir, message.size) {
                    Ok(base) => base,
                    // Expunged meanwhile (by another session or process): nothing to copy;
                    // it is left out of the UID pairs (RFC 4315 COPYUID names what was copied).
                    Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                    Err(err) => {
                        unlink_copies(store, &target.dir, &placed);
                        return Err(err);
                    }
                };
                bytes = bytes.saturating_add(quota::message_bytes(&message.path));
                placed.push((message.uid, base, &message.flags));
            }
            if !placed.is_empty() {
                if let Err(err) = store.sync_dir(&target.dir.join("new")) {
                    unlink_copies(store, &target.dir, &placed);
                    return Err(err);
                }
            }
            let bases = placed.iter().map(|(_, base, _)| base.clone()).collect();
            Ok((bases, placed))
        };
        let (index, pairs) = index::update_placing(
            &target.dir,
            link_all,
            |index, placed: &Vec<LinkedCopy>| {
                if placed.is_empty() {
                    return Ok(Vec::new());
                }
                let by_base: HashMap<&str, usize> = placed
                    .iter()
                    .enumerate()
                    .map(|(i, (_, base, _))| (base.as_str(), i))
                    .collect();
                let mut target_uids: Vec<Option<u32>> = vec![None; placed.len()];
                // The copies take their flags with a new modseq, as an APPEND does.
                let modseq = index.bump_modseq();
                for entry in index.messages.iter_mut() {
                    if let Some(&i) = by_base.get(entry.base.as_str()) {
                        let entry = Arc::make_mut(entry);
                        entry.flags = placed[i].2.clone();
                        entry.modseq = modseq;
                        target_uids[i] = Some(entry.uid);
                    }
                }
                let pairs = placed
                    .iter()
                    .zip(target_uids)
                    .filter_map(|((source, _, _), target)| Some((*source, target?)))
                    .collect();
                Ok(pairs)
            },
            |placed| unlink_copies(store, &target.dir, placed),
        )?;
        if !pairs.is_empty() {
            quota::note(&quota::mailbox_root(&target.dir), bytes, pairs.len(), true);
        }
        Ok(Copied {
            uid_validity: index.uid_validity,
            pairs,
        })
    }

    /// [`Folder::copy_to`], then [`Folder::remove`] of the originals (RFC 6851 MOVE).
    pub fn move_to(
        &self,
        store: &MailStore,
        target: &Folder,
        uid_validity: u32,
        messages: &[CopySource],
    ) -> io::Result<Copied> {
        // A storage move's last pass waits for the files and the index together.
        let _gate = gate::enter()?;
        let copied = self.copy_to(store, target, messages)?;
        // Only what was copied is removed (a message expunged meanwhile was not).
        let uids: Vec<u32> = copied.pairs.iter().map(|(source, _)| *source).collect();
        self.remove(uid_validity, &uids)?;
        Ok(copied)
    }

    /// Starts a message for this folder (IMAP APPEND): it is written as it arrives, into
    /// `tmp/`, and placed by [`Folder::finish_append`].
    pub fn begin_append(&self, store: &MailStore) -> io::Result<IncomingMessage> {
        store.begin_message(&self.dir)
    }

    /// Ends `message` and makes its file durable in `tmp/` (INTERNALDATE `mtime` when given),
    /// for [`Folder::place_appends`].
    pub fn seal_append(
        &self,
        store: &MailStore,
        message: IncomingMessage,
        mtime: Option<SystemTime>,
    ) -> io::Result<SealedMessage> {
        store.seal_message(message, mtime)
    }

    /// Makes `message` durable in the folder (INTERNALDATE `mtime` when given) and gives it
    /// its UID, `flags` and a new modification sequence.
    pub fn finish_append(
        &self,
        store: &MailStore,
        message: IncomingMessage,
        mtime: Option<SystemTime>,
        flags: &FlagSet,
    ) -> io::Result<Appended> {
        let sealed = self.seal_append(store, message, mtime)?;
        let (uid_validity, uids) = self.place_appends(store, vec![(sealed, flags.clone())])?;
        Ok(Appended {
            uid_validity,
            uid: uids.first().copied().flatten(),
        })
    }

    /// Places sealed messages (one APPEND's, MULTIAPPEND's several) in the folder all at once:
    /// under the folder lock they are renamed into `new/` (all or none, `incoming::place`)
    /// and indexed with their flags and one new modification sequence, so no session sees
    /// some without the others. Returns the UIDVALIDITY and each message's UID (None only if
    /// another process removed it before it was indexed).
    pub fn place_appends(
        &self,
        store: &MailStore,
        messages: Vec<(SealedMessage, FlagSet)>,
    ) -> io::Result<(u32, Vec<Option<u32>>)> {
        // A storage move's last pass waits for the files and the index together.
        let _gate = gate::enter()?;
        let (mut sealed, flags): (Vec<SealedMessage>, Vec<FlagSet>) = messages.into_iter().unzip();
        let (index, (bases, uids)) = index::update_placing(
            &self.dir,
            || place(store, &mut sealed).map(|bases| (bases.clone(), bases)),
            |index, bases: &Vec<String>| {
                let modseq = index.bump_modseq();
                let uids = bases
                    .iter()
                    .zip(&flags)
                    .map(|(base, flags)| {
                        let entry = index.messages.iter_mut().rev().find(|m| &m.base == base)?;
                        let entry = Arc::make_mut(entry);
                        entry.flags = flags.clone();
                        entry.modseq = modseq;
                        Some(entry.uid)
                    })
                    .collect();
                Ok((bases.clone(), uids))
            },
            |bases| unplace(store, &self.dir, bases),
        )?;
        let bytes = bases
            .iter()
            .map(|base| quota::message_bytes(&self.dir.join("new").join(base)))
            .fold(0u64, u64::saturating_add);
        quota::note(&quota::mailbox_root(&self.dir), bytes, bases.len(), true);
        Ok((index.uid_validity, uids))
    }
}

impl Folder {
    /// Deletes message files durably and takes them off the mailbox's quota count.
    fn delete_counted(&self, paths: &[PathBuf]) -> io::Result<()> {
        let bytes = paths
            .iter()
            .map(|path| quota::message_bytes(path))
            .fold(0u64, u64::saturating_add);
        delete_messages(paths)?;
        quota::note(&quota::mailbox_root(&self.dir), bytes, paths.len(), false);
        Ok(())
    }
}

/// A copy linked into the target: the source UID, its base name there and the flags it takes.
type LinkedCopy<'a> = (u32, String, &'a FlagSet);

/// Takes back copies linked into `folder` whose indexing failed (see `index::update_placing`).
fn unlink_copies(store: &MailStore, folder: &Path, placed: &[LinkedCopy]) {
    let bases: Vec<String> = placed.iter().map(|(_, base, _)| base.clone()).collect();
    unplace(store, folder, &bases);
}

/// `uids` ascending, without repeats (for binary searches).
fn sorted(uids: &[u32]) -> Vec<u32> {
    let mut uids = uids.to_vec();
    uids.sort_unstable();
    uids.dedup();
    uids
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ensure_mailbox, INDEX_FILE};
    use std::fs;

    /// A fresh mailbox under the temp directory, its INBOX and a sub-folder `.Target`.
    fn mailbox(name: &str) -> (PathBuf, Folder, Folder, MailStore) {
        let root =
            std::env::temp_dir().join(format!("icsmail-folder-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        ensure_mailbox(&root, &[]).unwrap();
        ensure_mailbox(&root.join(".Target"), &[]).unwrap();
        let store = MailStore::new(root.clone(), Vec::new());
        (
            root.clone(),
            Folder::inbox(&root),
            Folder::at(root.join(".Target")),
            store,
        )
    }

    fn deliver(folder: &Folder, n: u32, body: &[u8]) -> PathBuf {
        let lines = body.iter().filter(|&&b| b == b'\n').count();
        let name = format!(
            "{}.M1P1Q{n}.h,S={},W={}",
            1000 + n,
            body.len(),
            body.len() + lines
        );
        let path = folder.dir().join("new").join(name);
        fs::write(&path, body).unwrap();
        path
    }

    fn uids(index: &FolderIndex) -> Vec<u32> {
        index.messages.iter().map(|m| m.uid).collect()
    }

    fn flags(seen: bool, deleted: bool, keywords: &[&str]) -> FlagSet {
        FlagSet {
            seen,
            deleted,
            keywords: keywords.iter().map(|k| k.to_string()).collect(),
            ..FlagSet::default()
        }
    }

    fn index_text(folder: &Folder) -> String {
        fs::read_to_string(folder.dir().join(INDEX_FILE)).unwrap()
    }

    /// An APPEND whose index can't be written is answered NO and leaves nothing: the placed
    /// files are taken out again (a retry must not make the message twice).
    #[test]
    fn appends_whose_index_fails_are_taken_back() {
        let (root, inbox, _, store) = mailbox("unplace");
        inbox.sync().unwrap();
        // The index's temporary file can't be created: a directory is in its place.
        fs::create_dir(inbox.dir().join(format!(".{INDEX_FILE}.tmp"))).unwrap();
        let mut batch = Vec::new();
        for text in [&b"one\r\n"[..], b"two\r\n"] {
            let mut message = inbox.begin_append(&store).unwrap();
            message.write(text).unwrap();
            let sealed = inbox.seal_append(&store, message, None).unwrap();
            batch.push((sealed, FlagSet::default()));
        }
        assert!(inbox.place_appends(&store, batch).is_err());
        for sub in ["new", "cur", "tmp"] {
            assert_eq!(
                fs::read_dir(inbox.dir().join(sub)).unwrap().count(),
                0,
                "{sub}/"
            );
        }
        fs::remove_dir(inbox.dir().join(format!(".{INDEX_FILE}.tmp"))).unwrap();
        assert!(inbox.sync().unwrap().messages.is_empty());
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn recent_is_claimed_once() {
        let (root, inbox, _, _) = mailbox("recent");
        deliver(&inbox, 1, b"a\n");
        deliver(&inbox, 2, b"b\n");
        // Looking (EXAMINE, STATUS) claims nothing.
        let looked = inbox.sync().unwrap();
        assert_eq!(looked.recent_count(), 2);
        let (first, recent) = inbox.claim_recent().unwrap();
        assert!(recent.contains(1) && recent.contains(2));
        // The index as the claim left it: nothing left for the next one.
        assert_eq!(first.recent_count(), 0);
        // The next claim sees none of them, but a new arrival.
        deliver(&inbox, 3, b"c\n");
        let (second, recent) = inbox.claim_recent().unwrap();
        assert_eq!(uids(&second), [1, 2, 3]);
        assert!(!recent.contains(2) && recent.contains(3));
        assert_eq!(inbox.sync().unwrap().recent_count(), 0);
        assert!(!Recent::NONE.contains(3));
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn stored_flags_bump_modseqs_and_persist() {
        let (root, inbox, _, _) = mailbox("store");
        for n in 1..=3 {
            deliver(&inbox, n, b"x\n");
        }
        let before = inbox.sync().unwrap().highest_modseq;
        let change = FlagChange::Add(flags(true, false, &["Work"]));
        let (index, stored) = inbox.store_flags(&[1, 3, 99], &change, None).unwrap();
        assert!(stored.refused.is_empty());
        let changed: Vec<(u32, u64)> = stored.changed.iter().map(|u| (u.uid, u.modseq)).collect();
        assert_eq!(changed, [(1, before + 1), (3, before + 2)]);
        assert_eq!(index.highest_modseq, before + 2);
        assert_eq!(index.messages[0].flags, flags(true, false, &["Work"]));
        assert!(index_text(&inbox)
            .lines()
            .nth(1)
            .unwrap()
            .ends_with(" \\Seen Work"));
        // No change, no new modseq; the change is not repeated.
        let (index, stored) = inbox.store_flags(&[1], &change, None).unwrap();
        assert!(stored.changed.is_empty());
        assert_eq!(index.highest_modseq, before + 2);
        // Remove and replace.
        let remove = FlagChange::Remove(flags(false, false, &["work"]));
        let (index, _) = inbox.store_flags(&[1], &remove, None).unwrap();
        assert_eq!(index.messages[0].flags, flags(true, false, &[]));
        let replace = FlagChange::Replace(flags(false, true, &[]));
        let (index, _) = inbox.store_flags(&[1, 2], &replace, None).unwrap();
        assert_eq!(index.messages[1].flags, flags(false, true, &[]));
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn unchanged_since_refuses_newer_messages() {
        let (root, inbox, _, _) = mailbox("condstore");
        deliver(&inbox, 1, b"x\n");
        deliver(&inbox, 2, b"y\n");
        let index = inbox.sync().unwrap();
        let (m1, m2) = (index.messages[0].modseq, index.messages[1].modseq);
        assert!(m1 < m2);
        let seen = FlagChange::Add(flags(true, false, &[]));
        let (_, stored) = inbox.store_flags(&[1, 2], &seen, Some(m1)).unwrap();
        assert_eq!(stored.refused, [2]);
        assert_eq!(stored.changed.len(), 1);
        let modseq = stored.changed[0].modseq;
        assert!(modseq > m2);
        // Already so: reported with its unchanged MODSEQ.
        let (_, stored) = inbox.store_flags(&[1], &seen, Some(modseq)).unwrap();
        assert_eq!(
            stored.changed,
            [FlagUpdate {
                uid: 1,
                flags: flags(true, false, &[]),
                modseq
            }]
        );
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn mark_seen_changes_only_unseen_messages() {
        let (root, inbox, _, _) = mailbox("seen");
        deliver(&inbox, 1, b"x\n");
        deliver(&inbox, 2, b"y\n");
        let (_, changed) = inbox.mark_seen(&[2]).unwrap();
        assert_eq!(changed.len(), 1);
        let (index, changed) = inbox.mark_seen(&[1, 2]).unwrap();
        assert_eq!(changed.iter().map(|u| u.uid).collect::<Vec<_>>(), [1]);
        assert!(index.messages.iter().all(|m| m.flags.seen));
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_pinned_folder_refuses_changes_under_another_uidvalidity() {
        let (root, inbox, _, _) = mailbox("pinned");
        deliver(&inbox, 1, b"x\n");
        let index = inbox.sync().unwrap();
        let stale = inbox.pinned(index.uid_validity.wrapping_add(1));
        let delete = FlagChange::Add(FlagSet {
            deleted: true,
            ..FlagSet::default()
        });
        let refused = stale.store_flags(&[1], &delete, None).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::InvalidData);
        assert!(stale.expunge(None).is_err());
        let current = inbox.pinned(index.uid_validity);
        current.store_flags(&[1], &delete, None).unwrap();
        assert_eq!(current.expunge(None).unwrap(), [1]);
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn expunge_removes_deleted_messages_only() {
        let (root, inbox, _, _) = mailbox("expunge");
        let paths: Vec<PathBuf> = (1..=4).map(|n| deliver(&inbox, n, b"x\n")).collect();
        let delete = FlagChange::Add(flags(false, true, &[]));
        inbox.store_flags(&[1, 2, 4], &delete, None).unwrap();
        let before = inbox.sync().unwrap().highest_modseq;
        // UID EXPUNGE: only those named (in any order), and only if \Deleted.
        assert_eq!(inbox.expunge(Some(&[4, 3, 1])).unwrap(), [1, 4]);
        assert!(!paths[0].exists() && paths[1].exists() && !paths[3].exists());
        let index = inbox.sync().unwrap();
        assert_eq!(uids(&index), [2, 3]);
        assert_eq!(index.highest_modseq, before + 1);
        assert_eq!(inbox.expunge(None).unwrap(), [2]);
        // Nothing to do: no change at all.
        assert!(inbox.expunge(None).unwrap().is_empty());
        assert_eq!(inbox.sync().unwrap().highest_modseq, before + 2);
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn remove_needs_the_same_uidvalidity() {
        let (root, inbox, _, _) = mailbox("remove");
        let paths: Vec<PathBuf> = (1..=3).map(|n| deliver(&inbox, n, b"x\n")).collect();
        let validity = inbox.sync().unwrap().uid_validity;
        let err = inbox.remove(validity + 1, &[1]).unwrap_err();
        assert!(err.to_string().contains("UIDVALIDITY changed"), "{err}");
        assert!(paths[0].exists());
        assert_eq!(inbox.remove(validity, &[3, 1, 9]).unwrap(), [1, 3]);
        assert!(!paths[0].exists() && paths[1].exists() && !paths[2].exists());
        assert_eq!(uids(&inbox.sync().unwrap()), [2]);
        fs::remove_dir_all(root).unwrap();
    }

    fn age_dirs(folder: &Folder) {
        let past = SystemTime::now() - std::time::Duration::from_secs(3600);
        for sub in ["new", "cur"] {
            fs::File::open(folder.dir().join(sub))
                .unwrap()
                .set_modified(past)
                .unwrap();
        }
    }

    /// A refresh that finds new messages while a writer holds the lock claims them in memory
    /// instead of waiting: that session alone gets them \Recent, and the next update writes
    /// the claim into the index.
    #[test]
    fn recent_is_claimed_in_memory_while_the_lock_is_busy() {
        let (root, inbox, _, store) = mailbox("claim");
        deliver(&inbox, 1, b"one\n");
        age_dirs(&inbox);
        let (_, first) = inbox.claim_recent().unwrap();
        assert!(first.contains(1));
        let mut message = inbox.begin_append(&store).unwrap();
        message.write(b"two\r\n").unwrap();
        inbox
            .finish_append(&store, message, None, &FlagSet::default())
            .unwrap();
        // Listed once the directories are old: the remembered index is exact, so the claim
        // below needs no lock to read it.
        age_dirs(&inbox);
        assert_eq!(uids(&inbox.sync().unwrap()), [1, 2]);
        assert!(index::current(inbox.dir()).is_some());
        let writer = fs::File::options()
            .write(true)
            .open(inbox.dir().join("ics-index.lock"))
            .unwrap();
        writer.lock().unwrap();
        let (_, second) = inbox.claim_recent().unwrap();
        assert!(second.contains(2) && !second.contains(1));
        let (looked, third) = inbox.claim_recent().unwrap();
        assert!(!third.contains(2), "claimed twice");
        // EXAMINE and STATUS see it claimed too.
        assert_eq!(inbox.unclaimed_recent(&looked).count_in(&looked), 0);
        assert_eq!(
            looked.recent_count(),
            1,
            "the index itself does not know yet"
        );
        writer.unlock().unwrap();
        let header = |folder: &Folder| -> u32 {
            let text = index_text(folder);
            text.split(' ').nth(5).unwrap().parse().unwrap()
        };
        assert_eq!(header(&inbox), 2, "not written yet");
        let seen = FlagChange::Add(flags(true, false, &[]));
        inbox.store_flags(&[1], &seen, None).unwrap();
        assert_eq!(header(&inbox), 3, "written by the next update");
        let (_, fourth) = inbox.claim_recent().unwrap();
        assert!(!fourth.contains(2));
        fs::remove_dir_all(root).unwrap();
    }

    /// A COPY whose target index can't be written is answered NO and leaves no copy behind.
    #[test]
    fn copies_whose_index_fails_are_taken_back() {
        let (root, inbox, target, store) = mailbox("uncopy");
        deliver(&inbox, 1, b"one\n");
        deliver(&inbox, 2, b"two\n");
        let index = inbox.sync().unwrap();
        target.sync().unwrap();
        fs::create_dir(target.dir().join(format!(".{INDEX_FILE}.tmp"))).unwrap();
        let sources: Vec<CopySource> = index.messages.iter().map(CopySource::from).collect();
        assert!(inbox.copy_to(&store, &target, &sources).is_err());
        for sub in ["new", "cur"] {
            assert_eq!(
                fs::read_dir(target.dir().join(sub)).unwrap().count(),
                0,
                "{sub}/"
            );
        }
        fs::remove_dir(target.dir().join(format!(".{INDEX_FILE}.tmp"))).unwrap();
        assert!(target.sync().unwrap().messages.is_empty());
        let copied = inbox.copy_to(&store, &target, &sources).unwrap();
        assert_eq!(copied.pairs, [(1, 1), (2, 2)]);
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn copy_and_move_keep_flags_and_dates() {
        let (root, inbox, target, store) = mailbox("copy");
        let old = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
        for n in 1..=3 {
            let path = deliver(&inbox, n, format!("message {n}\n").as_bytes());
            fs::File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        let flagged = FlagChange::Add(flags(true, false, &["$Label1"]));
        inbox.store_flags(&[2], &flagged, None).unwrap();
        deliver(&target, 9, b"already there\n");
        let index = inbox.sync().unwrap();
        let sources: Vec<CopySource> = index.messages[1..].iter().map(CopySource::from).collect();
        let copied = inbox.copy_to(&store, &target, &sources).unwrap();
        let target_index = target.sync().unwrap();
        assert_eq!(copied.uid_validity, target_index.uid_validity);
        assert_eq!(copied.pairs, [(2, 2), (3, 3)]);
        let copy = &target_index.messages[1];
        assert_eq!(copy.flags, flags(true, false, &["$Label1"]));
        // The flags came with the newest modseq (a sync between the link and the index
        // update has indexed the copy without flags, and must not keep its modseq).
        assert_eq!(copy.modseq, target_index.highest_modseq);
        assert_eq!(copy.internal_date, 1_000_000_000);
        assert_eq!(copy.size, index.messages[1].size);
        assert_eq!(fs::read(&copy.path).unwrap(), b"message 2\n");
        assert_eq!(uids(&inbox.sync().unwrap()), [1, 2, 3]);
        // MOVE: copied, then gone from the source.
        let first = [CopySource::from(&index.messages[0])];
        let moved = inbox
            .move_to(&store, &target, index.uid_validity, &first)
            .unwrap();
        assert_eq!(moved.pairs, [(1, 4)]);
        assert_eq!(uids(&inbox.sync().unwrap()), [2, 3]);
        assert!(!index.messages[0].path.exists());
        assert_eq!(uids(&target.sync().unwrap()), [1, 2, 3, 4]);
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn append_gives_uid_flags_and_the_newest_modseq() {
        let (root, inbox, _, store) = mailbox("append");
        deliver(&inbox, 1, b"x\n");
        let mut message = inbox.begin_append(&store).unwrap();
        message.write(b"Subject: hi\r\n\r\nbody\r\n").unwrap();
        let date = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_200_000_000);
        let wanted = flags(false, false, &["Draft-ish"]);
        let appended = inbox
            .finish_append(&store, message, Some(date), &wanted)
            .unwrap();
        let index = inbox.sync().unwrap();
        assert_eq!(appended.uid_validity, index.uid_validity);
        assert_eq!(appended.uid, Some(2));
        let entry = &index.messages[1];
        assert_eq!(entry.flags, wanted);
        assert_eq!(entry.modseq, index.highest_modseq);
        assert_eq!(entry.internal_date, 1_200_000_000);
        assert_eq!(entry.size, 21);
        assert_eq!(fs::read(&entry.path).unwrap(), b"Subject: hi\n\nbody\n");
        // An abandoned append leaves nothing.
        let mut partial = inbox.begin_append(&store).unwrap();
        partial.write(b"Subject: half").unwrap();
        drop(partial);
        assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
        assert_eq!(uids(&inbox.sync().unwrap()), [1, 2]);
        fs::remove_dir_all(root).unwrap();
    }
}
