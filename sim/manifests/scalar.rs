//! String fields as `gopkg.in/yaml.v2` fills them: any scalar is accepted and kept as text.
//!
//! Prometheus, Loki and Promtail decode their YAML straight into Go structs with yaml.v2, which
//! puts a plain `1` or `true` into a `string` field as that text (a rule label `priority: 1`
//! is the label value "1"). Kubernetes objects are different: `sigs.k8s.io/yaml` turns YAML into
//! JSON first, so there a number in a string field is refused, and k8s-openapi's types refuse it
//! too. These helpers are for the yaml.v2 formats only.
//!
//! The text of a number is its canonical form (`1.0`, `16`), which differs from what was
//! written only for hexadecimal, octal and exponent forms; booleans are `true`/`false`.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

fn text_of<E: serde::de::Error>(value: Value) -> Result<String, E> {
    match value {
        Value::String(text) => Ok(text),
        Value::Bool(flag) => Ok(flag.to_string()),
        Value::Number(number) => Ok(number.to_string()),
        Value::Null => Err(E::custom("expected a string, found null")),
        Value::Array(_) => Err(E::custom("invalid type: sequence, expected a string")),
        Value::Object(_) => Err(E::custom("invalid type: map, expected a string")),
    }
}

/// A required string field.
pub fn string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    text_of(Value::deserialize(deserializer)?)
}

/// An optional string field (`null` is absent).
pub fn opt_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(value) => text_of(value).map(Some),
    }
}

/// A list of strings (`null` is empty).
pub fn string_vec<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    match Option::<Vec<Value>>::deserialize(deserializer)? {
        None => Ok(Vec::new()),
        Some(items) => items.into_iter().map(text_of).collect(),
    }
}

/// A map of string to string (`null` is empty); values may be any scalar.
pub fn string_map<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    match Option::<BTreeMap<String, Value>>::deserialize(deserializer)? {
        None => Ok(BTreeMap::new()),
        Some(map) => map
            .into_iter()
            .map(|(key, value)| Ok((key, text_of(value)?)))
            .collect(),
    }
}
