//! From the checked file model to [`Settings`]: the checks that need more than the model's own
//! rules (password hash syntax, folder names), the machine's facts, then every value in the
//! form its users want — durations, `usize`s, parsed networks and addresses, the listener
//! rules of `tls.mode` — made once here instead of at each use.

use std::sync::Arc;
use std::time::Duration;

use super::environment::{self, Environment};
use super::{
    AccessSettings, AntivirusSettings, GreylistSettings, PolicySettings, QueueSettings,
    RateLimitSettings, Settings, Smarthost, SmtpSettings, StorageSettings,
};
use crate::auth::{Directory, StoredHash};
use crate::config::layers::{self, Source};
use crate::config::syntax::ListEntry;
use crate::config::{Config, ConfigErrors, TlsMode};
use crate::filter::sign::KeyRing;
use crate::scan::clamd::ClamdAddress;
use crate::scan::icap::IcapUrl;
use crate::store::folder_name_problem;

/// What `tls.mode` and the presence of a certificate allow on the plain listeners of one
/// protocol family (SMTP with `smtp.certificate`; IMAP and POP3 with `access.certificate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerRules {
    /// STARTTLS (STLS) is offered: there is a certificate and the mode is not `none`.
    pub starttls: bool,
    /// Passwords may travel outside TLS (`none` and `optional`).
    pub auth_in_plaintext: bool,
}

impl ListenerRules {
    pub(super) fn new(mode: TlsMode, certificate: bool) -> ListenerRules {
        ListenerRules {
            starttls: certificate && mode != TlsMode::None,
            auth_in_plaintext: mode != TlsMode::Required,
        }
    }

    /// Whether a password may be sent on a connection that is (or is not) in TLS.
    pub fn login_allowed(&self, tls_active: bool) -> bool {
        tls_active || self.auth_in_plaintext
    }
}

/// The `--static` check: the declarative file alone, with every check that reads nothing
/// else (no override layer, secret file, certificate or host name) — what a build sandbox
/// can do.
pub fn check_static(source: &Source) -> Result<Config, ConfigErrors> {
    let model = layers::read_declarative(source)?;
    check_more(&model)?;
    Ok(model)
}

/// The whole check of `check-config`: both layers, then every file the daemons read at start
/// — secret files and the certificates with their keys — with all their problems together.
pub fn check_machine(source: &Source) -> Result<(), ConfigErrors> {
    check_machine_with(source, layers::Candidate::OnDisk)
}

/// [`check_machine`] with `candidate` as the override layer (the D-Bus admin's check of a
/// change before it writes it).
pub fn check_machine_with(
    source: &Source,
    candidate: layers::Candidate<'_>,
) -> Result<(), ConfigErrors> {
    let model = layers::read_with(source, candidate)?;
    check_more(&model)?;
    let mut errors = environment::read(&model).err().unwrap_or_default();
    let provider = crate::tls::provider(model.tls.dh_key_length);
    for (key, pair) in [
        ("smtp.certificate", &model.smtp.certificate),
        ("access.certificate", &model.access.certificate),
    ] {
        if let Some(pair) = pair {
            if let Err(err) = crate::tls::load_certified_key(pair, key, &provider) {
                errors.push(err.to_string());
            }
        }
    }
    if model.dkim.sign {
        let dkim = &model.dkim;
        let (_, problems) = KeyRing::load(&dkim.key_directory, &model.domains, &dkim.selector);
        for problem in problems {
            errors.push(format!("dkim.keyDirectory: {problem}"));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The settings of a checked model: the remaining checks, the machine's facts, the values.
pub(super) fn build(model: Config) -> Result<Settings, ConfigErrors> {
    check_more(&model)?;
    let env = environment::read(&model)?;
    Ok(assemble(model, env))
}

/// Hash syntax of inline passwords and the default folders' names: the rules of the modules
/// that own them (auth, store), which the file model doesn't know.
fn check_more(config: &Config) -> Result<(), ConfigErrors> {
    let mut errors = ConfigErrors::default();
    for (key, account) in &config.accounts {
        if let Some(text) = &account.hashed_password {
            if let Err(err) = StoredHash::parse(text) {
                errors.push(format!("accounts.{key}.hashedPassword: {err}"));
            }
        }
    }
    for (index, folder) in config.storage.default_folders.iter().enumerate() {
        if let Err(why) = folder_name_problem(&folder.name) {
            errors.push(format!(
                "storage.defaultFolders[{index}].name: {:?} {why}",
                folder.name
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn assemble(model: Config, env: Environment) -> Settings {
    Settings {
        hostname: env.hostname.clone(),
        default_auth_domain: model.default_auth_domain.clone(),
        directory: Arc::new(Directory::new(&model, &env.hashes)),
        smtp: smtp(&model),
        access: AccessSettings {
            tls: ListenerRules::new(model.tls.mode, model.access.certificate.is_some()),
            certificate: model.access.certificate.clone(),
            max_message_size: model.smtp.max_message_size,
        },
        queue: queue(&model),
        relay: smarthost(&model, &env),
        policy: policy(&model),
        storage: StorageSettings {
            path: model.storage.path.clone(),
            root: crate::store::root::link_path(&model.state_dir.0),
            default_folders: model.storage.default_folders.clone(),
        },
        nameservers: model.nameservers(),
        resolver: std::sync::OnceLock::new(),
        authenticator: std::sync::OnceLock::new(),
        dkim_keys: std::sync::OnceLock::new(),
        model,
    }
}

fn seconds(value: u32) -> Duration {
    Duration::from_secs(u64::from(value))
}

fn smtp(model: &Config) -> SmtpSettings {
    let smtp = &model.smtp;
    let limits = &smtp.limits;
    SmtpSettings {
        // Validation caps the size far below usize::MAX.
        max_message_size: usize::try_from(smtp.max_message_size).unwrap_or(usize::MAX),
        smtputf8: smtp.smtputf8,
        max_recipients: limits.max_recipients as usize,
        max_errors: limits.max_errors,
        command_timeout: seconds(limits.command_timeout),
        data_timeout: seconds(limits.data_timeout),
        connections_per_ip: limits.connections_per_ip,
        max_connections: limits.max_connections,
        tls: ListenerRules::new(model.tls.mode, smtp.certificate.is_some()),
        certificate: smtp.certificate.clone(),
    }
}

fn queue(model: &Config) -> QueueSettings {
    let queue = &model.queue;
    let minutes = |value: u32| Duration::from_secs(u64::from(value) * 60);
    QueueSettings {
        interval: minutes(queue.interval),
        delay_min_minutes: queue.delay_min,
        delay_max_minutes: queue.delay_max,
        max_lifetime: minutes(queue.max_lifetime),
        state_dir: model.state_dir.0.clone(),
    }
}

fn smarthost(model: &Config, env: &Environment) -> Option<Smarthost> {
    let relay = &model.relay;
    let host = relay.host.clone()?;
    let auth = match (&relay.auth.user, &env.relay_password) {
        (Some(user), Some(password)) if relay.auth.enable => Some((user.clone(), password.clone())),
        _ => None,
    };
    Some(Smarthost {
        host,
        port: relay.port.0,
        smtps: relay.smtps,
        auth,
        change_sender: relay
            .change_sender
            .enable
            .then(|| relay.change_sender.address.clone())
            .flatten(),
    })
}

fn policy(model: &Config) -> PolicySettings {
    let entries = |list: &[String]| -> Vec<ListEntry> {
        // Validation refused every entry that does not parse.
        list.iter()
            .filter_map(|entry| ListEntry::parse(entry).ok())
            .collect()
    };
    let whitelist = entries(&model.lists.whitelist);
    let limit = &model.rate_limit;
    let spam = &model.spam;
    let greylist = &spam.greylist;
    PolicySettings {
        rate_limit: limit.enable.then(|| RateLimitSettings {
            per_minute: limit.messages_per_minute.max(1),
            exempt: if limit.exempt_whitelist {
                whitelist
                    .iter()
                    .filter_map(|entry| match entry {
                        ListEntry::Network(net) => Some(*net),
                        _ => None,
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }),
        blacklist: entries(&model.lists.blacklist),
        whitelist,
        dnsbl: spam.dnsbl.clone(),
        dnsbl_unreachable: spam.dnsbl_unreachable,
        greylist: greylist.enable.then(|| GreylistSettings {
            ignore: seconds(greylist.ignore_seconds),
            await_retry: Duration::from_secs(u64::from(greylist.await_hours) * 3600),
            keep: Duration::from_secs(u64::from(greylist.keep_days) * 86_400),
        }),
        require_reverse_dns: spam.require_reverse_dns.unwrap_or(greylist.enable),
        antivirus: antivirus(model),
        dlp: icap_url(model.dlp.enable, &model.dlp.icap_url),
    }
}

/// Validation refused addresses and URLs that do not parse (and a missing URL of a service
/// that is on).
fn antivirus(model: &Config) -> AntivirusSettings {
    let av = &model.antivirus;
    AntivirusSettings {
        clamav: av
            .clamav
            .enable
            .then(|| av.clamav.socket.to_str().map(ClamdAddress::parse))
            .flatten()
            .and_then(Result::ok),
        kaspersky: icap_url(av.kaspersky.enable, &av.kaspersky.icap_url),
    }
}

fn icap_url(enable: bool, url: &Option<String>) -> Option<IcapUrl> {
    url.as_deref()
        .filter(|_| enable)
        .and_then(|url| IcapUrl::parse(url).ok())
}
