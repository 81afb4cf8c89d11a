//! Accounts, aliases and password hashes.

pub mod directory;
pub mod password;

pub use directory::{Account, Directory, Recipient};
pub use password::{hash_argon2id, StoredHash};
