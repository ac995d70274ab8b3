//! Typed decoding through k8s-openapi (DESIGN.md: "k8s-openapi types for validation"): a body
//! must decode as its upstream type (else 400, with the JSON path of the bad field), fields the
//! type does not know are reported for `fieldValidation` and pruned, as upstream does.

use serde_json::Value;

use crate::http::error::ApiError;
use crate::registry::ResourceDef;

/// The outcome of a typed round trip.
#[derive(Debug)]
pub struct Decoded {
    /// The object as its upstream type serializes it (unknown fields pruned).
    pub object: Value,
    /// JSON paths of fields the type does not know, e.g. `spec.replicass`.
    pub unknown_fields: Vec<String>,
}

/// Decodes `value` as `T` and serializes it back (the error names the path, not the value).
pub(crate) fn roundtrip<T>(value: &Value) -> Result<Value, String>
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let typed: T = serde_path_to_error::deserialize(value)
        .map_err(|e| format!("{}: {}", e.path(), redacted(e.inner())))?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

/// A decoding error without the value that caused it. serde's messages quote the offending
/// value (`invalid type: string "hunter2", expected …`), and a field of a Secret's
/// `stringData` must never reach the response or the audit log that way, so only the kind of
/// the value, what was expected, and field names (which come from the type) are kept; a
/// message of any other shape (a custom one, such as a base64 error naming a byte of the
/// value) becomes a generic one.
fn redacted(error: &serde_json::Error) -> String {
    let text = error.to_string();
    // The kind of an `Unexpected` value: its first word ("string", "integer", "map", …).
    let kind = |unexpected: &str| {
        unexpected
            .split([' ', ','])
            .next()
            .filter(|w| w.chars().all(|c| c.is_ascii_alphabetic()))
            .unwrap_or("value")
            .to_owned()
    };
    let expected = |rest: &str| {
        rest.rsplit_once(", expected ")
            .map(|(_, e)| format!(", expected {e}"))
            .unwrap_or_default()
    };
    if let Some(rest) = text.strip_prefix("invalid type: ") {
        return format!("invalid type: {}{}", kind(rest), expected(rest));
    }
    if let Some(rest) = text.strip_prefix("invalid value: ") {
        return format!("invalid value: {}{}", kind(rest), expected(rest));
    }
    if text.starts_with("invalid length ") || text.starts_with("missing field `") {
        // A length or a field name of the type: nothing of the value.
        return text;
    }
    if let Some(rest) = text.strip_prefix("unknown variant ") {
        return format!("unknown variant{}", expected(rest));
    }
    "invalid value".to_owned()
}

fn typed_roundtrip(def: &ResourceDef, value: &Value) -> Result<Value, String> {
    def.strategy.roundtrip(value)
}

/// Paths present (and non-null) in `original` but missing from `typed`.
fn unknown_paths(original: &Value, typed: &Value, path: &str, out: &mut Vec<String>) {
    match (original, typed) {
        (Value::Object(orig), Value::Object(known)) => {
            for (key, value) in orig {
                if value.is_null() {
                    continue;
                }
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match known.get(key) {
                    None => out.push(child),
                    Some(k) => unknown_paths(value, k, &child, out),
                }
            }
        }
        (Value::Array(orig), Value::Array(known)) => {
            for (i, (o, k)) in orig.iter().zip(known).enumerate() {
                unknown_paths(o, k, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// `original` without the fields its typed form dropped (unknown ones), and without the
/// fields the type added (required fields it defaulted): a partial object stays partial, as
/// a server-side apply configuration must.
pub fn prune_unknown(original: &Value, typed: &Value) -> Value {
    match (original, typed) {
        (Value::Object(orig), Value::Object(known)) => Value::Object(
            orig.iter()
                .filter_map(|(key, value)| {
                    if value.is_null() {
                        return Some((key.clone(), Value::Null));
                    }
                    known
                        .get(key)
                        .map(|k| (key.clone(), prune_unknown(value, k)))
                })
                .collect(),
        ),
        (Value::Array(orig), Value::Array(known)) => Value::Array(
            orig.iter()
                .zip(known)
                .map(|(o, k)| prune_unknown(o, k))
                .collect(),
        ),
        _ => original.clone(),
    }
}

/// Decodes `value` as `def`'s upstream type.
pub fn decode(def: &ResourceDef, value: &Value) -> Result<Decoded, ApiError> {
    let object = typed_roundtrip(def, value).map_err(|why| {
        ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: {why}",
            kind = def.kind(),
            version = def.version()
        ))
    })?;
    let mut unknown_fields = Vec::new();
    unknown_paths(value, &object, "", &mut unknown_fields);
    Ok(Decoded {
        object,
        unknown_fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prunes_and_reports_unknown_fields() {
        let def = crate::registry::lookup(&bulwark_api::GroupVersionResource::new(
            "apps",
            "v1",
            "deployments",
        ))
        .unwrap();
        let d = decode(&def, &json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"a": "b"}, "bogus": 1},
            "spec": {"replicass": 2, "selector": {"matchLabels": {"a": "b"}},
                     "template": {"spec": {"containers": [{"name": "c", "image": "i", "nope": true}]}}}
        })).unwrap();
        assert_eq!(
            d.unknown_fields,
            [
                "metadata.bogus",
                "spec.replicass",
                "spec.template.spec.containers[0].nope"
            ]
        );
        assert!(d.object["spec"].get("replicass").is_none());
        assert_eq!(d.object["metadata"]["labels"]["a"], "b");
        let err = decode(&def, &json!({"metadata": {"name": 5}})).unwrap_err();
        assert_eq!(err.code(), 400);
        assert!(err.0.message.contains("metadata.name"), "{}", err.0.message);
    }

    /// A value in the wrong shape is named by its kind, never quoted (a Secret's stringData in
    /// an error message would reach the response and the audit log).
    #[test]
    fn decoding_errors_never_quote_the_value() {
        let def =
            crate::registry::lookup(&bulwark_api::GroupVersionResource::new("", "v1", "secrets"))
                .unwrap();
        for (body, expect) in [
            (
                json!({"metadata": {"name": "s"}, "stringData": {"password": 424242}}),
                "stringData.password: invalid type: integer, expected a string",
            ),
            (
                json!({"metadata": {"name": "s"}, "stringData": "hunter2-secret"}),
                "stringData: invalid type: string, expected a map",
            ),
            (
                json!({"metadata": {"name": "s"}, "data": {"k": "hunter2-secret!"}}),
                "data.k: invalid value",
            ),
        ] {
            let err = decode(&def, &body).unwrap_err();
            let message = &err.0.message;
            assert!(message.ends_with(expect), "{message}");
            assert!(
                !message.contains("424242") && !message.contains("hunter2"),
                "{message}"
            );
        }
    }

    #[test]
    fn pruning_keeps_a_partial_object_partial() {
        let def = crate::registry::lookup(&bulwark_api::GroupVersionResource::new(
            "apps",
            "v1",
            "deployments",
        ))
        .unwrap();
        let partial = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"}, "spec": {"replicas": 3, "replicass": 4}});
        let decoded = decode(&def, &partial).unwrap();
        // The type fills in required fields (selector, template) ...
        assert!(decoded.object["spec"].get("selector").is_some());
        // ... which the pruned original does not get; the unknown field is gone.
        assert_eq!(
            prune_unknown(&partial, &decoded.object),
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web"}, "spec": {"replicas": 3}})
        );
    }

    proptest::proptest! {
        #[test]
        fn decoding_garbage_never_panics(key in "[a-zA-Z]{1,8}", n in proptest::prelude::any::<i64>(), s in ".{0,8}") {
            for def in crate::registry::builtin().iter() {
                let value = json!({"metadata": {"name": s.clone(), &key: n}, "spec": {&key: [s.clone(), n]}, "data": {&key: n}});
                let _ = decode(def, &value);
            }
        }
    }
}
