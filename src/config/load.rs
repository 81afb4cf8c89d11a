//! Reading the JSON file into the model, collecting every problem with its key path.

use serde_json::Value;
use std::path::Path;

use super::model::Config;
use super::ConfigErrors;

/// Parses `text` (JSON) into a [`Config`]. Type errors and unknown keys are reported per top-level
/// key, so one bad section does not hide the problems of another.
pub fn parse(text: &str) -> Result<Config, ConfigErrors> {
    parse_value(json(text)?)
}

/// `text` as a JSON value (a parse error names line and column).
pub fn json(text: &str) -> Result<Value, ConfigErrors> {
    serde_json::from_str(text).map_err(|err| {
        ConfigErrors::single(format!(
            "(file): not valid JSON: {err} (line {}, column {})",
            err.line(),
            err.column()
        ))
    })
}

/// A JSON value into a [`Config`], every problem with its key path.
pub fn parse_value(value: Value) -> Result<Config, ConfigErrors> {
    let Value::Object(map) = value else {
        return Err(ConfigErrors::single(
            "(file): the configuration must be a JSON object".to_string(),
        ));
    };
    let mut errors = ConfigErrors::default();
    for (key, sub) in &map {
        let mut single = serde_json::Map::new();
        single.insert(key.clone(), sub.clone());
        if let Err(err) = from_value(Value::Object(single)) {
            errors.push(err);
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    from_value(Value::Object(map)).map_err(ConfigErrors::single)
}

fn from_value(value: Value) -> Result<Config, String> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let path = if path == "." {
            "(file)".to_string()
        } else {
            path
        };
        format!("{path}: {}", err.inner())
    })
}

/// Reads and parses `path`.
pub fn read(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        ConfigErrors::single(format!("(file): cannot read {}: {err}", path.display()))
    })?;
    parse(&text)
}
