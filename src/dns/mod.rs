//! DNS lookups shared by the queue (MX routing), the SMTP policy (client checks) and the
//! filters: the [`Resolver`] trait and its implementation on hickory ([`HickoryResolver`]),
//! pointed at `dns.nameservers` when set, else at the system's resolv.conf.
//!
//! The trait is object-safe (boxed futures) so that one resolver is shared as
//! `Arc<dyn Resolver>` and unit tests can answer from a table; integration tests use a real DNS
//! server on loopback through `dns.nameservers`.

mod hickory;

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

pub use hickory::{mail_authenticator, HickoryResolver};

/// The standard DNS port, for `dns.nameservers` entries without one.
pub const DNS_PORT: u16 = 53;

/// A lookup in flight.
pub type Lookup<'a, T> = Pin<Box<dyn Future<Output = Result<T, DnsError>> + Send + 'a>>;

/// Why a lookup gave no records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// The name does not exist (NXDOMAIN): a permanent answer.
    #[error("{0} does not exist")]
    NoSuchName(String),
    /// The name exists but has no record of the type asked for.
    #[error("{0} has no record of that type")]
    NoRecords(String),
    /// No answer now (timeout, SERVFAIL, no resolver): try again later.
    #[error("lookup of {name} failed: {why}")]
    Temporary { name: String, why: String },
}

/// One MX record: its preference and exchange host (lowercase, no trailing dot; empty for a
/// null MX, RFC 7505).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MxRecord {
    pub preference: u16,
    pub exchange: String,
}

/// The lookups the server makes. Names are given without a trailing dot; they are always
/// looked up as fully qualified (no search domains).
pub trait Resolver: Send + Sync {
    /// The MX records of `domain`.
    fn mx<'a>(&'a self, domain: &'a str) -> Lookup<'a, Vec<MxRecord>>;
    /// The A and AAAA addresses of `host`.
    fn ips<'a>(&'a self, host: &'a str) -> Lookup<'a, Vec<IpAddr>>;
    /// The A records of `name` only: a DNSBL answers with A records (RFC 5782), so asking
    /// for AAAA as well would double its queries.
    fn ipv4<'a>(&'a self, name: &'a str) -> Lookup<'a, Vec<std::net::Ipv4Addr>>;
    /// The PTR names of `ip` (lowercase, no trailing dot).
    fn ptr(&self, ip: IpAddr) -> Lookup<'_, Vec<String>>;
    /// The TXT records of `name`, each as its strings joined.
    fn txt<'a>(&'a self, name: &'a str) -> Lookup<'a, Vec<String>>;
}

/// `name` as a fully qualified query name (trailing dot).
pub(crate) fn fqdn(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}

/// A `dns.nameservers` entry: `ip` (port 53) or `ip:port` (`[v6]:port` for IPv6).
pub fn parse_nameserver(text: &str) -> Option<std::net::SocketAddr> {
    let addr = text.parse::<std::net::SocketAddr>().ok().or_else(|| {
        text.parse::<IpAddr>()
            .ok()
            .map(|ip| std::net::SocketAddr::new(ip, DNS_PORT))
    })?;
    (addr.port() != 0).then_some(addr)
}

/// The resolver to share: hickory on `nameservers`, or, when that can't be built (no readable
/// resolv.conf), one that answers every lookup with the reason, so mail is deferred, not lost.
pub fn shared(nameservers: &[std::net::SocketAddr]) -> std::sync::Arc<dyn Resolver> {
    match HickoryResolver::new(nameservers) {
        Ok(resolver) => std::sync::Arc::new(resolver),
        Err(err) => {
            tracing::warn!("no DNS resolver: {err}");
            std::sync::Arc::new(Unavailable(err.to_string()))
        }
    }
}

/// A resolver that could not be built: every lookup fails temporarily with why.
struct Unavailable(String);

impl Unavailable {
    fn fail<'a, T: Send + 'a>(&'a self, name: String) -> Lookup<'a, T> {
        let why = self.0.clone();
        Box::pin(async move { Err(DnsError::Temporary { name, why }) })
    }
}

impl Resolver for Unavailable {
    fn mx<'a>(&'a self, domain: &'a str) -> Lookup<'a, Vec<MxRecord>> {
        self.fail(domain.to_string())
    }
    fn ips<'a>(&'a self, host: &'a str) -> Lookup<'a, Vec<IpAddr>> {
        self.fail(host.to_string())
    }
    fn ipv4<'a>(&'a self, name: &'a str) -> Lookup<'a, Vec<std::net::Ipv4Addr>> {
        self.fail(name.to_string())
    }
    fn ptr(&self, ip: IpAddr) -> Lookup<'_, Vec<String>> {
        self.fail(ip.to_string())
    }
    fn txt<'a>(&'a self, name: &'a str) -> Lookup<'a, Vec<String>> {
        self.fail(name.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameserver_entries() {
        assert_eq!(
            parse_nameserver("192.0.2.1"),
            Some("192.0.2.1:53".parse().unwrap())
        );
        assert_eq!(
            parse_nameserver("127.0.0.1:5353"),
            Some("127.0.0.1:5353".parse().unwrap())
        );
        assert_eq!(
            parse_nameserver("[::1]:5353"),
            Some("[::1]:5353".parse().unwrap())
        );
        assert_eq!(parse_nameserver("::1"), Some("[::1]:53".parse().unwrap()));
        assert_eq!(parse_nameserver("127.0.0.1:0"), None);
        assert_eq!(parse_nameserver("dns.example"), None);
    }
}
