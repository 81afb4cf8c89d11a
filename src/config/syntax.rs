//! The syntax of the names and networks a configuration holds: DNS names (domains, host
//! names, DKIM selectors, DNSBL zones) and the entries of the restriction lists. Each check
//! says why a value is wrong, for a line that starts with its key.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::address::{normalize_domain, Address};

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
    if let Some((net, bits)) = entry.split_once('/') {
        return network_problem(net, bits);
    }
    let valid = entry.parse::<IpAddr>().is_ok()
        || (entry.contains('@') && Address::parse(entry).is_ok())
        || normalize_domain(entry.strip_prefix("*.").unwrap_or(entry)).is_some();
    (!valid).then(|| "is not an IP address, network, domain, mail server or mailbox".into())
}

/// Why `net/bits` is not a CIDR network: the prefix length is decimal digits within the address
/// family's width, and the address has no bits set past the prefix (`10.0.0.1/24` is either a
/// typo for a host or for `10.0.0.0/24`: refused rather than guessed).
fn network_problem(net: &str, bits: &str) -> Option<String> {
    let Ok(address) = net.parse::<IpAddr>() else {
        return Some(format!("{net:?} before the / is not an IP address"));
    };
    let width: u32 = if address.is_ipv4() { 32 } else { 128 };
    let prefix = (!bits.is_empty() && bits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| bits.parse::<u32>().ok())
        .flatten()
        .filter(|prefix| *prefix <= width);
    let Some(prefix) = prefix else {
        return Some(format!(
            "the prefix length must be 0 to {width}, got {bits:?}"
        ));
    };
    let value = match address {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    };
    let host_bits = width - prefix;
    let host_mask = if host_bits == 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    if value & host_mask == 0 {
        return None;
    }
    let network = match address {
        IpAddr::V4(_) => IpAddr::from(Ipv4Addr::from((value & !host_mask) as u32)).to_string(),
        IpAddr::V6(_) => IpAddr::from(Ipv6Addr::from(value & !host_mask)).to_string(),
    };
    Some(format!(
        "has bits set after the /{prefix} prefix (the network is {network}/{prefix})"
    ))
}
