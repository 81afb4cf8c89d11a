//! Resolving sequence sets (message numbers or UIDs, with `*`) against the selected folder.

use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

use super::selected::Selected;

/// Why a sequence set was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetError {
    /// A message number beyond the folder's count (RFC 3501: BAD for numbers, UIDs never).
    OutOfRange(u32),
}

fn value(n: SeqOrUid, star: u32) -> u32 {
    match n {
        SeqOrUid::Value(v) => v.get(),
        SeqOrUid::Asterisk => star,
    }
}

/// Positions (0-based indexes into `selected.messages`) named by `set`, ascending, no
/// duplicates. With `uid`, the numbers are UIDs and ones that don't exist are skipped; `*` is
/// the highest UID (so `n:*` always names the last message). Without `uid`, numbers beyond the
/// message count are an error.
pub fn resolve(set: &SequenceSet, selected: &Selected, uid: bool) -> Result<Vec<usize>, SetError> {
    let count = selected.messages.len() as u32;
    let mut picked = vec![false; selected.messages.len()];
    for sequence in set.0.as_ref() {
        let (low, high) = match *sequence {
            Sequence::Single(n) => {
                let star = if uid { selected.max_uid() } else { count };
                let v = value(n, star);
                (v, v)
            }
            Sequence::Range(a, b) => {
                let star = if uid { selected.max_uid() } else { count };
                let (a, b) = (value(a, star), value(b, star));
                (a.min(b), a.max(b))
            }
        };
        if uid {
            let start = selected.messages.partition_point(|m| m.meta.uid < low);
            for (offset, message) in selected.messages[start..].iter().enumerate() {
                if message.meta.uid > high {
                    break;
                }
                picked[start + offset] = true;
            }
        } else {
            let has_star = matches!(
                *sequence,
                Sequence::Single(SeqOrUid::Asterisk)
                    | Sequence::Range(SeqOrUid::Asterisk, _)
                    | Sequence::Range(_, SeqOrUid::Asterisk)
            );
            if count == 0 && has_star {
                // `1:*` on an empty folder names nothing (clients send it blindly).
                continue;
            }
            if high > count || low == 0 {
                return Err(SetError::OutOfRange(high));
            }
            for seq in low..=high {
                picked[seq as usize - 1] = true;
            }
        }
    }
    Ok(picked
        .iter()
        .enumerate()
        .filter_map(|(i, &p)| p.then_some(i))
        .collect())
}

/// A compact UID set (`1:3,7`) for COPYUID and the like.
pub fn uid_ranges(uids: &[u32]) -> Vec<(u32, u32)> {
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for &uid in uids {
        match ranges.last_mut() {
            Some((_, end)) if end.checked_add(1) == Some(uid) => *end = uid,
            _ => ranges.push((uid, uid)),
        }
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_compact_runs() {
        assert_eq!(uid_ranges(&[1, 2, 3, 7, 9, 10]), [(1, 3), (7, 7), (9, 10)]);
        assert!(uid_ranges(&[]).is_empty());
    }
}
