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

/// One entry of `lists.whitelist` / `lists.blacklist` (docs/policy.md, "Entries").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListEntry {
    /// `192.0.2.1`, `192.0.2.0/24`, `2001:db8::/32`: the client's address.
    Network(Network),
    /// `example.com` (or `*.example.com`, the same): a sender address in that domain or below
    /// it, and a client whose forward-confirmed host name is that name or below it (a mail
    /// server's name is such an entry).
    Name(String),
    /// `user@example.com`: that envelope sender.
    Mailbox(Address),
}

impl ListEntry {
    /// The entry `text` stands for, or why it is none (for a line that starts with its key).
    pub fn parse(text: &str) -> Result<ListEntry, String> {
        if text.contains('/') || text.parse::<IpAddr>().is_ok() {
            return Network::parse(text).map(ListEntry::Network);
        }
        if text.contains('@') {
            return Address::parse(text)
                .map(ListEntry::Mailbox)
                .map_err(|err| format!("is not a mailbox: {err}"));
        }
        normalize_domain(text.strip_prefix("*.").unwrap_or(text))
            .map(ListEntry::Name)
            .ok_or_else(|| {
                "is not an IP address, network, domain, mail server or mailbox".to_string()
            })
    }

    /// Whether `name` (a domain or host name, lowercase) is this entry's name or below it.
    pub fn covers_name(&self, name: &str) -> bool {
        let ListEntry::Name(entry) = self else {
            return false;
        };
        let name = name.trim_end_matches('.');
        name.eq_ignore_ascii_case(entry)
            || name
                .len()
                .checked_sub(entry.len() + 1)
                .and_then(|cut| name.get(cut..))
                .is_some_and(|tail| tail.starts_with('.') && tail[1..].eq_ignore_ascii_case(entry))
    }
}

/// Why `entry` is not a whitelist or blacklist entry, or `None` when it is one.
pub fn list_entry_problem(entry: &str) -> Option<String> {
    ListEntry::parse(entry).err()
}
