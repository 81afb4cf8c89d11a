//! The configuration tree: one JSON file whose key paths are the NixOS option paths under
//! `services.icsMail` (minus the Nix-only options). Every struct denies unknown keys, and every
//! default here is the seed's default (DESIGN.md §3); the NixOS module does not repeat them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

use super::types::{Port, TlsMode};

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Config {
    /// Mail domains this server is final destination for (case-insensitive).
    pub domains: Vec<String>,
    /// Mailboxes, keyed by their address.
    pub accounts: BTreeMap<String, Account>,
    /// Host name sent in the SMTP greeting, EHLO and Received headers; null = the host's FQDN.
    pub helo_name: Option<String>,
    /// Domain appended to a login name without `@` ("usermail" → "usermail@<domain>").
    pub default_auth_domain: Option<String>,
    /// Queue, greylist, UID maps, runtime overrides.
    pub state_dir: StateDir,
    pub smtp: Smtp,
    pub access: Access,
    pub imap: Imap,
    pub pop3: Pop3,
    pub tls: Tls,
    pub rate_limit: RateLimit,
    pub queue: Queue,
    pub relay: Relay,
    pub lists: Lists,
    pub storage: Storage,
    pub antivirus: Antivirus,
    pub dkim: Dkim,
    pub dlp: Dlp,
    /// Re-encode the Subject of outgoing mail as UTF-8.
    pub recode_subject_utf8: bool,
    pub spam: Spam,
    pub address_book: AddressBook,
    pub dns: Dns,
}

impl Config {
    /// The server's host name: `heloName`, which validation always fills (from the host's
    /// FQDN when the file leaves it null); `localhost` only for an unvalidated config.
    pub fn hostname(&self) -> String {
        self.helo_name.clone().unwrap_or_else(|| "localhost".into())
    }

    /// `dns.nameservers` as socket addresses (validation refuses entries that aren't).
    pub fn nameservers(&self) -> Vec<std::net::SocketAddr> {
        self.dns
            .nameservers
            .iter()
            .filter_map(|server| crate::dns::parse_nameserver(server))
            .collect()
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Account {
    /// argon2id (`$argon2id$…`) or SHA-512-crypt (`$6$…`) hash.
    pub hashed_password: Option<String>,
    /// File holding such a hash (read at start; keeps hashes out of the world-readable store).
    pub hashed_password_file: Option<PathBuf>,
    /// Further addresses delivered to this mailbox.
    pub aliases: Vec<String>,
    pub display_name: Option<String>,
    /// Bytes; null = unlimited.
    pub quota: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(transparent)]
pub struct StateDir(pub PathBuf);

impl Default for StateDir {
    fn default() -> Self {
        StateDir(PathBuf::from("/var/lib/icsmail"))
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CertificatePair {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Smtp {
    /// Inbound SMTP (MX) port.
    pub port: Port,
    /// Interface names or addresses SMTP listens on; empty = all.
    pub interfaces: Vec<String>,
    /// Submission port (AUTH required); null disables submission.
    pub submission_port: Option<Port>,
    /// Largest message accepted, in bytes (also Roundcube's attachment limit).
    pub max_message_size: u64,
    /// Offer SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    pub certificate: Option<CertificatePair>,
    pub smtps: Smtps,
    pub limits: SmtpLimits,
}

impl Default for Smtp {
    fn default() -> Self {
        Smtp {
            port: Port(25),
            interfaces: Vec::new(),
            submission_port: Some(Port(587)),
            max_message_size: 26_214_400,
            smtputf8: true,
            certificate: None,
            smtps: Smtps::default(),
            limits: SmtpLimits::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Smtps {
    pub enable: bool,
    pub port: Port,
}

impl Default for Smtps {
    fn default() -> Self {
        Smtps {
            enable: false,
            port: Port(465),
        }
    }
}

/// Protection limits of the SMTP server (not in the seed; Postfix-like defaults).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct SmtpLimits {
    /// Recipients per message; more get `452 4.5.3`.
    pub max_recipients: u32,
    /// Protocol errors per session before `421` and disconnect.
    pub max_errors: u32,
    /// Seconds to wait for a command (RFC 5321 §4.5.3.2: at least 5 minutes).
    pub command_timeout: u32,
    /// Seconds to wait for the next block of message data.
    pub data_timeout: u32,
    /// Simultaneous connections from one client address.
    pub connections_per_ip: u32,
    /// Simultaneous connections in all.
    pub max_connections: u32,
}

impl Default for SmtpLimits {
    fn default() -> Self {
        SmtpLimits {
            max_recipients: 100,
            max_errors: 10,
            command_timeout: 300,
            data_timeout: 600,
            connections_per_ip: 50,
            max_connections: 1000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Access {
    /// Interface names or addresses IMAP and POP3 listen on; empty = all.
    pub interfaces: Vec<String>,
    pub certificate: Option<CertificatePair>,
    pub implicit_tls: ImplicitTls,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ImplicitTls {
    /// Also listen for IMAPS and POP3S.
    pub enable: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Imap {
    pub port: Port,
    pub imaps_port: Port,
}

impl Default for Imap {
    fn default() -> Self {
        Imap {
            port: Port(143),
            imaps_port: Port(993),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Pop3 {
    pub port: Port,
    pub pop3s_port: Port,
}

impl Default for Pop3 {
    fn default() -> Self {
        Pop3 {
            port: Port(110),
            pop3s_port: Port(995),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Tls {
    pub mode: TlsMode,
    /// 2048, 3072 or 4096: minimum key-exchange strength by equivalence (docs/settings.md).
    pub dh_key_length: u32,
}

impl Default for Tls {
    fn default() -> Self {
        Tls {
            mode: TlsMode::None,
            dh_key_length: 2048,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct RateLimit {
    pub enable: bool,
    pub messages_per_minute: u32,
    pub exempt_whitelist: bool,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            enable: false,
            messages_per_minute: 60,
            exempt_whitelist: true,
        }
    }
}

/// All values in minutes, as in the seed.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Queue {
    pub interval: u32,
    pub delay_min: u32,
    pub delay_max: u32,
    pub max_lifetime: u32,
}

impl Default for Queue {
    fn default() -> Self {
        Queue {
            interval: 30,
            delay_min: 180,
            delay_max: 300,
            max_lifetime: 5760,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Relay {
    /// Smarthost for all non-local mail; null = direct MX delivery.
    pub host: Option<String>,
    pub port: Port,
    pub smtps: bool,
    pub auth: RelayAuth,
    pub change_sender: ChangeSender,
}

impl Default for Relay {
    fn default() -> Self {
        Relay {
            host: None,
            port: Port(25),
            smtps: false,
            auth: RelayAuth::default(),
            change_sender: ChangeSender::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct RelayAuth {
    pub enable: bool,
    pub user: Option<String>,
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ChangeSender {
    pub enable: bool,
    pub address: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Lists {
    /// IP addresses, networks (CIDR), domains, mail server host names, mailboxes.
    pub whitelist: Vec<String>,
    pub blacklist: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Storage {
    /// Root of the Maildir++ tree: `<path>/<domain>/<local part>/`.
    pub path: PathBuf,
    /// Folders created with every mailbox, with their SPECIAL-USE role.
    pub default_folders: Vec<DefaultFolder>,
}

impl Default for Storage {
    fn default() -> Self {
        let folder = |name: &str, role: SpecialUse| DefaultFolder {
            name: name.to_string(),
            special_use: Some(role),
        };
        Storage {
            path: PathBuf::from("/var/lib/icsmail/mail"),
            default_folders: vec![
                folder("Drafts", SpecialUse::Drafts),
                folder("Sent", SpecialUse::Sent),
                folder("Trash", SpecialUse::Trash),
                folder("Junk", SpecialUse::Junk),
            ],
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DefaultFolder {
    pub name: String,
    #[serde(default)]
    pub special_use: Option<SpecialUse>,
}

/// RFC 6154 roles.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum SpecialUse {
    All,
    Archive,
    Drafts,
    Flagged,
    Junk,
    Sent,
    Trash,
}

impl SpecialUse {
    /// The IMAP attribute, e.g. `\Sent`.
    pub fn attribute(self) -> &'static str {
        match self {
            SpecialUse::All => "\\All",
            SpecialUse::Archive => "\\Archive",
            SpecialUse::Drafts => "\\Drafts",
            SpecialUse::Flagged => "\\Flagged",
            SpecialUse::Junk => "\\Junk",
            SpecialUse::Sent => "\\Sent",
            SpecialUse::Trash => "\\Trash",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Antivirus {
    pub clamav: Clamav,
    pub kaspersky: Kaspersky,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Clamav {
    pub enable: bool,
    /// clamd's Unix socket.
    pub socket: PathBuf,
}

impl Default for Clamav {
    fn default() -> Self {
        Clamav {
            enable: false,
            socket: PathBuf::from("/run/clamav/clamd.ctl"),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Kaspersky {
    pub enable: bool,
    /// `icap://host:port/service` of the Kaspersky ICAP server.
    pub icap_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Dkim {
    pub verify: bool,
    pub sign: bool,
    pub selector: String,
    /// Holds the DKIM private keys (PEM): `<domain>.<selector>.rsa.pem` and
    /// `<domain>.<selector>.ed25519.pem` (`filter::sign`).
    pub key_directory: PathBuf,
}

impl Default for Dkim {
    fn default() -> Self {
        Dkim {
            verify: false,
            sign: false,
            selector: "default".to_string(),
            key_directory: PathBuf::from("/var/lib/icsmail/dkim"),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Dlp {
    pub enable: bool,
    pub icap_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Spam {
    /// DNSBL zones queried with the client's address.
    pub dnsbl: Vec<String>,
    /// What a DNSBL that does not answer means (beyond the seed).
    pub dnsbl_unreachable: DnsblUnreachable,
    /// Refuse (temporarily) clients whose address has no forward-confirmed reverse DNS name;
    /// null = on exactly when greylisting is on (beyond the seed).
    pub require_reverse_dns: Option<bool>,
    pub greylist: Greylist,
}

/// `spam.dnsblUnreachable`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum DnsblUnreachable {
    /// `451 4.7.1`: the sender retries, nothing is lost.
    #[default]
    Tempfail,
    /// `554 5.7.1`, the seed's literal reading ("no response at all" refuses too).
    Reject,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Greylist {
    pub enable: bool,
    /// A retry sooner than this (seconds) is ignored.
    pub ignore_seconds: u32,
    /// A retry later than this (hours) starts over.
    pub await_hours: u32,
    /// A sender that passed stays whitelisted this many days.
    pub keep_days: u32,
}

impl Default for Greylist {
    fn default() -> Self {
        Greylist {
            enable: false,
            ignore_seconds: 60,
            await_hours: 4,
            keep_days: 36,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct AddressBook {
    pub enable: bool,
    pub port: Port,
    /// LDAPS (TLS from the first byte), when `access.implicitTls.enable`.
    pub ldaps_port: Port,
    /// One or more search bases separated by `;`.
    pub base_dn: String,
    /// "Use ICS Address Book": publish the book to mail clients.
    pub publish_to_clients: bool,
}

impl Default for AddressBook {
    fn default() -> Self {
        AddressBook {
            enable: false,
            port: Port(389),
            ldaps_port: Port(636),
            base_dn: String::new(),
            publish_to_clients: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Dns {
    /// `ip` or `ip:port` resolvers; empty = the system's resolv.conf.
    pub nameservers: Vec<String>,
}
