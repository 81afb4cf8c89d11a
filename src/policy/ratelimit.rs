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

use crate::settings::RateLimitSettings;

/// The window of `messagesPerMinute`.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Client addresses tracked at once; past this, idle ones are dropped and, if none is idle,
/// new clients pass unrecorded (memory stays bounded under a flood of addresses).
pub const MAX_TRACKED_CLIENTS: usize = 100_000;

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

fn exempts(limit: &RateLimitSettings, ip: IpAddr) -> bool {
    is_exempt_loopback(ip) || limit.exempt.iter().any(|net| net.contains(ip))
}

/// The recent messages of each client address (kept across reloads: a new limit applies to
/// the counts so far).
#[derive(Default)]
pub struct RateLimiter {
    clients: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl RateLimiter {
    /// May `ip` start another message at `now` under `limit`? Counts it when it may.
    pub fn allow(&self, limit: &RateLimitSettings, ip: IpAddr, now: Instant) -> bool {
        let ip = canonical(ip);
        if exempts(limit, ip) {
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
        if times.len() >= limit.per_minute as usize {
            return false;
        }
        times.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::network::Network;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn limit_plus_one_is_refused_then_the_window_slides() {
        let limiter = RateLimiter::default();
        let limit = RateLimitSettings {
            per_minute: 3,
            exempt: Vec::new(),
        };
        let start = Instant::now();
        let client = ip("192.0.2.7");
        for _ in 0..3 {
            assert!(limiter.allow(&limit, client, start));
        }
        assert!(!limiter.allow(&limit, client, start + Duration::from_secs(59)));
        assert!(
            limiter.allow(&limit, ip("192.0.2.8"), start),
            "other clients are separate"
        );
        assert!(limiter.allow(&limit, client, start + WINDOW));
    }

    #[test]
    fn loopback_and_whitelisted_networks_are_exempt() {
        let limiter = RateLimiter::default();
        let limit = RateLimitSettings {
            per_minute: 1,
            exempt: vec![
                Network::parse("10.0.0.0/8").unwrap(),
                Network::parse("2001:db8::1").unwrap(),
            ],
        };
        let now = Instant::now();
        for client in [
            "127.0.0.1",
            "::1",
            "::ffff:127.0.0.1",
            "10.1.2.3",
            "2001:db8::1",
        ] {
            for _ in 0..5 {
                assert!(limiter.allow(&limit, ip(client), now), "{client}");
            }
        }
        assert!(limiter.allow(&limit, ip("127.0.0.2"), now));
        assert!(
            !limiter.allow(&limit, ip("127.0.0.2"), now),
            "only 127.0.0.1 is the webmail"
        );
        assert!(limiter.allow(&limit, ip("2001:db8::2"), now));
        assert!(!limiter.allow(&limit, ip("2001:db8::2"), now));
    }
}
