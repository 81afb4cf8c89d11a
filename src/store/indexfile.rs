//! The index file of a folder, `ics-index`: its data (UIDs, flags, keywords, modification
//! sequences) and its text format. `index` decides when it is read and written.
//!
//! ```text
//! ics-index 1 <uidvalidity> <uidnext> <highestmodseq> <first recent uid> <write id> <expunge floor>
//! <uid> <modseq> <internal date> <CRLF size> <base name> [flag ...]
//! x <modseq> <uid ranges>
//! ```
//!
//! The `x` lines are the expunge log (`expungelog`), oldest first; the header's last number is
//! its floor. An index written before the log existed (five or four numbers) reads with the
//! floor at its HIGHESTMODSEQ: nothing is known of expunges before it.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::expungelog::{ExpungeLog, UidRanges};
use super::filekey::FileKey;
use super::flags::FlagSet;

pub const INDEX_FILE: &str = "ics-index";
const MAGIC: &str = "ics-index 1";

/// One message of the folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub uid: u32,
    pub modseq: u64,
    /// Seconds since the epoch (the file's mtime when first indexed).
    pub internal_date: i64,
    /// Size in CRLF form.
    pub size: u64,
    pub base: String,
    pub path: PathBuf,
    pub flags: FlagSet,
}

/// A folder's index after a sync: its messages ascending by UID.
#[derive(Debug, Clone, Default)]
pub struct FolderIndex {
    pub uid_validity: u32,
    pub uid_next: u32,
    pub highest_modseq: u64,
    /// Messages with a UID at least this are \Recent for the next session that claims them.
    pub first_recent: u32,
    pub messages: Vec<Arc<IndexEntry>>,
    /// Which UIDs left the index at which mod-sequence (QRESYNC's VANISHED (EARLIER)).
    pub(super) expunged: ExpungeLog,
    /// Random, new with every write: tells this process's memory of the index (indexcache)
    /// whether the file is still the one it remembers.
    pub write_id: u64,
    /// The durable mod-sequence ceiling (`modseqfloor`) as last read or reserved; 0 when the
    /// folder has none yet.
    pub(super) modseq_ceiling: u64,
    /// The folder's stamp as of this read: the directories as stat'd before they were listed,
    /// the index file as left by this update (all under the lock), so a holder of this index
    /// needn't re-read it until the stamp changes.
    pub stamp: Stamp,
}

impl FolderIndex {
    /// Position of `uid` in `messages`.
    pub fn position(&self, uid: u32) -> Option<usize> {
        self.messages.binary_search_by_key(&uid, |m| m.uid).ok()
    }

    /// The UIDs expunged after `modseq`; None when the log doesn't reach back that far (it was
    /// compacted, or the folder had no log then): then only "not present" is known.
    pub fn expunged_since(&self, modseq: u64) -> Option<UidRanges> {
        self.expunged.since(modseq)
    }

    /// The next modification sequence (and records it as the highest).
    pub(super) fn bump_modseq(&mut self) -> u64 {
        self.highest_modseq += 1;
        self.highest_modseq
    }

    /// The messages \Recent for the next session that claims them (what EXAMINE and STATUS
    /// report without claiming).
    pub fn recent(&self) -> Recent {
        Recent {
            from: self.first_recent,
        }
    }

    /// How many messages are \Recent (see [`FolderIndex::recent`]).
    pub fn recent_count(&self) -> usize {
        self.recent().count_in(self)
    }
}

/// Which messages are \Recent for one session: those with a UID at least `from`. Each new
/// message is \Recent for one session only, the first to claim it (RFC 3501 §2.3.2; see
/// `Folder::claim_recent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recent {
    pub(super) from: u32,
}

impl Recent {
    /// None of the messages (what a read that claims nothing tells of new arrivals).
    pub const NONE: Recent = Recent { from: u32::MAX };

    pub fn contains(self, uid: u32) -> bool {
        uid >= self.from
    }

    /// How many of `index`'s messages these are.
    pub fn count_in(self, index: &FolderIndex) -> usize {
        index
            .messages
            .iter()
            .filter(|m| self.contains(m.uid))
            .count()
    }
}

/// What makes a session's copy of the index stale: the index file's identity, the message
/// directories' change times and this process's write id for the folder. Comparing stamps
/// avoids re-reading an unchanged folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stamp {
    pub(super) files: [FileKey; 3],
    pub(super) generation: u64,
    /// Of a session's stamp: the listing behind it was exact (see `indexcache::Listing`);
    /// when not, it is checked once the directories settle.
    pub(super) exact: bool,
    /// Of a stamp taken now: the directories have settled (`filekey::settled`).
    pub(super) dirs_settled: bool,
}

impl Stamp {
    /// Whether a folder stamped `now` may have changed since this stamp was taken.
    pub(super) fn outdated_by(&self, now: &Stamp) -> bool {
        now.files != self.files
            || now.generation != self.generation
            || (!self.exact && now.dirs_settled)
    }
}

pub(super) fn empty(uid_validity: u32) -> FolderIndex {
    FolderIndex {
        uid_validity,
        uid_next: 1,
        highest_modseq: 1,
        first_recent: 1,
        messages: Vec::new(),
        // A new folder (or one started over) knows every expunge from the beginning.
        expunged: ExpungeLog::starting_at(0),
        write_id: 0,
        modseq_ceiling: 0,
        stamp: Stamp::default(),
    }
}

/// Writes the empty index of a new folder (called when the folder is created).
pub(super) fn create_empty(dir: &Path, uid_validity: u32) -> io::Result<()> {
    write_index(dir, &empty(uid_validity), true)
}

/// The stored index (None when there is none); one of another UIDVALIDITY is empty.
pub(super) fn read_index(dir: &Path, uid_validity: u32) -> io::Result<Option<FolderIndex>> {
    let path = dir.join(INDEX_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    let bad = |line: usize| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: line {line} is malformed", path.display()),
        )
    };
    let mut lines = text.lines();
    let header = lines.next().ok_or_else(|| bad(1))?;
    let numbers = header.strip_prefix(MAGIC).ok_or_else(|| bad(1))?;
    let numbers: Vec<u64> = numbers
        .split_whitespace()
        .map(|n| n.parse().map_err(|_| bad(1)))
        .collect::<io::Result<_>>()?;
    let (validity, uid_next, highest_modseq, first_recent, write_id, floor) = match numbers[..] {
        [v, n, m, r, w, f] => (v, n, m, r, w, f),
        [v, n, m, r, w] => (v, n, m, r, w, m),
        [v, n, m, r] => (v, n, m, r, 0, m),
        _ => return Err(bad(1)),
    };
    if validity != u64::from(uid_validity) {
        return Ok(Some(empty(uid_validity)));
    }
    let as_u32 = |n: u64, line| u32::try_from(n).map_err(|_| bad(line));
    let mut index = FolderIndex {
        uid_validity,
        uid_next: as_u32(uid_next, 1)?,
        highest_modseq,
        first_recent: as_u32(first_recent, 1)?,
        messages: Vec::new(),
        expunged: ExpungeLog::starting_at(floor),
        write_id,
        modseq_ceiling: 0,
        stamp: Stamp::default(),
    };
    for (number, line) in lines.enumerate() {
        if let Some(rest) = line.strip_prefix("x ") {
            index
                .expunged
                .parse_line(rest)
                .ok_or_else(|| bad(number + 2))?;
            continue;
        }
        let entry = parse_entry(dir, line).ok_or_else(|| bad(number + 2))?;
        index.uid_next = index.uid_next.max(entry.uid.saturating_add(1));
        index.highest_modseq = index.highest_modseq.max(entry.modseq);
        index.messages.push(Arc::new(entry));
    }
    index.messages.sort_by_key(|m| m.uid);
    // Later expunges must log above what the log has.
    index.highest_modseq = index.highest_modseq.max(index.expunged.newest());
    Ok(Some(index))
}

fn parse_entry(dir: &Path, line: &str) -> Option<IndexEntry> {
    let mut words = line.split(' ');
    let uid = words.next()?.parse().ok()?;
    let modseq = words.next()?.parse().ok()?;
    let internal_date = words.next()?.parse().ok()?;
    let size = words.next()?.parse().ok()?;
    let base = words.next()?.to_string();
    let mut flags = FlagSet::default();
    for word in words.filter(|w| !w.is_empty()) {
        flags.set_index_word(word);
    }
    Some(IndexEntry {
        uid,
        modseq,
        internal_date,
        size,
        // Corrected by `reconcile` from the directory listing.
        path: dir.join("new").join(&base),
        base,
        flags,
    })
}

/// Writes the index through a temporary file and a rename: readers see the old or the new one,
/// never a torn one. With `durable`, file and directory are fsync'd first.
pub(super) fn write_index(dir: &Path, index: &FolderIndex, durable: bool) -> io::Result<()> {
    // (`write!` into one buffer: a `format!` per line allocated as often as there are
    // messages, on every flag change of a busy folder.)
    let mut text = String::with_capacity(64 + index.messages.len() * 80);
    let _ = writeln!(
        text,
        "{MAGIC} {} {} {} {} {} {}",
        index.uid_validity,
        index.uid_next,
        index.highest_modseq,
        index.first_recent,
        index.write_id,
        index.expunged.floor
    );
    for m in &index.messages {
        let _ = write!(
            text,
            "{} {} {} {} {}",
            m.uid, m.modseq, m.internal_date, m.size, m.base
        );
        for word in m.flags.index_words() {
            text.push(' ');
            text.push_str(word);
        }
        text.push('\n');
    }
    for line in index.expunged.lines() {
        text.push_str("x ");
        text.push_str(&line);
        text.push('\n');
    }
    let tmp = dir.join(format!(".{INDEX_FILE}.tmp"));
    let mut file = File::create(&tmp)?;
    file.write_all(text.as_bytes())?;
    if durable {
        file.sync_all()?;
    }
    fs::rename(&tmp, dir.join(INDEX_FILE))?;
    if durable {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}
