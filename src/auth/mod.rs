//! Accounts, aliases, password hashes, SASL decoding and the login authenticator.

pub mod authenticator;
pub mod directory;
pub mod flights;
pub mod password;
pub mod sasl;
pub mod verified;

pub use authenticator::{Accounts, AuthFailure, Authenticator, FixedAccounts};
pub use directory::{Account, Directory, Recipient};
pub use password::{hash_argon2id, StoredHash};
