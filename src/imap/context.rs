//! What every IMAP session of a daemon shares: accounts, store, TLS, limits.

use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

use crate::address::Address;
use crate::auth::Authenticator;
use crate::net::limits::{ConnectionLimiter, ConnectionSlot};
use crate::settings::{ListenerRules, Settings};
use crate::store::MailStore;

/// Simultaneous sessions of one account (Dovecot's `mail_max_userip_connections` is 10 per
/// user and address; clients open one per watched folder, so allow more in all).
pub const SESSIONS_PER_USER: u32 = 50;

pub struct ImapContext {
    pub hostname: String,
    pub authenticator: Arc<Authenticator>,
    pub store: Arc<MailStore>,
    pub tls: Option<TlsAcceptor>,
    /// What `tls.mode` allows (with `access.certificate`).
    pub tls_rules: ListenerRules,
    /// Largest message APPEND takes: `smtp.maxMessageSize`.
    pub max_message: u32,
    /// Sessions per account (no total here: connections are capped by the listeners).
    pub users: ConnectionLimiter<Address>,
}

impl ImapContext {
    pub fn new(
        settings: &Settings,
        authenticator: Arc<Authenticator>,
        store: Arc<MailStore>,
        tls: Option<TlsAcceptor>,
    ) -> ImapContext {
        ImapContext {
            hostname: settings.hostname.clone(),
            authenticator,
            store,
            tls,
            tls_rules: settings.access.tls,
            max_message: u32::try_from(settings.access.max_message_size).unwrap_or(u32::MAX),
            users: ConnectionLimiter::new(SESSIONS_PER_USER, u32::MAX),
        }
    }

    /// STARTTLS is offered (a certificate is there and the mode isn't `none`).
    pub fn starttls_offered(&self) -> bool {
        self.tls.is_some() && self.tls_rules.starttls
    }

    /// Passwords may be sent on this connection.
    pub fn login_allowed(&self, tls_active: bool) -> bool {
        self.tls_rules.login_allowed(tls_active)
    }
}

/// A session's slot in its account's count (freed when dropped).
pub type UserSlot = ConnectionSlot<Address>;
