//! Relaying: mail for another server is accepted only from a client that logged in or that
//! `lists.whitelist` names by its address, network or forward-confirmed host name (a client
//! cannot forge those on a TCP connection, as it can a sender domain or a mailbox). Never an
//! open relay — any other client gets `554 5.7.1` for every remote recipient, whatever port it
//! came in on.

use super::{lists, Destination, Query, Stage, Verdict};
use crate::settings::PolicySettings;

pub(super) fn check(rules: &PolicySettings, query: &Query<'_>) -> Verdict {
    let Stage::Rcpt {
        recipient,
        destination: Destination::Remote,
        ..
    } = query.stage
    else {
        return Verdict::Accept;
    };
    // Only what names the client itself (address, network, verified host): never the sender.
    let whitelisted = lists::client_entry(&rules.whitelist, query.client).is_some();
    if query.user.is_some() || whitelisted {
        Verdict::Accept
    } else {
        Verdict::reject(
            554,
            [5, 7, 1],
            format!("<{recipient}>: Relay access denied"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::Address;
    use crate::config::syntax::ListEntry;
    use crate::policy::{Client, ClientName, Port};

    #[test]
    fn remote_recipients_need_a_login_on_every_port() {
        let account = Address::parse("alice@example.test").unwrap();
        for port in [Port::Mx, Port::Submission, Port::Smtps] {
            let client = Client {
                ip: "192.0.2.1".parse().unwrap(),
                port,
                name: ClientName::NotLooked,
            };
            let stage = |destination| Stage::Rcpt {
                sender: "a@b.test",
                recipient: "x@remote.test",
                destination,
            };
            let remote = Destination::Remote;
            let query = |user| Query {
                stage: stage(&remote),
                client: &client,
                helo: Some("client.test"),
                user,
            };
            let rules = PolicySettings::default();
            assert!(matches!(check(&rules, &query(None)), Verdict::Reject(r) if r.code == 554));
            assert_eq!(check(&rules, &query(Some(&account))), Verdict::Accept);
            let whitelisted = PolicySettings {
                whitelist: vec![ListEntry::parse("192.0.2.0/24").unwrap()],
                ..PolicySettings::default()
            };
            assert_eq!(check(&whitelisted, &query(None)), Verdict::Accept);
            let other = PolicySettings {
                whitelist: vec![
                    ListEntry::parse("198.51.100.0/24").unwrap(),
                    // A sender's domain never grants relaying.
                    ListEntry::parse("b.test").unwrap(),
                ],
                ..PolicySettings::default()
            };
            assert!(matches!(check(&other, &query(None)), Verdict::Reject(_)));
            let local = Destination::Local(account.clone());
            let to_local = Query {
                stage: stage(&local),
                client: &client,
                helo: None,
                user: None,
            };
            assert_eq!(check(&rules, &to_local), Verdict::Accept);
        }
    }
}
