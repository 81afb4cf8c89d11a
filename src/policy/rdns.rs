//! The client's forward-confirmed reverse DNS name (FCrDNS, RFC 8601 §2.7.3 "iprev"): the PTR
//! names of its address, the first of which resolves (A/AAAA) back to that address. Looked up
//! once, at connect, and only when a rule needs it (a name entry in a list, or
//! `spam.requireReverseDns`).

use std::net::IpAddr;
use std::time::Duration;

use crate::dns::{DnsError, Resolver};

/// PTR names tried at most (a client may publish many to make us work).
pub const MAX_PTR_NAMES: usize = 5;
/// The whole lookup (PTR, then the names' addresses) takes at most this long.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// What the reverse DNS says of a client.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ClientName {
    /// Not looked up: no rule needs it.
    #[default]
    NotLooked,
    /// A PTR name that points back to the address.
    Verified(String),
    /// PTR names, none of which points back (anyone can publish any PTR name).
    Unverified { names: Vec<String> },
    /// No PTR record.
    Missing,
    /// The DNS did not answer (a timeout, SERVFAIL): nobody can tell now.
    Unknown(String),
}

impl ClientName {
    /// The forward-confirmed name, if there is one.
    pub fn verified(&self) -> Option<&str> {
        match self {
            ClientName::Verified(name) => Some(name),
            _ => None,
        }
    }

    /// Why there is no verified name, for the refusal's text.
    pub fn why_not_verified(&self) -> String {
        match self {
            ClientName::Verified(name) => format!("{name} is verified"),
            ClientName::NotLooked => "not looked up".into(),
            ClientName::Unverified { names } => {
                format!("{} does not resolve to it", names.join(", "))
            }
            ClientName::Missing => "no PTR record".into(),
            ClientName::Unknown(why) => format!("DNS: {why}"),
        }
    }
}

/// Looks up the forward-confirmed name of `ip`, bounded by [`LOOKUP_TIMEOUT`].
pub async fn lookup(resolver: &dyn Resolver, ip: IpAddr) -> ClientName {
    let ip = ip.to_canonical();
    match tokio::time::timeout(LOOKUP_TIMEOUT, confirm(resolver, ip)).await {
        Ok(name) => name,
        Err(_) => ClientName::Unknown(format!("no answer within {LOOKUP_TIMEOUT:?}")),
    }
}

async fn confirm(resolver: &dyn Resolver, ip: IpAddr) -> ClientName {
    let names = match resolver.ptr(ip).await {
        Ok(names) if names.is_empty() => return ClientName::Missing,
        Ok(names) => names,
        Err(DnsError::NoSuchName(_) | DnsError::NoRecords(_)) => return ClientName::Missing,
        Err(err) => return ClientName::Unknown(err.to_string()),
    };
    let mut trouble = None;
    for name in names.iter().take(MAX_PTR_NAMES) {
        match resolver.ips(name).await {
            Ok(addresses) if addresses.iter().any(|a| a.to_canonical() == ip) => {
                return ClientName::Verified(name.clone());
            }
            Ok(_) | Err(DnsError::NoSuchName(_) | DnsError::NoRecords(_)) => {}
            Err(err) => trouble = Some(err.to_string()),
        }
    }
    match trouble {
        // A name that might have confirmed could not be asked: unknown, not false.
        Some(why) => ClientName::Unknown(why),
        None => ClientName::Unverified { names },
    }
}
