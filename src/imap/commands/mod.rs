//! Command handlers, one file per group. `dispatch` checks the session state (RFC 3501 §6)
//! and runs the handler; handlers queue untagged data and return the tagged completion.

pub mod append;
pub mod auth;
pub mod copy;
pub mod expunge;
pub mod fetch;
pub mod flags;
pub mod idle;
pub mod imapurl;
pub mod list;
pub mod mailbox;
pub mod misc;
pub mod names;
pub mod quota;
pub mod search;
pub mod sort;

use imap_codec::imap_types::command::CommandBody;

use super::state::{Done, Phase, Session};

/// Runs one command and returns its tagged completion.
pub(super) async fn dispatch(
    session: &mut Session<'_>,
    body: CommandBody<'static>,
) -> std::io::Result<Done> {
    let authenticated = !matches!(session.phase, Phase::NotAuthenticated);
    let selected = session.is_selected();
    let needs_auth = || Done::bad("Log in first");
    let needs_select = || Done::bad("Select a folder first");
    // Non-UID FETCH, STORE and SEARCH must not announce expunges (RFC 3501 §7.4.1).
    let mut expunges_allowed = true;
    let done = match body {
        CommandBody::Capability => misc::capability(session),
        CommandBody::Noop => Done::ok("NOOP completed"),
        CommandBody::Logout => misc::logout(session),
        CommandBody::StartTLS => return misc::starttls(session).await,
        CommandBody::Id { parameters } => misc::id(session, parameters),
        CommandBody::Login { username, password } => {
            return auth::login(session, username, password).await
        }
        CommandBody::Authenticate { .. } | CommandBody::Idle => {
            // imap-next delivers these as their own events; never here.
            Done::bad("Unexpected command")
        }
        _ if !authenticated => needs_auth(),
        CommandBody::Enable { capabilities } => misc::enable(session, capabilities),
        CommandBody::Namespace => misc::namespace(session),
        CommandBody::Compress { algorithm } => misc::compress(session, algorithm),
        CommandBody::Select {
            mailbox,
            parameters,
        } => mailbox::select(session, mailbox, parameters, false).await?,
        CommandBody::Examine {
            mailbox,
            parameters,
        } => mailbox::select(session, mailbox, parameters, true).await?,
        CommandBody::Create { mailbox } => mailbox::create(session, mailbox).await,
        CommandBody::Delete { mailbox } => mailbox::delete(session, mailbox).await,
        CommandBody::Rename { from, to } => mailbox::rename(session, from, to).await,
        CommandBody::Subscribe { mailbox } => mailbox::subscribe(session, mailbox, true).await,
        CommandBody::Unsubscribe { mailbox } => mailbox::subscribe(session, mailbox, false).await,
        // After login the input guard takes every LIST whole (LIST-EXTENDED, which imap-codec
        // can't parse; `list::run_whole`): imap-next never delivers one here.
        CommandBody::List { .. } => Done::bad("Unexpected command"),
        CommandBody::Lsub {
            reference,
            mailbox_wildcard,
        } => list::lsub(session, reference, mailbox_wildcard).await,
        CommandBody::Status {
            mailbox,
            item_names,
        } => mailbox::status(session, mailbox, &item_names).await,
        CommandBody::GetQuota { root } => quota::get_quota(session, root).await,
        CommandBody::GetQuotaRoot { mailbox } => quota::get_quota_root(session, mailbox).await,
        CommandBody::SetQuota { .. } => quota::set_quota(),
        // After login the input guard takes every APPEND, and its message streams to disk
        // (`append`, `guard`): imap-next never delivers one here.
        CommandBody::Append { .. } => Done::bad("Unexpected command"),
        _ if !selected => needs_select(),
        CommandBody::Check => Done::ok("CHECK completed"),
        CommandBody::Close => expunge::close(session).await,
        CommandBody::Unselect => {
            session.phase = Phase::Authenticated;
            Done::ok("UNSELECT completed")
        }
        CommandBody::Expunge => expunge::expunge(session, None).await?,
        CommandBody::ExpungeUid { sequence_set } => {
            expunge::expunge(session, Some(sequence_set)).await?
        }
        CommandBody::Search {
            charset,
            criteria,
            uid,
        } => {
            expunges_allowed = uid;
            search::search(session, charset, criteria, uid).await?
        }
        CommandBody::Sort {
            sort_criteria,
            charset,
            search_criteria,
            uid,
        } => {
            expunges_allowed = uid;
            sort::sort(session, sort_criteria, charset, search_criteria, uid).await?
        }
        CommandBody::Thread {
            algorithm,
            charset,
            search_criteria,
            uid,
        } => {
            expunges_allowed = uid;
            sort::thread(session, algorithm, charset, search_criteria, uid).await?
        }
        CommandBody::Fetch {
            sequence_set,
            macro_or_item_names,
            uid,
            modifiers,
        } => {
            expunges_allowed = uid;
            fetch::fetch(session, sequence_set, macro_or_item_names, uid, modifiers).await?
        }
        CommandBody::Store {
            sequence_set,
            kind,
            response,
            flags,
            uid,
            modifiers,
        } => {
            expunges_allowed = uid;
            let request = flags::StoreRequest {
                kind,
                silent: response == imap_codec::imap_types::flag::StoreResponse::Silent,
                flags,
                uid,
                modifiers,
            };
            flags::store(session, sequence_set, request).await?
        }
        CommandBody::Copy {
            sequence_set,
            mailbox,
            uid,
        } => copy::copy(session, sequence_set, mailbox, uid, false).await?,
        CommandBody::Move {
            sequence_set,
            mailbox,
            uid,
        } => copy::copy(session, sequence_set, mailbox, uid, true).await?,
        // Every command imap-codec parses (with the features in Cargo.toml) is handled
        // above; a feature that adds commands makes this match fail to compile.
    };
    if session.is_selected() {
        idle::refresh(session, expunges_allowed).await?;
    }
    Ok(done)
}
