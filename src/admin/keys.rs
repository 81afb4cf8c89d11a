//! Dotted setting names (`smtp.maxMessageSize`, `accounts.alice@example.org.quota`) and the
//! JSON they point into. A name is split at dots, but an object key may hold dots itself (an
//! account's address): each step takes the shortest run of parts that names a key of the
//! object at hand, so `accounts.alice@example.org.quota` finds the account
//! `alice@example.org`. A part that names no existing key is taken alone (a new key: the
//! configuration check then says whether it may exist).

use serde_json::{Map, Value};

/// A setting name resolved against a JSON tree: the object keys from the root down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPath(pub Vec<String>);

impl KeyPath {
    /// Splits `name` against `tree` (the effective configuration, so existing keys are
    /// found). `None` for an empty name or an empty part (`smtp..port`).
    pub fn resolve(name: &str, tree: &Value) -> Option<KeyPath> {
        let parts: Vec<&str> = name.split('.').collect();
        if parts.iter().any(|part| part.is_empty()) {
            return None;
        }
        let mut keys = Vec::new();
        let mut node = Some(tree);
        let mut start = 0;
        while start < parts.len() {
            let object = node.and_then(Value::as_object);
            let end = (start + 1..=parts.len())
                .find(|&end| object.is_some_and(|o| o.contains_key(&parts[start..end].join("."))))
                .unwrap_or(start + 1);
            let key = parts[start..end].join(".");
            node = object.and_then(|o| o.get(&key));
            keys.push(key);
            start = end;
        }
        Some(KeyPath(keys))
    }

    /// The dotted name again.
    pub fn name(&self) -> String {
        self.0.join(".")
    }

    /// The value at this path in `tree`.
    pub fn get<'a>(&self, tree: &'a Value) -> Option<&'a Value> {
        self.0
            .iter()
            .try_fold(tree, |node, key| node.as_object()?.get(key))
    }

    /// Sets the value at this path in `tree`, making the objects on the way (a non-object on
    /// the way is replaced by one: the configuration check refuses what that breaks).
    pub fn set(&self, tree: &mut Value, value: Value) {
        let Some((last, parents)) = self.0.split_last() else {
            return;
        };
        let mut node = tree;
        for key in parents {
            node = object_of(node)
                .entry(key.clone())
                .or_insert_with(|| Value::Object(Map::new()));
        }
        object_of(node).insert(last.clone(), value);
    }

    /// Removes the value at this path from `tree`, and the objects it leaves empty; true when
    /// there was one.
    pub fn remove(&self, tree: &mut Value) -> bool {
        fn remove_in(node: &mut Value, keys: &[String]) -> bool {
            let Some(object) = node.as_object_mut() else {
                return false;
            };
            match keys {
                [] => false,
                [last] => object.remove(last).is_some(),
                [first, rest @ ..] => {
                    let Some(child) = object.get_mut(first) else {
                        return false;
                    };
                    let removed = remove_in(child, rest);
                    if child.as_object().is_some_and(Map::is_empty) {
                        object.remove(first);
                    }
                    removed
                }
            }
        }
        remove_in(tree, &self.0)
    }
}

/// `node` as an object, made one if it is not.
fn object_of(node: &mut Value) -> &mut Map<String, Value> {
    if !node.is_object() {
        *node = Value::Object(Map::new());
    }
    match node {
        Value::Object(map) => map,
        _ => unreachable!("made an object just above"),
    }
}

/// A value as given over the bus: JSON text (`20971520`, `true`, `["10.0.0.0/8"]`,
/// `"mail.example.org"`), or, when it is not JSON, the text itself as a string
/// (`mail.example.org`), so that `busctl` needs no nested quoting for plain names.
pub fn parse_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tree() -> Value {
        json!({
            "smtp": {"maxMessageSize": 1000, "limits": {"maxErrors": 10}},
            "accounts": {"alice@example.org": {"quota": null}},
        })
    }

    #[test]
    fn keys_with_dots_are_found_as_the_tree_has_them() {
        let path = KeyPath::resolve("accounts.alice@example.org.quota", &tree()).unwrap();
        assert_eq!(path.0, ["accounts", "alice@example.org", "quota"]);
        let path = KeyPath::resolve("smtp.limits.maxErrors", &tree()).unwrap();
        assert_eq!(path.0, ["smtp", "limits", "maxErrors"]);
        assert_eq!(path.get(&tree()), Some(&json!(10)));
        // Unknown parts are taken one by one (the check refuses them later).
        let path = KeyPath::resolve("smtp.colour.red", &tree()).unwrap();
        assert_eq!(path.0, ["smtp", "colour", "red"]);
        assert_eq!(KeyPath::resolve("smtp..port", &tree()), None);
        assert_eq!(KeyPath::resolve("", &tree()), None);
    }

    #[test]
    fn set_makes_the_way_and_remove_prunes_it() {
        let mut overrides = json!({});
        let path = KeyPath(vec!["smtp".into(), "limits".into(), "maxErrors".into()]);
        path.set(&mut overrides, json!(5));
        assert_eq!(overrides, json!({"smtp": {"limits": {"maxErrors": 5}}}));
        let other = KeyPath(vec!["heloName".into()]);
        other.set(&mut overrides, json!("mx.example.org"));
        assert!(path.remove(&mut overrides));
        assert_eq!(overrides, json!({"heloName": "mx.example.org"}));
        assert!(!path.remove(&mut overrides));
        // A scalar on the way is replaced by an object.
        let mut scalar = json!({"smtp": 3});
        path.set(&mut scalar, json!(1));
        assert_eq!(scalar, json!({"smtp": {"limits": {"maxErrors": 1}}}));
    }

    #[test]
    fn values_are_json_or_else_text() {
        assert_eq!(parse_value("20971520"), json!(20971520));
        assert_eq!(parse_value("[\"10.0.0.0/8\"]"), json!(["10.0.0.0/8"]));
        assert_eq!(parse_value("\"quoted\""), json!("quoted"));
        assert_eq!(parse_value("mail.example.org"), json!("mail.example.org"));
        assert_eq!(parse_value("null"), Value::Null);
    }
}
