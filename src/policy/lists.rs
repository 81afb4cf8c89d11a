//! The restriction lists (`lists.whitelist`, `lists.blacklist`; docs/policy.md "Entries"):
//! which entry, if any, speaks for a client or a sender. An entry names the client by its
//! address or network, or by its forward-confirmed host name (at or below a name entry); it
//! names the sender by its mailbox or its domain (at or below a name entry).

use super::rdns::ClientName;
use super::Client;
use crate::config::syntax::ListEntry;

/// The first entry of `list` that names the client itself: its address is in a network entry,
/// or its forward-confirmed host name is at or below a name entry. A client cannot forge
/// either on a TCP connection.
pub fn client_entry<'a>(list: &'a [ListEntry], client: &Client) -> Option<&'a ListEntry> {
    let verified = match &client.name {
        ClientName::Verified(name) => Some(name.as_str()),
        _ => None,
    };
    list.iter().find(|entry| match entry {
        ListEntry::Network(net) => net.contains(client.ip),
        ListEntry::Name(_) => verified.is_some_and(|name| entry.covers_name(name)),
        ListEntry::Mailbox(_) => false,
    })
}

/// The first entry of `list` that names the envelope sender: its mailbox, or a name entry its
/// domain is at or below. Anyone can write any sender: such a match never grants relaying.
pub fn sender_entry<'a>(list: &'a [ListEntry], sender: &str) -> Option<&'a ListEntry> {
    let (local, domain) = sender.rsplit_once('@')?;
    if local.is_empty() {
        return None;
    }
    // Parsed once for the whole list, not once per mailbox entry (lists hold hundreds).
    let parsed = crate::address::Address::parse(sender).ok();
    list.iter().find(|entry| match entry {
        ListEntry::Mailbox(mailbox) => parsed.as_ref() == Some(mailbox),
        ListEntry::Name(_) => entry.covers_name(domain),
        ListEntry::Network(_) => false,
    })
}

/// How an entry is written, for log lines.
pub fn show(entry: &ListEntry) -> String {
    match entry {
        ListEntry::Network(net) => net.to_string(),
        ListEntry::Name(name) => name.clone(),
        ListEntry::Mailbox(mailbox) => mailbox.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Port;

    fn entries(texts: &[&str]) -> Vec<ListEntry> {
        texts.iter().map(|t| ListEntry::parse(t).unwrap()).collect()
    }

    fn client(ip: &str, name: ClientName) -> Client {
        Client {
            ip: ip.parse().unwrap(),
            port: Port::Mx,
            name,
        }
    }

    #[test]
    fn clients_by_address_network_and_verified_name() {
        let list = entries(&[
            "192.0.2.7",
            "198.51.100.0/24",
            "partner.example",
            "*.trusted.example",
        ]);
        let plain = |ip| client(ip, ClientName::NotLooked);
        assert!(client_entry(&list, &plain("192.0.2.7")).is_some());
        assert!(client_entry(&list, &plain("192.0.2.8")).is_none());
        assert!(client_entry(&list, &plain("198.51.100.200")).is_some());
        let verified = |name: &str| client("203.0.113.5", ClientName::Verified(name.into()));
        assert!(client_entry(&list, &verified("mx1.partner.example")).is_some());
        assert!(client_entry(&list, &verified("partner.example")).is_some());
        assert!(client_entry(&list, &verified("mx.trusted.example")).is_some());
        assert!(client_entry(&list, &verified("notpartner.example")).is_none());
        assert!(client_entry(&list, &verified("partner.example.evil")).is_none());
        // A PTR name that does not point back proves nothing.
        let unverified = client(
            "203.0.113.5",
            ClientName::Unverified {
                names: vec!["mx1.partner.example".into()],
            },
        );
        assert!(client_entry(&list, &unverified).is_none());
    }

    #[test]
    fn senders_by_mailbox_and_domain() {
        let list = entries(&["boss@partner.example", "trusted.example"]);
        assert!(sender_entry(&list, "Boss@Partner.Example").is_some());
        assert!(sender_entry(&list, "other@partner.example").is_none());
        assert!(sender_entry(&list, "a@trusted.example").is_some());
        assert!(sender_entry(&list, "a@sub.trusted.example").is_some());
        assert!(sender_entry(&list, "a@untrusted.example").is_none());
        assert!(
            sender_entry(&list, "").is_none(),
            "the null sender is no one"
        );
    }
}
