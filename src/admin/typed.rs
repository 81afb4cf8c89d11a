//! Settings as native D-Bus values (docs/dbus.md, "Typed values"): the configuration's JSON
//! turned into variants for the `Settings.Values` property, and a variant from
//! `Settings.SetValue` turned back into JSON for the same check as `Set`.
//!
//! | JSON | D-Bus |
//! |---|---|
//! | `true` | `b` |
//! | a whole number ≥ 0 / < 0 | `t` / `x` |
//! | another number | `d` |
//! | a string | `s` |
//! | a list of strings | `as` |
//! | another list | `av` |
//! | an object | `a{sv}` |
//! | `null` | left out (D-Bus has no null) |

use std::collections::HashMap;

use serde_json::{Map, Number, Value as Json};
use zbus::Variant;
use zbus::{Array, Dict, OwnedVariant as OwnedValue, Signature};

/// Keys never shown among the values: password hashes stay in `overrides.json` and the
/// declarative file (`Get` of the exact name still shows what the file holds).
pub const HIDDEN_KEYS: &[&str] = &["hashedPassword"];

/// Every setting of `tree` with a value, by dotted name (`smtp.maxMessageSize`), its value
/// typed. Objects are walked down to their leaves, except inside lists.
pub fn flatten(tree: &Json) -> HashMap<String, OwnedValue> {
    let mut out = HashMap::new();
    if let Json::Object(object) = tree {
        walk(object, "", &mut out);
    }
    out
}

fn walk(object: &Map<String, Json>, prefix: &str, out: &mut HashMap<String, OwnedValue>) {
    for (key, value) in object {
        if HIDDEN_KEYS.contains(&key.as_str()) {
            continue;
        }
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Json::Object(inner) if !inner.is_empty() => walk(inner, &name, out),
            Json::Null => {}
            leaf => {
                if let Some(typed) = to_variant(leaf).and_then(|v| OwnedValue::try_from(v).ok()) {
                    out.insert(name, typed);
                }
            }
        }
    }
}

/// One JSON value as a variant; `None` for null (and for a list or object holding only
/// nulls where a type is needed).
pub fn to_variant(value: &Json) -> Option<Variant<'static>> {
    Some(match value {
        Json::Null => return None,
        Json::Bool(b) => Variant::from(*b),
        Json::Number(n) => number(n),
        Json::String(s) => Variant::from(s.clone()),
        Json::Array(items) if items.iter().all(Json::is_string) => Variant::from(
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_string))
                .collect::<Vec<String>>(),
        ),
        Json::Array(items) => {
            let mut array = Array::new(&Signature::Variant);
            for item in items.iter().filter_map(to_variant) {
                array.append(Variant::Variant(Box::new(item))).ok()?;
            }
            Variant::Array(array)
        }
        Json::Object(object) => {
            let mut dict = Dict::new(&Signature::Str, &Signature::Variant);
            for (key, item) in object {
                if let Some(item) = to_variant(item) {
                    dict.append(Variant::from(key.clone()), Variant::Variant(Box::new(item)))
                        .ok()?;
                }
            }
            Variant::Dict(dict)
        }
    })
}

fn number(n: &Number) -> Variant<'static> {
    if let Some(unsigned) = n.as_u64() {
        Variant::from(unsigned)
    } else if let Some(signed) = n.as_i64() {
        Variant::from(signed)
    } else {
        Variant::from(n.as_f64().unwrap_or(0.0))
    }
}

/// A variant from `SetValue` as JSON: the basic types as their JSON counterparts (every
/// integer type, bytes included, as a number), arrays as lists, dictionaries with string
/// keys as objects, a nested variant as its content.
pub fn from_variant(value: &Variant<'_>) -> Result<Json, String> {
    Ok(match value {
        Variant::Bool(b) => Json::Bool(*b),
        Variant::U8(n) => Json::from(*n),
        Variant::I16(n) => Json::from(*n),
        Variant::U16(n) => Json::from(*n),
        Variant::I32(n) => Json::from(*n),
        Variant::U32(n) => Json::from(*n),
        Variant::I64(n) => Json::from(*n),
        Variant::U64(n) => Json::from(*n),
        Variant::F64(n) => Number::from_f64(*n)
            .map(Json::Number)
            .ok_or("a number that is not finite")?,
        Variant::Str(s) => Json::String(s.to_string()),
        Variant::Variant(inner) => from_variant(inner)?,
        Variant::Array(array) => Json::Array(
            array
                .iter()
                .map(from_variant)
                .collect::<Result<Vec<Json>, String>>()?,
        ),
        Variant::Dict(dict) => {
            let mut object = Map::new();
            for (key, item) in dict.iter() {
                let Variant::Str(key) = key else {
                    return Err("a dictionary whose keys are not strings".into());
                };
                object.insert(key.to_string(), from_variant(item)?);
            }
            Json::Object(object)
        }
        other => {
            return Err(format!(
                "a value of D-Bus type {} (use b, integers, d, s, as, av or a{{sv}})",
                other.value_signature()
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_flatten_to_typed_values_by_dotted_name() {
        let tree = json!({
            "smtp": {"maxMessageSize": 10485760, "smtputf8": true, "submissionPort": null},
            "heloName": "mx.example.org",
            "lists": {"whitelist": ["192.0.2.0/24"]},
            "storage": {"defaultFolders": [{"name": "Sent", "specialUse": "sent"}]},
            "accounts": {"alice@example.org": {"quota": 5, "hashedPassword": "$argon2id$x"}},
        });
        let values = flatten(&tree);
        let get = |name: &str| Variant::from(values.get(name).cloned().unwrap());
        assert_eq!(get("smtp.maxMessageSize"), Variant::from(10485760u64));
        assert_eq!(get("smtp.smtputf8"), Variant::from(true));
        assert_eq!(get("heloName"), Variant::from("mx.example.org"));
        assert_eq!(
            get("lists.whitelist"),
            Variant::from(vec!["192.0.2.0/24".to_string()])
        );
        assert_eq!(
            get("storage.defaultFolders").value_signature().to_string(),
            "av"
        );
        assert_eq!(get("accounts.alice@example.org.quota"), Variant::from(5u64));
        assert!(
            !values.contains_key("smtp.submissionPort"),
            "null is left out"
        );
        assert!(
            !values.keys().any(|k| k.contains("hashedPassword")),
            "password hashes are never shown"
        );
    }

    #[test]
    fn variants_come_back_as_the_json_the_file_would_hold() {
        let tree = json!({"a": [{"name": "Sent", "specialUse": "sent"}], "n": -3, "s": "x"});
        for (key, value) in tree.as_object().unwrap() {
            let variant = to_variant(value).unwrap();
            assert_eq!(&from_variant(&variant).unwrap(), value, "{key}");
        }
        assert_eq!(from_variant(&Variant::from(4000u32)).unwrap(), json!(4000));
        assert!(from_variant(&Variant::from(f64::NAN)).is_err());
    }
}
