//! `org.icsmail.Mail1.Lists`: the white- and blacklist entry by entry. An override holds a
//! list whole (docs/settings.md, "Layers and reload"), so the first change copies the
//! declarative list into the override layer; `Settings.Reset("lists.whitelist")` returns to
//! the declarative one.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::Mutex;
use tracing::info;
use zbus::object_server::SignalEmitter;

use super::error::AdminError;
use super::keys::KeyPath;
use super::overrides::Overrides;
use super::settings::SettingsInterface;

pub struct ListsInterface {
    pub overrides: Arc<Overrides>,
    pub edits: Arc<Mutex<()>>,
}

/// Which list: `whitelist` or `blacklist`.
fn list_path(list: &str) -> Result<KeyPath, AdminError> {
    match list {
        "whitelist" | "blacklist" => Ok(KeyPath(vec!["lists".into(), list.into()])),
        other => Err(AdminError::InvalidArgument(format!(
            "{other:?}: no such list (whitelist or blacklist)"
        ))),
    }
}

/// The entries of a list in force.
fn entries(overrides: &Overrides, path: &KeyPath) -> Result<Vec<String>, AdminError> {
    let value = overrides.get(path)?.map(|(value, _)| value);
    let entries = value.as_ref().and_then(Value::as_array).ok_or_else(|| {
        AdminError::Failed(format!("{}: not a list in the configuration", path.name()))
    })?;
    Ok(entries
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect())
}

/// Applies `edit` to the list in force and writes it; false when `edit` changed nothing.
async fn change(
    overrides: &Arc<Overrides>,
    list: &str,
    edit: impl FnOnce(&mut Vec<String>) -> bool + Send + 'static,
) -> Result<bool, AdminError> {
    let path = list_path(list)?;
    let overrides = overrides.clone();
    tokio::task::spawn_blocking(move || {
        let mut current = entries(&overrides, &path)?;
        if !edit(&mut current) {
            return Ok(false);
        }
        let value = Value::Array(current.into_iter().map(Value::String).collect());
        overrides.set(&path, value)?;
        Ok(true)
    })
    .await?
}

#[zbus::interface(name = "org.icsmail.Mail1.Lists")]
impl ListsInterface {
    /// Adds `entry` (an IP address, a network, a domain, `@domain` or an address:
    /// docs/policy.md) to `list`; checked like the file's entries. False when it was there.
    async fn add(
        &self,
        list: &str,
        entry: &str,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
        #[zbus(header)] header: zbus::message::Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<bool, AdminError> {
        super::polkit::authorize(&header, connection).await?;
        let _edit = self.edits.lock().await;
        let new = entry.trim().to_string();
        let added = change(&self.overrides, list, move |entries| {
            let absent = !entries.contains(&new);
            if absent {
                entries.push(new);
            }
            absent
        })
        .await?;
        if added {
            info!(list, entry, "list entry added");
            SettingsInterface::changed(&emitter, &format!("lists.{list}")).await?;
        }
        Ok(added)
    }

    /// Removes `entry` from `list`; false when it was not there.
    async fn remove(
        &self,
        list: &str,
        entry: &str,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
        #[zbus(header)] header: zbus::message::Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<bool, AdminError> {
        super::polkit::authorize(&header, connection).await?;
        let _edit = self.edits.lock().await;
        let old = entry.trim().to_string();
        let removed = change(&self.overrides, list, move |entries| {
            let before = entries.len();
            entries.retain(|e| *e != old);
            entries.len() != before
        })
        .await?;
        if removed {
            info!(list, entry, "list entry removed");
            SettingsInterface::changed(&emitter, &format!("lists.{list}")).await?;
        }
        Ok(removed)
    }

    /// The entries of `list` in force.
    async fn list(&self, list: &str) -> Result<Vec<String>, AdminError> {
        let path = list_path(list)?;
        let overrides = self.overrides.clone();
        tokio::task::spawn_blocking(move || entries(&overrides, &path)).await?
    }
}
