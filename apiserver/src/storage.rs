//! How objects map onto store keys and back:
//! `/registry/<group|core>/<plural>/<namespace>/<name>` (namespaced) and
//! `/registry/<group|core>/<plural>/<name>` (cluster-scoped), using the storage of the kind a
//! resource shares it with (`registry::convert`). Values are the object's JSON in its stored
//! shape without `resourceVersion`; on the way out `resourceVersion` is the store revision as
//! a decimal string (DESIGN.md) and the object is converted to the served shape.

pub(crate) mod event_cache;
pub(crate) mod mirror;

use bulwark_store::KeyValue;
use serde_json::Value;

use crate::http::error::ApiError;
use crate::registry::ResourceDef;
use crate::registry::convert;

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

/// A stored object re-encoded with its `resourceVersion`, parsed only at the top level.
#[derive(Debug)]
pub struct RawObject {
    /// The object's JSON, `metadata.resourceVersion` set.
    pub bytes: Vec<u8>,
    /// Its metadata, parsed (for label selection).
    pub metadata: Value,
}

impl RawObject {
    /// `metadata.labels`.
    pub fn labels(&self) -> Option<&serde_json::Map<String, Value>> {
        self.metadata.get("labels").and_then(Value::as_object)
    }
}

/// Decodes a stored key-value without building the object tree: only the top-level keys and
/// `metadata` are parsed; every other field is copied through as raw JSON.
pub fn decode_raw(kv: &KeyValue) -> Result<RawObject, ApiError> {
    let top: std::collections::BTreeMap<String, &serde_json::value::RawValue> =
        serde_json::from_slice(&kv.value).map_err(ApiError::internal)?;
    let mut metadata: Value = match top.get("metadata") {
        Some(raw) => serde_json::from_str(raw.get()).map_err(ApiError::internal)?,
        None => Value::Object(serde_json::Map::new()),
    };
    if let Some(meta) = metadata.as_object_mut() {
        meta.insert(
            "resourceVersion".into(),
            Value::String(kv.mod_revision.0.to_string()),
        );
    }
    let mut bytes = Vec::with_capacity(kv.value.len() + 32);
    bytes.push(b'{');
    let mut first = true;
    let mut write = |bytes: &mut Vec<u8>, key: &str, value: &[u8]| -> Result<(), ApiError> {
        if !first {
            bytes.push(b',');
        }
        first = false;
        serde_json::to_writer(&mut *bytes, key).map_err(ApiError::internal)?;
        bytes.push(b':');
        bytes.extend_from_slice(value);
        Ok(())
    };
    let meta_bytes = serde_json::to_vec(&metadata).map_err(ApiError::internal)?;
    if !top.contains_key("metadata") {
        write(&mut bytes, "metadata", &meta_bytes)?;
    }
    for (key, raw) in &top {
        let value = if key == "metadata" {
            meta_bytes.as_slice()
        } else {
            raw.get().as_bytes()
        };
        write(&mut bytes, key, value)?;
    }
    bytes.push(b'}');
    Ok(RawObject { bytes, metadata })
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
    fn raw_decoding_matches_full_decoding() {
        let cm = lookup("", "v1", "configmaps").unwrap();
        let obj = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x", "labels": {"a": "b"}, "resourceVersion": "stale"},
            "data": {"metadata": "{\"not\": \"this\"}", "k": "v"}});
        let kv = KeyValue {
            key: "/registry/core/configmaps/d/x".into(),
            value: encode(cm, &obj).unwrap().into(),
            create_revision: bulwark_store::Revision(3),
            mod_revision: bulwark_store::Revision(7),
            version: 2,
        };
        let raw = decode_raw(&kv).unwrap();
        let reparsed: Value = serde_json::from_slice(&raw.bytes).unwrap();
        assert_eq!(reparsed, decode(cm, &kv).unwrap());
        assert_eq!(reparsed["metadata"]["resourceVersion"], "7");
        assert_eq!(raw.labels().unwrap()["a"], "b");
    }

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
