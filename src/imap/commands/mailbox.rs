//! SELECT, EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, STATUS (LIST and LSUB are
//! in `list`).

use std::borrow::Cow;
use std::num::NonZeroU64;

use imap_codec::imap_types::command::SelectParameter;
use imap_codec::imap_types::core::{Atom, QuotedChar};
use imap_codec::imap_types::flag::FlagNameAttribute;
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::response::{Code, Data};
use imap_codec::imap_types::sequence::SequenceSet;
use imap_codec::imap_types::status::{StatusDataItem, StatusDataItemName};

use super::super::error::server_error;
use super::super::flagdata::{flags_data, folder_flags, permanent_flags, FlagsShown};
use super::super::folders::{FolderError, FolderInfo, Folders, DELIMITER};
use super::super::qresync;
use super::super::response::{encode_data, nz, other};
use super::super::selected::Selected;
use super::super::state::{Done, Phase, Session};
use super::names::{folder_name, wire_mailbox};
use crate::config::model::SpecialUse;
use crate::store::{CopySource, Folder, MailStore};

/// The account's folders (only called once logged in).
pub(super) fn folders(session: &Session<'_>) -> Option<Folders> {
    session.account.as_ref().map(|(_, folders)| folders.clone())
}

/// The store's name of `mailbox` and the account's folders, or the reply refusing it.
fn named_folder(session: &Session<'_>, mailbox: &Mailbox<'_>) -> Result<(String, Folders), Done> {
    let name = folder_name(mailbox, session.utf8_names())?;
    let folders = folders(session).ok_or_else(|| Done::bad("Log in first"))?;
    Ok((name, folders))
}

pub(super) fn folder_error(err: FolderError) -> Done {
    match err {
        FolderError::NotFound => Done::no_code(other("NONEXISTENT"), "No such folder"),
        FolderError::AlreadyExists => {
            Done::no_code(other("ALREADYEXISTS"), "Folder already exists")
        }
        FolderError::BadName(why) => {
            Done::no_code(other("CANNOT"), format!("Invalid folder name: {why}"))
        }
        FolderError::InboxForbidden => Done::no_code(other("CANNOT"), "INBOX cannot be deleted"),
        // RFC 9051 §7.1's code for this case (an IMAP4rev1 client ignores a code it doesn't
        // know).
        FolderError::HasChildren => Done::no_code(
            other("HASCHILDREN"),
            "Only a level of the hierarchy (\\Noselect) with subfolders; delete them first",
        ),
        FolderError::Io(err) => server_error("folder operation", err),
    }
}

/// Runs a blocking folder operation.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, FolderError> + Send + 'static,
) -> Result<T, FolderError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| FolderError::Io(std::io::Error::other(err)))?
}

pub async fn select(
    session: &mut Session<'_>,
    mailbox: Mailbox<'static>,
    parameters: Vec<SelectParameter>,
    read_only: bool,
) -> std::io::Result<Done> {
    let mut resync = None;
    for parameter in parameters {
        match parameter {
            SelectParameter::CondStore => session.condstore = true,
            SelectParameter::QResync {
                uid_validity,
                mod_sequence_value,
                known_uids,
                seq_match_data,
            } => {
                // Refused before anything happens: the selected folder stays selected.
                if !session.qresync {
                    return Ok(Done::bad("QRESYNC is not enabled"));
                }
                resync = Some(Resync {
                    uid_validity: uid_validity.get(),
                    modseq: mod_sequence_value.get(),
                    known_uids,
                    seq_match_data,
                });
            }
        }
    }
    // A failed SELECT leaves no folder selected (RFC 3501 §6.3.1); CLOSED marks where the
    // responses about the old folder end (RFC 7162 §3.2.11).
    if session.is_selected() {
        session.send_status(super::super::response::status(
            super::super::response::Kind::Ok,
            None,
            Some(Code::Closed),
            "Previous mailbox closed",
        ));
    }
    session.phase = Phase::Authenticated;
    // SEARCHRES: every SELECT and EXAMINE starts with an empty saved result (RFC 5182 §2.1).
    session.search_saved.clear();
    let (name, folders) = match named_folder(session, &mailbox) {
        Ok(target) => target,
        Err(done) => return Ok(done),
    };
    let since = resync.as_ref().map(|r| r.modseq);
    let rev2 = session.rev2;
    let opened = blocking(move || {
        let folder = Folder::at(folders.dir(&name)?);
        // IMAP4rev2's SELECT has the folder's LIST response, so its attributes.
        let info = match rev2 {
            true => folders.list()?.into_iter().find(|info| info.name == name),
            false => None,
        };
        Ok((Selected::open_since(name, folder, read_only, since)?, info))
    })
    .await;
    let ((selected, logged), info) = match opened {
        Ok(opened) => opened,
        Err(err) => return Ok(folder_error(err)),
    };
    announce_selected(session, &selected, info.as_ref());
    if let Some(resync) = resync.filter(|r| r.uid_validity == selected.uid_validity) {
        // A client whose UIDVALIDITY is stale gets the plain SELECT (RFC 7162 §3.2.5).
        resynchronise(session, &selected, &resync, logged);
    }
    session.phase = Phase::Selected(Box::new(selected));
    Ok(if read_only {
        Done::ok_code(Code::ReadOnly, "EXAMINE completed")
    } else {
        Done::ok_code(Code::ReadWrite, "SELECT completed")
    })
}

/// The QRESYNC parameter of SELECT/EXAMINE (RFC 7162 §3.2.5).
struct Resync {
    uid_validity: u32,
    modseq: u64,
    known_uids: Option<SequenceSet>,
    seq_match_data: Option<(SequenceSet, SequenceSet)>,
}

/// What a QRESYNC client missed since its mod-sequence: `* VANISHED (EARLIER)` for the known
/// UIDs expunged since, then `FETCH (UID FLAGS MODSEQ)` of the known messages changed since
/// (new ones it learns from EXISTS and UIDNEXT).
fn resynchronise(
    session: &mut Session<'_>,
    selected: &Selected,
    resync: &Resync,
    logged: Option<crate::store::UidRanges>,
) {
    let known = match &resync.known_uids {
        Some(set) => qresync::ranges_of(set, u32::MAX),
        None => crate::store::UidRanges::from_ranges(vec![(1, u32::MAX)]),
    };
    let proven = match &resync.seq_match_data {
        // Mismatched data only can't narrow the answer; it is still right without.
        Some((seqs, uids)) => qresync::seq_match_bound(selected, seqs, uids).unwrap_or(0),
        None => 0,
    };
    let vanished = qresync::vanished_earlier(selected, logged, &known, proven);
    for known_uids in qresync::sequence_sets(&vanished) {
        session.send_data(Data::Vanished {
            earlier: true,
            known_uids,
        });
    }
    for (position, message) in selected.messages.iter().enumerate() {
        if message.meta.modseq > resync.modseq && known.contains(message.meta.uid) {
            let shown = FlagsShown {
                condstore: true,
                ..session.flags_shown()
            };
            if let Some(data) = flags_data(selected, position as u32 + 1, shown) {
                session.send_data(data);
            }
        }
    }
}

/// The untagged responses of SELECT and EXAMINE (RFC 3501 §6.3.1, RFC 7162 §3.1.2.1). In
/// IMAP4rev2 (RFC 9051 §6.3.2) a LIST of the folder takes the place of RECENT, and there is
/// no UNSEEN; `info` is the folder's entry in the account's list then.
fn announce_selected(session: &mut Session<'_>, selected: &Selected, info: Option<&FolderInfo>) {
    session.send_data(Data::Flags(folder_flags(selected)));
    session.send_data(Data::Exists(selected.messages.len() as u32));
    if session.rev2 {
        session.send_data(selected_list(session, &selected.name, info));
    } else {
        session.send_data(Data::Recent(selected.recent_count()));
    }
    let untagged_ok = |session: &mut Session<'_>, code: Code<'static>, text: &str| {
        session.send_status(super::super::response::status(
            super::super::response::Kind::Ok,
            None,
            Some(code),
            text,
        ));
    };
    let first_unseen = selected.messages.iter().position(|m| !m.meta.flags.seen);
    if let (Some(position), false) = (first_unseen, session.rev2) {
        untagged_ok(
            session,
            Code::Unseen(nz(position as u32 + 1)),
            "First unseen",
        );
    }
    untagged_ok(
        session,
        Code::PermanentFlags(permanent_flags(selected)),
        "Flags permitted",
    );
    untagged_ok(
        session,
        Code::UidValidity(nz(selected.uid_validity)),
        "UIDs valid",
    );
    untagged_ok(
        session,
        Code::UidNext(nz(selected.uid_next)),
        "Predicted next UID",
    );
    if let Some(modseq) = NonZeroU64::new(selected.highest_modseq) {
        untagged_ok(session, Code::HighestModSeq(modseq), "Highest");
    }
}

/// `* LIST (attributes) "." name` of the selected folder, as the basic LIST gives it: its
/// children attribute and special-use role (a folder that went away meanwhile has neither).
fn selected_list(session: &Session<'_>, name: &str, info: Option<&FolderInfo>) -> Data<'static> {
    let mut attributes = Vec::new();
    if let Some(info) = info {
        attributes.push(match info.has_children {
            true => "HasChildren",
            false => "HasNoChildren",
        });
        attributes.extend(
            info.special_use
                .map(|role| role.attribute().trim_start_matches('\\')),
        );
    }
    Data::List {
        items: attributes
            .into_iter()
            .filter_map(|a| Atom::try_from(a).ok().map(FlagNameAttribute::from))
            .collect(),
        delimiter: QuotedChar::try_from(DELIMITER).ok(),
        mailbox: wire_mailbox(name, session.utf8_names()),
    }
}

pub async fn create(session: &mut Session<'_>, mailbox: Mailbox<'static>) -> Done {
    let (name, folders) = match named_folder(session, &mailbox) {
        Ok(target) => target,
        Err(done) => return done,
    };
    let role = match session.create_use.take().map(|uses| special_use(&uses)) {
        None | Some(Ok(None)) => None,
        Some(Ok(Some(role))) => Some(role),
        Some(Err(done)) => return done,
    };
    let made = blocking(move || match role {
        Some(role) => folders.create_with_role(&name, role),
        None => folders.create(&name),
    })
    .await;
    match made {
        Ok(()) => Done::ok("CREATE completed"),
        Err(err) => folder_error(err),
    }
}

/// The role a CREATE's `(USE (...))` asks for (RFC 6154 §3): one of the attributes of
/// `config::SpecialUse`, or none for an empty list; more than one, or another attribute, is
/// `NO [USEATTR]`.
fn special_use(uses: &[String]) -> Result<Option<SpecialUse>, Done> {
    const ROLES: [SpecialUse; 7] = [
        SpecialUse::All,
        SpecialUse::Archive,
        SpecialUse::Drafts,
        SpecialUse::Flagged,
        SpecialUse::Junk,
        SpecialUse::Sent,
        SpecialUse::Trash,
    ];
    let refuse = |text: &str| Err(Done::no_code(other("USEATTR"), text.to_string()));
    match uses {
        [] => Ok(None),
        [one] => match ROLES
            .iter()
            .find(|role| role.attribute().eq_ignore_ascii_case(one))
        {
            Some(role) => Ok(Some(*role)),
            None => refuse("Not a special-use attribute this server supports"),
        },
        _ => refuse("One special-use attribute per folder"),
    }
}

pub async fn delete(session: &mut Session<'_>, mailbox: Mailbox<'static>) -> Done {
    let (name, folders) = match named_folder(session, &mailbox) {
        Ok(target) => target,
        Err(done) => return done,
    };
    if session.selected().is_some_and(|s| s.name == name) {
        session.phase = Phase::Authenticated;
    }
    match blocking(move || folders.delete(&name)).await {
        Ok(()) => Done::ok("DELETE completed"),
        Err(err) => folder_error(err),
    }
}

pub async fn rename(
    session: &mut Session<'_>,
    from: Mailbox<'static>,
    to: Mailbox<'static>,
) -> Done {
    let (from, to) = match (
        folder_name(&from, session.utf8_names()),
        folder_name(&to, session.utf8_names()),
    ) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(done), _) | (_, Err(done)) => return done,
    };
    let Some(folders) = folders(session) else {
        return Done::bad("Log in first");
    };
    let store = session.ctx.store.clone();
    let result = blocking(move || {
        if from == "INBOX" {
            rename_inbox(&folders, &store, &to)
        } else {
            folders.rename(&from, &to)
        }
    })
    .await;
    match result {
        Ok(()) => Done::ok("RENAME completed"),
        Err(err) => folder_error(err),
    }
}

/// RENAME INBOX: its messages move to a new folder; INBOX stays, empty (RFC 3501 §6.3.5).
fn rename_inbox(folders: &Folders, store: &MailStore, to: &str) -> Result<(), FolderError> {
    folders.create(to)?;
    let target = Folder::at(folders.dir(to)?);
    let inbox = Folder::at(folders.dir("INBOX")?);
    let current = inbox.sync()?;
    let messages: Vec<CopySource> = current.messages.iter().map(CopySource::from).collect();
    inbox.move_to(store, &target, current.uid_validity, &messages)?;
    Ok(())
}

pub async fn subscribe(session: &mut Session<'_>, mailbox: Mailbox<'static>, on: bool) -> Done {
    let (name, folders) = match named_folder(session, &mailbox) {
        Ok(target) => target,
        Err(done) => return done,
    };
    match blocking(move || folders.subscribe(&name, on)).await {
        Ok(()) if on => Done::ok("SUBSCRIBE completed"),
        Ok(()) => Done::ok("UNSUBSCRIBE completed"),
        Err(err) => folder_error(err),
    }
}

pub async fn status(
    session: &mut Session<'_>,
    mailbox: Mailbox<'static>,
    names: &[StatusDataItemName],
) -> Done {
    let (name, folders) = match named_folder(session, &mailbox) {
        Ok(target) => target,
        Err(done) => return done,
    };
    let taken = session.status_appendlimit.take();
    // APPENDLIMIT alone: MESSAGES stood in for it (imap-codec wants one item).
    let names: Vec<StatusDataItemName> = match taken {
        Some(taken) if taken.only => names
            .iter()
            .filter(|n| !matches!(n, StatusDataItemName::Messages))
            .cloned()
            .collect(),
        _ => names.to_vec(),
    };
    match status_response(session, name, folders, mailbox, &names, taken.is_some()).await {
        Ok(wire) => {
            session.conn.send(&wire);
            Done::ok("STATUS completed")
        }
        Err(done) => done,
    }
}

/// The `* STATUS` response of folder `name` (shown as `mailbox`) for `names`, and
/// APPENDLIMIT (RFC 7889 §3.2) when `appendlimit`: encoded, as imap-codec can't write that
/// item. Shared by STATUS and LIST's `RETURN (STATUS ...)` (RFC 5819).
pub(super) async fn status_response(
    session: &mut Session<'_>,
    name: String,
    folders: Folders,
    mailbox: Mailbox<'static>,
    names: &[StatusDataItemName],
    appendlimit: bool,
) -> Result<Vec<u8>, Done> {
    let read = blocking(move || {
        let folder = Folder::at(folders.dir(&name)?);
        let index = folder.sync()?;
        let recent = folder.unclaimed_recent(&index);
        Ok((index, recent))
    })
    .await;
    let (index, recent) = read.map_err(folder_error)?;
    let mut items = Vec::new();
    for item in names {
        items.push(match item {
            StatusDataItemName::Messages => StatusDataItem::Messages(index.messages.len() as u32),
            StatusDataItemName::Recent => StatusDataItem::Recent(recent.count_in(&index) as u32),
            StatusDataItemName::UidNext => StatusDataItem::UidNext(nz(index.uid_next)),
            StatusDataItemName::UidValidity => StatusDataItem::UidValidity(nz(index.uid_validity)),
            StatusDataItemName::Unseen => StatusDataItem::Unseen(
                index.messages.iter().filter(|m| !m.flags.seen).count() as u32,
            ),
            StatusDataItemName::Deleted => StatusDataItem::Deleted(
                index.messages.iter().filter(|m| m.flags.deleted).count() as u32,
            ),
            // RFC 9208 §4.4: what EXPUNGE would free, in the STORAGE resource's units of 1024
            // octets (RFC822.SIZE, rounded up).
            StatusDataItemName::DeletedStorage => StatusDataItem::DeletedStorage(
                index
                    .messages
                    .iter()
                    .filter(|m| m.flags.deleted)
                    .map(|m| m.size)
                    .fold(0u64, u64::saturating_add)
                    .div_ceil(1024),
            ),
            // STATUS=SIZE (RFC 8438): the messages' RFC822.SIZE summed, from the index.
            StatusDataItemName::Size => StatusDataItem::Size(
                index
                    .messages
                    .iter()
                    .map(|m| m.size)
                    .fold(0u64, u64::saturating_add),
            ),
            StatusDataItemName::HighestModSeq => {
                session.condstore = true;
                StatusDataItem::HighestModSeq(index.highest_modseq)
            }
        });
    }
    let mut wire = encode_data(Data::Status {
        mailbox,
        items: Cow::Owned(items),
    });
    if !appendlimit {
        return Ok(wire);
    }
    let limit = session.settings.access.max_message_size;
    if wire.ends_with(b")\r\n") {
        let at = wire.len() - 3;
        let item = if wire[..at].ends_with(b"(") {
            format!("APPENDLIMIT {limit}")
        } else {
            format!(" APPENDLIMIT {limit}")
        };
        wire.splice(at..at, item.into_bytes());
    }
    Ok(wire)
}
