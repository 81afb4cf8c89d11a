//! `org.icsmail.Mail1.Settings`: every setting of docs/settings.md by its dotted name, its
//! value as JSON text. A change goes to the override layer (docs/dbus.md, "Settings").

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Mutex;
use tracing::info;
use zbus::object_server::SignalEmitter;
use zbus::OwnedVariant as OwnedValue;

use super::edit::{moves_the_store, set_json, store_moves_only, unknown};
use super::error::AdminError;
use super::groups::Groups;
use super::keys::parse_value;
use super::overrides::Overrides;
use super::typed;

pub struct SettingsInterface {
    pub overrides: Arc<Overrides>,
    /// One change at a time, across every interface that writes the override layer.
    pub edits: Arc<Mutex<()>>,
    /// The group objects, told of each change at once (docs/dbus.md, "Settings by group").
    pub groups: Arc<Groups>,
}

#[zbus::interface(name = "org.icsmail.Mail1.Settings")]
impl SettingsInterface {
    /// The value in force of the setting `name` (JSON text) and where it comes from:
    /// `override`, `file` (the declarative configuration) or `default`.
    async fn get(&self, name: &str) -> Result<(String, String), AdminError> {
        let overrides = self.overrides.clone();
        let name = name.to_string();
        tokio::task::spawn_blocking(move || {
            let path = overrides.resolve(&name).map_err(unknown)?;
            match overrides.get(&path)? {
                Some((value, layer)) => Ok((value.to_string(), layer.as_str().to_string())),
                None => Err(AdminError::UnknownSetting(format!(
                    "{name}: no such setting"
                ))),
            }
        })
        .await?
    }

    /// Overrides the setting `name` with `value`: JSON text (`20971520`, `true`,
    /// `["192.0.2.0/24"]`, `null`), or plain text taken as a string. Checked as the whole
    /// configuration is at start; the running daemons apply it within a second.
    async fn set(
        &self,
        name: &str,
        value: &str,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
        #[zbus(header)] header: zbus::message::Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<(), AdminError> {
        super::polkit::authorize(&header, connection).await?;
        let changed = set_json(&self.overrides, &self.edits, name, parse_value(value)).await?;
        info!(setting = changed, "setting overridden");
        SettingsInterface::changed(&emitter, &changed).await?;
        self.groups.refresh(connection).await;
        Ok(())
    }

    /// Drops the override of `name` (and of every setting under it): the declarative value
    /// or the default is in force again. False when there was none.
    async fn reset(
        &self,
        name: &str,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
        #[zbus(header)] header: zbus::message::Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<bool, AdminError> {
        super::polkit::authorize(&header, connection).await?;
        let _edit = self.edits.lock().await;
        let overrides = self.overrides.clone();
        let name = name.to_string();
        let (reset, changed) = tokio::task::spawn_blocking(move || {
            let path = overrides.resolve(&name).map_err(unknown)?;
            if moves_the_store(&path.name()) {
                return Err(store_moves_only(&path.name()));
            }
            Ok::<_, AdminError>((overrides.reset(&path)?, path.name()))
        })
        .await??;
        drop(_edit);
        if reset {
            info!(setting = changed, "override dropped");
            SettingsInterface::changed(&emitter, &changed).await?;
            self.groups.refresh(connection).await;
        }
        Ok(reset)
    }

    /// `Set` with a typed value: `b`, any integer, `d`, `s`, `as`, `av` or `a{sv}`, taken as
    /// the JSON the configuration would hold (docs/dbus.md, "Typed values").
    async fn set_value(
        &self,
        name: &str,
        value: zbus::Variant<'_>,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
        #[zbus(header)] header: zbus::message::Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<(), AdminError> {
        let json = typed::from_variant(&value)
            .map_err(|why| AdminError::InvalidArgument(format!("{name}: {why}")))?;
        self.set(name, &json.to_string(), emitter, header, connection)
            .await
    }

    /// Every setting in force with a value, by dotted name, as a native D-Bus value (null
    /// settings and password hashes left out). Read at each Get; a change sends
    /// `PropertiesChanged` with `Values` invalidated (the whole map is large).
    #[zbus(property(emits_changed_signal = "invalidates"))]
    async fn values(&self) -> zbus::fdo::Result<HashMap<String, OwnedValue>> {
        let overrides = self.overrides.clone();
        let effective = tokio::task::spawn_blocking(move || overrides.effective())
            .await
            .map_err(|err| zbus::fdo::Error::Failed(err.to_string()))?
            .map_err(|err| zbus::fdo::Error::Failed(err.to_string()))?;
        Ok(typed::flatten(&effective))
    }

    /// The override layer (JSON text of `<stateDir>/overrides.json`; `{}` when empty).
    async fn get_overrides(&self) -> Result<String, AdminError> {
        let overrides = self.overrides.clone();
        tokio::task::spawn_blocking(move || Ok(overrides.current()?.to_string())).await?
    }

    /// A setting's value in force changed (by Set, Reset or the lists).
    #[zbus(signal)]
    pub async fn changed(emitter: &SignalEmitter<'_>, name: &str) -> zbus::Result<()>;
}
