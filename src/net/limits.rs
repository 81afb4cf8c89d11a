//! Connection limits: per client address and in total. A slot is held by a guard and freed when
//! the guard drops, whatever way the session ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

#[derive(Debug)]
struct Counts {
    per_ip: HashMap<IpAddr, u32>,
    total: u32,
}

#[derive(Debug, Clone)]
pub struct ConnectionLimiter {
    counts: Arc<Mutex<Counts>>,
    per_ip_limit: u32,
    total_limit: u32,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    PerIp,
    Total,
}

/// Holds one connection slot.
#[derive(Debug)]
pub struct ConnectionSlot {
    limiter: ConnectionLimiter,
    ip: IpAddr,
}

impl ConnectionLimiter {
    pub fn new(per_ip_limit: u32, total_limit: u32) -> Self {
        ConnectionLimiter {
            counts: Arc::new(Mutex::new(Counts {
                per_ip: HashMap::new(),
                total: 0,
            })),
            per_ip_limit,
            total_limit,
        }
    }

    pub fn acquire(&self, ip: IpAddr) -> Result<ConnectionSlot, Refusal> {
        let ip = ip.to_canonical();
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.total >= self.total_limit {
            return Err(Refusal::Total);
        }
        let count = counts.per_ip.entry(ip).or_insert(0);
        if *count >= self.per_ip_limit {
            return Err(Refusal::PerIp);
        }
        *count += 1;
        counts.total += 1;
        Ok(ConnectionSlot {
            limiter: self.clone(),
            ip,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self
            .limiter
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        if let Some(count) = counts.per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.per_ip.remove(&self.ip);
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
        assert_eq!(limiter.acquire(a).unwrap_err(), Refusal::PerIp);
        let _s3 = limiter.acquire(b).unwrap();
        assert_eq!(limiter.acquire(b).unwrap_err(), Refusal::Total);
        drop(s1);
        assert!(limiter.acquire(a).is_ok());
    }
}
