//! Logins verified lately, so that a client that logs in again and again with the same
//! password (mail clients open a session per folder, per check, per send) costs one argon2id
//! verification per [`VERIFIED_TTL`] instead of one per login: that hash is made to be slow
//! (about 35 ms of CPU and 19 MiB each), and on a busy server it was a quarter of the IMAP
//! daemon's CPU.
//!
//! Only successes are remembered, and only as a keyed hash (HMAC-SHA-256 under a key made at
//! start and never stored) of the account, its stored password hash and the password: the
//! memory holds no password, a wrong password never matches, and a changed password (a new
//! stored hash) or a removed account no longer matches at once. Failures are never
//! remembered, so guessing stays as slow and as throttled as before.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;

/// How long a verified login is remembered.
pub const VERIFIED_TTL: Duration = Duration::from_secs(10 * 60);
/// Most logins remembered (32 bytes and an instant each); beyond it, expired ones are dropped,
/// and if none are, nothing more is remembered until some expire.
const MAX_VERIFIED: usize = 100_000;

/// What identifies a login (account, stored hash, password) without holding the password.
pub type Tag = [u8; 32];

pub struct VerifiedLogins {
    key: hmac::Key,
    remembered: Mutex<HashMap<Tag, Instant>>,
}

impl VerifiedLogins {
    pub fn new() -> anyhow::Result<VerifiedLogins> {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
            .map_err(|_| anyhow::anyhow!("no random key for the verified-login memory"))?;
        Ok(VerifiedLogins {
            key,
            remembered: Mutex::new(HashMap::new()),
        })
    }

    /// Whether `password` was verified against `stored_hash` for `account` within the TTL.
    pub fn contains(&self, account: &str, stored_hash: &str, password: &[u8]) -> bool {
        self.contains_at(account, stored_hash, password, Instant::now())
    }

    /// Remembers a successful verification.
    pub fn insert(&self, account: &str, stored_hash: &str, password: &[u8]) {
        self.insert_at(account, stored_hash, password, Instant::now());
    }

    /// Whether the login `tag` names was verified within the TTL.
    pub fn contains_tag(&self, tag: &Tag) -> bool {
        self.contains_tag_at(tag, Instant::now())
    }

    /// Remembers a successful verification of the login `tag` names.
    pub fn insert_tag(&self, tag: Tag) {
        self.insert_tag_at(tag, Instant::now());
    }

    fn contains_at(&self, account: &str, stored_hash: &str, password: &[u8], now: Instant) -> bool {
        self.contains_tag_at(&self.tag(account, stored_hash, password), now)
    }

    fn contains_tag_at(&self, tag: &Tag, now: Instant) -> bool {
        let remembered = self
            .remembered
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        remembered
            .get(tag)
            .is_some_and(|&at| now.saturating_duration_since(at) < VERIFIED_TTL)
    }

    fn insert_at(&self, account: &str, stored_hash: &str, password: &[u8], now: Instant) {
        self.insert_tag_at(self.tag(account, stored_hash, password), now);
    }

    fn insert_tag_at(&self, tag: Tag, now: Instant) {
        let mut remembered = self
            .remembered
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if remembered.len() >= MAX_VERIFIED && !remembered.contains_key(&tag) {
            remembered.retain(|_, at| now.saturating_duration_since(*at) < VERIFIED_TTL);
            if remembered.len() >= MAX_VERIFIED {
                return;
            }
        }
        remembered.insert(tag, now);
    }

    /// The keyed hash naming a login (also the key of `flights`).
    pub fn tag(&self, account: &str, stored_hash: &str, password: &[u8]) -> Tag {
        let mut context = hmac::Context::with_key(&self.key);
        // Each part with its length first, so that no two triples give the same input.
        for part in [account.as_bytes(), stored_hash.as_bytes(), password] {
            context.update(&(part.len() as u64).to_be_bytes());
            context.update(part);
        }
        let mut tag = [0u8; 32];
        tag.copy_from_slice(context.sign().as_ref());
        tag
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";

    #[test]
    fn remembers_only_the_same_account_hash_and_password() {
        let logins = VerifiedLogins::new().unwrap();
        assert!(!logins.contains("a@x.test", HASH, b"secret"));
        logins.insert("a@x.test", HASH, b"secret");
        assert!(logins.contains("a@x.test", HASH, b"secret"));
        assert!(!logins.contains("a@x.test", HASH, b"secret2"));
        assert!(!logins.contains("b@x.test", HASH, b"secret"));
        // A new stored hash (the password was changed) doesn't match.
        assert!(!logins.contains("a@x.test", "$6$other$hash", b"secret"));
        // Length-prefixed parts: moving bytes between them changes the tag.
        logins.insert("ab", "c", b"d");
        assert!(!logins.contains("a", "bc", b"d"));
    }

    #[test]
    fn forgets_after_the_ttl() {
        let logins = VerifiedLogins::new().unwrap();
        let start = Instant::now();
        logins.insert_at("a@x.test", HASH, b"secret", start);
        let almost = start + VERIFIED_TTL - Duration::from_secs(1);
        assert!(logins.contains_at("a@x.test", HASH, b"secret", almost));
        assert!(!logins.contains_at("a@x.test", HASH, b"secret", start + VERIFIED_TTL));
    }

    #[test]
    fn a_full_memory_makes_room_from_expired_entries_only() {
        let logins = VerifiedLogins::new().unwrap();
        let start = Instant::now();
        for n in 0..MAX_VERIFIED {
            logins.insert_at(&format!("u{n}"), HASH, b"pw", start);
        }
        logins.insert_at("late", HASH, b"pw", start + Duration::from_secs(1));
        assert!(!logins.contains_at("late", HASH, b"pw", start + Duration::from_secs(2)));
        let later = start + VERIFIED_TTL + Duration::from_secs(1);
        logins.insert_at("late", HASH, b"pw", later);
        assert!(logins.contains_at("late", HASH, b"pw", later));
        let held = logins.remembered.lock().unwrap().len();
        assert_eq!(held, 1);
    }
}
