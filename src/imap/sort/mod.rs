//! SORT (RFC 5256, with SORT=DISPLAY of RFC 5957) and THREAD (RFC 5256): the keys taken out
//! of each message's header (`keys`, remembered by `keycache`), the base subject
//! (`subject`), the sort order (here) and the threading algorithms (`thread`, with the
//! link-cut tree of `linkcut` for its loop check).

mod decompose;
pub mod keycache;
pub mod keys;
mod linkcut;
pub mod subject;
pub mod thread;

use std::cmp::Ordering;

use imap_codec::imap_types::extensions::sort::{SortCriterion, SortKey};

use keys::SortKeys;

/// One message to sort, in sequence order.
pub struct Entry<'a> {
    /// INTERNALDATE (seconds since the epoch), for ARRIVAL and the sent date's fallback.
    pub internal_date: i64,
    /// RFC822.SIZE.
    pub size: u64,
    pub keys: &'a SortKeys,
}

impl Entry<'_> {
    /// The sent date (RFC 5256 §2.2): the Date: field, else INTERNALDATE.
    pub fn sent_date(&self) -> i64 {
        self.keys.sent.unwrap_or(self.internal_date)
    }
}

fn compare(key: &SortKey, a: &Entry<'_>, b: &Entry<'_>) -> Ordering {
    match key {
        SortKey::Arrival => a.internal_date.cmp(&b.internal_date),
        SortKey::Date => a.sent_date().cmp(&b.sent_date()),
        SortKey::Size => a.size.cmp(&b.size),
        SortKey::Subject => a.keys.subject.text.cmp(&b.keys.subject.text),
        SortKey::From => a.keys.from.cmp(&b.keys.from),
        SortKey::To => a.keys.to.cmp(&b.keys.to),
        SortKey::Cc => a.keys.cc.cmp(&b.keys.cc),
        SortKey::DisplayFrom => a.keys.display_from.cmp(&b.keys.display_from),
        SortKey::DisplayTo => a.keys.display_to.cmp(&b.keys.display_to),
    }
}

/// The indexes of `entries` in the order the criteria give; messages equal on every
/// criterion stay in sequence order (RFC 5256 §3; `REVERSE` reverses its criterion only).
/// Strings compare by their case-mapped UTF-8 bytes, i.e. by code point.
pub fn order(entries: &[Entry<'_>], criteria: &[SortCriterion]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by(|&a, &b| {
        for criterion in criteria {
            let ordering = compare(&criterion.key, &entries[a], &entries[b]);
            let ordering = if criterion.reverse {
                ordering.reverse()
            } else {
                ordering
            };
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
        a.cmp(&b)
    });
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn criterion(key: SortKey, reverse: bool) -> SortCriterion {
        SortCriterion { reverse, key }
    }

    #[test]
    fn criteria_apply_in_turn_and_ties_keep_sequence_order() {
        let k = |from: &str, sent: Option<i64>| SortKeys {
            from: from.into(),
            sent,
            ..SortKeys::default()
        };
        let keys = [
            k("B", Some(50)),
            k("A", None),
            k("B", Some(10)),
            k("A", Some(300)),
        ];
        let sizes = [10, 20, 10, 5];
        let entries: Vec<Entry<'_>> = keys
            .iter()
            .zip(sizes)
            .enumerate()
            .map(|(i, (keys, size))| Entry {
                internal_date: 100 + i as i64,
                size,
                keys,
            })
            .collect();
        assert_eq!(
            order(&entries, &[criterion(SortKey::Size, false)]),
            [3, 0, 2, 1]
        );
        // Ties stay in sequence order under REVERSE too.
        assert_eq!(
            order(&entries, &[criterion(SortKey::Size, true)]),
            [1, 0, 2, 3]
        );
        // The second message has no Date: its INTERNALDATE (101) stands in.
        assert_eq!(
            order(&entries, &[criterion(SortKey::Date, false)]),
            [2, 0, 1, 3]
        );
        assert_eq!(
            order(
                &entries,
                &[
                    criterion(SortKey::From, false),
                    criterion(SortKey::Date, true)
                ]
            ),
            [3, 1, 0, 2]
        );
        assert_eq!(
            order(&entries, &[criterion(SortKey::Arrival, true)]),
            [3, 2, 1, 0]
        );
    }
}
