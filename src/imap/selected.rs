//! The selected folder as one session sees it: its messages in sequence-number order, and how
//! a fresh folder index differs from that view (the untagged EXPUNGE, EXISTS, RECENT and FETCH
//! FLAGS updates of RFC 3501 §7, with sequence numbers that stay right while they are sent).

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;

use super::message::MessageMeta;
use crate::store::{FlagSet, Folder, FolderIndex, IndexEntry, Recent, Stamp};

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
    Expunge(u32),
    Exists(u32),
    Recent(u32),
    /// Flags of the message at this sequence number changed.
    Flags(u32),
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
    stamp: Stamp,
}

impl Selected {
    /// Opens `folder` (blocking), claiming \Recent unless read-only.
    pub fn open(name: String, folder: Folder, read_only: bool) -> io::Result<Selected> {
        let mut selected = Selected {
            name,
            folder,
            read_only,
            uid_validity: 0,
            uid_next: 1,
            highest_modseq: 1,
            messages: Vec::new(),
            stamp: Stamp::default(),
        };
        let (fresh, recent) = Selected::read_index(&selected.folder, read_only)?;
        selected.uid_validity = fresh.uid_validity;
        selected.apply(fresh, recent, true);
        Ok(selected)
    }

    /// Whether the folder may have changed since the last read (three `stat`s).
    pub fn may_have_changed(&self) -> bool {
        self.folder.changed_since(&self.stamp)
    }

    /// Reads the index of `folder` (blocking), claiming the \Recent messages unless
    /// `read_only`; also says which messages are \Recent for this session.
    pub fn read_index(folder: &Folder, read_only: bool) -> io::Result<(FolderIndex, Recent)> {
        if read_only {
            // EXAMINE sees the same \Recent messages without taking them (RFC 3501 §6.3.2).
            let fresh = folder.sync()?;
            let recent = fresh.recent();
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
        fresh: FolderIndex,
        recent: Recent,
        announce_expunges: bool,
    ) -> Vec<Update> {
        let mut updates = Vec::new();
        self.stamp = fresh.stamp;
        self.uid_next = fresh.uid_next;
        self.highest_modseq = fresh.highest_modseq;
        let mut by_uid: HashMap<u32, &IndexEntry> =
            fresh.messages.iter().map(|m| (m.uid, m)).collect();
        // Flag changes and vanished messages.
        for (position, message) in self.messages.iter_mut().enumerate() {
            match by_uid.remove(&message.meta.uid) {
                Some(entry) => {
                    message.path = entry.path.clone();
                    if entry.modseq != message.meta.modseq || entry.flags != message.meta.flags {
                        message.meta.modseq = entry.modseq;
                        message.meta.flags = entry.flags.clone();
                        if !message.gone {
                            updates.push(Update::Flags(position as u32 + 1));
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
        let mut new: Vec<&IndexEntry> = by_uid
            .into_values()
            .filter(|entry| entry.uid > last_uid)
            .collect();
        new.sort_by_key(|entry| entry.uid);
        if !new.is_empty() {
            for entry in new {
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
        updates
    }

    /// Removes messages marked gone, highest number first so that every announced number is
    /// right at the moment the client reads it.
    pub fn announce_expunges(&mut self) -> Vec<Update> {
        let mut updates = Vec::new();
        for position in (0..self.messages.len()).rev() {
            if self.messages[position].gone {
                self.messages.remove(position);
                updates.push(Update::Expunge(position as u32 + 1));
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
    pub fn record(&mut self, uid: u32, flags: FlagSet, modseq: u64) {
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
