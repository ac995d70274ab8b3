//! Kinds served in two shapes from one storage, as upstream does: `events.k8s.io/v1` Events
//! are stored as `core/v1` Events, so an event recorded through either API is visible through
//! both (`kubectl get events` and `kubectl events` see the same objects).
//!
//! Field mapping (upstream's conversion): regarding ↔ involvedObject, note ↔ message,
//! reportingController ↔ reportingComponent, deprecatedSource ↔ source,
//! deprecatedFirstTimestamp ↔ firstTimestamp, deprecatedLastTimestamp ↔ lastTimestamp,
//! deprecatedCount ↔ count; every other field has the same name in both.

use serde_json::{Value, json};

use crate::registry::{self, ResourceDef};

/// (events.k8s.io/v1 name, core/v1 name).
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn is_events_v1(def: &ResourceDef) -> bool {
    def.is("events.k8s.io", "Event")
}

/// The resource whose storage `def` uses (itself, except for events.k8s.io Events).
pub fn storage_def(def: &ResourceDef) -> &ResourceDef {
    if is_events_v1(def) {
        registry::builtin()
            .get(&bulwark_api::GroupVersionResource::new("", "v1", "events"))
            .map_or(def, |core| &**core)
    } else {
        def
    }
}

/// Whether objects of `def` are stored exactly as served.
pub fn is_identity(def: &ResourceDef) -> bool {
    !is_events_v1(def)
}

fn rename(obj: &mut Value, from: &str, to: &str) {
    if let Some(map) = obj.as_object_mut()
        && let Some(v) = map.remove(from)
    {
        map.insert(to.to_owned(), v);
    }
}

/// Converts an object of `def`'s served shape into its stored shape.
pub fn to_stored(def: &ResourceDef, mut obj: Value) -> Value {
    if is_events_v1(def) {
        for (served, stored) in EVENT_FIELDS {
            rename(&mut obj, served, stored);
        }
        if let Some(map) = obj.as_object_mut() {
            map.insert("apiVersion".into(), json!("v1"));
        }
    }
    obj
}

/// Converts a stored object into `def`'s served shape.
pub fn from_stored(def: &ResourceDef, mut obj: Value) -> Value {
    if is_events_v1(def) {
        for (served, stored) in EVENT_FIELDS {
            rename(&mut obj, stored, served);
        }
        if let Some(map) = obj.as_object_mut() {
            map.insert("apiVersion".into(), json!("events.k8s.io/v1"));
        }
    }
    obj
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_between_shapes() {
        let def = registry::lookup(&bulwark_api::GroupVersionResource::new(
            "events.k8s.io",
            "v1",
            "events",
        ))
        .unwrap();
        assert_eq!(storage_def(&def).group(), "");
        let v1 = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
            "regarding": {"kind": "Pod", "name": "p"}, "note": "pulled", "reason": "Pulled",
            "reportingController": "kubelet", "deprecatedCount": 2});
        let stored = to_stored(&def, v1.clone());
        assert_eq!(stored["apiVersion"], "v1");
        assert_eq!(stored["involvedObject"]["name"], "p");
        assert_eq!(stored["message"], "pulled");
        assert_eq!(stored["reportingComponent"], "kubelet");
        assert_eq!(stored["count"], 2);
        assert_eq!(from_stored(&def, stored), v1);
        let core =
            registry::lookup(&bulwark_api::GroupVersionResource::new("", "v1", "events")).unwrap();
        assert!(is_identity(&core));
    }
}
