//! The two layers of the configuration: the declarative file (the NixOS module writes it; it
//! stays the base) and the override file `<stateDir>/overrides.json` (what the D-Bus admin
//! writes at runtime). The override is merged into the declarative JSON before parsing —
//! objects key by key, anything else replaced — so an override holds only what it changes.
//!
//! Errors name their key, and the layer when the override caused them: the declarative file
//! is checked alone first, so what fails only after the merge is the override's doing. The
//! override may not move `stateDir` (it lives there).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::model::Config;
use super::{load, unimplemented, validate, ConfigErrors};

/// The override file's name in `stateDir`.
pub const OVERRIDES_FILE: &str = "overrides.json";

/// Where the declarative layer comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A configuration file (`--config`).
    File(PathBuf),
    /// Configuration text (the embedded demo of `icsmail serve`), with a name for messages.
    Text { name: String, text: String },
}

impl Source {
    fn text(&self) -> Result<String, ConfigErrors> {
        match self {
            Source::File(path) => std::fs::read_to_string(path).map_err(|err| {
                ConfigErrors::single(format!("(file): cannot read {}: {err}", path.display()))
            }),
            Source::Text { text, .. } => Ok(text.clone()),
        }
    }

    /// How messages name it.
    pub fn name(&self) -> String {
        match self {
            Source::File(path) => path.display().to_string(),
            Source::Text { name, .. } => name.clone(),
        }
    }
}

/// The declarative layer alone, checked as far as the file goes (the `--static` check).
pub fn read_declarative(source: &Source) -> Result<Config, ConfigErrors> {
    let value = load::json(&source.text()?)?;
    checked(value)
}

/// Both layers, merged and checked as far as the files go.
pub fn read(source: &Source) -> Result<Config, ConfigErrors> {
    read_with(source, Candidate::OnDisk)
}

/// Which override layer [`read_with`] merges.
#[derive(Debug, Clone, Copy)]
pub enum Candidate<'a> {
    /// The override file as it is on disk.
    OnDisk,
    /// This object instead (what the D-Bus admin is about to write), checked as if it were
    /// the file.
    Proposed(&'a Value),
}

/// The declarative layer with `candidate` merged into it, checked as far as the files go.
pub fn read_with(source: &Source, candidate: Candidate<'_>) -> Result<Config, ConfigErrors> {
    let declarative = declarative_value(source)?;
    let base = checked(declarative.clone())?;
    let path = overrides_path(&base);
    let overrides = match candidate {
        Candidate::OnDisk => read_overrides(&path)?,
        Candidate::Proposed(value) => Some(check_overrides(value.clone(), &path)?),
    };
    let Some(overrides) = overrides else {
        return Ok(base);
    };
    let mut merged = declarative;
    merge(&mut merged, overrides);
    checked(merged).map_err(|errors| in_layer(errors, &path))
}

/// The declarative layer as JSON, before any check beyond its syntax.
pub fn declarative_value(source: &Source) -> Result<Value, ConfigErrors> {
    load::json(&source.text()?)
}

/// The override file's JSON object, `None` when there is none.
pub fn overrides_value(path: &Path) -> Result<Option<Value>, ConfigErrors> {
    read_overrides(path)
}

/// `<stateDir>/overrides.json` of a configuration.
pub fn overrides_path(config: &Config) -> PathBuf {
    config.state_dir.0.join(OVERRIDES_FILE)
}

/// The override layer, if there is one: a JSON object that leaves `stateDir` alone.
fn read_overrides(path: &Path) -> Result<Option<Value>, ConfigErrors> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => {
            return Err(ConfigErrors::single(format!(
                "(override file): cannot read {}: {err}",
                path.display()
            )))
        }
    };
    let value = load::json(&text).map_err(|errors| in_layer(errors, path))?;
    check_overrides(value, path).map(Some)
}

/// An override layer is a JSON object that leaves `stateDir` alone.
fn check_overrides(value: Value, path: &Path) -> Result<Value, ConfigErrors> {
    match &value {
        Value::Object(map) if map.contains_key("stateDir") => Err(in_layer(
            ConfigErrors::single(
                "stateDir: cannot be overridden (the override file lives in it)".into(),
            ),
            path,
        )),
        Value::Object(_) => Ok(value),
        _ => Err(in_layer(
            ConfigErrors::single("(file): the overrides must be a JSON object".into()),
            path,
        )),
    }
}

/// Parsed and checked: the model, validation and the not-implemented refusals.
fn checked(value: Value) -> Result<Config, ConfigErrors> {
    let config = validate::validate(load::parse_value(value)?)?;
    unimplemented::refuse(&config)?;
    Ok(config)
}

/// `overlay` merged into `base`: objects key by key, everything else replaced (a list in the
/// override is the whole list).
pub fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
}

/// Every line marked as coming from the override file at `path`.
fn in_layer(errors: ConfigErrors, path: &Path) -> ConfigErrors {
    ConfigErrors(
        errors
            .0
            .into_iter()
            .map(|line| format!("{line} (in the override file {})", path.display()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_merge_key_by_key_and_lists_are_replaced() {
        let mut base = serde_json::json!({
            "smtp": {"port": 25, "maxMessageSize": 1000},
            "lists": {"blacklist": ["192.0.2.1"]}
        });
        merge(
            &mut base,
            serde_json::json!({"smtp": {"maxMessageSize": 2000}, "lists": {"blacklist": []}}),
        );
        assert_eq!(
            base,
            serde_json::json!({
                "smtp": {"port": 25, "maxMessageSize": 2000},
                "lists": {"blacklist": []}
            })
        );
    }
}
