//! How objects map onto store keys and back:
//! `/registry/<group|core>/<plural>/<namespace>/<name>` (namespaced) and
//! `/registry/<group|core>/<plural>/<name>` (cluster-scoped), using the storage of the kind a
//! resource shares it with ([`crate::convert`]). Values are the object's JSON in its stored
//! shape without `resourceVersion`; on the way out `resourceVersion` is the store revision as
//! a decimal string (DESIGN.md) and the object is converted to the served shape.

use bulwark_store::KeyValue;
use serde_json::Value;

use crate::convert;
use crate::error::ApiError;
use crate::registry::ResourceDef;

fn group_segment(def: &ResourceDef) -> &str {
    if def.group.is_empty() {
        "core"
    } else {
        def.group
    }
}

/// The key of one object.
pub fn object_key(def: &'static ResourceDef, namespace: Option<&str>, name: &str) -> String {
    let def = convert::storage_def(def);
    match namespace.filter(|_| def.namespaced) {
        Some(ns) => format!(
            "/registry/{}/{}/{ns}/{name}",
            group_segment(def),
            def.plural
        ),
        None => format!("/registry/{}/{}/{name}", group_segment(def), def.plural),
    }
}

/// The prefix of a collection: one namespace, or every object of the kind.
pub fn collection_prefix(def: &'static ResourceDef, namespace: Option<&str>) -> String {
    let def = convert::storage_def(def);
    match namespace.filter(|_| def.namespaced) {
        Some(ns) => format!("/registry/{}/{}/{ns}/", group_segment(def), def.plural),
        None => format!("/registry/{}/{}/", group_segment(def), def.plural),
    }
}

/// Serializes an object of `def` for storage (stored shape, without `resourceVersion`).
pub fn encode(def: &ResourceDef, obj: &Value) -> Result<Vec<u8>, ApiError> {
    let mut copy = convert::to_stored(def, obj.clone());
    if let Some(meta) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    serde_json::to_vec(&copy).map_err(ApiError::internal)
}

/// Decodes a stored value in its stored shape, setting `resourceVersion` to `revision`.
pub fn decode_stored_at(bytes: &[u8], revision: u64) -> Result<Value, ApiError> {
    let mut obj: Value = serde_json::from_slice(bytes).map_err(ApiError::internal)?;
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert(
            "resourceVersion".into(),
            Value::String(revision.to_string()),
        );
    }
    Ok(obj)
}

/// Decodes a stored key-value in its stored shape, at its modification revision.
pub fn decode_stored(kv: &KeyValue) -> Result<Value, ApiError> {
    decode_stored_at(&kv.value, kv.mod_revision.0)
}

/// Decodes a stored key-value as `def` serves it.
pub fn decode(def: &ResourceDef, kv: &KeyValue) -> Result<Value, ApiError> {
    Ok(convert::from_stored(def, decode_stored(kv)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::lookup;

    #[test]
    fn keys_do_not_collide() {
        let cm = lookup("", "v1", "configmaps").unwrap();
        let ns = lookup("", "v1", "namespaces").unwrap();
        assert_eq!(
            object_key(cm, Some("a"), "x"),
            "/registry/core/configmaps/a/x"
        );
        assert_eq!(
            collection_prefix(cm, Some("a")),
            "/registry/core/configmaps/a/"
        );
        assert_eq!(
            object_key(ns, Some("ignored"), "a"),
            "/registry/core/namespaces/a"
        );
        let ev = lookup("events.k8s.io", "v1", "events").unwrap();
        assert_eq!(collection_prefix(ev, None), "/registry/core/events/");
    }
}
