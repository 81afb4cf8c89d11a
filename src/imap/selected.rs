//! The selected folder as one session sees it: its messages in sequence-number order, and how
//! a fresh folder index differs from that view (the untagged EXPUNGE, EXISTS, RECENT and FETCH
//! FLAGS updates of RFC 3501 §7, with sequence numbers that stay right while they are sent).

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use super::message::MessageMeta;
use crate::store::{FlagSet, Folder, FolderIndex, IndexEntry, Recent, Stamp, UidRanges};

/// One message in the session's view.
#[derive(Debug, Clone)]
pub struct ViewMessage {
    pub meta: MessageMeta,
    pub path: PathBuf,
    /// \Recent for this session.
    pub recent: bool,
    /// Expunged by someone else, not yet announced (RFC 3501 §7.4.1 forbids EXPUNGE responses
    /// during FETCH, STORE and SEARCH, so the message keeps its number until then).
    pub gone: bool,
}

/// An untagged update for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// The message at `seq` (numbered as the client's numbering stands then) with `uid` is
    /// gone: `* seq EXPUNGE`, or with QRESYNC on, `* VANISHED uid`.
    Expunge {
        seq: u32,
        uid: u32,
    },
    Exists(u32),
    Recent(u32),
    /// The flags of a message changed. `seq` is its number where the update stands among the
    /// others (the updates before it are sent first), and the state is the one it had when the
    /// update was made: rendering it later from the view would take another message's number
    /// once expunges before it have been applied.
    Flags(FlagsChanged),
    /// New keywords came into use: the FLAGS and PERMANENTFLAGS lists again (RFC 3501
    /// §7.2.6), before any FETCH that carries them.
    FlagList,
    /// The folder's UIDVALIDITY changed under the session (its index started over, or the
    /// store switched to a tree that already held mail): the client's UIDs name nothing it
    /// knows, so the session ends (`BYE`) and the client resynchronises, as with Dovecot.
    UidValidityChanged,
}

/// A message's flags as an untagged FETCH reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagsChanged {
    pub seq: u32,
    pub uid: u32,
    pub flags: FlagSet,
    pub recent: bool,
    pub modseq: u64,
}

impl FlagsChanged {
    fn of(seq: u32, message: &ViewMessage) -> FlagsChanged {
        FlagsChanged {
            seq,
            uid: message.meta.uid,
            flags: message.meta.flags.clone(),
            recent: message.recent,
            modseq: message.meta.modseq,
        }
    }
}

#[derive(Debug)]
pub struct Selected {
    pub name: String,
    pub folder: Folder,
    pub read_only: bool,
    pub uid_validity: u32,
    pub uid_next: u32,
    pub highest_modseq: u64,
    pub messages: Vec<ViewMessage>,
    /// The keywords the client was told of (FLAGS), in that order; only ever grows while the
    /// folder is selected.
    pub keywords: Vec<String>,
    /// This session's own change brought new keywords: the next `apply` sends FLAGS.
    flag_list_due: bool,
    stamp: Stamp,
    /// The HIGHESTMODSEQ of the last index applied: every flag change bumps a message's
    /// MODSEQ above the folder's, so an entry at or below it is as this view already has it.
    applied_modseq: u64,
}

impl Selected {
    /// Opens `folder` (blocking), claiming \Recent unless read-only.
    pub fn open(name: String, folder: Folder, read_only: bool) -> io::Result<Selected> {
        Selected::open_since(name, folder, read_only, None).map(|(selected, _)| selected)
    }

    /// [`Selected::open`], also answering from the folder's expunge log which UIDs were
    /// expunged after `since` (QRESYNC); None when not asked or the log doesn't reach back.
    pub fn open_since(
        name: String,
        folder: Folder,
        read_only: bool,
        since: Option<u64>,
    ) -> io::Result<(Selected, Option<UidRanges>)> {
        let mut selected = Selected {
            name,
            folder,
            read_only,
            uid_validity: 0,
            uid_next: 1,
            highest_modseq: 1,
            messages: Vec::new(),
            keywords: Vec::new(),
            flag_list_due: false,
            stamp: Stamp::default(),
            applied_modseq: 0,
        };
        let (fresh, recent) = Selected::read_index(&selected.folder, read_only)?;
        let expunged = since.and_then(|since| fresh.expunged_since(since));
        selected.uid_validity = fresh.uid_validity;
        // Changes by UID from this session apply only under this UIDVALIDITY.
        selected.folder = selected.folder.pinned(fresh.uid_validity);
        selected.apply(&fresh, recent, true);
        selected
            .keywords
            .sort_unstable_by_key(|k| k.to_ascii_lowercase());
        Ok((selected, expunged))
    }

    /// Whether the folder may have changed since the last read (three `stat`s).
    pub fn may_have_changed(&self) -> bool {
        self.folder.changed_since(&self.stamp)
    }

    /// Reads the index of `folder` (blocking), claiming the \Recent messages unless
    /// `read_only`; also says which messages are \Recent for this session.
    pub fn read_index(folder: &Folder, read_only: bool) -> io::Result<(Arc<FolderIndex>, Recent)> {
        if read_only {
            // EXAMINE sees the same \Recent messages without taking them (RFC 3501 §6.3.2).
            let fresh = folder.sync()?;
            let recent = folder.unclaimed_recent(&fresh);
            Ok((fresh, recent))
        } else {
            folder.claim_recent()
        }
    }

    /// Takes in a fresh index and returns the updates for the client, in the order to send
    /// them; new messages in `recent` are \Recent for this session. Expunges are only
    /// announced when `announce_expunges`.
    pub fn apply(
        &mut self,
        fresh: &FolderIndex,
        recent: Recent,
        announce_expunges: bool,
    ) -> Vec<Update> {
        if self.uid_validity != 0 && fresh.uid_validity != self.uid_validity {
            return vec![Update::UidValidityChanged];
        }
        let mut updates = Vec::new();
        self.stamp = fresh.stamp;
        self.uid_next = fresh.uid_next;
        self.highest_modseq = fresh.highest_modseq;
        let applied_before = self.applied_modseq;
        // Both lists ascend by UID (the index is kept so; sorted here if it ever isn't), so
        // one walk along both pairs them: this runs after every command while other sessions
        // keep changing the folder, and hashing or copying every entry's path then cost more
        // than the command itself in a large folder.
        let mut entries: Vec<&IndexEntry> = fresh.messages.iter().map(|m| &**m).collect();
        if !entries.is_sorted_by_key(|entry| entry.uid) {
            entries.sort_by_key(|entry| entry.uid);
        }
        let mut next = entries.iter().copied().peekable();
        // The flags of changed and new messages, for the keywords they may bring.
        let mut touched: Vec<FlagSet> = Vec::new();
        // Flag changes and vanished messages.
        for (position, message) in self.messages.iter_mut().enumerate() {
            while next.next_if(|entry| entry.uid < message.meta.uid).is_some() {}
            match next.next_if(|entry| entry.uid == message.meta.uid) {
                Some(entry) => {
                    // (Compared as bytes: `Path` equality walks components, which cost more
                    // than the rest of this loop.)
                    if message.path.as_os_str() != entry.path.as_os_str() {
                        message.path = entry.path.clone();
                    }
                    if entry.modseq <= applied_before {
                        continue;
                    }
                    if !entry.flags.keywords.is_empty()
                        && entry.flags.keywords != message.meta.flags.keywords
                    {
                        touched.push(entry.flags.clone());
                    }
                    if entry.modseq != message.meta.modseq || entry.flags != message.meta.flags {
                        message.meta.modseq = entry.modseq;
                        message.meta.flags = entry.flags.clone();
                        if !message.gone {
                            updates.push(Update::Flags(FlagsChanged::of(
                                position as u32 + 1,
                                message,
                            )));
                        }
                    }
                }
                None => message.gone = true,
            }
        }
        if announce_expunges {
            updates.extend(self.announce_expunges());
        }
        // New messages: what is left, ascending.
        let last_uid = self.messages.last().map_or(0, |m| m.meta.uid);
        let new: Vec<&IndexEntry> = next.filter(|entry| entry.uid > last_uid).collect();
        if !new.is_empty() {
            for entry in new {
                if !entry.flags.keywords.is_empty() {
                    touched.push(entry.flags.clone());
                }
                self.messages.push(ViewMessage {
                    meta: meta_of(entry),
                    path: entry.path.clone(),
                    recent: recent.contains(entry.uid),
                    gone: false,
                });
            }
            updates.push(Update::Exists(self.messages.len() as u32));
            updates.push(Update::Recent(self.recent_count()));
        }
        self.applied_modseq = applied_before.max(fresh.highest_modseq);
        let learned = self.learn_keywords(&touched);
        if learned || std::mem::take(&mut self.flag_list_due) {
            updates.insert(0, Update::FlagList);
        }
        updates
    }

    /// Adds the keywords of `flags` that the client was not told of to `keywords`; true when
    /// there were any (the client needs a new FLAGS list).
    pub fn learn_keywords<'f>(&mut self, flags: impl IntoIterator<Item = &'f FlagSet>) -> bool {
        let mut learned = false;
        for set in flags {
            for keyword in &set.keywords {
                if !self
                    .keywords
                    .iter()
                    .any(|k| k.eq_ignore_ascii_case(keyword))
                {
                    self.keywords.push(keyword.clone());
                    learned = true;
                }
            }
        }
        learned
    }

    /// Removes messages marked gone, highest number first so that every announced number is
    /// right at the moment the client reads it.
    pub fn announce_expunges(&mut self) -> Vec<Update> {
        let mut updates = Vec::new();
        for position in (0..self.messages.len()).rev() {
            if self.messages[position].gone {
                let gone = self.messages.remove(position);
                updates.push(Update::Expunge {
                    seq: position as u32 + 1,
                    uid: gone.meta.uid,
                });
            }
        }
        updates
    }

    pub fn recent_count(&self) -> u32 {
        self.messages.iter().filter(|m| m.recent && !m.gone).count() as u32
    }

    /// The sequence number (1-based) of `uid`.
    pub fn seq_of(&self, uid: u32) -> Option<u32> {
        self.messages
            .binary_search_by_key(&uid, |m| m.meta.uid)
            .ok()
            .map(|i| i as u32 + 1)
    }

    pub fn max_uid(&self) -> u32 {
        self.messages.last().map_or(0, |m| m.meta.uid)
    }

    /// Sets the view's copy of a message after this session changed it.
    /// New keywords among them are announced by the next `apply`.
    pub fn record(&mut self, uid: u32, flags: FlagSet, modseq: u64) {
        if self.learn_keywords([&flags]) {
            self.flag_list_due = true;
        }
        if let Some(seq) = self.seq_of(uid) {
            let message = &mut self.messages[seq as usize - 1];
            message.meta.flags = flags;
            message.meta.modseq = modseq;
        }
        self.highest_modseq = self.highest_modseq.max(modseq);
    }
}

pub fn meta_of(entry: &IndexEntry) -> MessageMeta {
    MessageMeta {
        uid: entry.uid,
        modseq: entry.modseq,
        flags: entry.flags.clone(),
        internal_date: entry.internal_date,
        size: entry.size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ensure_mailbox;

    /// A folder with messages 1..=n, selected.
    fn selected(name: &str, n: u32) -> (PathBuf, Selected) {
        let dir = std::env::temp_dir().join(format!("icsmail-view-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        ensure_mailbox(&dir, &[]).unwrap();
        for i in 1..=n {
            let file = format!("{}.M1P1Q{i}.h,S=2,W=3", 1000 + i);
            std::fs::write(dir.join("new").join(file), b"x\n").unwrap();
        }
        let view = Selected::open("INBOX".into(), Folder::at(dir.clone()), false).unwrap();
        (dir, view)
    }

    /// What a client makes of `updates`: its sequence → UID map, checking every FETCH names
    /// the UID that its number has at that moment.
    fn client_replays(mut uids: Vec<u32>, updates: &[Update]) -> Vec<u32> {
        for update in updates {
            match update {
                Update::Expunge { seq, uid } => {
                    assert_eq!(uids.remove(*seq as usize - 1), *uid, "{updates:?}");
                }
                Update::Flags(changed) => {
                    assert_eq!(uids[changed.seq as usize - 1], changed.uid, "{updates:?}");
                }
                Update::Exists(_)
                | Update::Recent(_)
                | Update::FlagList
                | Update::UidValidityChanged => {}
            }
        }
        uids
    }

    /// Issue 17, defect 1: session A expunges UIDs 2 and 6 and flags 5 and 7; the other
    /// session's updates must use the numbering in force when each is sent, and carry both
    /// flag changes.
    #[test]
    fn updates_use_the_numbering_in_force_when_sent() {
        let (dir, mut view) = selected("numbering", 8);
        let mut fresh = Arc::unwrap_or_clone(view.folder.sync().unwrap());
        fresh.messages.retain(|m| m.uid != 2 && m.uid != 6);
        for entry in fresh.messages.iter_mut().map(Arc::make_mut) {
            if entry.uid == 5 || entry.uid == 7 {
                entry.flags.flagged = true;
                entry.modseq += 100;
            }
        }
        let updates = view.apply(&fresh, Recent::NONE, true);
        let flagged: Vec<u32> = updates
            .iter()
            .filter_map(|u| match u {
                Update::Flags(c) if c.flags.flagged => Some(c.uid),
                _ => None,
            })
            .collect();
        assert_eq!(flagged, [5, 7], "{updates:?}");
        let after = client_replays((1..=8).collect(), &updates);
        assert_eq!(after, [1, 3, 4, 5, 7, 8]);
        let view_uids: Vec<u32> = view.messages.iter().map(|m| m.meta.uid).collect();
        assert_eq!(after, view_uids);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Expunges held back (during FETCH, STORE, SEARCH) keep the numbers; flag changes then
    /// still name the right UIDs, and the expunges come later.
    #[test]
    fn held_back_expunges_keep_numbers_right() {
        let (dir, mut view) = selected("held", 5);
        let mut fresh = Arc::unwrap_or_clone(view.folder.sync().unwrap());
        fresh.messages.retain(|m| m.uid != 1);
        fresh.messages.iter_mut().map(Arc::make_mut).for_each(|e| {
            e.flags.seen = true;
            e.modseq += 10;
        });
        let first = view.apply(&fresh, Recent::NONE, false);
        assert!(!first.iter().any(|u| matches!(u, Update::Expunge { .. })));
        let uids = client_replays((1..=5).collect(), &first);
        let later = view.announce_expunges();
        assert_eq!(later, [Update::Expunge { seq: 1, uid: 1 }]);
        assert_eq!(client_replays(uids, &later), [2, 3, 4, 5]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Entries at or below the last applied HIGHESTMODSEQ are skipped; this session's own
    /// STORE recorded at a higher MODSEQ must not hide another session's earlier change that
    /// this view has not applied yet.
    #[test]
    fn our_own_newer_change_does_not_hide_an_earlier_one_of_another_session() {
        let (dir, mut view) = selected("skip", 4);
        let mut fresh = Arc::unwrap_or_clone(view.folder.sync().unwrap());
        let base = fresh.highest_modseq;
        // Another session flags UID 2 at base+1; this one then marks UID 3 at base+2.
        Arc::make_mut(&mut fresh.messages[1]).flags.flagged = true;
        Arc::make_mut(&mut fresh.messages[1]).modseq = base + 1;
        let mut ours = fresh.messages[2].flags.clone();
        ours.seen = true;
        view.record(3, ours.clone(), base + 2);
        Arc::make_mut(&mut fresh.messages[2]).flags = ours;
        Arc::make_mut(&mut fresh.messages[2]).modseq = base + 2;
        fresh.highest_modseq = base + 2;
        let updates = view.apply(&fresh, Recent::NONE, true);
        let changed: Vec<u32> = updates
            .iter()
            .filter_map(|u| match u {
                Update::Flags(c) => Some(c.uid),
                _ => None,
            })
            .collect();
        assert_eq!(changed, [2], "{updates:?}");
        // Applied once: the same index again brings nothing.
        assert!(view.apply(&fresh, Recent::NONE, true).is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Issue 17, defect 7: new keywords (another session's or ours) bring a FLAGS update
    /// before the FETCH responses that carry them.
    #[test]
    fn new_keywords_announce_the_flag_list_first() {
        let (dir, mut view) = selected("keywords", 3);
        let mut fresh = Arc::unwrap_or_clone(view.folder.sync().unwrap());
        Arc::make_mut(&mut fresh.messages[1])
            .flags
            .keywords
            .insert("$hello".into());
        Arc::make_mut(&mut fresh.messages[1]).modseq += 5;
        let updates = view.apply(&fresh, Recent::NONE, true);
        assert_eq!(updates.first(), Some(&Update::FlagList), "{updates:?}");
        assert_eq!(view.keywords, ["$hello"]);
        // Known already: no new list.
        Arc::make_mut(&mut fresh.messages[2])
            .flags
            .keywords
            .insert("$HELLO".into());
        Arc::make_mut(&mut fresh.messages[2]).modseq += 5;
        let updates = view.apply(&fresh, Recent::NONE, true);
        assert!(!updates.contains(&Update::FlagList), "{updates:?}");
        // This session's own STORE: recorded first, announced by the apply that follows.
        let mut flags = fresh.messages[0].flags.clone();
        flags.keywords.insert("$world".into());
        view.record(1, flags.clone(), 99);
        Arc::make_mut(&mut fresh.messages[0]).flags = flags;
        Arc::make_mut(&mut fresh.messages[0]).modseq = 99;
        let updates = view.apply(&fresh, Recent::NONE, true);
        assert_eq!(updates, [Update::FlagList]);
        assert_eq!(view.keywords, ["$hello", "$world"]);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
