//! The settings the daemons run with: the configuration file (and the override layer beside
//! it) turned into typed values once, with what the machine adds (host name, secret files,
//! the DNS resolver), behind an atomic swap so a reload reaches new sessions without touching
//! those in progress (docs/architecture.md, "Settings and reload").
//!
//! - the file and its override layer are read and checked by `config::layers`;
//! - `environment`: what the machine says (host name, password and relay secret files);
//! - `build`: the checks that need more than the file model, then the typed [`Settings`];
//! - `live`: the current settings and the reload.

mod build;
mod environment;
mod live;
pub mod watch;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub use build::{check_machine, check_machine_with, check_static, ListenerRules};
pub use live::{Live, Reloaded};

use crate::auth::Directory;
use crate::config::layers::{self, Source};
use crate::config::model::{CertificatePair, DefaultFolder, DnsblUnreachable};
use crate::config::syntax::ListEntry;
use crate::config::{Config, ConfigErrors};
use crate::dns::Resolver;
use crate::filter::sign::KeyRing;
use crate::net::network::Network;
use crate::scan::clamd::ClamdAddress;
use crate::scan::icap::IcapUrl;
use mail_auth::MessageAuthenticator;

/// Everything a session or a queue pass needs to know, typed.
pub struct Settings {
    /// The validated configuration (both layers merged), for what has no typed form here and
    /// for telling what a reload changed.
    pub model: Config,
    /// Our host name (`heloName`, else the machine's fully qualified name).
    pub hostname: String,
    /// A login name without `@` means `<name>@<this>`.
    pub default_auth_domain: Option<String>,
    pub directory: Arc<Directory>,
    pub smtp: SmtpSettings,
    pub access: AccessSettings,
    pub queue: QueueSettings,
    /// `relay.*` when `relay.host` is set.
    pub relay: Option<Smarthost>,
    pub policy: PolicySettings,
    pub storage: StorageSettings,
    /// `dns.nameservers` (empty: the system's resolv.conf).
    pub nameservers: Vec<SocketAddr>,
    /// The resolver asking them, made at its first use (reading resolv.conf is the machine's
    /// business, and a check of the file needs none).
    resolver: OnceLock<Arc<dyn Resolver>>,
    /// mail-auth's checker on the same servers (`dkim.verify`), made at its first use; `None`
    /// when no resolver can be built.
    authenticator: OnceLock<Option<Arc<MessageAuthenticator>>>,
    /// The DKIM signing keys (`dkim.sign`), read at their first use: a reload reads them again.
    dkim_keys: OnceLock<Arc<KeyRing>>,
}

impl Settings {
    /// Reads and builds the settings of `source` (both layers, the machine's facts).
    pub fn load(source: &Source) -> Result<Settings, ConfigErrors> {
        let model = layers::read(source)?;
        build::build(model)
    }

    /// What only a restart may change stays as `running` has it (the listeners and TLS
    /// acceptors were made from it; the store and the queue live where they started).
    fn keep_start_values(&mut self, running: &Settings) {
        self.queue.state_dir = running.queue.state_dir.clone();
        self.storage.root = running.storage.root.clone();
        self.smtp.certificate = running.smtp.certificate.clone();
        self.access.certificate = running.access.certificate.clone();
        let mode = self.model.tls.mode;
        self.smtp.tls = ListenerRules::new(mode, self.smtp.certificate.is_some());
        self.access.tls = ListenerRules::new(mode, self.access.certificate.is_some());
    }

    /// The DNS resolver of these settings.
    pub fn resolver(&self) -> Arc<dyn Resolver> {
        self.resolver
            .get_or_init(|| crate::dns::shared(&self.nameservers))
            .clone()
    }

    /// The DKIM/SPF/DMARC checker of these settings (`None`, logged, when no resolver can be
    /// built: the message then gets `temperror` results).
    pub fn authenticator(&self) -> Option<Arc<MessageAuthenticator>> {
        self.authenticator
            .get_or_init(|| match crate::dns::mail_authenticator(&self.nameservers) {
                Ok(authenticator) => Some(Arc::new(authenticator)),
                Err(err) => {
                    tracing::warn!("no DNS resolver for DKIM/SPF/DMARC: {err}");
                    None
                }
            })
            .clone()
    }

    /// The DKIM signing keys of our domains for `dkim.selector`, read from
    /// `dkim.keyDirectory` at the first use; a key file that can't be used is logged and left
    /// out (its domain's mail goes unsigned by it, never refused).
    pub fn dkim_keys(&self) -> Arc<KeyRing> {
        self.dkim_keys
            .get_or_init(|| {
                let dkim = &self.model.dkim;
                let (ring, problems) =
                    KeyRing::load(&dkim.key_directory, &self.model.domains, &dkim.selector);
                for problem in problems {
                    tracing::warn!("dkim.keyDirectory: {problem}");
                }
                let keys = ring.summary();
                if keys.is_empty() {
                    tracing::warn!(
                        directory = %dkim.key_directory.display(),
                        selector = %dkim.selector,
                        "dkim.sign is on, but no domain has a key: nothing is signed (icsmail dkim-keygen makes one)"
                    );
                } else {
                    tracing::info!(keys = %keys.join(", "), "DKIM signing keys loaded");
                }
                Arc::new(ring)
            })
            .clone()
    }

    /// [`Settings::load`] of a configuration file, the error listing every problem under the
    /// file's name (for the command line).
    pub fn from_file(path: &std::path::Path) -> anyhow::Result<Settings> {
        Settings::load(&Source::File(path.to_path_buf()))
            .map_err(|errors| anyhow::anyhow!("{}:\n{errors}", path.display()))
    }
}

/// `smtp.*` as sessions use it.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub max_message_size: usize,
    pub smtputf8: bool,
    pub max_recipients: usize,
    pub max_errors: u32,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    /// Per client address, and in all, for each connection budget.
    pub connections_per_ip: u32,
    pub max_connections: u32,
    /// What `tls.mode` and `smtp.certificate` allow.
    pub tls: ListenerRules,
    pub certificate: Option<CertificatePair>,
}

/// IMAP and POP3 (`access.*` and what they share with SMTP).
#[derive(Debug, Clone)]
pub struct AccessSettings {
    /// What `tls.mode` and `access.certificate` allow.
    pub tls: ListenerRules,
    pub certificate: Option<CertificatePair>,
    /// The largest message APPEND takes: `smtp.maxMessageSize`.
    pub max_message_size: u64,
}

/// `queue.*` as durations, and where the spool is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    /// The timer's period, which is also how much the retry delay grows per failure.
    pub interval: Duration,
    /// The first retry delay and its ceiling (whole minutes, as the envelopes keep them).
    pub delay_min_minutes: u32,
    pub delay_max_minutes: u32,
    /// How long a message may stay queued before it bounces.
    pub max_lifetime: Duration,
    pub state_dir: PathBuf,
}

/// The smarthost (`relay.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Smarthost {
    pub host: String,
    pub port: u16,
    /// Implicit TLS (otherwise STARTTLS when offered).
    pub smtps: bool,
    /// `relay.auth.user` and the password read from `relay.auth.passwordFile`.
    pub auth: Option<(String, String)>,
    /// `relay.changeSender.address` when the rewrite is on.
    pub change_sender: Option<String>,
}

/// What the policy rules are configured with (docs/policy.md).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicySettings {
    /// `rateLimit.*` when enabled.
    pub rate_limit: Option<RateLimitSettings>,
    /// `lists.whitelist`, parsed.
    pub whitelist: Vec<ListEntry>,
    /// `lists.blacklist`, parsed.
    pub blacklist: Vec<ListEntry>,
    /// `spam.dnsbl`: the zones.
    pub dnsbl: Vec<String>,
    pub dnsbl_unreachable: DnsblUnreachable,
    /// `spam.greylist.*` when enabled.
    pub greylist: Option<GreylistSettings>,
    /// `spam.requireReverseDns` (its null resolved: on exactly when greylisting is on).
    pub require_reverse_dns: bool,
    /// The virus scanners that are on.
    pub antivirus: AntivirusSettings,
    /// `dlp.icapUrl` when `dlp.enable`.
    pub dlp: Option<IcapUrl>,
}

/// `antivirus.*`: the scanners that are on, each message goes through all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AntivirusSettings {
    /// `antivirus.clamav.socket` when `antivirus.clamav.enable`.
    pub clamav: Option<ClamdAddress>,
    /// `antivirus.kaspersky.icapUrl` when `antivirus.kaspersky.enable`.
    pub kaspersky: Option<IcapUrl>,
}

impl PolicySettings {
    /// Some rule needs the client's forward-confirmed host name (looked up at connect).
    pub fn needs_client_name(&self) -> bool {
        self.require_reverse_dns
            || self
                .whitelist
                .iter()
                .chain(&self.blacklist)
                .any(|entry| matches!(entry, ListEntry::Name(_)))
    }
}

/// `spam.greylist.*` as durations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GreylistSettings {
    /// A retry sooner than this is refused again.
    pub ignore: Duration,
    /// A retry later than this starts over.
    pub await_retry: Duration,
    /// A network that passed is not greylisted again for this long.
    pub keep: Duration,
}

/// `rateLimit.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// Messages allowed per client address per minute.
    pub per_minute: u32,
    /// Networks never limited (the IP and network entries of `lists.whitelist` with
    /// `exemptWhitelist`).
    pub exempt: Vec<Network>,
}

/// `storage.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageSettings {
    /// `storage.path` as configured: where the store is meant to be.
    pub path: PathBuf,
    /// Where every store user reaches the mail: the `mail-root` link in `stateDir`, which
    /// names the tree in force (the configured one, or the old one until a move is made;
    /// docs/storage.md, "Moving the store").
    pub root: PathBuf,
    pub default_folders: Vec<DefaultFolder>,
}
