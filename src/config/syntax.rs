//! The syntax of the names and networks a configuration holds: DNS names (domains, host
//! names, DKIM selectors, DNSBL zones) and the entries of the restriction lists. Each check
//! says why a value is wrong, for a line that starts with its key.

use std::net::IpAddr;

use crate::address::{normalize_domain, Address};
use crate::net::network::Network;

/// Which letters a DNS name may have.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Letters {
    /// Internationalised names in Unicode too (mail domains: SMTPUTF8 carries them).
    Unicode,
    /// ASCII only (host names in EHLO, DKIM selectors, DNSBL zones are looked up or sent as
    /// they are written: an internationalised one must be given in its `xn--` form).
    Ascii,
}

/// `name` lowercased without its trailing dot, or why it is not a DNS name.
pub fn dns_name(name: &str, letters: Letters) -> Result<String, &'static str> {
    if name.parse::<IpAddr>().is_ok() {
        return Err("is an IP address, not a DNS name");
    }
    if letters == Letters::Ascii && !name.is_ascii() {
        return Err("must be ASCII (write an internationalised name in its xn-- form)");
    }
    normalize_domain(name).ok_or("is not a DNS name (labels of letters, digits and -)")
}

/// Why `entry` is not a whitelist or blacklist entry (IP address, network, domain / mail server
/// name, or mailbox), or `None` when it is one.
pub fn list_entry_problem(entry: &str) -> Option<String> {
    if entry.contains('/') {
        return Network::parse(entry).err();
    }
    let valid = entry.parse::<IpAddr>().is_ok()
        || (entry.contains('@') && Address::parse(entry).is_ok())
        || normalize_domain(entry.strip_prefix("*.").unwrap_or(entry)).is_some();
    (!valid).then(|| "is not an IP address, network, domain, mail server or mailbox".into())
}
