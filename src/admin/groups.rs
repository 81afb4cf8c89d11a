//! `org.icsmail.Mail1.SettingsGroup`: one object per top-level group of the configuration
//! (`/org/icsmail/Mail1/settings/smtp`, `…/queue`, …; the top-level plain settings such as
//! `heloName` on `/org/icsmail/Mail1/settings` itself), whose properties are the group's
//! settings as typed D-Bus values (docs/dbus.md, "Settings by group").
//!
//! The groups and their properties come from the configuration in force (every key the
//! settings model serializes, defaults included), not from a hand-written list, so zbus's
//! `#[interface]` (static properties) cannot describe them: this type implements
//! `object_server::Interface` itself, and zbus's own `org.freedesktop.DBus.Properties`
//! dispatches `Get`, `GetAll` and `Set` to it.
//!
//! Names: a nested key's path below its group joined with `_` (`spam.greylist.enable` →
//! `greylist_enable` on `…/settings/spam`). An object whose keys are not D-Bus member names
//! (the accounts, keyed by address) is one `a{sv}` property. A setting with no value (null)
//! has no D-Bus type and no property until it gets one (`Settings.Set` writes null).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex as StdMutex};

use async_trait::async_trait;
use serde_json::{Map, Value as Json};
use tokio::sync::Mutex;
use tracing::{info, warn};
use zbus::message::Header;
use zbus::names::{InterfaceName, MemberName};
use zbus::object_server::{DispatchResult, Interface, SignalEmitter};
use zbus::{BoxDBusError, Connection, Message, ObjectServer, OwnedVariant, Variant};

use super::error::AdminError;
use super::overrides::Overrides;
use super::typed;
use super::OBJECT_PATH;

pub const INTERFACE: &str = "org.icsmail.Mail1.SettingsGroup";

/// Settings no D-Bus write may change (the same refusals as `Settings.Set`): shown read-only.
const READ_ONLY: &[&str] = &["stateDir", "storage.path"];

/// One property: the setting's dotted name and its value in force.
#[derive(Debug, Clone, PartialEq)]
pub struct Prop {
    pub dotted: String,
    pub value: Json,
}

/// Group name ("" for the top-level plain settings) → property name → property.
pub type Tree = BTreeMap<String, BTreeMap<String, Prop>>;

/// The object path of `group`.
pub fn object_path(group: &str) -> String {
    if group.is_empty() {
        format!("{OBJECT_PATH}/settings")
    } else {
        format!("{OBJECT_PATH}/settings/{group}")
    }
}

/// A key usable as (part of) a D-Bus member name (and as an object path element).
fn is_member(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The groups and properties of `effective` (the configuration in force, as JSON).
pub fn tree(effective: &Json) -> Tree {
    let mut out = Tree::new();
    let Json::Object(top) = effective else {
        return out;
    };
    out.insert(String::new(), BTreeMap::new());
    for (key, value) in top {
        if !is_member(key) {
            continue;
        }
        match value {
            Json::Object(inner) if inner.keys().all(|k| is_member(k)) && !inner.is_empty() => {
                let props = out.entry(key.clone()).or_default();
                walk(inner, key, "", props);
            }
            Json::Object(_) => {
                // Keyed by addresses (accounts): the group is one a{sv} property.
                let props = out.entry(key.clone()).or_default();
                leaf(props, key.clone(), key.clone(), value);
            }
            other => {
                if let Some(props) = out.get_mut("") {
                    leaf(props, key.clone(), key.clone(), other);
                }
            }
        }
    }
    out
}

fn walk(object: &Map<String, Json>, dotted: &str, prop: &str, out: &mut BTreeMap<String, Prop>) {
    for (key, value) in object {
        let dotted = format!("{dotted}.{key}");
        let name = if prop.is_empty() {
            key.clone()
        } else {
            format!("{prop}_{key}")
        };
        match value {
            Json::Object(inner) if !inner.is_empty() && inner.keys().all(|k| is_member(k)) => {
                walk(inner, &dotted, &name, out)
            }
            _ => leaf(out, name, dotted, value),
        }
    }
}

fn leaf(out: &mut BTreeMap<String, Prop>, name: String, dotted: String, value: &Json) {
    if value.is_null() || typed::HIDDEN_KEYS.contains(&name.as_str()) {
        return;
    }
    out.insert(
        name,
        Prop {
            dotted,
            value: hide_secrets(value),
        },
    );
}

/// `value` without password hashes (an account's `hashedPassword` inside the accounts map).
fn hide_secrets(value: &Json) -> Json {
    match value {
        Json::Object(object) => Json::Object(
            object
                .iter()
                .filter(|(key, _)| !typed::HIDDEN_KEYS.contains(&key.as_str()))
                .map(|(key, item)| (key.clone(), hide_secrets(item)))
                .collect(),
        ),
        Json::Array(items) => Json::Array(items.iter().map(hide_secrets).collect()),
        other => other.clone(),
    }
}

/// What the group objects share: the override layer, the edit lock, and the values last
/// signalled, against which a change is found.
pub struct Groups {
    overrides: Arc<Overrides>,
    edits: Arc<Mutex<()>>,
    shown: StdMutex<Tree>,
}

impl Groups {
    pub fn new(overrides: Arc<Overrides>, edits: Arc<Mutex<()>>) -> anyhow::Result<Arc<Groups>> {
        let effective = overrides
            .effective()
            .map_err(|errors| anyhow::anyhow!("reading the configuration:\n{errors}"))?;
        Ok(Arc::new(Groups {
            overrides,
            edits,
            shown: StdMutex::new(tree(&effective)),
        }))
    }

    /// The group names (each becomes an object).
    pub fn names(&self) -> Vec<String> {
        self.shown
            .lock()
            .map(|tree| tree.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn current(&self, group: &str) -> BTreeMap<String, Prop> {
        match self.overrides.effective() {
            Ok(effective) => tree(&effective).remove(group).unwrap_or_default(),
            Err(errors) => {
                warn!(%errors, "the configuration does not check; showing the last values");
                self.shown
                    .lock()
                    .ok()
                    .and_then(|tree| tree.get(group).cloned())
                    .unwrap_or_default()
            }
        }
    }

    /// Reads the configuration in force and sends `PropertiesChanged` on every group object
    /// whose properties differ from those last signalled (and `Values` of `Settings` as
    /// invalidated). Called after each change through the service and once a second, so a
    /// change of the files underneath is signalled too.
    pub async fn refresh(&self, connection: &Connection) {
        let overrides = self.overrides.clone();
        let Ok(Ok(effective)) = tokio::task::spawn_blocking(move || overrides.effective()).await
        else {
            return;
        };
        let new = tree(&effective);
        let changes: Vec<GroupChange> = {
            let Ok(mut shown) = self.shown.lock() else {
                return;
            };
            let mut changes = Vec::new();
            for (group, props) in &new {
                let old = shown.get(group).cloned().unwrap_or_default();
                let changed: Vec<(String, Json)> = props
                    .iter()
                    .filter(|(name, prop)| old.get(*name) != Some(prop))
                    .map(|(name, prop)| (name.clone(), prop.value.clone()))
                    .collect();
                let gone: Vec<String> = old
                    .keys()
                    .filter(|name| !props.contains_key(*name))
                    .cloned()
                    .collect();
                if !changed.is_empty() || !gone.is_empty() {
                    changes.push(GroupChange {
                        group: group.clone(),
                        changed,
                        gone,
                    });
                }
            }
            *shown = new;
            changes
        };
        if changes.is_empty() {
            return;
        }
        for GroupChange {
            group,
            changed,
            gone,
        } in &changes
        {
            let Ok(emitter) = SignalEmitter::new(connection, object_path(group)) else {
                continue;
            };
            let values: HashMap<&str, Variant<'_>> = changed
                .iter()
                .filter_map(|(name, value)| Some((name.as_str(), typed::to_variant(value)?)))
                .collect();
            let invalidated: Vec<&str> = gone.iter().map(String::as_str).collect();
            info!(
                group = group.as_str(),
                changed = values.len(),
                "settings group changed"
            );
            if let Err(err) = zbus::fdo::Properties::properties_changed(
                &emitter,
                interface_name(),
                values,
                Cow::Owned(invalidated),
            )
            .await
            {
                warn!(%err, "sending PropertiesChanged");
            }
        }
        if let Ok(emitter) = SignalEmitter::new(connection, OBJECT_PATH) {
            if let Ok(name) = InterfaceName::try_from(super::edit::SETTINGS_INTERFACE) {
                let _ = zbus::fdo::Properties::properties_changed(
                    &emitter,
                    name,
                    HashMap::new(),
                    Cow::Borrowed(&["Values"][..]),
                )
                .await;
            }
        }
    }
}

/// What `refresh` signals on one group's object.
struct GroupChange {
    group: String,
    /// Properties with a new value (or new ones).
    changed: Vec<(String, Json)>,
    /// Properties that no longer have a value (the setting became null).
    gone: Vec<String>,
}

fn interface_name() -> InterfaceName<'static> {
    InterfaceName::from_static_str_unchecked(INTERFACE)
}

/// The interface on one group's object.
pub struct SettingsGroup {
    pub group: String,
    pub groups: Arc<Groups>,
}

fn boxed(err: AdminError) -> BoxDBusError {
    Box::new(err)
}

#[async_trait]
impl Interface for SettingsGroup {
    fn name() -> InterfaceName<'static> {
        interface_name()
    }

    async fn get(
        &self,
        property_name: &str,
        _server: &ObjectServer,
        _connection: &Connection,
        _header: Option<&Header<'_>>,
        _emitter: &SignalEmitter<'_>,
    ) -> Option<Result<OwnedVariant, BoxDBusError>> {
        let prop = self.groups.current(&self.group).remove(property_name)?;
        Some(owned(&prop))
    }

    async fn get_all(
        &self,
        _server: &ObjectServer,
        _connection: &Connection,
        _header: Option<&Header<'_>>,
        _emitter: &SignalEmitter<'_>,
    ) -> zbus::fdo::Result<HashMap<String, OwnedVariant>> {
        Ok(self
            .groups
            .current(&self.group)
            .into_iter()
            .filter_map(|(name, prop)| Some((name, owned(&prop).ok()?)))
            .collect())
    }

    fn set<'call>(
        &'call self,
        property_name: &'call str,
        value: &'call Variant<'_>,
        _server: &'call ObjectServer,
        connection: &'call Connection,
        header: Option<&'call Header<'_>>,
        _emitter: &'call SignalEmitter<'_>,
    ) -> DispatchResult<'call> {
        let Some(prop) = self.groups.current(&self.group).remove(property_name) else {
            return DispatchResult::NotFound;
        };
        let json = typed::from_variant(value);
        DispatchResult::Async(Box::pin(async move {
            if READ_ONLY.contains(&prop.dotted.as_str()) {
                return Err(boxed(AdminError::InvalidArgument(format!(
                    "{}: read-only over D-Bus (docs/dbus.md)",
                    prop.dotted
                ))));
            }
            if let Some(header) = header {
                super::polkit::authorize(header, connection)
                    .await
                    .map_err(boxed)?;
            }
            let json = json
                .map_err(|why| AdminError::InvalidArgument(format!("{}: {why}", prop.dotted)))
                .map_err(boxed)?;
            let name = super::edit::set_json(
                &self.groups.overrides,
                &self.groups.edits,
                &prop.dotted,
                json,
            )
            .await
            .map_err(boxed)?;
            info!(setting = name, "setting overridden (group property)");
            if let Ok(emitter) = SignalEmitter::new(connection, OBJECT_PATH) {
                let _ = super::edit::announce(&emitter, &name).await;
            }
            self.groups.refresh(connection).await;
            Ok(())
        }))
    }

    async fn set_mut(
        &mut self,
        _property_name: &str,
        _value: &Variant<'_>,
        _server: &ObjectServer,
        _connection: &Connection,
        _header: Option<&Header<'_>>,
        _emitter: &SignalEmitter<'_>,
    ) -> Option<Result<(), BoxDBusError>> {
        None
    }

    fn call<'call>(
        &'call self,
        _server: &'call ObjectServer,
        _connection: &'call Connection,
        _msg: &'call Message,
        _name: MemberName<'call>,
    ) -> DispatchResult<'call> {
        DispatchResult::NotFound
    }

    fn call_mut<'call>(
        &'call mut self,
        _server: &'call ObjectServer,
        _connection: &'call Connection,
        _msg: &'call Message,
        _name: MemberName<'call>,
    ) -> DispatchResult<'call> {
        DispatchResult::NotFound
    }

    fn introspect_to_writer(&self, writer: &mut dyn std::fmt::Write, level: usize) {
        let pad = " ".repeat(level);
        let _ = writeln!(writer, "{pad}<interface name=\"{INTERFACE}\">");
        for (name, prop) in self.groups.current(&self.group) {
            let Some(variant) = typed::to_variant(&prop.value) else {
                continue;
            };
            let access = if READ_ONLY.contains(&prop.dotted.as_str()) {
                "read"
            } else {
                "readwrite"
            };
            let _ = writeln!(
                writer,
                "{pad}  <property name=\"{name}\" type=\"{}\" access=\"{access}\">",
                variant.value_signature()
            );
            // The setting's own name, as docs/settings.md and Settings.Set have it.
            let _ = writeln!(
                writer,
                "{pad}    <annotation name=\"org.icsmail.Mail1.Setting\" value=\"{}\"/>",
                xml_escape(&prop.dotted)
            );
            let _ = writeln!(writer, "{pad}  </property>");
        }
        let _ = writeln!(writer, "{pad}</interface>");
    }
}

fn owned(prop: &Prop) -> Result<OwnedVariant, BoxDBusError> {
    typed::to_variant(&prop.value)
        .and_then(|v| OwnedVariant::try_from(v).ok())
        .ok_or_else(|| {
            boxed(AdminError::Failed(format!(
                "{}: no D-Bus value",
                prop.dotted
            )))
        })
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn groups_and_property_names_come_from_the_configuration() {
        let tree = tree(&json!({
            "heloName": "mx.example.org",
            "smtp": {"maxMessageSize": 10485760, "submissionPort": null},
            "spam": {"greylist": {"enable": false, "delay": 300}},
            "accounts": {"alice@example.org": {"quota": 5, "hashedPassword": "$argon2id$x"}},
        }));
        assert_eq!(
            tree.keys().collect::<Vec<_>>(),
            ["", "accounts", "smtp", "spam"]
        );
        assert_eq!(tree[""]["heloName"].dotted, "heloName");
        assert_eq!(tree["smtp"]["maxMessageSize"].dotted, "smtp.maxMessageSize");
        assert!(
            !tree["smtp"].contains_key("submissionPort"),
            "null has no property"
        );
        assert_eq!(
            tree["spam"]["greylist_enable"].dotted,
            "spam.greylist.enable"
        );
        let accounts = &tree["accounts"]["accounts"];
        assert_eq!(accounts.dotted, "accounts");
        assert_eq!(accounts.value, json!({"alice@example.org": {"quota": 5}}));
    }
}
