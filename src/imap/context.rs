//! What every IMAP session of a daemon shares: accounts, store, TLS, limits.

use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

use crate::address::Address;
use crate::auth::Authenticator;
use crate::net::limits::{ConnectionLimiter, ConnectionSlot};
use crate::settings::{Live, Settings};
use crate::store::MailStore;

/// Simultaneous sessions of one account (Dovecot's `mail_max_userip_connections` is 10 per
/// user and address; clients open one per watched folder, so allow more in all).
pub const SESSIONS_PER_USER: u32 = 50;

/// What the sessions of one daemon share; each session takes the settings in force when it
/// starts (`Live::load`) and keeps them.
pub struct ImapContext {
    pub live: Arc<Live>,
    pub authenticator: Arc<Authenticator>,
    pub store: Arc<MailStore>,
    /// Present when `access.certificate` was set at start.
    pub tls: Option<TlsAcceptor>,
    /// Sessions per account (no total here: connections are capped by the listeners).
    pub users: ConnectionLimiter<Address>,
}

impl ImapContext {
    pub fn new(
        live: Arc<Live>,
        authenticator: Arc<Authenticator>,
        store: Arc<MailStore>,
        tls: Option<TlsAcceptor>,
    ) -> ImapContext {
        ImapContext {
            live,
            authenticator,
            store,
            tls,
            users: ConnectionLimiter::new(SESSIONS_PER_USER, u32::MAX),
        }
    }

    /// What a session with `settings` offers on a connection that is (or is not) in TLS.
    pub fn offer(&self, settings: &Settings, tls_active: bool) -> Offer {
        let rules = settings.access.tls;
        Offer {
            starttls: !tls_active && self.tls.is_some() && rules.starttls,
            login: rules.login_allowed(tls_active),
            append_limit: settings.access.max_message_size,
        }
    }
}

/// What a session offers: STARTTLS and whether a password may be sent (before login), the
/// APPEND limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    pub starttls: bool,
    pub login: bool,
    /// The largest APPEND accepted (`smtp.maxMessageSize`), for `APPENDLIMIT=` (RFC 7889).
    pub append_limit: u64,
}

/// A session's slot in its account's count (freed when dropped).
pub type UserSlot = ConnectionSlot<Address>;
