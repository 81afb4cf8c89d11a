//! Connection limits: per key (a client address, or an account) and in total. A slot is held
//! by a guard and freed when the guard drops, whatever way the session ends.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// The counts and the limits they are held to (limits can change on reload: slots already
/// held stay, new ones are counted against the new limits).
#[derive(Debug)]
struct Counts<K> {
    per_key: HashMap<K, u32>,
    total: u32,
    per_key_limit: u32,
    total_limit: u32,
}

#[derive(Debug)]
pub struct ConnectionLimiter<K = IpAddr> {
    counts: Arc<Mutex<Counts<K>>>,
}

// Not derived: that would want `K: Clone` for the shared counts.
impl<K> Clone for ConnectionLimiter<K> {
    fn clone(&self) -> Self {
        ConnectionLimiter {
            counts: self.counts.clone(),
        }
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many for this key (client address or account).
    PerKey,
    Total,
}

/// Holds one connection slot.
#[derive(Debug)]
pub struct ConnectionSlot<K: Eq + Hash = IpAddr> {
    limiter: ConnectionLimiter<K>,
    key: K,
}

impl<K> ConnectionLimiter<K> {
    /// Slots held now, as a share of the total limit in percent (100 when the limit is 0).
    pub fn used_percent(&self) -> u32 {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.total_limit == 0 {
            return 100;
        }
        let percent = u64::from(counts.total) * 100 / u64::from(counts.total_limit);
        u32::try_from(percent).unwrap_or(u32::MAX)
    }

    /// New limits for new connections (a reload); connections over them are not cut.
    pub fn set_limits(&self, per_key_limit: u32, total_limit: u32) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.per_key_limit = per_key_limit;
        counts.total_limit = total_limit;
    }
}

impl<K: Eq + Hash + Clone> ConnectionLimiter<K> {
    pub fn new(per_key_limit: u32, total_limit: u32) -> Self {
        ConnectionLimiter {
            counts: Arc::new(Mutex::new(Counts {
                per_key: HashMap::new(),
                total: 0,
                per_key_limit,
                total_limit,
            })),
        }
    }

    pub fn acquire(&self, key: K) -> Result<ConnectionSlot<K>, Refusal> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.total >= counts.total_limit {
            return Err(Refusal::Total);
        }
        let per_key_limit = counts.per_key_limit;
        let count = counts.per_key.entry(key.clone()).or_insert(0);
        if *count >= per_key_limit {
            return Err(Refusal::PerKey);
        }
        *count += 1;
        counts.total += 1;
        Ok(ConnectionSlot {
            limiter: self.clone(),
            key,
        })
    }
}

impl<K: Eq + Hash> Drop for ConnectionSlot<K> {
    fn drop(&mut self) {
        let mut counts = self
            .limiter
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        if let Some(count) = counts.per_key.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                counts.per_key.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_and_total() {
        let limiter = ConnectionLimiter::new(2, 3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let s1 = limiter.acquire(a).unwrap();
        let _s2 = limiter.acquire(a).unwrap();
        assert_eq!(limiter.acquire(a).unwrap_err(), Refusal::PerKey);
        let _s3 = limiter.acquire(b).unwrap();
        assert_eq!(limiter.acquire(b).unwrap_err(), Refusal::Total);
        drop(s1);
        assert!(limiter.acquire(a).is_ok());
    }

    #[test]
    fn used_share() {
        let limiter = ConnectionLimiter::new(10, 4);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(limiter.used_percent(), 0);
        let slots: Vec<_> = (0..3).map(|_| limiter.acquire(a).unwrap()).collect();
        assert_eq!(limiter.used_percent(), 75);
        drop(slots);
        assert_eq!(limiter.used_percent(), 0);
        assert_eq!(ConnectionLimiter::<IpAddr>::new(1, 0).used_percent(), 100);
    }
}
