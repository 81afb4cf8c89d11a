//! `org.icsmail.Mail1.Mailboxes`: accounts — create, delete, password, quota, aliases — and
//! their use. Accounts made here live in the override layer (`accounts.<address>`); one the
//! declarative file declares can be changed (an override of its password, quota or aliases)
//! but not deleted here: the file is the base, so it is removed there (docs/dbus.md). A
//! password arrives over the bus and only its argon2id hash is stored; it is never logged.

use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::Mutex;
use tracing::info;
use zbus::object_server::SignalEmitter;

use super::error::AdminError;
use super::keys::KeyPath;
use super::overrides::{Layer, Overrides};
use super::settings::SettingsInterface;
use crate::address::Address;
use crate::auth::{hash_argon2id, StoredHash};
use crate::settings::Settings;
use crate::store::MailStore;

pub struct MailboxesInterface {
    pub overrides: Arc<Overrides>,
    pub edits: Arc<Mutex<()>>,
}

/// One account as `List` gives it: address, display name, quota in bytes (0: none), bytes
/// used, messages.
pub type Listed = (String, String, u64, u64, u64);

fn account_path(address: &str) -> KeyPath {
    KeyPath(vec!["accounts".into(), address.to_string()])
}

fn field_path(address: &str, field: &str) -> KeyPath {
    KeyPath(vec!["accounts".into(), address.to_string(), field.into()])
}

/// The hash to store for what the caller gave: a hash as it is, a password hashed.
fn stored_hash(secret: &str) -> Result<String, AdminError> {
    if secret.starts_with("$argon2id$") || secret.starts_with("$6$") {
        StoredHash::parse(secret)
            .map_err(|err| AdminError::InvalidArgument(format!("password: {err}")))?;
        return Ok(secret.to_string());
    }
    if secret.is_empty() {
        return Err(AdminError::InvalidArgument("password: empty".into()));
    }
    hash_argon2id(secret.as_bytes()).map_err(|err| AdminError::Failed(format!("{err:#}")))
}

/// The account `address` in force and the layer it comes from; an error when there is none.
fn existing(overrides: &Overrides, address: &str) -> Result<(Value, Layer), AdminError> {
    overrides
        .get(&account_path(address))?
        .ok_or_else(|| AdminError::InvalidArgument(format!("{address}: no such account")))
}

/// Makes the mailbox (with `storage.defaultFolders`) at once, so a client sees it before the
/// daemons reload.
fn make_mailbox(overrides: &Overrides, address: &str) -> Result<(), AdminError> {
    let settings = Settings::load(overrides.source())?;
    let account = Address::parse(address)
        .map_err(|err| AdminError::InvalidArgument(format!("{address}: {err}")))?;
    let storage = &settings.storage;
    MailStore::new(storage.root.clone(), storage.default_folders.clone())
        .ensure_account(&account)
        .map(|_| ())
        .map_err(|err| AdminError::Failed(format!("creating the mailbox of {address}: {err}")))
}

impl MailboxesInterface {
    /// Runs `edit` on the override layer under the edit lock, off the async threads, then
    /// signals the change of `accounts.<address>`.
    async fn edit<T: Send + 'static>(
        &self,
        address: &str,
        emitter: &SignalEmitter<'_>,
        edit: impl FnOnce(&Overrides, &str) -> Result<T, AdminError> + Send + 'static,
    ) -> Result<T, AdminError> {
        let _edit = self.edits.lock().await;
        let overrides = self.overrides.clone();
        let owned = address.trim().to_string();
        let result = tokio::task::spawn_blocking(move || edit(&overrides, &owned)).await??;
        SettingsInterface::changed(emitter, &format!("accounts.{}", address.trim())).await?;
        Ok(result)
    }
}

#[zbus::interface(name = "org.icsmail.Mail1.Mailboxes")]
impl MailboxesInterface {
    /// Creates the account `address` (in a domain of `domains`) with its mailbox and the
    /// default folders. `password` is a password (stored as its argon2id hash) or a hash
    /// (`$argon2id$…`, `$6$…`); `display_name` may be empty.
    async fn create(
        &self,
        address: &str,
        display_name: &str,
        password: &str,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
        #[zbus(header)] header: zbus::message::Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<(), AdminError> {
        super::polkit::authorize(&header, connection).await?;
        let (display_name, password) = (display_name.to_string(), password.to_string());
        self.edit(address, &emitter, move |overrides, address| {
            if overrides.get(&account_path(address))?.is_some() {
                return Err(AdminError::InvalidArgument(format!(
                    "{address}: the account exists"
                )));
            }
            let mut account = json!({"hashedPassword": stored_hash(&password)?});
            if !display_name.is_empty() {
                account["displayName"] = json!(display_name);
            }
            overrides.set(&account_path(address), account)?;
            Ok(())
        })
        .await?;
        // Made once the edit lock is released: a storage move takes that lock under its
        // pause, and making a mailbox waits for the pause to end (docs/storage.md).
        let overrides = self.overrides.clone();
        let owned = address.trim().to_string();
        tokio::task::spawn_blocking(move || make_mailbox(&overrides, &owned)).await??;
        info!(account = address, "account created");
        Ok(())
    }

    /// Deletes the account `address` made over D-Bus (its mail stays on disk). An account of
    /// the declarative file is refused: remove it there.
    async fn delete(
        &self,
        address: &str,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
        #[zbus(header)] header: zbus::message::Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<(), AdminError> {
        super::polkit::authorize(&header, connection).await?;
        self.edit(address, &emitter, |overrides, address| {
            let (_, layer) = existing(overrides, address)?;
            let declared = overrides.declares(&account_path(address))?;
            if declared || layer != Layer::Override {
                return Err(AdminError::InvalidArgument(format!(
                    "{address}: declared in the configuration file; remove it there"
                )));
            }
            overrides.reset(&account_path(address))?;
            Ok(())
        })
        .await?;
        info!(
            account = address,
            "account deleted (its mail stays on disk)"
        );
        Ok(())
    }

    /// Sets the password of `address` (a password, stored as its hash, or a hash).
    async fn set_password(
        &self,
        address: &str,
        password: &str,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
        #[zbus(header)] header: zbus::message::Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<(), AdminError> {
        super::polkit::authorize(&header, connection).await?;
        let password = password.to_string();
        self.edit(address, &emitter, move |overrides, address| {
            existing(overrides, address)?;
            let hash = stored_hash(&password)?;
            // A hash file of the declarative account would conflict with an inline hash.
            overrides.set_many(&[
                (field_path(address, "hashedPassword"), json!(hash)),
                (field_path(address, "hashedPasswordFile"), Value::Null),
            ])?;
            Ok(())
        })
        .await?;
        info!(account = address, "password changed");
        Ok(())
    }

    /// Sets the quota of `address` in bytes; 0 removes it.
    async fn set_quota(
        &self,
        address: &str,
        bytes: u64,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
        #[zbus(header)] header: zbus::message::Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<(), AdminError> {
        super::polkit::authorize(&header, connection).await?;
        self.edit(address, &emitter, move |overrides, address| {
            existing(overrides, address)?;
            let value = if bytes == 0 {
                Value::Null
            } else {
                json!(bytes)
            };
            overrides.set(&field_path(address, "quota"), value)?;
            Ok(())
        })
        .await?;
        info!(account = address, bytes, "quota set");
        Ok(())
    }

    /// Adds the alias `alias` to `address`; false when it had it.
    async fn add_alias(
        &self,
        address: &str,
        alias: &str,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
        #[zbus(header)] header: zbus::message::Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<bool, AdminError> {
        super::polkit::authorize(&header, connection).await?;
        let alias = alias.trim().to_string();
        self.edit(address, &emitter, move |overrides, address| {
            change_aliases(overrides, address, |aliases| {
                let absent = !aliases.contains(&alias);
                if absent {
                    aliases.push(alias);
                }
                absent
            })
        })
        .await
    }

    /// Removes the alias `alias` from `address`; false when it had not it.
    async fn remove_alias(
        &self,
        address: &str,
        alias: &str,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
        #[zbus(header)] header: zbus::message::Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<bool, AdminError> {
        super::polkit::authorize(&header, connection).await?;
        let alias = alias.trim().to_string();
        self.edit(address, &emitter, move |overrides, address| {
            change_aliases(overrides, address, |aliases| {
                let before = aliases.len();
                aliases.retain(|a| *a != alias);
                aliases.len() != before
            })
        })
        .await
    }

    /// Every account: (address, display name, quota bytes or 0, bytes used, messages).
    async fn list(&self) -> Result<Vec<Listed>, AdminError> {
        let overrides = self.overrides.clone();
        tokio::task::spawn_blocking(move || {
            let settings = Settings::load(overrides.source())?;
            let storage = &settings.storage;
            let store = MailStore::new(storage.root.clone(), storage.default_folders.clone());
            let mut out = Vec::new();
            for (address, account) in &settings.model.accounts {
                let quota = account.quota.unwrap_or(0);
                let usage = Address::parse(address)
                    .ok()
                    .and_then(|parsed| store.usage(&parsed, quota).ok());
                let (bytes, messages) = usage.map_or((0, 0), |u| (u.bytes, u.messages));
                let name = account.display_name.clone().unwrap_or_default();
                out.push((address.clone(), name, quota, bytes, messages));
            }
            Ok(out)
        })
        .await?
    }
}

/// Applies `edit` to the aliases of `address` in force and writes them when it changed any.
fn change_aliases(
    overrides: &Overrides,
    address: &str,
    edit: impl FnOnce(&mut Vec<String>) -> bool,
) -> Result<bool, AdminError> {
    let (account, _) = existing(overrides, address)?;
    let mut aliases: Vec<String> = account
        .get("aliases")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if !edit(&mut aliases) {
        return Ok(false);
    }
    overrides.set(&field_path(address, "aliases"), json!(aliases))?;
    Ok(true)
}
