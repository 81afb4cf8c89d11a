//! A folder's expunge log: which UIDs left the index at which modification sequence, so
//! QRESYNC (RFC 7162 §3.2.5, `VANISHED (EARLIER)`) can tell a client exactly what was
//! expunged since the mod-sequence it last saw.
//!
//! It lives inside `ics-index` (lines `x <modseq> <uid ranges>`, `indexfile`), not in a file
//! of its own: an expunge and its log entry are then one rename, so no crash can keep the one
//! without the other (a separate file would need an fsync per expunge to be as safe). When an
//! index write is lost in a machine crash, its expunges are lost with it, but their files are
//! gone durably, and the next read drops them again and logs them at a mod-sequence above the
//! durable ceiling (`modseqfloor`), so a client is still told.
//!
//! Bounded: past [`MAX_RANGES`] UID ranges the oldest entries are dropped and `floor` rises to
//! the newest dropped mod-sequence. For a client older than the floor the log can't answer;
//! QRESYNC then reports every UID it names that is not present (RFC 7162 §3.2.5.2), which UIDs
//! that are never reused make correct.

/// UID ranges kept at most; compaction drops the oldest entries down to half of this.
pub const MAX_RANGES: usize = 2048;

/// Disjoint, ascending, non-adjacent inclusive UID ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UidRanges(Vec<(u32, u32)>);

impl UidRanges {
    /// The ranges of `uids` (any order, duplicates allowed).
    pub fn from_uids(uids: &[u32]) -> UidRanges {
        let mut sorted = uids.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut ranges: Vec<(u32, u32)> = Vec::new();
        for uid in sorted {
            match ranges.last_mut() {
                Some((_, high)) if high.checked_add(1) == Some(uid) => *high = uid,
                _ => ranges.push((uid, uid)),
            }
        }
        UidRanges(ranges)
    }

    /// Ranges given in any order, overlapping or not (a client's set, say).
    pub fn from_ranges(mut ranges: Vec<(u32, u32)>) -> UidRanges {
        for range in &mut ranges {
            if range.0 > range.1 {
                *range = (range.1, range.0);
            }
        }
        ranges.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
        for (low, high) in ranges {
            match merged.last_mut() {
                Some((_, last)) if low <= last.saturating_add(1) => *last = (*last).max(high),
                _ => merged.push((low, high)),
            }
        }
        UidRanges(merged)
    }

    pub fn ranges(&self) -> &[(u32, u32)] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, uid: u32) -> bool {
        let i = self.0.partition_point(|&(_, high)| high < uid);
        self.0.get(i).is_some_and(|&(low, _)| low <= uid)
    }

    pub fn union(&self, other: &UidRanges) -> UidRanges {
        UidRanges::from_ranges(self.0.iter().chain(&other.0).copied().collect())
    }

    pub fn intersect(&self, other: &UidRanges) -> UidRanges {
        let (mut i, mut j) = (0, 0);
        let mut out = Vec::new();
        while i < self.0.len() && j < other.0.len() {
            let (a, b) = (self.0[i], other.0[j]);
            let (low, high) = (a.0.max(b.0), a.1.min(b.1));
            if low <= high {
                out.push((low, high));
            }
            if a.1 < b.1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        UidRanges::from_ranges(out)
    }

    /// These ranges without the UIDs of `present` (ascending).
    pub fn without(&self, present: &[u32]) -> UidRanges {
        let mut out = Vec::new();
        for &(low, high) in &self.0 {
            // The first UID not yet covered or passed; None past u32::MAX.
            let mut start = Some(low);
            let from = present.partition_point(|&uid| uid < low);
            for &uid in present[from..].iter().take_while(|&&uid| uid <= high) {
                if let Some(first) = start.filter(|&first| uid > first) {
                    out.push((first, uid - 1));
                }
                start = uid.checked_add(1);
            }
            if let Some(first) = start.filter(|&first| first <= high) {
                out.push((first, high));
            }
        }
        UidRanges::from_ranges(out)
    }

    /// `1:3,7,9:12` (the IMAP sequence-set form; also the log's on-disk form).
    pub fn to_text(&self) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|&(low, high)| {
                if low == high {
                    low.to_string()
                } else {
                    format!("{low}:{high}")
                }
            })
            .collect();
        parts.join(",")
    }

    fn parse(text: &str) -> Option<UidRanges> {
        let mut ranges = Vec::new();
        for part in text.split(',') {
            let (low, high) = match part.split_once(':') {
                Some((low, high)) => (low.parse().ok()?, high.parse().ok()?),
                None => {
                    let uid = part.parse().ok()?;
                    (uid, uid)
                }
            };
            ranges.push((low, high));
        }
        Some(UidRanges::from_ranges(ranges))
    }
}

/// One index update's expunges.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expunged {
    modseq: u64,
    uids: UidRanges,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpungeLog {
    /// Every expunge with a mod-sequence above this is in `entries`; of those at or below it
    /// the log knows nothing (dropped by compaction, or before the folder had a log).
    pub floor: u64,
    /// Ascending by mod-sequence.
    entries: Vec<Expunged>,
}

impl ExpungeLog {
    /// A log that knows everything since `floor`.
    pub fn starting_at(floor: u64) -> ExpungeLog {
        ExpungeLog {
            floor,
            entries: Vec::new(),
        }
    }

    /// Records that `uids` left the index at `modseq` (the newest mod-sequence so far).
    pub fn record(&mut self, modseq: u64, uids: &[u32]) {
        if uids.is_empty() {
            return;
        }
        let uids = UidRanges::from_uids(uids);
        match self.entries.last_mut() {
            // Never out of order (that would make the file unreadable): a mod-sequence not
            // above the newest joins it, reported as later than it was, which is safe.
            Some(last) if last.modseq >= modseq => last.uids = last.uids.union(&uids),
            _ => self.entries.push(Expunged { modseq, uids }),
        }
        self.compact();
    }

    fn range_count(&self) -> usize {
        self.entries.iter().map(|e| e.uids.0.len()).sum()
    }

    /// Drops the oldest entries once the log holds more than [`MAX_RANGES`] ranges, down to
    /// half of that, and raises the floor past them.
    fn compact(&mut self) {
        let mut count = self.range_count();
        if count <= MAX_RANGES {
            return;
        }
        let mut drop = 0;
        while drop < self.entries.len() && count > MAX_RANGES / 2 {
            count -= self.entries[drop].uids.0.len();
            self.floor = self.floor.max(self.entries[drop].modseq);
            drop += 1;
        }
        self.entries.drain(..drop);
    }

    /// The UIDs expunged after `modseq`, or None when the log no longer reaches back that far.
    pub fn since(&self, modseq: u64) -> Option<UidRanges> {
        if modseq < self.floor {
            return None;
        }
        let mut all = Vec::new();
        for entry in self.entries.iter().filter(|e| e.modseq > modseq) {
            all.extend_from_slice(&entry.uids.0);
        }
        Some(UidRanges::from_ranges(all))
    }

    /// The newest mod-sequence in the log (the floor when it is empty).
    pub fn newest(&self) -> u64 {
        self.entries.last().map_or(self.floor, |e| e.modseq)
    }

    /// Reads one `x` line's rest, `<modseq> <ranges>`.
    pub fn parse_line(&mut self, rest: &str) -> Option<()> {
        let (modseq, ranges) = rest.split_once(' ')?;
        let modseq: u64 = modseq.parse().ok()?;
        let uids = UidRanges::parse(ranges)?;
        if self
            .entries
            .last()
            .is_some_and(|last| last.modseq >= modseq)
        {
            return None;
        }
        self.entries.push(Expunged { modseq, uids });
        Some(())
    }

    /// The `x` lines' rests, oldest first.
    pub fn lines(&self) -> impl Iterator<Item = String> + '_ {
        self.entries
            .iter()
            .map(|e| format!("{} {}", e.modseq, e.uids.to_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(ranges: &[(u32, u32)]) -> UidRanges {
        UidRanges::from_ranges(ranges.to_vec())
    }

    #[test]
    fn ranges_merge_intersect_and_subtract() {
        assert_eq!(
            UidRanges::from_uids(&[5, 1, 2, 3, 7, 8]).to_text(),
            "1:3,5,7:8"
        );
        assert_eq!(r(&[(1, 3), (4, 6), (10, 12)]).to_text(), "1:6,10:12");
        let a = r(&[(1, 10), (20, 30)]);
        assert_eq!(a.intersect(&r(&[(5, 25)])).to_text(), "5:10,20:25");
        assert_eq!(
            a.without(&[1, 5, 6, 10, 25]).to_text(),
            "2:4,7:9,20:24,26:30"
        );
        assert_eq!(r(&[(1, 1)]).without(&[1]).to_text(), "");
        assert_eq!(r(&[(3, 3)]).without(&[1, 2]).to_text(), "3");
        assert_eq!(
            r(&[(u32::MAX - 1, u32::MAX)])
                .without(&[u32::MAX])
                .to_text(),
            format!("{}", u32::MAX - 1)
        );
        assert_eq!(
            r(&[(1, u32::MAX)]).without(&[2]).ranges(),
            [(1, 1), (3, u32::MAX)]
        );
        assert!(a.contains(20) && a.contains(10) && !a.contains(11) && !a.contains(31));
        assert_eq!(UidRanges::parse("1:3,5").unwrap().to_text(), "1:3,5");
        assert!(UidRanges::parse("1:x").is_none());
    }

    #[test]
    fn since_answers_above_the_floor_only() {
        let mut log = ExpungeLog::starting_at(4);
        log.record(6, &[3]);
        log.record(9, &[7, 8]);
        log.record(9, &[10]);
        assert_eq!(log.since(4).unwrap().to_text(), "3,7:8,10");
        assert_eq!(log.since(6).unwrap().to_text(), "7:8,10");
        assert_eq!(log.since(9).unwrap().to_text(), "");
        assert_eq!(log.since(3), None);
        let lines: Vec<String> = log.lines().collect();
        assert_eq!(lines, ["6 3", "9 7:8,10"]);
        let mut read = ExpungeLog::starting_at(4);
        for line in &lines {
            read.parse_line(line).unwrap();
        }
        assert_eq!(read, log);
        assert!(read.parse_line("8 1").is_none(), "out of order");
    }

    /// Every path that removes messages through `store::Folder` (EXPUNGE and CLOSE, MOVE,
    /// POP3's deletions at QUIT) leaves them in the log, above what was handed out before.
    #[test]
    fn every_folder_removal_path_writes_the_log() {
        use crate::store::{ensure_mailbox, CopySource, FlagChange, FlagSet, Folder, MailStore};
        let root = std::env::temp_dir().join(format!("icsmail-expungelog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        ensure_mailbox(&root, &[]).unwrap();
        ensure_mailbox(&root.join(".Target"), &[]).unwrap();
        let store = MailStore::new(root.clone(), Vec::new());
        let (inbox, target) = (Folder::inbox(&root), Folder::at(root.join(".Target")));
        for n in 1..=6u32 {
            let name = format!("{}.M1P1Q{n}.h,S=2,W=3", 1000 + n);
            std::fs::write(root.join("new").join(name), b"x\n").unwrap();
        }
        let first = inbox.sync().unwrap();
        let before = first.highest_modseq;
        // EXPUNGE (and CLOSE): the \Deleted ones.
        let deleted = FlagSet {
            deleted: true,
            ..FlagSet::default()
        };
        inbox
            .store_flags(&[1, 2], &FlagChange::Add(deleted), None)
            .unwrap();
        assert_eq!(inbox.expunge(None).unwrap(), [1, 2]);
        let after_expunge = inbox.sync().unwrap().highest_modseq;
        // MOVE: copied, then removed.
        let moving: Vec<CopySource> = first.messages[2..3].iter().map(CopySource::from).collect();
        inbox
            .move_to(&store, &target, first.uid_validity, &moving)
            .unwrap();
        // POP3 at QUIT.
        assert_eq!(inbox.remove(first.uid_validity, &[5]).unwrap(), [5]);
        let index = inbox.sync().unwrap();
        assert_eq!(index.expunged_since(before).unwrap().to_text(), "1:3,5");
        assert_eq!(
            index.expunged_since(after_expunge).unwrap().to_text(),
            "3,5"
        );
        assert_eq!(
            target.sync().unwrap().expunged_since(0).unwrap().to_text(),
            ""
        );
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn compaction_bounds_the_log_and_raises_the_floor() {
        let mut log = ExpungeLog::starting_at(0);
        // Every other UID: one range per expunge.
        for i in 0..(MAX_RANGES as u64 + 1) {
            log.record(10 + i, &[(2 * i + 1) as u32]);
        }
        assert!(log.range_count() <= MAX_RANGES / 2);
        assert!(log.floor > 10);
        assert_eq!(log.since(log.floor - 1), None);
        let known = log.since(log.floor).unwrap();
        assert!(known.contains((2 * MAX_RANGES + 1) as u32));
    }
}
