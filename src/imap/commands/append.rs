//! APPEND (with LITERAL+ and UIDPLUS APPENDUID): the message is stored durably (tmp → fsync →
//! rename → directory fsync) with its flags and date before the OK.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use imap_codec::imap_types::datetime::DateTime;
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_codec::imap_types::flag::Flag;
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::response::Code;

use super::super::folders::FolderError;
use super::super::response::{nz, other};
use super::super::session::{Done, Session};
use super::flags::flag_set;
use super::names::folder_name;
use crate::store::{index, to_maildir_form};

pub async fn append(
    session: &mut Session<'_>,
    mailbox: Mailbox<'static>,
    flags: Vec<Flag<'static>>,
    date: Option<DateTime>,
    message: LiteralOrLiteral8<'static>,
) -> Done {
    let name = match folder_name(&mailbox) {
        Ok(name) => name,
        Err(done) => return done,
    };
    let flags = match flag_set(&flags) {
        Ok(flags) => flags,
        Err(done) => return done,
    };
    let bytes: Vec<u8> = match message {
        LiteralOrLiteral8::Literal(literal) => literal.data().to_vec(),
        LiteralOrLiteral8::Literal8(_) => return Done::bad("BINARY literals are not supported"),
    };
    if bytes.is_empty() {
        return Done::bad("Empty message");
    }
    if bytes.len() as u64 > u64::from(session.ctx.max_literal) {
        return Done::no_code(Code::TooBig, "Message too large");
    }
    let mtime = date.map(|d| {
        let seconds = d.as_ref().timestamp();
        if seconds >= 0 {
            UNIX_EPOCH + Duration::from_secs(seconds as u64)
        } else {
            UNIX_EPOCH
        }
    });
    let Some((_, folders)) = session.account.clone() else {
        return Done::bad("Log in first");
    };
    let store = session.ctx.store.clone();
    let result = tokio::task::spawn_blocking(move || -> Result<(u32, u32), FolderError> {
        let dir = folders.dir(&name)?;
        let stored = to_maildir_form("", &bytes);
        let base = store.place(&dir, &stored, Some(mtime.unwrap_or_else(SystemTime::now)))?;
        let (index, uid) = index::update(&dir, |index| {
            let mut uid = 0;
            if let Some(entry) = index.messages.iter_mut().find(|m| m.base == base) {
                uid = entry.uid;
                if entry.flags != flags {
                    entry.flags = flags.clone();
                }
            }
            index.bump_modseq();
            if let Some(entry) = index.messages.iter_mut().find(|m| m.base == base) {
                entry.modseq = index.highest_modseq;
            }
            Ok(uid)
        })?;
        Ok((index.uid_validity, uid))
    })
    .await;
    match result {
        Ok(Ok((validity, uid))) => Done::ok_code(
            Code::AppendUid {
                uid_validity: nz(validity),
                uid: nz(uid),
            },
            "APPEND completed",
        ),
        Ok(Err(FolderError::NotFound)) => Done::no_code(Code::TryCreate, "No such folder"),
        Ok(Err(FolderError::BadName(why))) => {
            Done::no_code(other("CANNOT"), format!("Invalid folder name: {why}"))
        }
        Ok(Err(err)) => Done::server_error("APPEND", err),
        Err(err) => Done::server_error("APPEND", err),
    }
}
