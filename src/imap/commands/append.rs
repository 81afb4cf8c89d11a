//! APPEND (with LITERAL+ and UIDPLUS APPENDUID), streamed to disk. imap-next never sees an
//! APPEND after login: the input guard reports it once its message literal is announced
//! (`guard::Step::Append`). `begin` checks it and opens the message's file in the folder's
//! `tmp/` (or gives the answer, before any `+`); the message is written as it arrives, at most
//! `APPEND_WRITE_CHUNK` of it in memory; `finish` makes it durable (fsync, rename into `new/`,
//! directory fsync), records its flags in the index and answers `OK [APPENDUID]`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use imap_codec::imap_types::datetime::DateTime;
use imap_codec::imap_types::response::Code;

use super::super::appending::Appending;
use super::super::error::server_error;
use super::super::folders::FolderError;
use super::super::guard::AppendCommand;
use super::super::response::{nz, other};
use super::super::state::{Done, Session};
use super::flags::flag_set;
use super::names::folder_name;
use super::quota::refuse_over_quota;
use crate::store::{Appended, Folder};

/// Message bytes gathered before they are written (one write on the blocking pool each).
pub const APPEND_WRITE_CHUNK: usize = 256 * 1024;

/// Checks an announced APPEND and opens its file; an `Err` is the answer to give instead of
/// taking the message.
pub async fn begin(session: &Session<'_>, command: &AppendCommand) -> Result<Appending, Done> {
    if command.binary {
        return Err(Done::bad("BINARY literals are not supported"));
    }
    if command.size == 0 {
        return Err(Done::bad("Empty message"));
    }
    let limit = session.settings.access.max_message_size;
    if u64::from(command.size) > limit {
        return Err(Done::no_code(
            Code::TooBig,
            format!(
                "Message of {} bytes is larger than the limit of {limit} bytes",
                command.size
            ),
        ));
    }
    let name = folder_name(&command.mailbox)?;
    let flags = flag_set(&command.flags)?;
    if let Some(refusal) = refuse_over_quota(session, u64::from(command.size)).await {
        return Err(refusal);
    }
    let mtime = command
        .date
        .as_ref()
        .map_or_else(SystemTime::now, internal_date);
    let Some((_, folders)) = session.account.clone() else {
        return Err(Done::bad("Log in first"));
    };
    let store = session.ctx.store.clone();
    let opened = tokio::task::spawn_blocking(move || -> Result<_, FolderError> {
        let folder = Folder::at(folders.dir(&name)?);
        let message = folder.begin_append(&store)?;
        Ok((folder, message))
    })
    .await;
    let (folder, message) = match opened {
        Ok(Ok(opened)) => opened,
        Ok(Err(err)) => return Err(folder_refusal(err)),
        Err(err) => return Err(server_error("APPEND", err)),
    };
    Ok(Appending {
        tag: command.tag.clone(),
        folder,
        flags,
        mtime,
        message: Some(message),
        failure: None,
        pending: Vec::new(),
    })
}

/// The client's date as a file time (times before 1970 become 1970).
fn internal_date(date: &DateTime) -> SystemTime {
    let seconds = date.as_ref().timestamp();
    UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

fn folder_refusal(err: FolderError) -> Done {
    match err {
        FolderError::NotFound => Done::no_code(Code::TryCreate, "No such folder"),
        FolderError::BadName(why) => {
            Done::no_code(other("CANNOT"), format!("Invalid folder name: {why}"))
        }
        err => server_error("APPEND", err),
    }
}

impl Appending {
    /// Takes a piece of the message (wire form); writes once enough is gathered.
    pub async fn write(&mut self, piece: &[u8]) {
        self.pending.extend_from_slice(piece);
        if self.pending.len() >= APPEND_WRITE_CHUNK {
            self.write_pending().await;
        }
    }

    async fn write_pending(&mut self) {
        let Some(mut message) = self.message.take() else {
            self.pending.clear();
            return;
        };
        let pending = std::mem::take(&mut self.pending);
        let written = tokio::task::spawn_blocking(move || {
            let result = message.write(&pending);
            (message, pending, result)
        })
        .await;
        match written {
            Ok((message, mut pending, Ok(()))) => {
                pending.clear();
                self.pending = pending;
                self.message = Some(message);
            }
            // The message is dropped with its file; the answer comes at the end.
            Ok((_, _, Err(err))) => self.failure = Some(err.to_string()),
            Err(err) => self.failure = Some(err.to_string()),
        }
    }

    /// The whole message arrived: makes it durable and answers.
    pub async fn finish(mut self, session: &Session<'_>) -> Done {
        self.write_pending().await;
        if let Some(failure) = self.failure.take() {
            return server_error("APPEND", failure);
        }
        let Some(message) = self.message.take() else {
            return server_error("APPEND", "message file missing");
        };
        let store = session.ctx.store.clone();
        let (folder, flags, mtime) = (self.folder.clone(), self.flags.clone(), self.mtime);
        let placed = tokio::task::spawn_blocking(move || {
            folder.finish_append(&store, message, Some(mtime), &flags)
        })
        .await;
        match placed {
            Ok(Ok(Appended {
                uid_validity,
                uid: Some(uid),
            })) => Done::ok_code(
                Code::AppendUid {
                    uid_validity: nz(uid_validity),
                    uid: nz(uid),
                },
                "APPEND completed",
            ),
            // Durable, but removed by someone else before it had a UID to report.
            Ok(Ok(Appended { uid: None, .. })) => Done::ok("APPEND completed"),
            Ok(Err(err)) => folder_refusal(err.into()),
            Err(err) => server_error("APPEND", err),
        }
    }
}
