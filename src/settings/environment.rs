//! What the machine adds to a configuration: the host's fully qualified name when `heloName`
//! is unset, the password hashes in `hashedPasswordFile`s and the smarthost password in
//! `relay.auth.passwordFile`. Read in one step that names the key of whatever fails, at start
//! and at every reload (so a replaced secret file takes effect on `systemctl reload`).

use std::collections::BTreeMap;

use crate::address::normalize_domain;
use crate::auth::StoredHash;
use crate::config::{Config, ConfigErrors};

/// The facts read for one configuration.
#[derive(Debug, Default)]
pub struct Environment {
    /// `heloName`, or the machine's name.
    pub hostname: String,
    /// The hash of each account (by its key in `accounts`), from the file or inline.
    pub hashes: BTreeMap<String, StoredHash>,
    /// The smarthost password (the first line of `relay.auth.passwordFile`), when AUTH is on.
    pub relay_password: Option<String>,
}

/// Reads everything `config` names outside itself; every problem names its key.
pub fn read(config: &Config) -> Result<Environment, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    let mut env = Environment {
        hostname: config.helo_name.clone().unwrap_or_else(host_fqdn),
        ..Environment::default()
    };
    for (key, account) in &config.accounts {
        let path = format!("accounts.{key}");
        let (key_path, text) = match (&account.hashed_password, &account.hashed_password_file) {
            (Some(text), _) => (format!("{path}.hashedPassword"), text.clone()),
            (None, Some(file)) => {
                let key_path = format!("{path}.hashedPasswordFile");
                match std::fs::read_to_string(file) {
                    Ok(text) => (key_path, text),
                    Err(err) => {
                        errors.push(format!("{key_path}: cannot read {}: {err}", file.display()));
                        continue;
                    }
                }
            }
            // Validation refused this already.
            (None, None) => continue,
        };
        match StoredHash::parse(&text) {
            Ok(hash) => {
                env.hashes.insert(key.clone(), hash);
            }
            Err(err) => errors.push(format!("{key_path}: {err}")),
        }
    }
    let auth = &config.relay.auth;
    if let (true, Some(file)) = (auth.enable, &auth.password_file) {
        match std::fs::read_to_string(file) {
            Ok(text) if text.lines().next().unwrap_or("").is_empty() => errors.push(format!(
                "relay.auth.passwordFile: {} has an empty first line (the password)",
                file.display()
            )),
            Ok(text) => env.relay_password = text.lines().next().map(str::to_string),
            Err(err) => errors.push(format!(
                "relay.auth.passwordFile: cannot read {}: {err}",
                file.display()
            )),
        }
    }
    if errors.is_empty() {
        Ok(env)
    } else {
        Err(errors)
    }
}

/// The machine's fully qualified name: the host name, or its canonical name from the resolver
/// (`/etc/hosts`, DNS) when the host name has no dot; `localhost` if neither is a host name.
fn host_fqdn() -> String {
    let name = gethostname::gethostname().to_string_lossy().into_owned();
    let qualified = if name.contains('.') {
        Some(name.clone())
    } else {
        canonical_name(&name)
    };
    qualified
        .and_then(|fqdn| normalize_domain(&fqdn))
        .or_else(|| normalize_domain(&name))
        .unwrap_or_else(|| "localhost".to_string())
}

/// getaddrinfo(3) with AI_CANONNAME.
fn canonical_name(host: &str) -> Option<String> {
    let host = std::ffi::CString::new(host).ok()?;
    // SAFETY: a zeroed addrinfo is a valid "no hints" value; we set the flags we need.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_flags = libc::AI_CANONNAME;
    let mut result: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: valid C strings and pointers; the result list is freed below.
    let status = unsafe { libc::getaddrinfo(host.as_ptr(), std::ptr::null(), &hints, &mut result) };
    if status != 0 || result.is_null() {
        return None;
    }
    // SAFETY: `result` is a valid list from getaddrinfo; ai_canonname is NUL-terminated or null.
    let name = unsafe {
        let canon = (*result).ai_canonname;
        (!canon.is_null()).then(|| {
            std::ffi::CStr::from_ptr(canon)
                .to_string_lossy()
                .into_owned()
        })
    };
    // SAFETY: freed once.
    unsafe { libc::freeaddrinfo(result) };
    name.filter(|name| name.contains('.'))
}
