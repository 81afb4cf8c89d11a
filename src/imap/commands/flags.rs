//! STORE (+FLAGS, -FLAGS, FLAGS, .SILENT; CONDSTORE UNCHANGEDSINCE) and the flag conversions.
//! How a change applies, and the keyword limits, are the store's (`store::FlagSet::after`).

use imap_codec::imap_types::command::StoreModifier;
use imap_codec::imap_types::flag::{Flag, StoreType};
use imap_codec::imap_types::sequence::SequenceSet;

use super::super::error::server_error;
use super::super::flagdata::flags_data;
use super::super::response::other;
use super::super::selected::Selected;
use super::super::sequence::{resolve, uid_ranges};
use super::super::state::{Done, Session};
use crate::store::{FlagChange, FlagSet, FlagsStored, Recent, MAX_KEYWORD_LENGTH};

pub struct StoreRequest {
    pub kind: StoreType,
    pub silent: bool,
    pub flags: Vec<Flag<'static>>,
    pub uid: bool,
    pub modifiers: Vec<StoreModifier>,
}

/// The flags named in a STORE or APPEND, as a set; `\Recent` and unknown system flags are
/// refused.
pub fn flag_set(flags: &[Flag<'_>]) -> Result<FlagSet, Done> {
    let mut set = FlagSet::default();
    for flag in flags {
        match flag {
            Flag::Seen => set.seen = true,
            Flag::Answered => set.answered = true,
            Flag::Flagged => set.flagged = true,
            Flag::Deleted => set.deleted = true,
            Flag::Draft => set.draft = true,
            Flag::Keyword(atom) => {
                let keyword: &str = atom.as_ref();
                if keyword.len() > MAX_KEYWORD_LENGTH {
                    return Err(Done::bad("Keyword too long"));
                }
                if !set.has_keyword(keyword) {
                    set.keywords.insert(keyword.to_string());
                }
            }
            Flag::Extension(_) => return Err(Done::bad("Unknown system flag")),
        }
    }
    Ok(set)
}

pub async fn store(
    session: &mut Session<'_>,
    set: SequenceSet,
    request: StoreRequest,
) -> std::io::Result<Done> {
    let change = match flag_set(&request.flags) {
        Ok(change) => change,
        Err(done) => return Ok(done),
    };
    let unchanged_since = request
        .modifiers
        .iter()
        .map(|StoreModifier::UnchangedSince(n)| *n)
        .next();
    if unchanged_since.is_some() {
        session.condstore = true;
    }
    let shown = session.flags_shown();
    let Some(selected) = session.selected() else {
        return Ok(Done::bad("Select a folder first"));
    };
    if selected.read_only {
        return Ok(Done::no_code(
            other("READ-ONLY"),
            "Folder is read-only (EXAMINE)",
        ));
    }
    let positions = match resolve(&set, selected, request.uid) {
        Ok(positions) => positions,
        Err(_) => return Ok(Done::bad("Message number out of range")),
    };
    let uids: Vec<u32> = positions
        .iter()
        .map(|&i| selected.messages[i].meta.uid)
        .collect();
    let folder = selected.folder.clone();
    let uids_named = uids.clone();
    let change = match request.kind {
        StoreType::Add => FlagChange::Add(change),
        StoreType::Remove => FlagChange::Remove(change),
        StoreType::Replace => FlagChange::Replace(change),
    };
    let outcome =
        tokio::task::spawn_blocking(move || folder.store_flags(&uids, &change, unchanged_since))
            .await
            .map_err(std::io::Error::other)?;
    let (fresh, FlagsStored { changed, refused }) = match outcome {
        Ok(result) => result,
        Err(err) => return Ok(server_error("STORE", err)),
    };
    let Some(selected) = session.selected() else {
        return Ok(Done::bad("Select a folder first"));
    };
    for update in &changed {
        selected.record(update.uid, update.flags.clone(), update.modseq);
    }
    // Others' changes seen by the same read (our own now match and aren't repeated).
    let others = selected.apply(&fresh, Recent::NONE, false);
    let Some(selected) = session.selected() else {
        return Ok(Done::bad("Select a folder first"));
    };
    let mut replies = Vec::new();
    // Without .SILENT every message named gets its flags back, changed or not (RFC 3501
    // §6.4.6), so the client's copy is right even where another session's change made ours
    // a no-op. .SILENT still reports what changed under CONDSTORE (RFC 7162 §3.2).
    let answered: Vec<u32> = if !request.silent {
        uids_named
    } else if unchanged_since.is_some() {
        changed.iter().map(|update| update.uid).collect()
    } else {
        Vec::new()
    };
    for uid in answered {
        if refused.contains(&uid) {
            continue;
        }
        match selected.seq_of(uid) {
            // Expunged by another session: nothing was stored, its EXPUNGE is on its way.
            Some(seq) if !selected.messages[seq as usize - 1].gone => {
                replies.extend(flags_data(selected, seq, shown));
            }
            _ => {}
        }
    }
    super::idle::send_updates(session, others);
    for data in replies {
        session.send_data(data);
    }
    match session.selected() {
        Some(selected) if !refused.is_empty() => Ok(modified(selected, &refused, request.uid)),
        _ => Ok(Done::ok("STORE completed")),
    }
}

/// The answer to a conditional STORE that left the messages `refused` (UIDs) alone: OK with
/// `[MODIFIED set]` (RFC 7162 §3.2), as UIDs for UID STORE, else as sequence numbers.
fn modified(selected: &Selected, refused: &[u32], uid: bool) -> Done {
    let mut numbers: Vec<u32> = if uid {
        refused.to_vec()
    } else {
        refused
            .iter()
            .filter_map(|uid| selected.seq_of(*uid))
            .collect()
    };
    numbers.sort_unstable();
    let text: Vec<String> = uid_ranges(&numbers)
        .into_iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}:{b}")
            }
        })
        .collect();
    match SequenceSet::try_from(text.join(",").as_str()) {
        Ok(set) => Done::ok_code(
            imap_codec::imap_types::response::Code::Modified(set),
            "Conditional STORE failed for some messages",
        ),
        Err(_) => Done::ok("STORE completed"),
    }
}
