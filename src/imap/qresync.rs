//! QRESYNC (RFC 7162 §3.2): which UIDs a resynchronising client is told are gone
//! (`VANISHED (EARLIER)`), and the conversions between imap-types' sequence sets and the
//! store's UID ranges.

use std::num::NonZeroU32;

use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

use super::selected::Selected;
use crate::store::UidRanges;

/// Pairs of seq-match data (RFC 7162 §3.2.5.2) looked at at most; beyond, the data is only
/// an optimisation the server may ignore.
const MAX_SEQ_MATCH: usize = 100_000;

/// The UIDs of `set` as ranges; `*` stands for `star`.
pub fn ranges_of(set: &SequenceSet, star: u32) -> UidRanges {
    let value = |n: &SeqOrUid| match n {
        SeqOrUid::Value(v) => v.get(),
        SeqOrUid::Asterisk => star,
    };
    let ranges = set
        .0
        .as_ref()
        .iter()
        .map(|sequence| match sequence {
            Sequence::Single(n) => (value(n), value(n)),
            Sequence::Range(a, b) => (value(a), value(b)),
        })
        .filter(|&(a, b)| a != 0 || b != 0)
        .map(|(a, b)| (a.max(1), b.max(1)))
        .collect();
    UidRanges::from_ranges(ranges)
}

/// UID ranges per VANISHED response: RFC 7162 §4 (updating RFC 2683) asks for lines of a
/// few thousand octets at most, so a long answer is several responses.
const RANGES_PER_RESPONSE: usize = 500;

/// `ranges` as sequence sets of at most [`RANGES_PER_RESPONSE`] ranges each (none when
/// empty), one per VANISHED response.
pub fn sequence_sets(ranges: &UidRanges) -> Vec<SequenceSet> {
    ranges
        .ranges()
        .chunks(RANGES_PER_RESPONSE)
        .filter_map(|chunk| {
            let sequences: Vec<Sequence> = chunk
                .iter()
                .filter_map(|&(low, high)| {
                    let (low, high) = (NonZeroU32::new(low)?, NonZeroU32::new(high)?);
                    Some(if low == high {
                        Sequence::Single(SeqOrUid::Value(low))
                    } else {
                        Sequence::Range(SeqOrUid::Value(low), SeqOrUid::Value(high))
                    })
                })
                .collect();
            Vec1::try_from(sequences).ok().map(SequenceSet)
        })
        .collect()
}

/// The numbers of `set` in the order given (seq-match data is ordered), or None when there
/// are more than [`MAX_SEQ_MATCH`] or a `*`.
fn listed(set: &SequenceSet) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for sequence in set.0.as_ref() {
        let (a, b) = match sequence {
            Sequence::Single(SeqOrUid::Value(v)) => (v.get(), v.get()),
            Sequence::Range(SeqOrUid::Value(a), SeqOrUid::Value(b)) => (a.get(), b.get()),
            _ => return None,
        };
        let (low, high) = (a.min(b), a.max(b));
        if (high - low) as usize >= MAX_SEQ_MATCH.saturating_sub(out.len()) {
            return None;
        }
        out.extend(low..=high);
    }
    Some(out)
}

/// Why seq-match data was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct BadSeqMatch;

/// The UID up to which the client's seq-match data proves nothing was expunged: the largest
/// UID it names that still has the message number the client gave for it (then exactly as
/// many messages have a UID up to it as then, and since UIDs only grow, they are the same
/// ones). 0 when no pair holds or the data is too large to look at.
pub fn seq_match_bound(
    selected: &Selected,
    seqs: &SequenceSet,
    uids: &SequenceSet,
) -> Result<u32, BadSeqMatch> {
    let (Some(seqs), Some(uids)) = (listed(seqs), listed(uids)) else {
        return Ok(0);
    };
    if seqs.len() != uids.len() {
        return Err(BadSeqMatch);
    }
    let mut bound = 0;
    for (seq, uid) in seqs.into_iter().zip(uids) {
        let matches = seq
            .checked_sub(1)
            .and_then(|i| selected.messages.get(i as usize))
            .is_some_and(|m| m.meta.uid == uid);
        if matches {
            bound = bound.max(uid);
        }
    }
    Ok(bound)
}

/// The UIDs among `known` to report as `VANISHED (EARLIER)`: those the log says were expunged
/// after the client's mod-sequence (`logged`); where the log doesn't reach back (None), every
/// one of `known` that is not in the folder (RFC 7162 §3.2.5.2: correct, as UIDs are never
/// reused, if more than the client needs), above `proven` (the seq-match bound). Never a UID
/// the session still holds (those come as plain VANISHED when announced) or one not yet
/// handed out.
pub fn vanished_earlier(
    selected: &Selected,
    logged: Option<UidRanges>,
    known: &UidRanges,
    proven: u32,
) -> UidRanges {
    let present: Vec<u32> = selected.messages.iter().map(|m| m.meta.uid).collect();
    let used = UidRanges::from_ranges(vec![(1, selected.uid_next.saturating_sub(1).max(1))]);
    let candidates = match logged {
        Some(logged) => logged.intersect(known),
        None => match proven.checked_add(1) {
            Some(first) => known.intersect(&UidRanges::from_ranges(vec![(first, u32::MAX)])),
            None => UidRanges::default(),
        },
    };
    let result = candidates.intersect(&used).without(&present);
    if selected.uid_next <= 1 {
        UidRanges::default()
    } else {
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ensure_mailbox, Folder};
    use imap_codec::imap_types::sequence::SequenceSet;

    /// A folder with messages 1..=n of which `gone` were expunged, selected.
    fn selected(name: &str, n: u32, gone: &[u32]) -> (std::path::PathBuf, Selected) {
        let dir =
            std::env::temp_dir().join(format!("icsmail-qresync-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        ensure_mailbox(&dir, &[]).unwrap();
        let mut paths = Vec::new();
        for i in 1..=n {
            let file = dir
                .join("new")
                .join(format!("{}.M1P1Q{i}.h,S=2,W=3", 1000 + i));
            std::fs::write(&file, b"x\n").unwrap();
            paths.push(file);
        }
        let folder = Folder::at(dir.clone());
        folder.sync().unwrap();
        for &uid in gone {
            std::fs::remove_file(&paths[uid as usize - 1]).unwrap();
        }
        let view = Selected::open("INBOX".into(), folder, true).unwrap();
        (dir, view)
    }

    fn set(text: &str) -> SequenceSet {
        SequenceSet::try_from(text).unwrap()
    }

    #[test]
    fn seq_match_proves_the_uids_up_to_the_last_pair_that_holds() {
        // 1..=8 with 2 and 6 gone: numbers 1..=6 are UIDs 1,3,4,5,7,8.
        let (dir, view) = selected("seqmatch", 8, &[2, 6]);
        // The client's 1→1, 2→3, 3→4 (it knew of 2 already): all hold, up to UID 4.
        assert_eq!(seq_match_bound(&view, &set("1:3"), &set("1,3,4")), Ok(4));
        // 1→1 holds, 3→3 no longer (3 is now number 2): only up to 1.
        assert_eq!(seq_match_bound(&view, &set("1,3"), &set("1,3")), Ok(1));
        assert_eq!(
            seq_match_bound(&view, &set("1:2"), &set("1")),
            Err(BadSeqMatch)
        );
        // Too much to look at: ignored, not refused.
        assert_eq!(
            seq_match_bound(&view, &set("1:200000"), &set("1:200000")),
            Ok(0)
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn vanished_earlier_uses_the_log_or_every_known_uid_not_present() {
        let (dir, view) = selected("earlier", 8, &[2, 6]);
        let known = ranges_of(&set("1:8"), u32::MAX);
        let logged = UidRanges::from_uids(&[6]);
        assert_eq!(
            vanished_earlier(&view, Some(logged.clone()), &known, 0).to_text(),
            "6"
        );
        // Only what the client named.
        let some = ranges_of(&set("1:5"), u32::MAX);
        assert_eq!(
            vanished_earlier(&view, Some(logged), &some, 0).to_text(),
            ""
        );
        // No log: every known UID not present, above the seq-match bound, below UIDNEXT.
        assert_eq!(vanished_earlier(&view, None, &known, 0).to_text(), "2,6");
        assert_eq!(vanished_earlier(&view, None, &known, 4).to_text(), "6");
        let all = ranges_of(&set("1:*"), u32::MAX);
        assert_eq!(vanished_earlier(&view, None, &all, 0).to_text(), "2,6");
        assert_eq!(vanished_earlier(&view, None, &all, u32::MAX).to_text(), "");
        // Long answers are several responses.
        let many = UidRanges::from_uids(&(1..=2001).map(|i| i * 2).collect::<Vec<u32>>());
        let sets = sequence_sets(&many);
        assert_eq!(sets.len(), 5);
        assert!(sequence_sets(&UidRanges::default()).is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
