//! Membership in a sequence set or UID set (RFC 3501 §9 `sequence-set`).

use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

/// True when `n` is in the set, `*` standing for `max` (the highest sequence number or UID in
/// the folder). Ranges count in either order, so `559:*` contains the highest UID even when
/// that is below 559 (RFC 3501 §6.4.8 / RFC 9051 on `*`).
pub(super) fn contains(set: &SequenceSet, n: u32, max: u32) -> bool {
    set.0.as_ref().iter().any(|seq| match seq {
        Sequence::Single(v) => resolve(v, max) == n,
        Sequence::Range(a, b) => {
            let (a, b) = (resolve(a, max), resolve(b, max));
            (a.min(b)..=a.max(b)).contains(&n)
        }
    })
}

fn resolve(v: &SeqOrUid, max: u32) -> u32 {
    match v {
        SeqOrUid::Value(n) => n.get(),
        SeqOrUid::Asterisk => max,
    }
}
