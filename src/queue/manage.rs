//! What an administrator does to single queued messages (the D-Bus admin's `Queue`
//! interface): try one again now, return one to its sender, delete one. Each takes the
//! message's lock, as a runner does, so it never races a delivery in progress: a message being
//! delivered right now is reported `Busy`. Trying and returning are finished by a runner pass
//! over that one message (`Selection::Only`), so the bounce is the runner's own.

use super::envelope::{Envelope, Status, Timestamp};
use super::spool::{Locked, Spool};

/// The text a returned message's recipients fail with (RFC 3463 5.0.0: other or undefined).
pub const RETURNED: &str = "5.0.0 Returned to the sender by the mail administrator";

/// What became of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    Done,
    /// No such message (any more).
    NotQueued,
    /// A runner holds the message right now.
    Busy,
}

/// The envelopes of every queued message, oldest first; unreadable ones are skipped.
pub fn envelopes(spool: &Spool) -> anyhow::Result<Vec<Envelope>> {
    Ok(spool
        .list()?
        .iter()
        .filter_map(|id| spool.load(id).ok())
        .collect())
}

/// Makes `id` due at `now` (the next pass tries it whatever its retry time).
pub fn make_due(spool: &Spool, id: &str, now: Timestamp) -> anyhow::Result<Handled> {
    edit(spool, id, |env| env.next_attempt = now)
}

/// Fails every open recipient of `id` with [`RETURNED`] and makes it due: the next pass
/// sends the sender a notification for them and removes the message.
pub fn mark_returned(spool: &Spool, id: &str, now: Timestamp) -> anyhow::Result<Handled> {
    edit(spool, id, |env| {
        for rcpt in env.recipients.iter_mut().filter(|r| r.is_open()) {
            rcpt.status = Status::Failed;
            rcpt.reply = Some(RETURNED.to_string());
            rcpt.remote_mta = None;
        }
        env.next_attempt = now;
    })
}

/// Removes `id` without telling its sender.
pub fn delete(spool: &Spool, id: &str) -> anyhow::Result<Handled> {
    match lock(spool, id)? {
        Ok(locked) => spool.remove(locked).map(|()| Handled::Done),
        Err(handled) => Ok(handled),
    }
}

fn edit(spool: &Spool, id: &str, change: impl FnOnce(&mut Envelope)) -> anyhow::Result<Handled> {
    let _locked = match lock(spool, id)? {
        Ok(locked) => locked,
        Err(handled) => return Ok(handled),
    };
    let mut env = spool.load(id)?;
    change(&mut env);
    spool.save(&env)?;
    Ok(Handled::Done)
}

/// The lock of `id`, or why there is none: not a queued message (an id the server never
/// makes counts as one), or a runner holds it.
fn lock(spool: &Spool, id: &str) -> anyhow::Result<Result<Locked, Handled>> {
    if !super::spool::valid_id(id) {
        return Ok(Err(Handled::NotQueued));
    }
    // try_lock is None both when the message is gone and when it is locked: the envelope
    // tells them apart.
    Ok(match spool.try_lock(id)? {
        Some(locked) => Ok(locked),
        None if spool.load(id).is_ok() => Err(Handled::Busy),
        None => Err(Handled::NotQueued),
    })
}
