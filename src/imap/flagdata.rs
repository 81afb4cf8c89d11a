//! A message's flags as FETCH and the unsolicited flag updates send them.

use std::num::NonZeroU64;

use imap_codec::imap_types::core::{Atom, Vec1};
use imap_codec::imap_types::fetch::MessageDataItem;
use imap_codec::imap_types::flag::{Flag, FlagFetch, FlagPerm};
use imap_codec::imap_types::response::Data;

use super::response::nz;
use super::selected::{FlagsChanged, Selected};
use crate::store::FlagSet;

/// The FLAGS of a FETCH response.
pub fn flag_items(flags: &FlagSet, recent: bool) -> Vec<FlagFetch<'static>> {
    let mut items = Vec::new();
    for (set, flag) in [
        (flags.seen, Flag::Seen),
        (flags.answered, Flag::Answered),
        (flags.flagged, Flag::Flagged),
        (flags.deleted, Flag::Deleted),
        (flags.draft, Flag::Draft),
    ] {
        if set {
            items.push(FlagFetch::Flag(flag));
        }
    }
    for keyword in &flags.keywords {
        if let Ok(atom) = Atom::try_from(keyword.clone()) {
            items.push(FlagFetch::Flag(Flag::Keyword(atom)));
        }
    }
    if recent {
        items.push(FlagFetch::Recent);
    }
    items
}

/// How a session shows flag changes: MODSEQ with CONDSTORE, \Recent unless IMAP4rev2.
#[derive(Debug, Clone, Copy)]
pub struct FlagsShown {
    pub condstore: bool,
    pub recent: bool,
}

/// `* seq FETCH (FLAGS (...) UID n [MODSEQ (m)])` for the message at `seq` of the view as it
/// is now.
pub fn flags_data(selected: &Selected, seq: u32, shown: FlagsShown) -> Option<Data<'static>> {
    let message = selected.messages.get(seq.checked_sub(1)? as usize)?;
    changed_data(
        &FlagsChanged {
            seq,
            uid: message.meta.uid,
            flags: message.meta.flags.clone(),
            recent: message.recent,
            modseq: message.meta.modseq,
        },
        shown,
    )
}

/// The untagged FETCH of a flag change, as it was when the change was seen.
pub fn changed_data(changed: &FlagsChanged, shown: FlagsShown) -> Option<Data<'static>> {
    let mut items = vec![
        MessageDataItem::Flags(flag_items(&changed.flags, changed.recent && shown.recent)),
        MessageDataItem::Uid(nz(changed.uid)),
    ];
    if shown.condstore {
        if let Some(modseq) = NonZeroU64::new(changed.modseq) {
            items.push(MessageDataItem::ModSeq(modseq));
        }
    }
    Some(Data::Fetch {
        seq: nz(changed.seq),
        items: Vec1::try_from(items).ok()?,
    })
}

/// The FLAGS list of a selected folder: the system flags, then the keywords the session
/// knows of (`Selected::keywords`).
pub fn folder_flags(selected: &Selected) -> Vec<Flag<'static>> {
    let mut flags = vec![
        Flag::Answered,
        Flag::Flagged,
        Flag::Deleted,
        Flag::Seen,
        Flag::Draft,
    ];
    for keyword in &selected.keywords {
        if let Ok(atom) = Atom::try_from(keyword.clone()) {
            flags.push(Flag::Keyword(atom));
        }
    }
    flags
}

/// PERMANENTFLAGS: the folder's flags and `\*` (any keyword may be made), nothing when
/// read-only.
pub fn permanent_flags(selected: &Selected) -> Vec<FlagPerm<'static>> {
    if selected.read_only {
        return Vec::new();
    }
    let mut permanent: Vec<FlagPerm<'static>> = folder_flags(selected)
        .into_iter()
        .map(FlagPerm::Flag)
        .collect();
    permanent.push(FlagPerm::Asterisk);
    permanent
}
