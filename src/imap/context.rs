//! What every IMAP session of a daemon shares: accounts, store, TLS, limits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio_rustls::TlsAcceptor;

use crate::address::Address;
use crate::auth::Authenticator;
use crate::config::{Config, TlsMode};
use crate::store::MailStore;

/// Simultaneous sessions of one account (Dovecot's `mail_max_userip_connections` is 10 per
/// user and address; clients open one per watched folder, so allow more in all).
pub const SESSIONS_PER_USER: u32 = 50;

pub struct ImapContext {
    pub hostname: String,
    pub authenticator: Arc<Authenticator>,
    pub store: Arc<MailStore>,
    pub tls: Option<TlsAcceptor>,
    pub tls_mode: TlsMode,
    /// Largest literal (APPEND message) accepted: `smtp.maxMessageSize`.
    pub max_literal: u32,
    pub users: UserLimiter,
}

impl ImapContext {
    pub fn new(
        config: &Config,
        authenticator: Arc<Authenticator>,
        store: Arc<MailStore>,
        tls: Option<TlsAcceptor>,
    ) -> ImapContext {
        ImapContext {
            hostname: config
                .helo_name
                .clone()
                .unwrap_or_else(|| "localhost".into()),
            authenticator,
            store,
            tls,
            tls_mode: config.tls.mode,
            max_literal: u32::try_from(config.smtp.max_message_size).unwrap_or(u32::MAX),
            users: UserLimiter::new(SESSIONS_PER_USER),
        }
    }

    /// STARTTLS is offered (a certificate is there and the mode isn't `none`).
    pub fn starttls_offered(&self) -> bool {
        self.tls.is_some() && self.tls_mode != TlsMode::None
    }

    /// Passwords may be sent on this connection.
    pub fn login_allowed(&self, tls_active: bool) -> bool {
        tls_active || self.tls_mode != TlsMode::Required
    }
}

/// Counts sessions per account; a slot is freed when its guard drops.
#[derive(Clone)]
pub struct UserLimiter {
    counts: Arc<Mutex<HashMap<Address, u32>>>,
    limit: u32,
}

pub struct UserSlot {
    limiter: UserLimiter,
    account: Address,
}

impl UserLimiter {
    pub fn new(limit: u32) -> UserLimiter {
        UserLimiter {
            counts: Arc::new(Mutex::new(HashMap::new())),
            limit,
        }
    }

    pub fn acquire(&self, account: &Address) -> Option<UserSlot> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(account.clone()).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(UserSlot {
            limiter: self.clone(),
            account: account.clone(),
        })
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut counts = self
            .limiter
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.account) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.account);
            }
        }
    }
}
