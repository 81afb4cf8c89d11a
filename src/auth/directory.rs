//! The accounts and aliases of the local domains, resolved from the configuration.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use super::password::StoredHash;
use crate::address::Address;
use crate::config::{Config, ConfigErrors};

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
    /// Builds the directory, reading `hashedPasswordFile`s. Every problem names its key.
    pub fn from_config(config: &Config) -> Result<Directory, ConfigErrors> {
        let mut errors = ConfigErrors::default();
        let mut directory = Directory {
            domains: config.domains.iter().map(|d| d.to_lowercase()).collect(),
            ..Directory::default()
        };
        for (key, account) in &config.accounts {
            let path = format!("accounts.{key}");
            let Ok(address) = Address::parse(key) else {
                continue; // reported by validation
            };
            let Some(password) = load_hash(
                &path,
                &account.hashed_password,
                &account.hashed_password_file,
                &mut errors,
            ) else {
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
                    password,
                    quota: account.quota,
                },
            );
        }
        if errors.is_empty() {
            Ok(directory)
        } else {
            Err(errors)
        }
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

fn load_hash(
    path: &str,
    inline: &Option<String>,
    file: &Option<PathBuf>,
    errors: &mut ConfigErrors,
) -> Option<StoredHash> {
    let (key, text) = match (inline, file) {
        (Some(text), None) => (format!("{path}.hashedPassword"), text.clone()),
        (None, Some(file)) => {
            let key = format!("{path}.hashedPasswordFile");
            match std::fs::read_to_string(file) {
                Ok(text) => (key, text),
                Err(err) => {
                    errors.push(format!("{key}: cannot read {}: {err}", file.display()));
                    return None;
                }
            }
        }
        (Some(_), Some(_)) => {
            errors.push(format!(
                "{path}: set either hashedPassword or hashedPasswordFile, not both"
            ));
            return None;
        }
        (None, None) => {
            errors.push(format!(
                "{path}: no password: set hashedPassword or hashedPasswordFile (icsmail hash-password makes one)"
            ));
            return None;
        }
    };
    match StoredHash::parse(&text) {
        Ok(hash) => Some(hash),
        Err(err) => {
            errors.push(format!("{key}: {err}"));
            None
        }
    }
}
