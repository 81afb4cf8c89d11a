//! COPY, MOVE and their UID forms (UIDPLUS COPYUID, RFC 6851 MOVE): the files are linked into
//! the target folder (flags and INTERNALDATE kept), which assigns their UIDs in order; MOVE then
//! removes the originals and announces the expunges.

use imap_codec::imap_types::extensions::uidplus::{UidElement, UidSet};
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::response::Code;
use imap_codec::imap_types::sequence::SequenceSet;

use super::super::error::server_error;
use super::super::folders::FolderError;
use super::super::response::{nz, other, status, Kind};
use super::super::selected::Selected;
use super::super::sequence::{resolve, uid_ranges};
use super::super::state::{Done, Session};
use super::idle::send_updates;
use super::names::folder_name;
use super::quota::refuse_over_quota;
use crate::store::{Copied, CopySource, Folder};

fn uid_set(uids: &[u32]) -> Option<UidSet> {
    let elements: Vec<UidElement> = uid_ranges(uids)
        .into_iter()
        .map(|(a, b)| {
            if a == b {
                UidElement::Single(nz(a))
            } else {
                UidElement::Range(nz(a), nz(b))
            }
        })
        .collect();
    imap_codec::imap_types::core::Vec1::try_from(elements)
        .ok()
        .map(UidSet)
}

pub async fn copy(
    session: &mut Session<'_>,
    set: SequenceSet,
    mailbox: Mailbox<'static>,
    uid: bool,
    moving: bool,
) -> std::io::Result<Done> {
    let verb = if moving { "MOVE" } else { "COPY" };
    let target_name = match folder_name(&mailbox, session.utf8_names()) {
        Ok(name) => name,
        Err(done) => return Ok(done),
    };
    let Some((_, folders)) = session.account.clone() else {
        return Ok(Done::bad("Log in first"));
    };
    let Some(selected) = session.selected() else {
        return Ok(Done::bad("Select a folder first"));
    };
    if moving && selected.read_only {
        return Ok(Done::no_code(
            other("READ-ONLY"),
            "Folder is read-only (EXAMINE)",
        ));
    }
    let positions = match resolve(&set, selected, uid) {
        Ok(positions) => positions,
        Err(_) => return Ok(Done::bad("Message number out of range")),
    };
    if positions.is_empty() {
        return Ok(Done::ok(format!("{verb} completed (nothing to do)")));
    }
    let sources = copy_sources(selected, &positions);
    let (source, uid_validity) = (selected.folder.clone(), selected.uid_validity);
    if !moving {
        let bytes = sources
            .iter()
            .map(|s| s.size)
            .fold(0u64, u64::saturating_add);
        if let Some(refusal) = refuse_over_quota(session, bytes).await {
            return Ok(refusal);
        }
    }
    let store = session.ctx.store.clone();
    let result = tokio::task::spawn_blocking(move || -> Result<Copied, FolderError> {
        let target = Folder::at(folders.dir(&target_name)?);
        Ok(if moving {
            source.move_to(&store, &target, uid_validity, &sources)?
        } else {
            source.copy_to(&store, &target, &sources)?
        })
    })
    .await
    .map_err(std::io::Error::other)?;
    match result {
        Ok(copied) if moving => {
            let done = answer(session, copied, moving);
            super::expunge::with_highest_modseq(session, done).await
        }
        Ok(copied) => Ok(answer(session, copied, moving)),
        Err(FolderError::NotFound) => Ok(Done::no_code(Code::TryCreate, "No such folder")),
        Err(err) => Ok(server_error(verb, err)),
    }
}

/// The messages at `positions` as the client sees them: those flags go with the copies.
fn copy_sources(selected: &Selected, positions: &[usize]) -> Vec<CopySource> {
    positions
        .iter()
        .map(|&i| {
            let m = &selected.messages[i];
            CopySource {
                uid: m.meta.uid,
                path: m.path.clone(),
                size: m.meta.size,
                flags: m.meta.flags.clone(),
            }
        })
        .collect()
}

/// OK with COPYUID (UIDPLUS); for MOVE, the originals' expunges first.
fn answer(session: &mut Session<'_>, copied: Copied, moving: bool) -> Done {
    let Copied {
        uid_validity: validity,
        pairs,
    } = copied;
    let source_uids: Vec<u32> = pairs.iter().map(|(s, _)| *s).collect();
    let target_uids: Vec<u32> = pairs.iter().map(|(_, t)| *t).collect();
    let code = match (uid_set(&source_uids), uid_set(&target_uids)) {
        (Some(source), Some(destination)) => Some(Code::CopyUid {
            uid_validity: nz(validity),
            source,
            destination,
        }),
        _ => None,
    };
    if !moving {
        return match code {
            Some(code) => Done::ok_code(code, "COPY completed"),
            None => Done::ok("COPY completed"),
        };
    }
    // MOVE: COPYUID goes in an untagged OK before the expunges (RFC 6851 §4.3).
    if let Some(code) = code {
        session.send_status(status(Kind::Ok, None, Some(code), "Moved"));
    }
    if let Some(selected) = session.selected() {
        for (uid, _) in &pairs {
            if let Some(seq) = selected.seq_of(*uid) {
                selected.messages[seq as usize - 1].gone = true;
            }
        }
        let updates = selected.announce_expunges();
        send_updates(session, updates);
    }
    Done::ok("MOVE completed")
}
