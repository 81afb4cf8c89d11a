//! STORE (+FLAGS, -FLAGS, FLAGS, .SILENT; CONDSTORE UNCHANGEDSINCE) and the flag conversions.

use std::collections::BTreeSet;

use imap_codec::imap_types::command::StoreModifier;
use imap_codec::imap_types::core::Atom;
use imap_codec::imap_types::flag::{Flag, FlagFetch, StoreType};
use imap_codec::imap_types::sequence::SequenceSet;

use super::super::response::other;
use super::super::sequence::{resolve, uid_ranges};
use super::super::session::{Done, Session};
use super::idle::flags_data;
use crate::store::{index, FlagSet};

/// Keywords a message may carry, so a client can't grow the index without bound.
pub const MAX_KEYWORDS: usize = 64;
/// Longest keyword accepted.
pub const MAX_KEYWORD_LENGTH: usize = 100;

pub struct StoreRequest {
    pub kind: StoreType,
    pub silent: bool,
    pub flags: Vec<Flag<'static>>,
    pub uid: bool,
    pub modifiers: Vec<StoreModifier>,
}

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

/// `flags` after a STORE of `kind` with `change`.
fn apply(flags: &FlagSet, kind: &StoreType, change: &FlagSet) -> FlagSet {
    let merge_keywords = |base: &BTreeSet<String>, add: bool| {
        let mut out: BTreeSet<String> = base
            .iter()
            .filter(|k| add || !change.has_keyword(k))
            .cloned()
            .collect();
        if add {
            for keyword in &change.keywords {
                if !flags.has_keyword(keyword) {
                    out.insert(keyword.clone());
                }
            }
        }
        out
    };
    match kind {
        StoreType::Replace => change.clone(),
        StoreType::Add => FlagSet {
            seen: flags.seen || change.seen,
            answered: flags.answered || change.answered,
            flagged: flags.flagged || change.flagged,
            deleted: flags.deleted || change.deleted,
            draft: flags.draft || change.draft,
            keywords: merge_keywords(&flags.keywords, true),
        },
        StoreType::Remove => FlagSet {
            seen: flags.seen && !change.seen,
            answered: flags.answered && !change.answered,
            flagged: flags.flagged && !change.flagged,
            deleted: flags.deleted && !change.deleted,
            draft: flags.draft && !change.draft,
            keywords: merge_keywords(&flags.keywords, false),
        },
    }
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
    let condstore = session.condstore;
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
    let targets: Vec<(u32, u64)> = positions
        .iter()
        .map(|&i| {
            (
                selected.messages[i].meta.uid,
                selected.messages[i].meta.modseq,
            )
        })
        .collect();
    let dir = selected.dir.clone();
    let kind = request.kind;
    let outcome = tokio::task::spawn_blocking(move || {
        index::update(&dir, |index| {
            let mut changed = Vec::new();
            let mut refused = Vec::new();
            for (uid, _) in &targets {
                let Some(position) = index.position(*uid) else {
                    continue; // expunged meanwhile
                };
                let current = &index.messages[position];
                if unchanged_since.is_some_and(|limit| current.modseq > limit) {
                    refused.push(*uid);
                    continue;
                }
                let mut new = apply(&current.flags, &kind, &change);
                if new.keywords.len() > MAX_KEYWORDS {
                    new.keywords = current.flags.keywords.clone();
                }
                if new != current.flags {
                    let modseq = index.bump_modseq();
                    let entry = &mut index.messages[position];
                    entry.flags = new.clone();
                    entry.modseq = modseq;
                    changed.push((*uid, new, modseq));
                } else if unchanged_since.is_some() {
                    // Reported with its (unchanged) MODSEQ all the same.
                    changed.push((*uid, new, current.modseq));
                }
            }
            Ok((changed, refused))
        })
    })
    .await
    .map_err(std::io::Error::other)?;
    let (fresh, (changed, refused)) = match outcome {
        Ok(result) => result,
        Err(err) => return Ok(Done::server_error("STORE", err)),
    };
    let Some(selected) = session.selected() else {
        return Ok(Done::bad("Select a folder first"));
    };
    for (uid, flags, modseq) in &changed {
        selected.record(*uid, flags.clone(), *modseq);
    }
    // Others' changes seen by the same read (our own now match and aren't repeated).
    let others = selected.apply(fresh, u32::MAX, false);
    let Some(selected) = session.selected() else {
        return Ok(Done::bad("Select a folder first"));
    };
    let mut replies = Vec::new();
    for (uid, _, _) in changed {
        // .SILENT still reports MODSEQ changes under CONDSTORE (RFC 7162 §3.2).
        if !request.silent || unchanged_since.is_some() {
            if let Some(seq) = selected.seq_of(uid) {
                replies.extend(flags_data(selected, seq, condstore));
            }
        }
    }
    super::idle::send_updates(session, others);
    for data in replies {
        session.send_data(data);
    }
    if refused.is_empty() {
        return Ok(Done::ok("STORE completed"));
    }
    let Some(selected) = session.selected() else {
        return Ok(Done::ok("STORE completed"));
    };
    let mut numbers: Vec<u32> = if request.uid {
        refused
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
        Ok(set) => Ok(Done::ok_code(
            imap_codec::imap_types::response::Code::Modified(set),
            "Conditional STORE failed for some messages",
        )),
        Err(_) => Ok(Done::ok("STORE completed")),
    }
}
