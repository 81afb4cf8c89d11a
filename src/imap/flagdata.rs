//! A message's flags as FETCH and the unsolicited flag updates send them.

use std::num::NonZeroU64;

use imap_codec::imap_types::core::{Atom, Vec1};
use imap_codec::imap_types::fetch::MessageDataItem;
use imap_codec::imap_types::flag::{Flag, FlagFetch};
use imap_codec::imap_types::response::Data;

use super::response::nz;
use super::selected::Selected;
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

/// `* seq FETCH (FLAGS (...) UID n [MODSEQ (m)])` for the message at `seq`.
pub fn flags_data(selected: &Selected, seq: u32, condstore: bool) -> Option<Data<'static>> {
    let message = selected.messages.get(seq.checked_sub(1)? as usize)?;
    let mut items = vec![
        MessageDataItem::Flags(flag_items(&message.meta.flags, message.recent)),
        MessageDataItem::Uid(nz(message.meta.uid)),
    ];
    if condstore {
        if let Some(modseq) = NonZeroU64::new(message.meta.modseq) {
            items.push(MessageDataItem::ModSeq(modseq));
        }
    }
    Some(Data::Fetch {
        seq: nz(seq),
        items: Vec1::try_from(items).ok()?,
    })
}
