//! DNS blocklists (`spam.dnsbl`; docs/policy.md "DNSBL"): the client's address, reversed
//! (IPv4 octets, IPv6 nibbles, RFC 5782 §2.1 and §2.4), is looked up under every zone at once,
//! each lookup bounded by [`LOOKUP_TIMEOUT`]. A zone lists the client when it answers with an
//! address in 127.0.0.0/8 (RFC 5782 §2.3); its TXT record, when there is one, says why.
//! Answers are cached by the resolver for their TTL (a bounded cache, `dns`).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::dns::{DnsError, Resolver};

/// How long one zone may take to answer.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest reason quoted from a TXT record.
pub const MAX_REASON: usize = 200;

/// What the zones say of one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    NotListed,
    /// The first zone (in the configured order) that lists it.
    Listed {
        zone: String,
        reason: Option<String>,
    },
    /// No zone lists it, but this one did not answer (or refused to).
    Unreachable {
        zone: String,
        why: String,
    },
}

/// The name to look up for `ip` under `zone`.
pub fn query_name(ip: IpAddr, zone: &str) -> String {
    let zone = zone.trim_end_matches('.');
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.{zone}")
        }
        IpAddr::V6(v6) => {
            let mut name = String::with_capacity(64 + zone.len());
            for byte in v6.octets().iter().rev() {
                name.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            name.push_str(zone);
            name
        }
    }
}

/// One zone's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    NotListed,
    Listed(Option<String>),
    Unreachable(String),
}

/// Asks every zone about `ip` at once; the listing of the first zone (in order) that lists it.
pub async fn check(resolver: Arc<dyn Resolver>, ip: IpAddr, zones: &[String]) -> Listing {
    let mut lookups = JoinSet::new();
    for (position, zone) in zones.iter().enumerate() {
        let resolver = resolver.clone();
        let name = query_name(ip, zone);
        lookups.spawn(async move {
            let answer = tokio::time::timeout(LOOKUP_TIMEOUT, ask(resolver.as_ref(), &name))
                .await
                .unwrap_or_else(|_| {
                    Answer::Unreachable(format!("no answer within {LOOKUP_TIMEOUT:?}"))
                });
            (position, answer)
        });
    }
    let mut answers = vec![Answer::NotListed; zones.len()];
    while let Some(joined) = lookups.join_next().await {
        match joined {
            Ok((position, answer)) => answers[position] = answer,
            Err(err) => tracing::warn!("a DNSBL lookup task failed: {err}"),
        }
    }
    let listed = answers
        .iter()
        .zip(zones)
        .find_map(|(answer, zone)| match answer {
            Answer::Listed(reason) => Some(Listing::Listed {
                zone: zone.clone(),
                reason: reason.clone(),
            }),
            _ => None,
        });
    listed
        .or_else(|| {
            answers
                .iter()
                .zip(zones)
                .find_map(|(answer, zone)| match answer {
                    Answer::Unreachable(why) => Some(Listing::Unreachable {
                        zone: zone.clone(),
                        why: why.clone(),
                    }),
                    _ => None,
                })
        })
        .unwrap_or(Listing::NotListed)
}

async fn ask(resolver: &dyn Resolver, name: &str) -> Answer {
    let addresses = match resolver.ipv4(name).await {
        Ok(addresses) => addresses,
        Err(DnsError::NoSuchName(_) | DnsError::NoRecords(_)) => return Answer::NotListed,
        Err(err) => return Answer::Unreachable(err.to_string()),
    };
    let codes: Vec<Ipv4Addr> = addresses
        .into_iter()
        .filter(|v4| v4.octets()[0] == 127)
        .collect();
    // 127.255.255.0/24 are the lists' own error codes (e.g. Spamhaus's "query refused, use
    // your own resolver"): the list did not judge.
    if let Some(error) = codes.iter().find(|v4| v4.octets()[1..3] == [255, 255]) {
        return Answer::Unreachable(format!("the list answered with its error code {error}"));
    }
    if codes.is_empty() {
        return Answer::NotListed;
    }
    let reason = resolver
        .txt(name)
        .await
        .ok()
        .and_then(|texts| texts.into_iter().next())
        .map(|text| {
            text.chars()
                .filter(|c| !c.is_control())
                .take(MAX_REASON)
                .collect()
        });
    Answer::Listed(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reversed_names() {
        assert_eq!(
            query_name("192.0.2.99".parse().unwrap(), "zen.example."),
            "99.2.0.192.zen.example"
        );
        assert_eq!(
            query_name("::ffff:127.0.0.2".parse().unwrap(), "bl.test"),
            "2.0.0.127.bl.test"
        );
        // RFC 5782 §2.4's example.
        assert_eq!(
            query_name("2001:db8:1:2:3:4:567:89ab".parse().unwrap(), "bl.example"),
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.example"
        );
    }
}
