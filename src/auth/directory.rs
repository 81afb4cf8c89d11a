//! The accounts and aliases of the local domains, as the settings give them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::password::StoredHash;
use crate::address::Address;
use crate::config::Config;

/// One mailbox owner.
#[derive(Debug, Clone)]
pub struct Account {
    pub address: Address,
    pub display_name: Option<String>,
    pub password: StoredHash,
    pub quota: Option<u64>,
}

/// Where a recipient address leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// A mailbox of this server (the account's own address, after alias expansion).
    Local(Address),
    /// A local domain, but no such user or alias.
    UnknownLocal,
    /// Not a domain of this server.
    Remote,
}

#[derive(Debug, Clone, Default)]
pub struct Directory {
    domains: BTreeSet<String>,
    accounts: HashMap<Address, Account>,
    aliases: HashMap<Address, Address>,
}

impl Directory {
    /// The directory of `config`'s accounts with their password `hashes` (by account key, as
    /// the settings read them). Entries validation refused are left out.
    pub fn new(config: &Config, hashes: &BTreeMap<String, StoredHash>) -> Directory {
        let mut directory = Directory {
            domains: config.domains.iter().map(|d| d.to_lowercase()).collect(),
            ..Directory::default()
        };
        for (key, account) in &config.accounts {
            let (Ok(address), Some(password)) = (Address::parse(key), hashes.get(key)) else {
                continue;
            };
            for alias in &account.aliases {
                if let Ok(alias) = Address::parse(alias) {
                    directory.aliases.insert(alias, address.clone());
                }
            }
            directory.accounts.insert(
                address.clone(),
                Account {
                    address,
                    display_name: account.display_name.clone(),
                    password: password.clone(),
                    quota: account.quota,
                },
            );
        }
        directory
    }

    pub fn is_local_domain(&self, domain: &str) -> bool {
        self.domains.contains(domain)
    }

    pub fn domains(&self) -> impl Iterator<Item = &str> {
        self.domains.iter().map(String::as_str)
    }

    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.values()
    }

    /// Every alias and the account it leads to.
    pub fn aliases(&self) -> impl Iterator<Item = (&Address, &Address)> {
        self.aliases.iter()
    }

    pub fn account(&self, address: &Address) -> Option<&Account> {
        self.accounts.get(address)
    }

    /// True when `account` may use `sender` as its envelope sender: its own address or one of
    /// its aliases.
    pub fn owns(&self, account: &Address, sender: &Address) -> bool {
        sender == account || self.aliases.get(sender) == Some(account)
    }

    /// Resolves a recipient: account, alias, unknown user of a local domain, or remote.
    pub fn resolve(&self, address: &Address) -> Recipient {
        if !self.is_local_domain(address.domain()) {
            return Recipient::Remote;
        }
        if self.accounts.contains_key(address) {
            return Recipient::Local(address.clone());
        }
        match self.aliases.get(address) {
            Some(target) => Recipient::Local(target.clone()),
            None => Recipient::UnknownLocal,
        }
    }
}
