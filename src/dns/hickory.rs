//! [`Resolver`] on hickory-resolver.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::{RData, Record};
use hickory_resolver::TokioResolver;

use super::{fqdn, DnsError, Lookup, MxRecord, Resolver};

/// Answers kept (each for its TTL; hickory evicts the least recently used beyond this): what
/// makes DNSBL and reverse-DNS lookups of busy clients cheap, and bounds the memory it takes.
pub const CACHE_ENTRIES: u64 = 8192;

pub struct HickoryResolver {
    inner: TokioResolver,
}

impl HickoryResolver {
    /// A resolver asking `nameservers` (UDP, then TCP for truncated answers); with none, the
    /// system's resolv.conf. The configured servers are the whole truth: `/etc/hosts` is not
    /// consulted then (tests, split-horizon setups).
    pub fn new(nameservers: &[SocketAddr]) -> Result<HickoryResolver, DnsError> {
        Ok(HickoryResolver {
            inner: tokio_resolver(nameservers, None)?,
        })
    }
}

/// Per-query timeout and tries of the resolver the message authentication uses: an SPF check
/// may need ten lookups, so each one is kept short (hickory's default is 5 s, twice).
pub const AUTH_QUERY_TIMEOUT: Duration = Duration::from_secs(2);
pub const AUTH_QUERY_ATTEMPTS: usize = 2;

/// mail-auth's DKIM/SPF/DMARC checker on a resolver asking the same servers as
/// [`HickoryResolver::new`] (its own cache: mail-auth drives hickory itself).
pub fn mail_authenticator(
    nameservers: &[SocketAddr],
) -> Result<mail_auth::MessageAuthenticator, DnsError> {
    let timeouts = (AUTH_QUERY_TIMEOUT, AUTH_QUERY_ATTEMPTS);
    Ok(mail_auth::MessageAuthenticator(tokio_resolver(
        nameservers,
        Some(timeouts),
    )?))
}

/// A hickory resolver asking `nameservers` (UDP, then TCP for truncated answers); with none,
/// the system's resolv.conf. The configured servers are the whole truth: `/etc/hosts` is not
/// consulted then (tests, split-horizon setups). `timeouts`: per query, and tries.
fn tokio_resolver(
    nameservers: &[SocketAddr],
    timeouts: Option<(Duration, usize)>,
) -> Result<TokioResolver, DnsError> {
    let provider = TokioRuntimeProvider::default();
    let builder = if nameservers.is_empty() {
        TokioResolver::builder(provider).map_err(|err| DnsError::Temporary {
            name: "resolv.conf".into(),
            why: format!("reading the system resolver configuration: {err}"),
        })?
    } else {
        let servers = nameservers
            .iter()
            .map(|addr| {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                let mut config = NameServerConfig::udp_and_tcp(addr.ip());
                config.connections = vec![udp, tcp];
                config
            })
            .collect();
        let config = ResolverConfig::from_name_servers(servers);
        let mut builder = TokioResolver::builder_with_config(config, provider);
        builder.options_mut().use_hosts_file = ResolveHosts::Never;
        builder
    };
    let mut builder = builder;
    builder.options_mut().cache_size = CACHE_ENTRIES;
    if let Some((timeout, attempts)) = timeouts {
        builder.options_mut().timeout = timeout;
        builder.options_mut().attempts = attempts;
    }
    builder.build().map_err(|err| DnsError::Temporary {
        name: "resolver".into(),
        why: format!("building the DNS resolver: {err}"),
    })
}

/// hickory's error as one of ours.
fn classify(name: &str, err: &NetError) -> DnsError {
    if err.is_nx_domain() {
        DnsError::NoSuchName(name.to_string())
    } else if err.is_no_records_found() {
        DnsError::NoRecords(name.to_string())
    } else {
        DnsError::Temporary {
            name: name.to_string(),
            why: err.to_string(),
        }
    }
}

/// What `take` makes of each answer record it recognises (CNAMEs and the like are skipped).
fn pick<T>(answers: &[Record], take: impl Fn(&RData) -> Option<T>) -> Vec<T> {
    answers
        .iter()
        .filter_map(|record| take(&record.data))
        .collect()
}

/// A host name as we compare them: lowercase, no trailing dot.
fn host_name(name: &hickory_resolver::proto::rr::Name) -> String {
    name.to_ascii().trim_end_matches('.').to_lowercase()
}

impl Resolver for HickoryResolver {
    fn mx<'a>(&'a self, domain: &'a str) -> Lookup<'a, Vec<MxRecord>> {
        Box::pin(async move {
            let lookup = self
                .inner
                .mx_lookup(fqdn(domain).as_str())
                .await
                .map_err(|err| classify(domain, &err))?;
            Ok(pick(lookup.answers(), |data| match data {
                RData::MX(mx) => Some(MxRecord {
                    preference: mx.preference,
                    exchange: host_name(&mx.exchange),
                }),
                _ => None,
            }))
        })
    }

    fn ips<'a>(&'a self, host: &'a str) -> Lookup<'a, Vec<IpAddr>> {
        Box::pin(async move {
            let lookup = self
                .inner
                .lookup_ip(fqdn(host).as_str())
                .await
                .map_err(|err| classify(host, &err))?;
            Ok(lookup.iter().collect())
        })
    }

    fn ipv4<'a>(&'a self, name: &'a str) -> Lookup<'a, Vec<std::net::Ipv4Addr>> {
        Box::pin(async move {
            let lookup = self
                .inner
                .ipv4_lookup(fqdn(name).as_str())
                .await
                .map_err(|err| classify(name, &err))?;
            Ok(pick(lookup.answers(), |data| match data {
                RData::A(a) => Some(a.0),
                _ => None,
            }))
        })
    }

    fn ptr(&self, ip: IpAddr) -> Lookup<'_, Vec<String>> {
        Box::pin(async move {
            let name = ip.to_string();
            let lookup = self
                .inner
                .reverse_lookup(ip)
                .await
                .map_err(|err| classify(&name, &err))?;
            Ok(pick(lookup.answers(), |data| match data {
                RData::PTR(ptr) => Some(host_name(&ptr.0)),
                _ => None,
            }))
        })
    }

    fn txt<'a>(&'a self, name: &'a str) -> Lookup<'a, Vec<String>> {
        Box::pin(async move {
            let lookup = self
                .inner
                .txt_lookup(fqdn(name).as_str())
                .await
                .map_err(|err| classify(name, &err))?;
            Ok(pick(lookup.answers(), |data| match data {
                RData::TXT(txt) => Some(
                    txt.txt_data
                        .iter()
                        .map(|part| String::from_utf8_lossy(part))
                        .collect::<String>(),
                ),
                _ => None,
            }))
        })
    }
}
