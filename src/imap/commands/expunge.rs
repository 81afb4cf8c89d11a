//! EXPUNGE, UID EXPUNGE (UIDPLUS) and CLOSE: messages marked \Deleted are removed from disk
//! (durably) and from the index; EXPUNGE answers with their numbers, CLOSE silently.

use imap_codec::imap_types::sequence::SequenceSet;

use super::super::error::server_error;
use super::super::response::other;
use super::super::response::Kind;
use super::super::sequence::resolve;
use super::super::state::{Done, Phase, Session};
use super::idle::{refresh, send_updates};
use imap_codec::imap_types::response::Code;

/// Removes the \Deleted messages among `only` (all when None); returns the UIDs removed.
async fn remove_deleted(
    session: &mut Session<'_>,
    only: Option<Vec<u32>>,
) -> std::io::Result<Result<Vec<u32>, Done>> {
    let Some(selected) = session.selected() else {
        return Ok(Err(Done::bad("Select a folder first")));
    };
    if selected.read_only {
        return Ok(Err(Done::no_code(
            other("READ-ONLY"),
            "Folder is read-only (EXAMINE)",
        )));
    }
    let folder = selected.folder.clone();
    let result = tokio::task::spawn_blocking(move || folder.expunge(only.as_deref()))
        .await
        .map_err(std::io::Error::other)?;
    match result {
        Ok(uids) => Ok(Ok(uids)),
        Err(err) => Ok(Err(server_error("EXPUNGE", err))),
    }
}

pub async fn expunge(
    session: &mut Session<'_>,
    uid_set: Option<SequenceSet>,
) -> std::io::Result<Done> {
    let only = match (&uid_set, session.selected()) {
        (Some(set), Some(selected)) => match resolve(set, selected, true) {
            Ok(positions) => Some(
                positions
                    .iter()
                    .map(|&i| selected.messages[i].meta.uid)
                    .collect(),
            ),
            Err(_) => return Ok(Done::bad("Invalid UID set")),
        },
        _ => None,
    };
    let removed = match remove_deleted(session, only).await? {
        Ok(removed) => removed,
        Err(done) => return Ok(done),
    };
    if let Some(selected) = session.selected() {
        for uid in &removed {
            if let Some(seq) = selected.seq_of(*uid) {
                selected.messages[seq as usize - 1].gone = true;
            }
        }
        let updates = selected.announce_expunges();
        send_updates(session, updates);
    }
    with_highest_modseq(session, Done::ok("EXPUNGE completed")).await
}

/// With QRESYNC on, the tagged OK of EXPUNGE, UID EXPUNGE and MOVE carries the folder's
/// HIGHESTMODSEQ (RFC 7162 §3.2.7, as Dovecot does), so the client can store it as its
/// resync point. The value is the view's after a refresh: every change up to it has then
/// been sent before the OK.
pub async fn with_highest_modseq(session: &mut Session<'_>, done: Done) -> std::io::Result<Done> {
    if !session.qresync || done.kind != Kind::Ok || done.code.is_some() {
        return Ok(done);
    }
    refresh(session, true).await?;
    let Some(modseq) = session
        .selected()
        .and_then(|s| std::num::NonZeroU64::new(s.highest_modseq))
    else {
        return Ok(done);
    };
    Ok(Done::ok_code(Code::HighestModSeq(modseq), done.text))
}

/// CLOSE: expunge silently (unless read-only), then leave the selected state.
pub async fn close(session: &mut Session<'_>) -> Done {
    let read_only = session.selected().is_none_or(|s| s.read_only);
    if !read_only {
        if let Ok(Err(done)) = remove_deleted(session, None).await {
            session.phase = Phase::Authenticated;
            return done;
        }
    }
    session.phase = Phase::Authenticated;
    Done::ok("CLOSE completed")
}
