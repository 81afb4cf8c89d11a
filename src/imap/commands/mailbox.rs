//! SELECT, EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB, STATUS.

use std::borrow::Cow;
use std::num::NonZeroU64;

use imap_codec::imap_types::command::SelectParameter;
use imap_codec::imap_types::core::QuotedChar;
use imap_codec::imap_types::flag::{Flag, FlagNameAttribute, FlagPerm};
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_codec::imap_types::response::{Code, Data};
use imap_codec::imap_types::status::{StatusDataItem, StatusDataItemName};

use super::super::error::server_error;
use super::super::folders::{pattern_matches, FolderError, FolderInfo, Folders, DELIMITER};
use super::super::response::{nz, other};
use super::super::selected::Selected;
use super::super::state::{Done, Phase, Session};
use super::names::{folder_name, pattern_text, reference_text, wire_mailbox};
use crate::store::{CopySource, Folder, MailStore};

/// The account's folders (only called once logged in).
fn folders(session: &Session<'_>) -> Option<Folders> {
    session.account.as_ref().map(|(_, folders)| folders.clone())
}

/// The store's name of `mailbox` and the account's folders, or the reply refusing it.
fn named_folder(session: &Session<'_>, mailbox: &Mailbox<'_>) -> Result<(String, Folders), Done> {
    let name = folder_name(mailbox)?;
    let folders = folders(session).ok_or_else(|| Done::bad("Log in first"))?;
    Ok((name, folders))
}

fn folder_error(err: FolderError) -> Done {
    match err {
        FolderError::NotFound => Done::no_code(other("NONEXISTENT"), "No such folder"),
        FolderError::AlreadyExists => {
            Done::no_code(other("ALREADYEXISTS"), "Folder already exists")
        }
        FolderError::BadName(why) => {
            Done::no_code(other("CANNOT"), format!("Invalid folder name: {why}"))
        }
        FolderError::InboxForbidden => Done::no_code(other("CANNOT"), "INBOX cannot be deleted"),
        FolderError::HasChildren => {
            Done::no_code(other("INUSE"), "Folder has subfolders; delete them first")
        }
        FolderError::Io(err) => server_error("folder operation", err),
    }
}

/// Runs a blocking folder operation.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, FolderError> + Send + 'static,
) -> Result<T, FolderError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| FolderError::Io(std::io::Error::other(err)))?
}

pub fn flag_list() -> Vec<Flag<'static>> {
    vec![
        Flag::Answered,
        Flag::Flagged,
        Flag::Deleted,
        Flag::Seen,
        Flag::Draft,
    ]
}

pub async fn select(
    session: &mut Session<'_>,
    mailbox: Mailbox<'static>,
    parameters: Vec<SelectParameter>,
    read_only: bool,
) -> std::io::Result<Done> {
    // A failed SELECT leaves no folder selected (RFC 3501 §6.3.1).
    session.phase = Phase::Authenticated;
    let (name, folders) = match named_folder(session, &mailbox) {
        Ok(target) => target,
        Err(done) => return Ok(done),
    };
    if parameters
        .iter()
        .any(|p| matches!(p, SelectParameter::CondStore))
    {
        session.condstore = true;
    }
    let opened = blocking(move || {
        let folder = Folder::at(folders.dir(&name)?);
        Ok(Selected::open(name, folder, read_only)?)
    })
    .await;
    let selected = match opened {
        Ok(selected) => selected,
        Err(err) => return Ok(folder_error(err)),
    };
    announce_selected(session, &selected, read_only);
    session.phase = Phase::Selected(selected);
    Ok(if read_only {
        Done::ok_code(Code::ReadOnly, "EXAMINE completed")
    } else {
        Done::ok_code(Code::ReadWrite, "SELECT completed")
    })
}

/// The flags a folder's messages may carry: the system flags and the keywords in use.
fn folder_flags(selected: &Selected) -> Vec<Flag<'static>> {
    let mut keywords: Vec<String> = selected
        .messages
        .iter()
        .flat_map(|m| m.meta.flags.keywords.iter().cloned())
        .collect();
    keywords.sort_unstable_by_key(|k| k.to_ascii_lowercase());
    keywords.dedup_by_key(|k| k.to_ascii_lowercase());
    let mut flags = flag_list();
    for keyword in &keywords {
        if let Ok(atom) = imap_codec::imap_types::core::Atom::try_from(keyword.clone()) {
            flags.push(Flag::Keyword(atom));
        }
    }
    flags
}

/// The untagged responses of SELECT and EXAMINE (RFC 3501 §6.3.1, RFC 7162 §3.1.2.1).
fn announce_selected(session: &mut Session<'_>, selected: &Selected, read_only: bool) {
    let flags = folder_flags(selected);
    session.send_data(Data::Flags(flags.clone()));
    session.send_data(Data::Exists(selected.messages.len() as u32));
    session.send_data(Data::Recent(selected.recent_count()));
    let untagged_ok = |session: &mut Session<'_>, code: Code<'static>, text: &str| {
        session.send_status(super::super::response::status(
            super::super::response::Kind::Ok,
            None,
            Some(code),
            text,
        ));
    };
    if let Some(position) = selected.messages.iter().position(|m| !m.meta.flags.seen) {
        untagged_ok(
            session,
            Code::Unseen(nz(position as u32 + 1)),
            "First unseen",
        );
    }
    let mut permanent: Vec<FlagPerm<'static>> = flags.into_iter().map(FlagPerm::Flag).collect();
    permanent.push(FlagPerm::Asterisk);
    if read_only {
        permanent.clear();
    }
    untagged_ok(session, Code::PermanentFlags(permanent), "Flags permitted");
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

pub async fn create(session: &mut Session<'_>, mailbox: Mailbox<'static>) -> Done {
    let (name, folders) = match named_folder(session, &mailbox) {
        Ok(target) => target,
        Err(done) => return done,
    };
    match blocking(move || folders.create(&name)).await {
        Ok(()) => Done::ok("CREATE completed"),
        Err(err) => folder_error(err),
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
    let (from, to) = match (folder_name(&from), folder_name(&to)) {
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

pub async fn list(
    session: &mut Session<'_>,
    reference: Mailbox<'static>,
    pattern: ListMailbox<'static>,
    subscribed_only: bool,
) -> Done {
    let verb = if subscribed_only { "LSUB" } else { "LIST" };
    let (reference, pattern) = match (reference_text(&reference), pattern_text(&pattern)) {
        (Ok(r), Ok(p)) => (r, p),
        (Err(done), _) | (_, Err(done)) => return done,
    };
    let delimiter = QuotedChar::try_from(DELIMITER).ok();
    // LIST "" "": the delimiter and root (RFC 3501 §6.3.8).
    if pattern.is_empty() && !subscribed_only {
        session.send_data(Data::List {
            items: vec![FlagNameAttribute::Noselect],
            delimiter,
            mailbox: Mailbox::try_from(String::new()).unwrap_or(Mailbox::Inbox),
        });
        return Done::ok("LIST completed");
    }
    // Reference "INBOX" is taken as a plain prefix; "" means none.
    let full = if reference.is_empty() || pattern.starts_with(DELIMITER) {
        pattern
    } else if reference.ends_with(DELIMITER) {
        format!("{reference}{pattern}")
    } else {
        format!("{reference}{DELIMITER}{pattern}")
    };
    let Some(folders) = folders(session) else {
        return Done::bad("Log in first");
    };
    let listed = blocking(move || {
        let all = folders.list()?;
        let subscribed = folders.subscriptions()?;
        Ok((all, subscribed))
    })
    .await;
    let (all, subscribed) = match listed {
        Ok(found) => found,
        Err(err) => return folder_error(err),
    };
    for folder in all {
        if !pattern_matches(&full, &folder.name) {
            continue;
        }
        if subscribed_only && !subscribed.contains(&folder.name) {
            continue;
        }
        let items = if subscribed_only {
            Vec::new()
        } else {
            list_attributes(&folder, subscribed.contains(&folder.name))
        };
        let mailbox = wire_mailbox(&folder.name);
        session.send_data(if subscribed_only {
            Data::Lsub {
                items,
                delimiter,
                mailbox,
            }
        } else {
            Data::List {
                items,
                delimiter,
                mailbox,
            }
        });
    }
    Done::ok(format!("{verb} completed"))
}

/// LIST's attributes of `folder`: children (RFC 3348), SPECIAL-USE role (RFC 6154),
/// \Subscribed (RFC 5258).
fn list_attributes(folder: &FolderInfo, subscribed: bool) -> Vec<FlagNameAttribute<'static>> {
    let attribute = |text: &str| {
        imap_codec::imap_types::core::Atom::try_from(text.to_string())
            .ok()
            .map(FlagNameAttribute::from)
    };
    let mut items = Vec::new();
    items.extend(attribute(if folder.has_children {
        "HasChildren"
    } else {
        "HasNoChildren"
    }));
    if let Some(role) = folder.special_use {
        items.extend(attribute(role.attribute().trim_start_matches('\\')));
    }
    if subscribed {
        items.extend(attribute("Subscribed"));
    }
    items
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
    let read = blocking(move || Ok(Folder::at(folders.dir(&name)?).sync()?)).await;
    let index = match read {
        Ok(index) => index,
        Err(err) => return folder_error(err),
    };
    let mut items = Vec::new();
    for item in names {
        items.push(match item {
            StatusDataItemName::Messages => StatusDataItem::Messages(index.messages.len() as u32),
            StatusDataItemName::Recent => StatusDataItem::Recent(index.recent_count() as u32),
            StatusDataItemName::UidNext => StatusDataItem::UidNext(nz(index.uid_next)),
            StatusDataItemName::UidValidity => StatusDataItem::UidValidity(nz(index.uid_validity)),
            StatusDataItemName::Unseen => StatusDataItem::Unseen(
                index.messages.iter().filter(|m| !m.flags.seen).count() as u32,
            ),
            StatusDataItemName::Deleted => StatusDataItem::Deleted(
                index.messages.iter().filter(|m| m.flags.deleted).count() as u32,
            ),
            StatusDataItemName::HighestModSeq => {
                session.condstore = true;
                StatusDataItem::HighestModSeq(index.highest_modseq)
            }
            _ => continue,
        });
    }
    session.send_data(Data::Status {
        mailbox,
        items: Cow::Owned(items),
    });
    Done::ok("STATUS completed")
}
