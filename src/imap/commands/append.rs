//! APPEND (with LITERAL+ and UIDPLUS APPENDUID), streamed to disk. imap-next never sees an
//! APPEND after login: the input guard reports it once its message literal is announced
//! (`guard::Step::Append`). `begin` checks it and opens the message's file in the folder's
//! `tmp/` (or gives the answer, before any `+`); the message is written as it arrives, at most
//! `APPEND_WRITE_CHUNK` of it in memory; `finish` makes it durable (fsync, rename into `new/`,
//! directory fsync), records its flags in the index and answers `OK [APPENDUID]`. MULTIAPPEND
//! (RFC 3502): each message is sealed in `tmp/` as it ends (`next`) and all are placed at
//! once by `finish`; CATENATE (RFC 4469): the parts are added to the message as they come
//! (`add_part`, `input.rs`, URLs through `imapurl`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use imap_codec::imap_types::datetime::DateTime;
use imap_codec::imap_types::response::{Code, CodeOther};

use super::super::appending::Appending;
use super::super::error::{server_error, store_error};
use super::super::folders::FolderError;
use super::super::guard::AppendCommand;
use super::super::response::{nz, other};
use super::super::state::{Done, Session};
use super::flags::flag_set;
use super::names::folder_name;
use super::quota::refuse_over_quota;
use crate::store::Folder;

/// Message bytes gathered before they are written (one write on the blocking pool each).
pub const APPEND_WRITE_CHUNK: usize = 256 * 1024;

/// Most messages in one APPEND (MULTIAPPEND, RFC 3502).
pub const MULTIAPPEND_MAX_MESSAGES: usize = 1000;
/// The messages of one APPEND together are at most this many times `smtp.maxMessageSize`
/// (each of them is at most that): they wait in `tmp/` until the command ends.
pub const MULTIAPPEND_SIZE_FACTOR: u64 = 4;
/// Most CATENATE parts in one APPEND: each URL part reads the message it names, so a
/// command of many tiny URLs must not make us read without end.
pub const CATENATE_MAX_PARTS: usize = 1000;

/// Checks an announced APPEND and opens its file; an `Err` is the answer to give instead of
/// taking the message.
pub async fn begin(session: &Session<'_>, command: &AppendCommand) -> Result<Appending, Done> {
    check_message(session, command, 0, 0).await?;
    let name = folder_name(&command.mailbox, session.utf8_names())?;
    let flags = flag_set(&command.flags)?;
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
        mtime: message_date(command),
        message: Some(message),
        failure: None,
        pending: Vec::new(),
        sealed: Vec::new(),
        total: u64::from(command.size),
        current: u64::from(command.size),
        parts: 0,
    })
}

/// The checks of one message: not empty, within `smtp.maxMessageSize`, within the
/// MULTIAPPEND limits beside the `count` messages of `earlier` bytes before it, and within
/// the quota.
async fn check_message(
    session: &Session<'_>,
    command: &AppendCommand,
    count: usize,
    earlier: u64,
) -> Result<(), Done> {
    let limit = session.settings.access.max_message_size;
    // A CATENATE message's parts are checked as they come (`add_part`).
    if command.size == 0 && !command.catenate {
        // NO, as Dovecot answers: the syntax allows it, the store doesn't.
        return Err(Done::no("Empty message"));
    }
    if u64::from(command.size) > limit {
        return Err(Done::no_code(
            Code::TooBig,
            format!(
                "Message of {} bytes is larger than the limit of {limit} bytes",
                command.size
            ),
        ));
    }
    if count >= MULTIAPPEND_MAX_MESSAGES {
        return Err(Done::no_code(
            other("LIMIT"),
            format!("More than {MULTIAPPEND_MAX_MESSAGES} messages in one APPEND"),
        ));
    }
    let total = earlier.saturating_add(u64::from(command.size));
    let total_limit = limit.saturating_mul(MULTIAPPEND_SIZE_FACTOR);
    if total > total_limit {
        return Err(Done::no_code(
            Code::TooBig,
            format!("The messages of this APPEND are larger than {total_limit} bytes together"),
        ));
    }
    if let Some(refusal) = refuse_over_quota(session, total).await {
        return Err(refusal);
    }
    Ok(())
}

fn message_date(command: &AppendCommand) -> SystemTime {
    command
        .date
        .as_ref()
        .map_or_else(SystemTime::now, internal_date)
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
        FolderError::Io(err) => store_error("APPEND", &err),
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
            Ok((_, _, Err(err))) => self.failure = Some(err),
            Err(err) => self.failure = Some(std::io::Error::other(err)),
        }
    }

    /// The current message arrived: it is made durable in `tmp/` and waits for the rest of
    /// the command.
    async fn seal(&mut self, session: &Session<'_>) -> Result<(), Done> {
        self.write_pending().await;
        if let Some(failure) = self.failure.take() {
            return Err(store_error("APPEND", &failure));
        }
        if self.current == 0 {
            // Only a CATENATE of empty parts gets here (an empty literal is refused first).
            return Err(Done::no("Empty message"));
        }
        let Some(message) = self.message.take() else {
            return Err(server_error("APPEND", "message file missing"));
        };
        let store = session.ctx.store.clone();
        let (folder, mtime) = (self.folder.clone(), self.mtime);
        let sealed =
            tokio::task::spawn_blocking(move || folder.seal_append(&store, message, Some(mtime)))
                .await;
        match sealed {
            Ok(Ok(sealed)) => {
                self.sealed.push((sealed, self.flags.clone()));
                Ok(())
            }
            Ok(Err(err)) => Err(store_error("APPEND", &err)),
            Err(err) => Err(server_error("APPEND", err)),
        }
    }

    /// MULTIAPPEND (RFC 3502): the message before `command` arrived; checks `command`, the
    /// next message, and opens its file. An `Err` is the answer to the whole APPEND (dropping
    /// `self` removes the messages taken so far: all or none).
    pub async fn next(
        &mut self,
        session: &Session<'_>,
        command: &AppendCommand,
    ) -> Result<(), Done> {
        self.seal(session).await?;
        check_message(session, command, self.sealed.len(), self.total).await?;
        self.flags = flag_set(&command.flags)?;
        self.mtime = message_date(command);
        let store = session.ctx.store.clone();
        let folder = self.folder.clone();
        let opened = tokio::task::spawn_blocking(move || folder.begin_append(&store)).await;
        match opened {
            Ok(Ok(message)) => self.message = Some(message),
            Ok(Err(err)) => return Err(folder_refusal(err.into())),
            Err(err) => return Err(server_error("APPEND", err)),
        }
        self.total = self.total.saturating_add(u64::from(command.size));
        self.current = u64::from(command.size);
        Ok(())
    }

    /// One more CATENATE part: `NO [LIMIT]` past `CATENATE_MAX_PARTS`.
    pub fn count_part(&mut self) -> Result<(), Done> {
        self.parts += 1;
        if self.parts > CATENATE_MAX_PARTS {
            return Err(Done::no_code(
                other("LIMIT"),
                format!("More than {CATENATE_MAX_PARTS} CATENATE parts in one APPEND"),
            ));
        }
        Ok(())
    }

    /// A CATENATE part of `size` bytes is about to be added to the current message: within
    /// `smtp.maxMessageSize` for the message and the MULTIAPPEND limit for the command, else
    /// `NO [TOOBIG]` for the APPEND (RFC 4469 §5).
    pub async fn add_part(&mut self, session: &Session<'_>, size: u64) -> Result<(), Done> {
        let limit = session.settings.access.max_message_size;
        let current = self.current.saturating_add(size);
        if current > limit {
            return Err(Done::no_code(
                Code::TooBig,
                format!("The message would be larger than the limit of {limit} bytes"),
            ));
        }
        let total = self.total.saturating_add(size);
        let total_limit = limit.saturating_mul(MULTIAPPEND_SIZE_FACTOR);
        if total > total_limit {
            return Err(Done::no_code(
                Code::TooBig,
                format!("The messages of this APPEND are larger than {total_limit} bytes together"),
            ));
        }
        if let Some(refusal) = refuse_over_quota(session, total).await {
            return Err(refusal);
        }
        self.current = current;
        self.total = total;
        Ok(())
    }

    /// The whole command arrived: places every message at once and answers.
    pub async fn finish(mut self, session: &Session<'_>) -> Done {
        if let Err(done) = self.seal(session).await {
            return done;
        }
        let store = session.ctx.store.clone();
        let folder = self.folder.clone();
        let sealed = std::mem::take(&mut self.sealed);
        let placed =
            tokio::task::spawn_blocking(move || folder.place_appends(&store, sealed)).await;
        match placed {
            Ok(Ok((uid_validity, uids))) => appended(uid_validity, &uids),
            Ok(Err(err)) => folder_refusal(err.into()),
            Err(err) => server_error("APPEND", err),
        }
    }
}

/// `OK [APPENDUID uidvalidity uid-set]` (RFC 4315; several UIDs for a MULTIAPPEND, in order).
fn appended(uid_validity: u32, uids: &[Option<u32>]) -> Done {
    // Durable, but one was removed by someone else before it had a UID to report.
    let Some(uids) = uids.iter().copied().collect::<Option<Vec<u32>>>() else {
        return Done::ok("APPEND completed");
    };
    match uids[..] {
        [] => Done::ok("APPEND completed"),
        [uid] => Done::ok_code(
            Code::AppendUid {
                uid_validity: nz(uid_validity),
                uid: nz(uid),
            },
            "APPEND completed",
        ),
        _ => Done::ok_code(
            Code::Other(CodeOther::unvalidated(
                format!("APPENDUID {uid_validity} {}", uid_set(&uids)).into_bytes(),
            )),
            "APPEND completed",
        ),
    }
}

/// UIDs as an IMAP set, consecutive runs as ranges: `5:7,9`.
fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && end.checked_add(1) == Some(uids[i + 1]) {
            i += 1;
            end = uids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::uid_set;

    #[test]
    fn uid_sets_join_runs() {
        assert_eq!(uid_set(&[5]), "5");
        assert_eq!(uid_set(&[5, 6, 7, 9, 11, 12]), "5:7,9,11:12");
        assert_eq!(
            uid_set(&[u32::MAX - 1, u32::MAX]),
            format!("{}:{}", u32::MAX - 1, u32::MAX)
        );
    }
}
