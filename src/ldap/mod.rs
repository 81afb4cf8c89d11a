//! The read-only LDAPv3 address book (`icsmail ldapd`): every mailbox as an `inetOrgPerson`
//! entry under each `addressBook.baseDn`. The codec is ldap3_proto's; the rest is here in small
//! parts: bounds on what a client may send (`bounds`), distinguished names (`dn`), the entries
//! built from the live settings (`entries`), filter evaluation (`filter`), who may read what
//! (`access`), searches with scopes, attributes, limits and paged results (`search`), the
//! RootDSE (`rootdse`), binds (`bind`), the sans-I/O core of a connection (`proto`) and the
//! tokio driver (`session`, `server`).
//! docs/ldap.md says what a client sees.

pub mod access;
pub mod bind;
pub mod bounds;
pub mod dn;
pub mod entries;
pub mod error;
pub mod filter;
pub mod proto;
pub mod rootdse;
pub mod search;
pub mod server;
pub mod session;

#[cfg(test)]
mod tests;
