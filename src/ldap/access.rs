//! Who may read the book (docs/ldap.md, "Who sees what"). The RootDSE is open to everyone.
//! The entries:
//! - an anonymous connection from a loopback address is the webmail (Roundcube runs on this
//!   host and searches anonymously, as the NixOS module sets it up): it always reads them;
//! - a connection bound with a mail account is a user's mail client: it reads them when
//!   `addressBook.publishToClients` is on;
//! - an anonymous connection from elsewhere reads none (the book is not handed to anyone on
//!   the network who asks: clients bind with their mail account).

use std::net::IpAddr;

use crate::address::Address;
use crate::auth::Directory;

/// Who a connection is bound as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Anonymous,
    Account(Address),
}

/// Why the entries are not shown (the search is answered `insufficientAccessRights`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// Anonymous, not from this host.
    BindFirst,
    /// A mail client while `addressBook.publishToClients` is off.
    NotPublished,
}

impl Denial {
    pub fn message(self) -> &'static str {
        match self {
            Denial::BindFirst => "bind with your mail account to read the address book",
            Denial::NotPublished => "the address book is not published to mail clients",
        }
    }
}

impl Identity {
    /// Who the connection is now: an account removed (or renamed) by a reload since the bind
    /// is bound no more, as logins of the other protocols stop working at once.
    pub fn in_force(&self, directory: &Directory) -> Identity {
        match self {
            Identity::Account(address) if directory.account(address).is_none() => {
                Identity::Anonymous
            }
            other => other.clone(),
        }
    }
}

pub fn may_read_entries(
    identity: &Identity,
    peer: IpAddr,
    publish_to_clients: bool,
) -> Result<(), Denial> {
    match identity {
        Identity::Anonymous if peer.to_canonical().is_loopback() => Ok(()),
        Identity::Anonymous => Err(Denial::BindFirst),
        Identity::Account(_) if publish_to_clients => Ok(()),
        Identity::Account(_) => Err(Denial::NotPublished),
    }
}
