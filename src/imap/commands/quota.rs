//! The mailbox quota for what a client adds (APPEND, COPY): refused with `NO [OVERQUOTA]`
//! (RFC 9208 §4) when the mailbox would go over `accounts.<address>.quota`. MOVE inside the
//! mailbox adds nothing and is not checked. A use that cannot be read lets the command through
//! (logged), as for SMTP (`policy::quota`).

use super::super::response::other;
use super::super::state::{Done, Session};
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
