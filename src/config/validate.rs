//! Semantic checks after parsing: impossible values, contradictions, missing companions.
//! Every problem is collected (not just the first), one line each, starting with its key path.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use super::model::{Account, Config, DefaultFolder};
use super::syntax::{dns_name, list_entry_problem, Letters};
use super::{ConfigErrors, TlsMode};
use crate::address::{normalize_domain, Address};
use crate::scan::clamd::ClamdAddress;
use crate::scan::icap::IcapUrl;

/// Largest `smtp.maxMessageSize` accepted: messages are held in memory while received.
pub const MAX_MESSAGE_SIZE_LIMIT: u64 = 1 << 30;

/// Checks `config` as far as the file itself goes — no file is read, no name looked up —
/// and normalises it (lowercase domains and names). Every problem is collected.
pub fn validate(mut config: Config) -> Result<Config, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    check_domains(&mut config, &mut errors);
    check_accounts(&config, &mut errors);
    check_names(&mut config, &mut errors);
    check_smtp(&config, &mut errors);
    check_ports(&config, &mut errors);
    check_tls(&config, &mut errors);
    check_queue(&config, &mut errors);
    check_relay(&config, &mut errors);
    check_lists(&config, &mut errors);
    check_storage(&config, &mut errors);
    check_filters(&config, &mut errors);
    check_spam(&config, &mut errors);
    check_address_book(&config, &mut errors);
    check_dns(&config, &mut errors);
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(errors)
    }
}

fn check_domains(config: &mut Config, errors: &mut ConfigErrors) {
    let mut seen = HashSet::new();
    for (index, domain) in config.domains.iter_mut().enumerate() {
        match dns_name(domain, Letters::Unicode) {
            Ok(normal) if seen.insert(normal.clone()) => *domain = normal,
            Ok(normal) => errors.push(format!("domains[{index}]: {normal} is listed twice")),
            Err(why) => errors.push(format!("domains[{index}]: {domain:?} {why}")),
        }
    }
}

fn check_accounts(config: &Config, errors: &mut ConfigErrors) {
    let local = |address: &Address| config.domains.iter().any(|d| d == address.domain());
    // address → the key that claimed it first
    let mut claimed: BTreeMap<Address, String> = BTreeMap::new();
    for (key, account) in &config.accounts {
        let path = format!("accounts.{key}");
        match Address::parse(key) {
            Ok(address) if !local(&address) => errors.push(format!(
                "{path}: the domain {} is not in `domains`",
                address.domain()
            )),
            Ok(address) => claim(&mut claimed, address, &path, errors),
            Err(err) => errors.push(format!("{path}: not a valid address: {err}")),
        }
        for (index, alias) in account.aliases.iter().enumerate() {
            let alias_path = format!("{path}.aliases[{index}]");
            match Address::parse(alias) {
                Ok(address) if !local(&address) => errors.push(format!(
                    "{alias_path}: the domain {} is not in `domains`",
                    address.domain()
                )),
                Ok(address) => claim(&mut claimed, address, &alias_path, errors),
                Err(err) => errors.push(format!("{alias_path}: not a valid address: {err}")),
            }
        }
        if account.quota == Some(0) {
            errors.push(format!("{path}.quota: must be positive (null = unlimited)"));
        }
    }
    for (key, account) in &config.accounts {
        check_password_keys(&format!("accounts.{key}"), account, errors);
    }
}

/// Exactly one of the two password keys (the hash itself is checked where hashes are known).
fn check_password_keys(path: &str, account: &Account, errors: &mut ConfigErrors) {
    match (&account.hashed_password, &account.hashed_password_file) {
        (Some(_), None) | (None, Some(_)) => {}
        (Some(_), Some(_)) => errors.push(format!(
            "{path}: set either hashedPassword or hashedPasswordFile, not both"
        )),
        (None, None) => errors.push(format!(
            "{path}: no password: set hashedPassword or hashedPasswordFile (icsmail hash-password makes one)"
        )),
    }
}

fn claim(
    claimed: &mut BTreeMap<Address, String>,
    address: Address,
    path: &str,
    errors: &mut ConfigErrors,
) {
    if let Some(first) = claimed.get(&address) {
        errors.push(format!("{path}: {address} is already used by {first}"));
    } else {
        claimed.insert(address, path.to_string());
    }
}

fn check_names(config: &mut Config, errors: &mut ConfigErrors) {
    if let Some(name) = &config.helo_name {
        match dns_name(name, Letters::Ascii) {
            Ok(normal) => config.helo_name = Some(normal),
            Err(why) => errors.push(format!("heloName: {name:?} {why}")),
        }
    }
    if let Some(domain) = &config.default_auth_domain {
        let normal = normalize_domain(domain).unwrap_or_default();
        if config.domains.contains(&normal) {
            config.default_auth_domain = Some(normal);
        } else {
            errors.push(format!(
                "defaultAuthDomain: {domain:?} is not one of `domains`"
            ));
        }
    }
}

fn check_smtp(config: &Config, errors: &mut ConfigErrors) {
    let smtp = &config.smtp;
    if !(1024..=MAX_MESSAGE_SIZE_LIMIT).contains(&smtp.max_message_size) {
        errors.push(format!(
            "smtp.maxMessageSize: must be between 1024 and {MAX_MESSAGE_SIZE_LIMIT} bytes, got {}",
            smtp.max_message_size
        ));
    }
    let limits = &smtp.limits;
    let positive = [
        ("maxRecipients", limits.max_recipients),
        ("maxErrors", limits.max_errors),
        ("commandTimeout", limits.command_timeout),
        ("dataTimeout", limits.data_timeout),
        ("connectionsPerIp", limits.connections_per_ip),
        ("maxConnections", limits.max_connections),
    ];
    for (key, value) in positive {
        if value == 0 {
            errors.push(format!("smtp.limits.{key}: must be at least 1"));
        }
    }
    if config.rate_limit.messages_per_minute == 0 {
        errors.push("rateLimit.messagesPerMinute: must be at least 1".into());
    }
    check_interfaces("smtp.interfaces", &smtp.interfaces, errors);
    check_interfaces("access.interfaces", &config.access.interfaces, errors);
}

fn check_interfaces(key: &str, interfaces: &[String], errors: &mut ConfigErrors) {
    for (index, name) in interfaces.iter().enumerate() {
        let is_name = !name.is_empty()
            && name.len() <= 15
            && name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "-_.@:".contains(ch));
        if name.parse::<IpAddr>().is_err() && !is_name {
            errors.push(format!(
                "{key}[{index}]: {name:?} is neither an IP address nor an interface name"
            ));
        }
    }
}

/// Two enabled services may not share a port on overlapping interfaces.
fn check_ports(config: &Config, errors: &mut ConfigErrors) {
    let mut used: Vec<(&str, u16, &[String])> =
        vec![("smtp.port", config.smtp.port.0, &config.smtp.interfaces)];
    if let Some(port) = config.smtp.submission_port {
        used.push(("smtp.submissionPort", port.0, &config.smtp.interfaces));
    }
    if config.smtp.smtps.enable {
        used.push((
            "smtp.smtps.port",
            config.smtp.smtps.port.0,
            &config.smtp.interfaces,
        ));
    }
    let access = config.access.interfaces.as_slice();
    used.push(("imap.port", config.imap.port.0, access));
    used.push(("pop3.port", config.pop3.port.0, access));
    if config.access.implicit_tls.enable {
        used.push(("imap.imapsPort", config.imap.imaps_port.0, access));
        used.push(("pop3.pop3sPort", config.pop3.pop3s_port.0, access));
    }
    if config.address_book.enable {
        let book = &config.address_book;
        used.push(("addressBook.port", book.port.0, access));
        if config.access.implicit_tls.enable {
            used.push(("addressBook.ldapsPort", book.ldaps_port.0, access));
        }
    }
    for (index, (key, port, interfaces)) in used.iter().enumerate() {
        for (other, other_port, other_interfaces) in &used[..index] {
            let overlap = interfaces.is_empty()
                || other_interfaces.is_empty()
                || interfaces.iter().any(|i| other_interfaces.contains(i));
            if port == other_port && overlap {
                errors.push(format!("{key}: port {port} is already used by {other}"));
            }
        }
    }
}

fn check_tls(config: &Config, errors: &mut ConfigErrors) {
    if ![2048, 3072, 4096].contains(&config.tls.dh_key_length) {
        errors.push(format!(
            "tls.dhKeyLength: must be 2048, 3072 or 4096, got {} (1024-bit groups are broken)",
            config.tls.dh_key_length
        ));
    }
    if config.tls.mode != TlsMode::None {
        if config.smtp.certificate.is_none() {
            errors.push("smtp.certificate: required when tls.mode is optional or required".into());
        }
        if config.access.certificate.is_none() {
            errors
                .push("access.certificate: required when tls.mode is optional or required".into());
        }
    }
    if config.smtp.smtps.enable && config.smtp.certificate.is_none() {
        errors.push("smtp.smtps.enable: SMTPS needs smtp.certificate".into());
    }
    if config.access.implicit_tls.enable && config.access.certificate.is_none() {
        errors.push("access.implicitTls.enable: IMAPS/POP3S need access.certificate".into());
    }
}

fn check_queue(config: &Config, errors: &mut ConfigErrors) {
    let queue = &config.queue;
    for (key, value) in [
        ("interval", queue.interval),
        ("delayMin", queue.delay_min),
        ("delayMax", queue.delay_max),
        ("maxLifetime", queue.max_lifetime),
    ] {
        if value == 0 {
            errors.push(format!("queue.{key}: must be at least 1 minute"));
        }
    }
    if queue.delay_min > queue.delay_max {
        errors.push(format!(
            "queue.delayMin: {} is greater than queue.delayMax ({})",
            queue.delay_min, queue.delay_max
        ));
    }
    if queue.max_lifetime < queue.delay_min {
        errors.push(format!(
            "queue.maxLifetime: {} is shorter than queue.delayMin ({}): no retry could ever happen",
            queue.max_lifetime, queue.delay_min
        ));
    }
}

fn check_relay(config: &Config, errors: &mut ConfigErrors) {
    let relay = &config.relay;
    if let Some(host) = &relay.host {
        if normalize_domain(host).is_none() && host.parse::<IpAddr>().is_err() {
            errors.push(format!(
                "relay.host: {host:?} is neither a host name nor an IP address"
            ));
        }
    }
    let needs_host = |key: &str, errors: &mut ConfigErrors| {
        if relay.host.is_none() {
            errors.push(format!("{key}: set relay.host too"));
        }
    };
    if relay.auth.enable {
        needs_host("relay.auth.enable", errors);
        if relay.auth.user.as_deref().unwrap_or("").is_empty() {
            errors.push("relay.auth.user: required when relay.auth.enable is true".into());
        }
        if relay.auth.password_file.is_none() {
            errors.push("relay.auth.passwordFile: required when relay.auth.enable is true".into());
        }
    }
    if relay.smtps {
        needs_host("relay.smtps", errors);
    }
    // A set address must be valid even while the rewrite is off: switching it on later must
    // not be what reveals the mistake.
    match relay.change_sender.address.as_deref().map(Address::parse) {
        Some(Ok(_)) => {}
        Some(Err(err)) => errors.push(format!("relay.changeSender.address: {err}")),
        None if relay.change_sender.enable => errors.push(
            "relay.changeSender.address: required when relay.changeSender.enable is true".into(),
        ),
        None => {}
    }
}

fn check_lists(config: &Config, errors: &mut ConfigErrors) {
    for (key, list) in [
        ("lists.whitelist", &config.lists.whitelist),
        ("lists.blacklist", &config.lists.blacklist),
    ] {
        for (index, entry) in list.iter().enumerate() {
            if let Some(why) = list_entry_problem(entry) {
                errors.push(format!("{key}[{index}]: {entry:?} {why}"));
            }
        }
    }
}

fn check_storage(config: &Config, errors: &mut ConfigErrors) {
    if config.storage.path.as_os_str().is_empty() {
        errors.push("storage.path: must not be empty".into());
    }
    if config.state_dir.0.as_os_str().is_empty() {
        errors.push("stateDir: must not be empty".into());
    }
    let mut names = HashSet::new();
    let mut roles = HashSet::new();
    for (index, DefaultFolder { name, special_use }) in
        config.storage.default_folders.iter().enumerate()
    {
        let key = format!("storage.defaultFolders[{index}]");
        if !names.insert(name.to_lowercase()) {
            errors.push(format!("{key}.name: {name:?} is listed twice"));
        }
        if let Some(role) = special_use {
            if !roles.insert(*role) {
                errors.push(format!(
                    "{key}.specialUse: {role:?} is given to two folders"
                ));
            }
        }
    }
}

fn check_icap(key: &str, enabled: bool, url: &Option<String>, errors: &mut ConfigErrors) {
    match url {
        Some(url) => {
            if let Err(why) = IcapUrl::parse(url) {
                errors.push(format!("{key}: {why}"));
            }
        }
        None if enabled => errors.push(format!("{key}: required when the service is enabled")),
        None => {}
    }
}

fn check_filters(config: &Config, errors: &mut ConfigErrors) {
    let av = &config.antivirus;
    match av.clamav.socket.to_str() {
        Some(socket) => {
            if let Err(why) = ClamdAddress::parse(socket) {
                errors.push(format!("antivirus.clamav.socket: {why}"));
            }
        }
        None => errors.push("antivirus.clamav.socket: not valid UTF-8".into()),
    }
    check_icap(
        "antivirus.kaspersky.icapUrl",
        av.kaspersky.enable,
        &av.kaspersky.icap_url,
        errors,
    );
    check_icap(
        "dlp.icapUrl",
        config.dlp.enable,
        &config.dlp.icap_url,
        errors,
    );
    let selector = &config.dkim.selector;
    if let Err(why) = dns_name(selector, Letters::Ascii) {
        errors.push(format!("dkim.selector: {selector:?} {why}"));
    }
}

fn check_spam(config: &Config, errors: &mut ConfigErrors) {
    for (index, zone) in config.spam.dnsbl.iter().enumerate() {
        if let Err(why) = dns_name(zone, Letters::Ascii) {
            errors.push(format!("spam.dnsbl[{index}]: {zone:?} {why}"));
        }
    }
    let greylist = &config.spam.greylist;
    if greylist.await_hours == 0 {
        errors.push("spam.greylist.awaitHours: must be at least 1".into());
    }
    if u64::from(greylist.ignore_seconds) >= u64::from(greylist.await_hours) * 3600 {
        errors.push(format!(
            "spam.greylist.ignoreSeconds: {} s is not shorter than awaitHours ({} h): no retry could pass",
            greylist.ignore_seconds, greylist.await_hours
        ));
    }
    if greylist.keep_days == 0 {
        errors.push("spam.greylist.keepDays: must be at least 1".into());
    }
}

fn check_address_book(config: &Config, errors: &mut ConfigErrors) {
    let book = &config.address_book;
    if book.enable && book.base_dn.split(';').all(|dn| dn.trim().is_empty()) {
        errors.push(
            "addressBook.baseDn: at least one base DN is required when the address book is enabled"
                .into(),
        );
    }
    for (index, dn) in book.base_dn.split(';').map(str::trim).enumerate() {
        if !dn.is_empty() && !dn.contains('=') {
            errors.push(format!(
                "addressBook.baseDn: part {index} ({dn:?}) is not a DN like dc=example,dc=org"
            ));
        }
    }
}

fn check_dns(config: &Config, errors: &mut ConfigErrors) {
    for (index, server) in config.dns.nameservers.iter().enumerate() {
        let port = match (server.parse::<IpAddr>(), server.parse::<SocketAddr>()) {
            (Ok(_), _) => None,
            (_, Ok(socket)) => Some(socket.port()),
            _ => {
                errors.push(format!(
                    "dns.nameservers[{index}]: {server:?} is not an address or address:port (IPv6 with a port: [::1]:53)"
                ));
                continue;
            }
        };
        if port == Some(0) {
            errors.push(format!(
                "dns.nameservers[{index}]: {server:?}: port 0 is not a port (leave it out for 53)"
            ));
        }
    }
}
