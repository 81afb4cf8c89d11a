//! The settings in force, swapped whole on reload (SIGHUP, `systemctl reload`, later a D-Bus
//! change): each session takes the settings of the moment it starts and keeps them to its
//! end; new sessions get the new ones; nothing is dropped. A reload that fails leaves the old
//! settings in force. What only a restart can change (the listening sockets, where the store
//! and the state are, the TLS set-up) is named in the log.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::Settings;
use crate::config::layers::Source;
use crate::config::{Config, ConfigErrors};

pub struct Live {
    current: ArcSwap<Settings>,
    source: Source,
}

/// What a successful reload changed that needs a restart to take effect.
#[derive(Debug, Default)]
pub struct Reloaded {
    pub restart_needed: Vec<&'static str>,
}

impl Live {
    pub fn new(source: Source, settings: Settings) -> Live {
        Live {
            current: ArcSwap::from_pointee(settings),
            source,
        }
    }

    /// The settings in force now (cheap: one atomic load and a reference count).
    pub fn load(&self) -> Arc<Settings> {
        self.current.load_full()
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Reads both layers again and puts the result in force; on error the old settings stay.
    pub fn reload(&self) -> Result<Reloaded, ConfigErrors> {
        let mut new = Settings::load(&self.source)?;
        let old = self.load();
        let restart_needed = restart_keys(&old.model, &new.model);
        new.keep_start_values(&old);
        self.current.store(Arc::new(new));
        Ok(Reloaded { restart_needed })
    }
}

impl crate::auth::Accounts for Live {
    fn directory(&self) -> Arc<crate::auth::Directory> {
        self.current.load().directory.clone()
    }

    fn default_domain(&self) -> Option<String> {
        self.current.load().default_auth_domain.clone()
    }
}

/// The keys whose change only a restart applies, that differ between `old` and `new`.
fn restart_keys(old: &Config, new: &Config) -> Vec<&'static str> {
    let json = |config: &Config| serde_json::to_value(config).unwrap_or_default();
    let (old, new) = (json(old), json(new));
    RESTART_KEYS
        .iter()
        .copied()
        .filter(|key| {
            let pointer = format!("/{}", key.replace('.', "/"));
            old.pointer(&pointer) != new.pointer(&pointer)
        })
        .collect()
}

/// Settings read once at start: the listening sockets (systemd holds them under socket
/// activation), the store's and the state's places, the certificates' files and the
/// key-exchange groups of the TLS set-up.
const RESTART_KEYS: &[&str] = &[
    "smtp.port",
    "smtp.interfaces",
    "smtp.submissionPort",
    "smtp.smtps.enable",
    "smtp.smtps.port",
    "access.interfaces",
    "access.implicitTls.enable",
    "imap.port",
    "imap.imapsPort",
    "pop3.port",
    "pop3.pop3sPort",
    "addressBook.port",
    "addressBook.ldapsPort",
    "stateDir",
    "smtp.certificate",
    "access.certificate",
    "tls.dhKeyLength",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    #[test]
    fn listener_changes_need_a_restart_others_do_not() {
        let old = load_str(r#"{"smtp":{"port":25,"maxMessageSize":2000}}"#).unwrap();
        let new = load_str(r#"{"smtp":{"port":2525,"maxMessageSize":4000}}"#).unwrap();
        assert_eq!(restart_keys(&old, &new), ["smtp.port"]);
        assert!(restart_keys(&old, &old).is_empty());
        // A new storage.path is a move to make, not a restart (docs/storage.md).
        let moved = load_str(r#"{"storage":{"path":"/srv/mail"}}"#).unwrap();
        assert!(restart_keys(&old, &moved).is_empty());
    }
}
