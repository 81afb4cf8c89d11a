//! The override layer as the admin service edits it: every change is checked as the whole
//! configuration would be at start (both layers, secret files, certificates: the same lines as
//! `check-config`), and only then written — to a new file, fsync'd, renamed over
//! `<stateDir>/overrides.json`, the directory fsync'd — so a daemon that reloads reads the old
//! layer or the new one, never half of one. The daemons notice the new file and reload
//! (`daemon::run`). Changes are made one at a time (the caller holds the lock).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::keys::KeyPath;
use crate::config::layers::{self, Candidate, Source};
use crate::config::ConfigErrors;
use crate::settings;

/// Where a setting's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// The override file (set over D-Bus).
    Override,
    /// The declarative file (the NixOS module's).
    File,
    /// Neither: the built-in default.
    Default,
}

impl Layer {
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Override => "override",
            Layer::File => "file",
            Layer::Default => "default",
        }
    }
}

/// Why a change was not made.
#[derive(Debug)]
pub enum EditError {
    /// The configuration with the change fails its check: the lines name the key.
    Invalid(ConfigErrors),
    /// Writing the override file failed.
    Write(String),
}

pub struct Overrides {
    source: Source,
    state_dir: PathBuf,
    path: PathBuf,
}

impl Overrides {
    /// The override layer of `source`'s configuration (whose `stateDir` says where it is).
    pub fn new(source: Source) -> Result<Overrides, ConfigErrors> {
        let config = layers::read(&source)?;
        let path = layers::overrides_path(&config);
        Ok(Overrides {
            source,
            state_dir: config.state_dir.0,
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The configuration's `stateDir` (where the override file lives).
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The declarative layer's source.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// True when the declarative file itself sets `path`.
    pub fn declares(&self, path: &KeyPath) -> Result<bool, ConfigErrors> {
        Ok(path
            .get(&layers::declarative_value(&self.source)?)
            .is_some())
    }

    /// The override file's object (empty when there is none).
    pub fn current(&self) -> Result<Value, ConfigErrors> {
        Ok(layers::overrides_value(&self.path)?.unwrap_or_else(|| Value::Object(Map::new())))
    }

    /// The whole configuration in force, defaults included, as JSON.
    pub fn effective(&self) -> Result<Value, ConfigErrors> {
        let config = layers::read(&self.source)?;
        serde_json::to_value(&config)
            .map_err(|err| ConfigErrors::single(format!("(configuration): {err}")))
    }

    /// `name` resolved against the configuration in force.
    pub fn resolve(&self, name: &str) -> Result<KeyPath, ConfigErrors> {
        let effective = self.effective()?;
        KeyPath::resolve(name, &effective)
            .ok_or_else(|| ConfigErrors::single(format!("{name:?}: not a setting name")))
    }

    /// The value in force at `path` and the layer it comes from; `None` for no such setting.
    pub fn get(&self, path: &KeyPath) -> Result<Option<(Value, Layer)>, ConfigErrors> {
        let Some(value) = path.get(&self.effective()?).cloned() else {
            return Ok(None);
        };
        let layer = if path.get(&self.current()?).is_some() {
            Layer::Override
        } else if path
            .get(&layers::declarative_value(&self.source)?)
            .is_some()
        {
            Layer::File
        } else {
            Layer::Default
        };
        Ok(Some((value, layer)))
    }

    /// Overrides the setting at `path` with `value`.
    pub fn set(&self, path: &KeyPath, value: Value) -> Result<(), EditError> {
        self.set_many(&[(path.clone(), value)])
    }

    /// Overrides several settings in one change (checked and written together).
    pub fn set_many(&self, changes: &[(KeyPath, Value)]) -> Result<(), EditError> {
        let mut overrides = self.current().map_err(EditError::Invalid)?;
        for (path, value) in changes {
            path.set(&mut overrides, value.clone());
        }
        self.commit(&overrides)
    }

    /// Drops the override of `path` (and of everything under it); false when it had none.
    pub fn reset(&self, path: &KeyPath) -> Result<bool, EditError> {
        let mut overrides = self.current().map_err(EditError::Invalid)?;
        if !path.remove(&mut overrides) {
            return Ok(false);
        }
        self.commit(&overrides).map(|()| true)
    }

    /// Checks the configuration with `overrides` as its override layer, then writes it.
    fn commit(&self, overrides: &Value) -> Result<(), EditError> {
        settings::check_machine_with(&self.source, Candidate::Proposed(overrides))
            .map_err(EditError::Invalid)?;
        write_atomically(&self.path, overrides)
            .map_err(|err| EditError::Write(format!("{}: {err}", self.path.display())))
    }
}

/// `value` as the file at `path`: a temporary file beside it, fsync'd, renamed over it, the
/// directory fsync'd. An empty object removes the file instead (no override is left).
fn write_atomically(path: &Path, value: &Value) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    if value.as_object().is_some_and(Map::is_empty) {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(err),
        }
        return fs::File::open(dir)?.sync_all();
    }
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    let temp = dir.join(format!(".{}.new", layers::OVERRIDES_FILE));
    let mut file = fs::File::create(&temp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temp, path)?;
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests;
