//! The one way a setting is overridden over D-Bus, shared by `org.icsmail.Mail1.Settings`
//! (`Set`, `SetValue`, `Reset`) and the group objects' `Properties.Set` (docs/dbus.md), and
//! the `Changed` signal they send. Below both interfaces, so neither imports the other.

use std::sync::Arc;

use tokio::sync::Mutex;
use zbus::object_server::SignalEmitter;

use super::error::AdminError;
use super::overrides::Overrides;

/// The interface of `Settings` (its `Changed(name)` signal is declared for introspection on
/// `SettingsInterface`; its `Values` property is invalidated by the group objects).
pub const SETTINGS_INTERFACE: &str = "org.icsmail.Mail1.Settings";

/// Overrides the setting `name` with `value`, checked as the whole configuration is at start
/// (the one path of `Set`, `SetValue` and a group property's `Properties.Set`); the
/// setting's resolved name. The caller has authorized the change.
pub async fn set_json(
    overrides: &Arc<Overrides>,
    edits: &Mutex<()>,
    name: &str,
    value: serde_json::Value,
) -> Result<String, AdminError> {
    let _edit = edits.lock().await;
    let overrides = overrides.clone();
    let name = name.to_string();
    tokio::task::spawn_blocking(move || {
        let path = overrides.resolve(&name).map_err(unknown)?;
        if moves_the_store(&path.name()) {
            return Err(store_moves_only(&path.name()));
        }
        overrides.set(&path, value)?;
        Ok::<_, AdminError>(path.name())
    })
    .await?
}

/// Sends `org.icsmail.Mail1.Settings.Changed(name)` from `emitter`'s object.
pub async fn announce(emitter: &SignalEmitter<'_>, name: &str) -> zbus::Result<()> {
    emitter.emit(SETTINGS_INTERFACE, "Changed", &(name,)).await
}

pub fn unknown(errors: crate::config::ConfigErrors) -> AdminError {
    AdminError::UnknownSetting(errors.to_string())
}

/// `storage.path` itself or an object holding it (`storage`): only a move may change where
/// the mail is, and it sets the setting itself.
pub fn moves_the_store(name: &str) -> bool {
    name == "storage" || name == "storage.path"
}

pub fn store_moves_only(name: &str) -> AdminError {
    AdminError::InvalidArgument(format!(
        "{name}: use org.icsmail.Mail1.Storage.Move(path), which moves the mail there and then \
         sets storage.path (storage.defaultFolders can be set alone)"
    ))
}
