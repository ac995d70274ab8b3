//! `events.k8s.io/v1` Events, stored as `core/v1` Events as upstream does, so an event
//! recorded through either API is visible through both (`kubectl get events` and `kubectl
//! events` see the same objects).
//!
//! Field mapping (upstream's conversion): regarding ↔ involvedObject, note ↔ message,
//! reportingController ↔ reportingComponent, deprecatedSource ↔ source,
//! deprecatedFirstTimestamp ↔ firstTimestamp, deprecatedLastTimestamp ↔ lastTimestamp,
//! deprecatedCount ↔ count; every other field has the same name in both.

use bulwark_api::GroupVersionResource;
use serde_json::{Value, json};

use super::core::{EVENT_COLUMNS, event_cells};
use crate::registry::strategy::{Column, KindStrategy, typed};

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

fn rename(obj: &mut Value, from: &str, to: &str) {
    if let Some(map) = obj.as_object_mut()
        && let Some(v) = map.remove(from)
    {
        map.insert(to.to_owned(), v);
    }
}

/// `events.k8s.io/v1` Events.
#[derive(Debug)]
pub(crate) struct Events;

impl KindStrategy for Events {
    typed!(k8s_openapi::api::events::v1::Event);

    fn stored_as(&self) -> Option<GroupVersionResource<'static>> {
        Some(GroupVersionResource::new("", "v1", "events"))
    }

    fn stored_from_served(&self, mut obj: Value) -> Value {
        for (served, stored) in EVENT_FIELDS {
            rename(&mut obj, served, stored);
        }
        if let Some(map) = obj.as_object_mut() {
            map.insert("apiVersion".into(), json!("v1"));
        }
        obj
    }

    fn served_from_stored(&self, mut obj: Value) -> Value {
        for (served, stored) in EVENT_FIELDS {
            rename(&mut obj, stored, served);
        }
        if let Some(map) = obj.as_object_mut() {
            map.insert("apiVersion".into(), json!("events.k8s.io/v1"));
        }
        obj
    }

    fn columns(&self) -> &'static [Column] {
        EVENT_COLUMNS
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        event_cells(o, "/regarding", "/note")
    }
}
