//! Kinds served in one shape and stored in another (`events.k8s.io/v1` Events are stored as
//! `core/v1` Events): the storage a kind uses and the conversion both ways, as each kind's
//! strategy says ([`crate::registry::strategy::KindStrategy::stored_as`]).

use serde_json::Value;

use crate::registry::{self, ResourceDef};

/// The resource whose storage `def` uses (itself, unless its strategy names another).
pub fn storage_def(def: &ResourceDef) -> &ResourceDef {
    match def.strategy().stored_as() {
        Some(gvr) => registry::builtin()
            .get(&gvr)
            .map_or(def, |shared| &**shared),
        None => def,
    }
}

/// Whether objects of `def` are stored exactly as served.
pub fn is_identity(def: &ResourceDef) -> bool {
    def.strategy().stored_as().is_none()
}

/// Converts an object of `def`'s served shape into its stored shape.
pub fn to_stored(def: &ResourceDef, obj: Value) -> Value {
    def.strategy().stored_from_served(obj)
}

/// Converts a stored object into `def`'s served shape.
pub fn from_stored(def: &ResourceDef, obj: Value) -> Value {
    def.strategy().served_from_stored(obj)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
