//! Where mail for a domain goes: MX records by preference (equal preferences in random order,
//! RFC 5321 §5.1), the domain itself when it has no MX (implicit MX), nowhere for a null MX
//! (RFC 7505); then each host's A/AAAA addresses, through the shared [`Resolver`].

use std::net::IpAddr;

use rand::seq::SliceRandom;

use super::client::ServerReply;
use crate::dns::{DnsError, Resolver};

/// Why a destination can't be reached now or ever.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// The domain does not exist or accepts no mail: recipients fail.
    Permanent(ServerReply),
    /// DNS trouble: try again later.
    Temporary(ServerReply),
}

impl RouteError {
    pub fn reply(&self) -> &ServerReply {
        match self {
            RouteError::Permanent(r) | RouteError::Temporary(r) => r,
        }
    }
}

/// The hosts to try for `domain`, best first.
pub async fn mx_hosts(resolver: &dyn Resolver, domain: &str) -> Result<Vec<String>, RouteError> {
    match resolver.mx(domain).await {
        Ok(records) => {
            let mut records: Vec<(u16, String)> = records
                .into_iter()
                .map(|mx| (mx.preference, mx.exchange))
                .collect();
            order_mx(&mut records, domain)
        }
        Err(DnsError::NoSuchName(_)) => Err(RouteError::Permanent(ServerReply::local(
            550,
            format!("5.1.2 The domain {domain} does not exist (DNS: NXDOMAIN)"),
        ))),
        Err(DnsError::NoRecords(_)) => Ok(vec![domain.to_string()]),
        Err(err) => Err(RouteError::Temporary(ServerReply::local(
            451,
            format!("4.4.3 DNS lookup of the MX of {domain} failed: {err}"),
        ))),
    }
}

/// The addresses of one host (none when it has no A/AAAA record).
pub async fn addresses(resolver: &dyn Resolver, host: &str) -> Result<Vec<IpAddr>, RouteError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    match resolver.ips(host).await {
        Ok(ips) => Ok(ips),
        Err(DnsError::NoSuchName(_) | DnsError::NoRecords(_)) => Ok(Vec::new()),
        Err(err) => Err(RouteError::Temporary(ServerReply::local(
            451,
            format!("4.4.3 DNS lookup of {host} failed: {err}"),
        ))),
    }
}

/// Sorts MX records by preference, shuffling equal ones; a null MX means no mail at all; no
/// records means the domain itself.
pub fn order_mx(records: &mut [(u16, String)], domain: &str) -> Result<Vec<String>, RouteError> {
    if records.iter().any(|(_, host)| host.is_empty()) {
        return Err(RouteError::Permanent(ServerReply::local(
            556,
            format!("5.1.10 The domain {domain} accepts no mail (null MX)"),
        )));
    }
    if records.is_empty() {
        return Ok(vec![domain.to_string()]);
    }
    records.shuffle(&mut rand::thread_rng());
    records.sort_by_key(|(preference, _)| *preference);
    let mut hosts: Vec<String> = Vec::with_capacity(records.len());
    for (_, host) in records.iter() {
        if !hosts.contains(host) {
            hosts.push(host.clone());
        }
    }
    Ok(hosts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mx_sorted_by_preference() {
        let mut records = vec![
            (20, "b.test".to_string()),
            (10, "a.test".to_string()),
            (30, "c.test".to_string()),
            (10, "a.test".to_string()),
        ];
        assert_eq!(
            order_mx(&mut records, "d.test").unwrap(),
            ["a.test", "b.test", "c.test"]
        );
    }

    #[test]
    fn implicit_and_null_mx() {
        assert_eq!(order_mx(&mut [], "d.test").unwrap(), ["d.test"]);
        let mut null = vec![(0, String::new())];
        let err = order_mx(&mut null, "d.test").unwrap_err();
        assert_eq!(err.reply().status(), "5.1.10");
    }
}
