//! `rateLimit.*`: at most `messagesPerMinute` messages (MAIL commands) per client address in
//! any 60 seconds; beyond that `450 4.7.1`. Never for loopback (the webmail runs there) nor,
//! with `exemptWhitelist`, for the IP and CIDR entries of `lists.whitelist`.
//!
//! "Loopback" means exactly 127.0.0.1 and ::1 (and ::ffff:127.0.0.1): the webmail's address. The
//! rest of 127.0.0.0/8 is limited like any client, so local test clients and tunnels stay
//! subject to the limit.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::config::Config;

/// The window of `messagesPerMinute`.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Client addresses tracked at once; past this, idle ones are dropped and, if none is idle,
/// new clients pass unrecorded (memory stays bounded under a flood of addresses).
pub const MAX_TRACKED_CLIENTS: usize = 100_000;

/// An IPv4 or IPv6 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    /// `192.0.2.1`, `192.0.2.0/24`, `2001:db8::/32`; `None` for other list entries.
    pub fn parse(text: &str) -> Option<Network> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, bits)) => (address.parse::<IpAddr>().ok()?, bits.parse::<u8>().ok()?),
            None => {
                let address = text.parse::<IpAddr>().ok()?;
                (address, if address.is_ipv4() { 32 } else { 128 })
            }
        };
        let max = if address.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Network { address, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// The webmail's address: 127.0.0.1 or ::1 only.
pub fn is_exempt_loopback(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => v4 == Ipv4Addr::LOCALHOST,
        IpAddr::V6(v6) => v6 == Ipv6Addr::LOCALHOST,
    }
}

pub struct RateLimiter {
    limit: usize,
    exempt: Vec<Network>,
    clients: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl RateLimiter {
    /// `None` when `rateLimit.enable` is false.
    pub fn from_config(config: &Config) -> Option<RateLimiter> {
        let settings = &config.rate_limit;
        if !settings.enable {
            return None;
        }
        let exempt = if settings.exempt_whitelist {
            config
                .lists
                .whitelist
                .iter()
                .filter_map(|entry| Network::parse(entry))
                .collect()
        } else {
            Vec::new()
        };
        Some(RateLimiter::new(settings.messages_per_minute, exempt))
    }

    pub fn new(messages_per_minute: u32, exempt: Vec<Network>) -> RateLimiter {
        RateLimiter {
            limit: messages_per_minute.max(1) as usize,
            exempt,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// May `ip` start another message at `now`? Counts it when it may.
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        let ip = canonical(ip);
        if is_exempt_loopback(ip) || self.exempt.iter().any(|net| net.contains(ip)) {
            return true;
        }
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if !clients.contains_key(&ip) && clients.len() >= MAX_TRACKED_CLIENTS {
            clients.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < WINDOW)
            });
            if clients.len() >= MAX_TRACKED_CLIENTS {
                return true;
            }
        }
        let times = clients.entry(ip).or_default();
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            times.pop_front();
        }
        if times.len() >= self.limit {
            return false;
        }
        times.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn limit_plus_one_is_refused_then_the_window_slides() {
        let limiter = RateLimiter::new(3, Vec::new());
        let start = Instant::now();
        let client = ip("192.0.2.7");
        for _ in 0..3 {
            assert!(limiter.allow(client, start));
        }
        assert!(!limiter.allow(client, start + Duration::from_secs(59)));
        assert!(
            limiter.allow(ip("192.0.2.8"), start),
            "other clients are separate"
        );
        assert!(limiter.allow(client, start + WINDOW));
    }

    #[test]
    fn loopback_and_whitelisted_networks_are_exempt() {
        let limiter = RateLimiter::new(
            1,
            vec![
                Network::parse("10.0.0.0/8").unwrap(),
                Network::parse("2001:db8::1").unwrap(),
            ],
        );
        let now = Instant::now();
        for client in [
            "127.0.0.1",
            "::1",
            "::ffff:127.0.0.1",
            "10.1.2.3",
            "2001:db8::1",
        ] {
            for _ in 0..5 {
                assert!(limiter.allow(ip(client), now), "{client}");
            }
        }
        assert!(limiter.allow(ip("127.0.0.2"), now));
        assert!(
            !limiter.allow(ip("127.0.0.2"), now),
            "only 127.0.0.1 is the webmail"
        );
        assert!(limiter.allow(ip("2001:db8::2"), now));
        assert!(!limiter.allow(ip("2001:db8::2"), now));
    }

    #[test]
    fn networks_parse_and_match() {
        let net = Network::parse("192.0.2.0/24").unwrap();
        assert!(net.contains(ip("192.0.2.200")) && !net.contains(ip("192.0.3.1")));
        assert!(Network::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Network::parse("10.0.0.0/33").is_none());
        assert!(Network::parse("example.com").is_none());
        assert!(Network::parse("user@example.com").is_none());
    }
}
