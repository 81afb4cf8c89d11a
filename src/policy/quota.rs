//! Mailbox quotas (`accounts.<address>.quota`, bytes) for mail arriving over SMTP: a full
//! mailbox is refused with `452 4.2.2` (RFC 3463 "mailbox full"), a temporary reply, so the
//! sender's server keeps the message and tries again — once the user has made room it goes
//! through; if never, the sender gets its bounce from its own server after its retry time.
//!
//! - At RCPT, a recipient whose mailbox is already at or over its quota is refused (the
//!   others of the transaction are not affected).
//! - At the end of the data, a message that would take a mailbox over its quota is refused
//!   when *every* recipient of the transaction is such a mailbox. When others would take it,
//!   it is delivered to all, and the full mailbox crosses its quota by this one message (one
//!   reply covers all recipients of an SMTP transaction: refusing would delay the others,
//!   bouncing would lose it for the full one). Its next message is refused at RCPT.
//!
//! The use comes from the mailbox's `maildirsize` (`store::quota`), so a check is one small
//! file read. A use that cannot be read lets the mail through, with a `warn`: a quota is a
//! limit, and refusing all mail for a broken count would be the worse failure.

use crate::address::Address;
use crate::settings::Settings;
use crate::store::{mailbox_dir, quota};

use super::Verdict;

/// RCPT of the local `account`: refused when its mailbox is at or over its quota.
pub async fn at_rcpt(settings: &Settings, account: &Address) -> Verdict {
    match room(settings, account, 0).await {
        Some(Room::Full { used, limit }) => {
            tracing::info!(
                stage = "rcpt",
                rule = "quota",
                account = %account,
                used,
                limit,
                "policy decision"
            );
            full(account)
        }
        Some(Room::Fits) | None => Verdict::Accept,
    }
}

/// The end of the data: refused when the message fits none of the recipients' mailboxes and
/// has no other recipient (see the module comment).
pub async fn at_data(
    settings: &Settings,
    accounts: &[Address],
    remote: &[String],
    size: usize,
) -> Verdict {
    let size = u64::try_from(size).unwrap_or(u64::MAX);
    let mut full_ones = Vec::new();
    for account in accounts {
        if let Some(Room::Full { used, limit }) = room(settings, account, size).await {
            full_ones.push((account, used, limit));
        }
    }
    let refused = !full_ones.is_empty() && full_ones.len() == accounts.len() && remote.is_empty();
    for (account, used, limit) in &full_ones {
        let what = if refused {
            "refused"
        } else {
            "quota crossed by one message"
        };
        tracing::info!(stage = "data", rule = "quota", account = %account, used, limit, size, "{what}");
    }
    match full_ones.first() {
        Some((account, _, _)) if refused => full(account),
        _ => Verdict::Accept,
    }
}

enum Room {
    Fits,
    Full { used: u64, limit: u64 },
}

/// Whether `adding` more bytes fit the quota of `account`; `None` without a quota or when
/// the use cannot be read.
async fn room(settings: &Settings, account: &Address, adding: u64) -> Option<Room> {
    let limit = settings.directory.account(account)?.quota?;
    let root = mailbox_dir(&settings.storage.root, account);
    let read = tokio::task::spawn_blocking(move || quota::usage(&root, limit)).await;
    let used = match read {
        Ok(Ok(usage)) => usage.bytes,
        Ok(Err(error)) => {
            tracing::warn!(account = %account, "quota not checked, the use cannot be read: {error}");
            return None;
        }
        Err(error) => {
            tracing::warn!(account = %account, "quota not checked: {error}");
            return None;
        }
    };
    let fits = if adding == 0 {
        used < limit
    } else {
        used.checked_add(adding).is_some_and(|total| total <= limit)
    };
    Some(if fits {
        Room::Fits
    } else {
        Room::Full { used, limit }
    })
}

fn full(account: &Address) -> Verdict {
    Verdict::tempfail(
        452,
        [4, 2, 2],
        format!("<{account}>: Mailbox full, try again later"),
    )
}
