//! Where mail for a domain goes: MX records by preference (equal preferences in random order,
//! RFC 5321 §5.1), the domain itself when it has no MX (implicit MX), nowhere for a null MX
//! (RFC 7505); then each host's A/AAAA addresses. Uses hickory, pointed at `dns.nameservers`
//! when set, else at the system's resolv.conf.

use std::net::{IpAddr, SocketAddr};

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;
use rand::seq::SliceRandom;

use super::client::ServerReply;
use crate::config::model::Dns;

/// The standard DNS port, for `dns.nameservers` entries without one.
const DNS_PORT: u16 = 53;

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

pub struct Resolver {
    inner: TokioResolver,
}

impl Resolver {
    pub fn from_config(dns: &Dns) -> anyhow::Result<Resolver> {
        let provider = TokioRuntimeProvider::default();
        let builder = if dns.nameservers.is_empty() {
            TokioResolver::builder(provider).map_err(|err| {
                anyhow::anyhow!("reading the system resolver configuration: {err}")
            })?
        } else {
            let mut servers = Vec::new();
            for server in &dns.nameservers {
                let addr = server
                    .parse::<SocketAddr>()
                    .or_else(|_| {
                        server
                            .parse::<IpAddr>()
                            .map(|ip| SocketAddr::new(ip, DNS_PORT))
                    })
                    .map_err(|_| {
                        anyhow::anyhow!("dns.nameservers: {server:?} is not an address")
                    })?;
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                let mut config = NameServerConfig::udp_and_tcp(addr.ip());
                config.connections = vec![udp, tcp];
                servers.push(config);
            }
            let config = ResolverConfig::from_name_servers(servers);
            let mut builder = TokioResolver::builder_with_config(config, provider);
            // The configured servers are the whole truth (tests, split-horizon setups).
            builder.options_mut().use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
            builder
        };
        let inner = builder
            .build()
            .map_err(|err| anyhow::anyhow!("building the DNS resolver: {err}"))?;
        Ok(Resolver { inner })
    }

    /// The hosts to try for `domain`, best first.
    pub async fn mx_hosts(&self, domain: &str) -> Result<Vec<String>, RouteError> {
        let fqdn = format!("{}.", domain.trim_end_matches('.'));
        match self.inner.mx_lookup(fqdn.as_str()).await {
            Ok(lookup) => {
                let mut records: Vec<(u16, String)> = lookup
                    .answers()
                    .iter()
                    .filter_map(|record| match &record.data {
                        RData::MX(mx) => Some((
                            mx.preference,
                            mx.exchange.to_ascii().trim_end_matches('.').to_lowercase(),
                        )),
                        _ => None,
                    })
                    .collect();
                Ok(order_mx(&mut records, domain)?)
            }
            Err(err) if err.is_nx_domain() => Err(RouteError::Permanent(ServerReply::local(
                550,
                format!("5.1.2 The domain {domain} does not exist (DNS: NXDOMAIN)"),
            ))),
            Err(err) if err.is_no_records_found() => Ok(vec![domain.to_string()]),
            Err(err) => Err(RouteError::Temporary(ServerReply::local(
                451,
                format!("4.4.3 DNS lookup of the MX of {domain} failed: {err}"),
            ))),
        }
    }

    /// The addresses of one host (none when it has no A/AAAA record).
    pub async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, RouteError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let fqdn = format!("{}.", host.trim_end_matches('.'));
        match self.inner.lookup_ip(fqdn.as_str()).await {
            Ok(lookup) => Ok(lookup.iter().collect()),
            Err(err) if err.is_nx_domain() || err.is_no_records_found() => Ok(Vec::new()),
            Err(err) => Err(RouteError::Temporary(ServerReply::local(
                451,
                format!("4.4.3 DNS lookup of {host} failed: {err}"),
            ))),
        }
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
