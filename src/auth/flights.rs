//! Password checks in flight: simultaneous logins with the same credentials share one check
//! (single-flight), and at most one check per core runs at a time.
//!
//! A flight is keyed by the verified-login tag (`verified::Tag`: a keyed hash of the account,
//! its stored hash and the password), so only identical credentials share a check: a wrong
//! password never gets a right one's outcome. A flight lasts while its check queues or runs;
//! whoever asks after it ended starts a new one (successes are remembered by `verified`,
//! failures by nobody). The check queues for a slot with the callers: when every caller has
//! gone (their futures dropped), a queued check leaves the queue and never runs, and a check
//! whose blocking thread starts after that skips the hash.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::future::{BoxFuture, FutureExt, Shared, WeakShared};
use tokio::sync::{oneshot, Semaphore};

use super::password::StoredHash;
use super::verified::{Tag, VerifiedLogins};

type Check = Shared<BoxFuture<'static, bool>>;
type Table = HashMap<Tag, (u64, WeakShared<BoxFuture<'static, bool>>)>;

pub struct Flights {
    table: Arc<Mutex<Table>>,
    slots: Arc<Semaphore>,
    next_id: AtomicU64,
    /// Hashes actually computed (tests count them).
    #[cfg(test)]
    hashes: Arc<std::sync::atomic::AtomicUsize>,
}

/// What a check needs: the hash to verify against, the password, and where a success goes.
pub struct Request {
    pub tag: Tag,
    pub hash: StoredHash,
    pub password: Vec<u8>,
    /// Remember a success in `verified` (only for known accounts, not the decoy).
    pub remember: Option<Arc<VerifiedLogins>>,
}

impl Flights {
    pub fn new(slots: usize) -> Flights {
        Flights {
            table: Arc::new(Mutex::new(HashMap::new())),
            slots: Arc::new(Semaphore::new(slots)),
            next_id: AtomicU64::new(0),
            #[cfg(test)]
            hashes: Arc::default(),
        }
    }

    /// Whether the password matches: joins the check of the same tag under way, or starts one.
    pub async fn verify(&self, request: Request) -> bool {
        self.join(request).await
    }

    fn join(&self, request: Request) -> Check {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(check) = table.get(&request.tag).and_then(|(_, weak)| weak.upgrade()) {
            return check;
        }
        // Entries of flights whose callers all went: dropped when the table has doubled.
        if table.len() >= 64 && table.len().is_power_of_two() {
            table.retain(|_, (_, weak)| weak.upgrade().is_some());
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let tag = request.tag;
        let check = self.check(id, request).boxed().shared();
        if let Some(weak) = check.downgrade() {
            table.insert(tag, (id, weak));
        }
        check
    }

    fn check(&self, id: u64, request: Request) -> impl std::future::Future<Output = bool> {
        let slots = self.slots.clone();
        let table = self.table.clone();
        #[cfg(test)]
        let hashes = self.hashes.clone();
        async move {
            let tag = request.tag;
            // Queued here with the callers: dropped with the last of them.
            let matches = match slots.acquire_owned().await {
                Ok(permit) => {
                    let (sender, receiver) = oneshot::channel();
                    tokio::task::spawn_blocking(move || {
                        // The slot is held until the hash ends, even if the callers went.
                        let _permit = permit;
                        if sender.is_closed() {
                            return; // nobody waits any more
                        }
                        #[cfg(test)]
                        hashes.fetch_add(1, Ordering::Relaxed);
                        let matches = request.hash.verify(&request.password);
                        if let (true, Some(verified)) = (matches, &request.remember) {
                            verified.insert_tag(request.tag);
                        }
                        let _ = sender.send(matches);
                    });
                    receiver.await.unwrap_or(false)
                }
                Err(_closed) => false,
            };
            // The flight ends: later logins start their own check (or find the success
            // remembered, inserted above before this).
            let mut table = table.lock().unwrap_or_else(PoisonError::into_inner);
            if table.get(&tag).is_some_and(|(held, _)| *held == id) {
                table.remove(&tag);
            }
            matches
        }
    }

    #[cfg(test)]
    pub fn hashes_run(&self) -> usize {
        self.hashes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// SHA-512-crypt of "pw", the fewest rounds allowed (fast in a debug build).
    const PW: &str = "$6$rounds=1000$icsmailtest$Lgg34mHHVYn6.GEc5tAaH89Th37Z/Vf2yfJz4l70GUC4wE4Xpw8Mxy5mfieZz3ZVD6G9Xrn9L7yjgQwMYifab/";

    fn request(verified: &Arc<VerifiedLogins>, password: &[u8]) -> Request {
        Request {
            tag: verified.tag("a@x.test", PW, password),
            hash: StoredHash::parse(PW).unwrap(),
            password: password.to_vec(),
            remember: Some(verified.clone()),
        }
    }

    #[tokio::test]
    async fn a_check_queued_when_its_caller_went_never_runs() {
        let verified = Arc::new(VerifiedLogins::new().unwrap());
        let flights = Flights::new(1);
        let busy = flights.slots.clone().acquire_owned().await.unwrap();
        let waiting = flights.verify(request(&verified, b"pw"));
        // It queues for the slot; the caller gives up.
        assert!(tokio::time::timeout(Duration::from_millis(50), waiting)
            .await
            .is_err());
        drop(busy);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(flights.hashes_run(), 0);
        assert!(
            flights.table.lock().unwrap().is_empty() || {
                let table = flights.table.lock().unwrap();
                table.values().all(|(_, weak)| weak.upgrade().is_none())
            }
        );
        // The slot is free again, and a new caller's check runs.
        assert!(flights.verify(request(&verified, b"pw")).await);
        assert_eq!(flights.hashes_run(), 1);
        assert!(verified.contains_tag(&verified.tag("a@x.test", PW, b"pw")));
    }

    #[tokio::test]
    async fn waiters_share_one_check_and_a_later_caller_starts_another() {
        let verified = Arc::new(VerifiedLogins::new().unwrap());
        let flights = Flights::new(2);
        let all = futures_util::future::join_all(
            (0..10).map(|_| flights.verify(request(&verified, b"wrong"))),
        )
        .await;
        assert!(all.iter().all(|&matches| !matches));
        assert_eq!(flights.hashes_run(), 1);
        // A failure is not kept: the next attempt checks again.
        assert!(!flights.verify(request(&verified, b"wrong")).await);
        assert_eq!(flights.hashes_run(), 2);
        assert!(flights.table.lock().unwrap().is_empty());
    }
}
