//! Password logins shared by SMTP, IMAP, POP3 and LDAP binds: `defaultAuthDomain`,
//! verification off the async threads, the same work for unknown users as for wrong passwords,
//! a slowdown that grows with recent failures per client address and per account, a memory
//! of recent successful logins (`verified`) that spares a repeated login the hash, and
//! `flights`: simultaneous logins with the same credentials share one hash.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::flights::{Flights, Request};
use super::password::{hash_argon2id, StoredHash};
use super::sasl::Credentials;
use super::verified::VerifiedLogins;
use super::Directory;
use crate::address::Address;

/// Failures this recent count towards the slowdown.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failures allowed before answers are delayed.
pub const FREE_FAILURES: u32 = 3;
/// The longest delay before answering a login attempt.
pub const MAX_DELAY: Duration = Duration::from_secs(15);
/// Most tracked addresses and accounts; the stalest are forgotten beyond it.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

#[derive(Default)]
struct Throttle {
    by_ip: HashMap<IpAddr, Failures>,
    by_login: HashMap<String, Failures>,
}

/// Why a login failed (the client only ever learns "invalid credentials").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    Invalid,
}

/// Where the authenticator finds the accounts: the settings in force at the moment of each
/// login (so a changed password or a removed account counts at once, also for sessions that
/// started before the change).
pub trait Accounts: Send + Sync {
    fn directory(&self) -> Arc<Directory>;
    /// `defaultAuthDomain`.
    fn default_domain(&self) -> Option<String>;
}

/// A fixed account list (tests, one-shot commands).
pub struct FixedAccounts {
    pub directory: Arc<Directory>,
    pub default_domain: Option<String>,
}

impl Accounts for FixedAccounts {
    fn directory(&self) -> Arc<Directory> {
        self.directory.clone()
    }
    fn default_domain(&self) -> Option<String> {
        self.default_domain.clone()
    }
}

pub struct Authenticator {
    accounts: Arc<dyn Accounts>,
    throttle: Mutex<Throttle>,
    /// Verified against when the account doesn't exist, so both cases cost the same.
    decoy: StoredHash,
    verified: Arc<VerifiedLogins>,
    /// Password checks queued or running, one per distinct credentials, one per core at once.
    flights: Flights,
}

impl Authenticator {
    pub fn new(accounts: Arc<dyn Accounts>) -> anyhow::Result<Self> {
        let decoy = StoredHash::parse(&hash_argon2id(b"decoy password for unknown users")?)
            .map_err(anyhow::Error::msg)?;
        Ok(Authenticator {
            accounts,
            throttle: Mutex::new(Throttle::default()),
            decoy,
            verified: Arc::new(VerifiedLogins::new()?),
            flights: Flights::new(concurrent_verifications()),
        })
    }

    /// The account a login name means: `user` → `user@<defaultAuthDomain>`; full addresses as
    /// they are.
    pub fn account_for(&self, login: &str) -> Option<Address> {
        let default_domain = self.accounts.default_domain();
        let full = match (&default_domain, login.contains('@')) {
            (Some(domain), false) => format!("{login}@{domain}"),
            _ => login.to_string(),
        };
        Address::parse(&full).ok()
    }

    /// Checks a login; waits first if this client or account failed often lately. An
    /// authorization identity (SASL PLAIN) must name the same account as the login: acting as
    /// another user is not supported.
    pub async fn authenticate(
        &self,
        credentials: &Credentials,
        peer: IpAddr,
    ) -> Result<Address, AuthFailure> {
        let login = credentials.login.as_str();
        let account = self.account_for(login);
        let same_identity = match &credentials.authzid {
            Some(authzid) => account.is_some() && self.account_for(authzid) == account,
            None => true,
        };
        let key = account
            .as_ref()
            .map(Address::to_string)
            .unwrap_or_else(|| login.to_lowercase());
        let delay = self.delay(peer, &key);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let directory = self.accounts.directory();
        let stored = account
            .as_ref()
            .and_then(|address| directory.account(address))
            .map(|account| account.password.clone());
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.decoy.clone());
        let password = credentials.password.clone();
        // (`key` is the account's address whenever the account is known.)
        let tag = self.verified.tag(&key, hash.as_text(), &password);
        let matches = if known && self.verified.contains_tag(&tag) {
            true
        } else {
            // One argon2id verification takes its memory cost (19 MiB by default) for its
            // duration: `flights` bounds how many run at once, and logins with the same
            // credentials that arrive while one is queued or running share its outcome (the
            // unknown-user decoy too, so both cases still cost the same). The delay above and
            // the failure counting below stay per attempt.
            let request = Request {
                tag,
                hash,
                password,
                remember: known.then(|| self.verified.clone()),
            };
            self.flights.verify(request).await
        };
        match account {
            Some(address) if known && matches && same_identity => {
                self.forget(peer, &key);
                info!(%peer, user = %address, "login");
                Ok(address)
            }
            _ => {
                self.record(peer, &key);
                // The address first: the login is client text (quoted and escaped by tracing).
                warn!(%peer, login, "authentication failed");
                crate::stats::count(crate::stats::Event::AuthFailure);
                Err(AuthFailure::Invalid)
            }
        }
    }

    fn delay(&self, peer: IpAddr, key: &str) -> Duration {
        let throttle = self.throttle.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let recent = |failures: Option<&Failures>| {
            failures
                .filter(|f| now.duration_since(f.last) < FAILURE_WINDOW)
                .map_or(0, |f| f.count)
        };
        let count = recent(throttle.by_ip.get(&peer)).max(recent(throttle.by_login.get(key)));
        delay_for(count)
    }

    fn record(&self, peer: IpAddr, key: &str) {
        let mut throttle = self.throttle.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        bump(&mut throttle.by_ip, peer, now);
        bump(&mut throttle.by_login, key.to_string(), now);
    }

    fn forget(&self, peer: IpAddr, key: &str) {
        let mut throttle = self.throttle.lock().unwrap_or_else(PoisonError::into_inner);
        throttle.by_login.remove(key);
        throttle.by_ip.remove(&peer);
    }
}

fn bump<K: std::hash::Hash + Eq + Clone>(map: &mut HashMap<K, Failures>, key: K, now: Instant) {
    if map.len() >= MAX_TRACKED {
        map.retain(|_, f| now.duration_since(f.last) < FAILURE_WINDOW);
    }
    if map.len() >= MAX_TRACKED {
        return; // still full of fresh entries: don't grow without bound
    }
    let entry = map.entry(key).or_insert(Failures {
        count: 0,
        last: now,
    });
    if now.duration_since(entry.last) >= FAILURE_WINDOW {
        entry.count = 0;
    }
    entry.count += 1;
    entry.last = now;
}

/// No delay for the first [`FREE_FAILURES`], then 0.5 s doubling up to [`MAX_DELAY`].
/// As many verifications at once as there are cores (at least 2): more would only queue for
/// the CPU while holding their memory.
fn concurrent_verifications() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .max(2)
}

pub fn delay_for(failures: u32) -> Duration {
    if failures < FREE_FAILURES {
        return Duration::ZERO;
    }
    let steps = (failures - FREE_FAILURES).min(10);
    (Duration::from_millis(500) * 2u32.pow(steps)).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::collections::BTreeMap;

    const USER: &str = "alice@example.test";
    /// SHA-512-crypt of "pw", the fewest rounds allowed (fast in a debug build).
    const PW: &str = "$6$rounds=1000$icsmailtest$Lgg34mHHVYn6.GEc5tAaH89Th37Z/Vf2yfJz4l70GUC4wE4Xpw8Mxy5mfieZz3ZVD6G9Xrn9L7yjgQwMYifab/";

    /// Accounts whose directory a test can swap (a reload).
    struct Swappable(Mutex<Arc<Directory>>);

    impl Accounts for Swappable {
        fn directory(&self) -> Arc<Directory> {
            self.0.lock().unwrap().clone()
        }
        fn default_domain(&self) -> Option<String> {
            None
        }
    }

    fn directory(hash: Option<&str>) -> Arc<Directory> {
        let config: Config = serde_json::from_value(serde_json::json!({
            "domains": ["example.test"],
            "accounts": { USER: { "hashedPassword": "unused here" } },
        }))
        .unwrap();
        let hashes: BTreeMap<String, StoredHash> = hash
            .map(|h| (USER.to_string(), StoredHash::parse(h).unwrap()))
            .into_iter()
            .collect();
        Arc::new(Directory::new(&config, &hashes))
    }

    fn login(password: &str) -> Credentials {
        Credentials {
            login: USER.into(),
            password: password.as_bytes().to_vec(),
            authzid: None,
        }
    }

    /// A success is remembered (the next login with it needs no hash); a wrong password is
    /// not, and a changed password or a removed account counts at the next login although the
    /// old one is remembered.
    #[tokio::test]
    async fn remembered_logins_follow_password_changes_and_removals() {
        let accounts = Arc::new(Swappable(Mutex::new(directory(Some(PW)))));
        let auth = Authenticator::new(accounts.clone()).unwrap();
        let peer: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(auth.authenticate(&login("wrong"), peer).await.is_err());
        assert!(!auth.verified.contains(USER, PW, b"wrong"));
        assert!(auth.authenticate(&login("pw"), peer).await.is_ok());
        assert!(auth.verified.contains(USER, PW, b"pw"));
        assert!(auth.authenticate(&login("pw"), peer).await.is_ok());
        // The password changes: the remembered old one no longer logs in.
        let new_hash = hash_argon2id(b"new").unwrap();
        *accounts.0.lock().unwrap() = directory(Some(&new_hash));
        assert!(auth.authenticate(&login("pw"), peer).await.is_err());
        assert!(auth.authenticate(&login("new"), peer).await.is_ok());
        // The account goes: remembered or not, no login.
        *accounts.0.lock().unwrap() = directory(None);
        assert!(auth.authenticate(&login("new"), peer).await.is_err());
    }

    /// A herd of logins of one account costs one hash; a wrong password among them fails on
    /// its own check, and each wrong attempt still counts towards the slowdown.
    #[tokio::test]
    async fn simultaneous_logins_share_one_check_and_wrong_ones_stay_wrong() {
        let accounts = Arc::new(FixedAccounts {
            directory: directory(Some(PW)),
            default_domain: None,
        });
        let auth = Authenticator::new(accounts).unwrap();
        let peer: IpAddr = "192.0.2.1".parse().unwrap();
        let right = login("pw");
        let results =
            futures_util::future::join_all((0..20).map(|_| auth.authenticate(&right, peer))).await;
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(auth.flights.hashes_run(), 1);

        let auth = Authenticator::new(Arc::new(FixedAccounts {
            directory: directory(Some(PW)),
            default_domain: None,
        }))
        .unwrap();
        let wrong = login("wrong");
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let (goods, bads) = tokio::join!(
            futures_util::future::join_all((0..5).map(|_| auth.authenticate(&right, peer))),
            futures_util::future::join_all((0..2).map(|_| auth.authenticate(&wrong, other))),
        );
        assert!(goods.iter().all(Result::is_ok));
        assert!(bads.iter().all(Result::is_err));
        assert_eq!(auth.flights.hashes_run(), 2);
        let throttle = auth.throttle.lock().unwrap();
        assert_eq!(throttle.by_ip.get(&other).map(|f| f.count), Some(2));
    }

    #[test]
    fn delay_grows_and_is_capped() {
        assert_eq!(delay_for(0), Duration::ZERO);
        assert_eq!(delay_for(2), Duration::ZERO);
        assert_eq!(delay_for(3), Duration::from_millis(500));
        assert_eq!(delay_for(4), Duration::from_secs(1));
        assert_eq!(delay_for(20), MAX_DELAY);
    }
}
