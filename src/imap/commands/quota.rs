//! The mailbox quota for what a client adds (APPEND, COPY): refused with `NO [OVERQUOTA]`
//! (RFC 9208 §4) when the mailbox would go over `accounts.<address>.quota`. MOVE inside the
//! mailbox adds nothing and is not checked. A use that cannot be read lets the command through
//! (logged), as for SMTP (`policy::quota`). GETQUOTA and GETQUOTAROOT (RFC 9208) report the
//! use against it, as the STORAGE resource of one quota root for the whole mailbox.

use imap_codec::imap_types::core::{AString, Vec1};
use imap_codec::imap_types::extensions::quota::{QuotaGet, Resource};
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::response::Data;

use super::super::error::server_error;
use super::super::response::other;
use super::super::state::{Done, Session};
use super::names::folder_name;
use crate::store::quota;

/// `Some(answer)` when adding `bytes` would take the session's mailbox over its quota.
pub async fn refuse_over_quota(session: &Session<'_>, bytes: u64) -> Option<Done> {
    let (address, _) = session.account.as_ref()?;
    let limit = session.settings.directory.account(address)?.quota?;
    let root = session.ctx.store.mailbox_path(address);
    let read = tokio::task::spawn_blocking(move || quota::usage(&root, limit)).await;
    let used = match read {
        Ok(Ok(usage)) => usage.bytes,
        Ok(Err(error)) => {
            tracing::warn!(account = %address, "quota not checked, the use cannot be read: {error}");
            return None;
        }
        Err(error) => {
            tracing::warn!(account = %address, "quota not checked: {error}");
            return None;
        }
    };
    if used.checked_add(bytes).is_some_and(|total| total <= limit) {
        return None;
    }
    tracing::info!(account = %address, used, limit, adding = bytes, "refused: over quota");
    Some(Done::no_code(
        other("OVERQUOTA"),
        format!("Mailbox full: {used} of {limit} bytes used, this needs {bytes} more"),
    ))
}

/// The account's one quota root (RFC 9208 §3.2): every folder of the mailbox counts against
/// the same `accounts.<address>.quota`.
pub const ROOT: &str = "";

/// The session's quota as (used, limit) in bytes; None when the account has none. A use that
/// cannot be read is a server error.
async fn account_quota(session: &Session<'_>) -> Result<Option<(u64, u64)>, Done> {
    let Some((address, _)) = session.account.as_ref() else {
        return Err(Done::bad("Log in first"));
    };
    let Some(limit) = session
        .settings
        .directory
        .account(address)
        .and_then(|a| a.quota)
    else {
        return Ok(None);
    };
    let root = session.ctx.store.mailbox_path(address);
    match tokio::task::spawn_blocking(move || quota::usage(&root, limit)).await {
        Ok(Ok(usage)) => Ok(Some((usage.bytes, limit))),
        Ok(Err(error)) => Err(server_error("GETQUOTA", error)),
        Err(error) => Err(server_error("GETQUOTA", std::io::Error::other(error))),
    }
}

/// `* QUOTA "" (STORAGE used limit)`: STORAGE counts units of 1024 octets (RFC 9208 §5.1),
/// the use rounded up and the limit down, so a client never sees room that isn't there.
fn quota_data(used: u64, limit: u64) -> Option<Data<'static>> {
    let storage = QuotaGet::new(Resource::Storage, used.div_ceil(1024), limit / 1024);
    Some(Data::Quota {
        root: AString::try_from(ROOT).ok()?,
        quotas: Vec1::from(storage),
    })
}

/// GETQUOTAROOT (RFC 9208 §4.3): the folder's quota roots (the account's, if it has a quota)
/// and their use.
pub async fn get_quota_root(session: &mut Session<'_>, mailbox: Mailbox<'static>) -> Done {
    let name = match folder_name(&mailbox, session.utf8_names()) {
        Ok(name) => name,
        Err(done) => return done,
    };
    let Some((_, folders)) = session.account.clone() else {
        return Done::bad("Log in first");
    };
    let exists = tokio::task::spawn_blocking(move || folders.dir(&name).is_ok()).await;
    if !matches!(exists, Ok(true)) {
        return Done::no_code(other("NONEXISTENT"), "No such folder");
    }
    let quota = match account_quota(session).await {
        Ok(quota) => quota,
        Err(done) => return done,
    };
    let roots = match quota {
        Some(_) => AString::try_from(ROOT).ok().into_iter().collect(),
        None => Vec::new(),
    };
    session.send_data(Data::QuotaRoot { mailbox, roots });
    if let Some(data) = quota.and_then(|(used, limit)| quota_data(used, limit)) {
        session.send_data(data);
    }
    Done::ok("GETQUOTAROOT completed")
}

/// GETQUOTA (RFC 9208 §4.2): the use of the account's root; any other root is unknown.
pub async fn get_quota(session: &mut Session<'_>, root: AString<'static>) -> Done {
    let named: &[u8] = root.as_ref();
    let quota = match account_quota(session).await {
        Ok(quota) => quota,
        Err(done) => return done,
    };
    match quota {
        Some((used, limit)) if named == ROOT.as_bytes() => {
            if let Some(data) = quota_data(used, limit) {
                session.send_data(data);
            }
            Done::ok("GETQUOTA completed")
        }
        _ => Done::no_code(other("NONEXISTENT"), "No such quota root"),
    }
}

/// SETQUOTA: quotas come from the configuration (`accounts.<address>.quota`); QUOTASET is
/// not offered (RFC 9208 §4.1).
pub fn set_quota() -> Done {
    Done::no_code(
        other("NOPERM"),
        "Quotas are set in the server's configuration",
    )
}
