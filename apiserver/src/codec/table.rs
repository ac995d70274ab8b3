//! Server-side `Table` output (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`): the
//! columns upstream prints for the common kinds (each kind's strategy names its columns and
//! cells), so `kubectl get` shows READY, STATUS, AGE and friends without knowing the kinds.

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::registry::ResourceDef;
use crate::rest::object::{meta_str, parse_time};

/// What each row carries besides its cells (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    /// No object.
    None,
    /// `PartialObjectMetadata` (the default).
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query value.
    pub fn parse(value: Option<&str>) -> Self {
        match value {
            Some("None") => Self::None,
            Some("Object") => Self::Object,
            _ => Self::Metadata,
        }
    }
}

/// Upstream's `duration.HumanDuration`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    let s = seconds.max(0);
    if s < 120 {
        return format!("{s}s");
    }
    let minutes = s / 60;
    if minutes < 10 {
        let rest = s % 60;
        return if rest == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{rest}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let rest = minutes % 60;
        return if rest == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{rest}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let rest = hours % 24;
        let days = hours / 24;
        return if rest == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{rest}h")
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    let years = hours / 24 / 365;
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        return if days == 0 {
            format!("{years}y")
        } else {
            format!("{years}y{days}d")
        };
    }
    format!("{years}y")
}

/// The age of the timestamp in `metadata.<field>`, as kubectl prints it.
pub(crate) fn age_of(obj: &Value, field: &str) -> String {
    match meta_str(obj, field).and_then(parse_time) {
        Some(t) => human_duration((OffsetDateTime::now_utc() - t).whole_seconds()),
        None => "<unknown>".into(),
    }
}

/// The AGE cell.
pub(crate) fn age(obj: &Value) -> Value {
    Value::String(age_of(obj, "creationTimestamp"))
}

/// An integer field (0 when absent).
pub(crate) fn int(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// A string field ("" when absent).
pub(crate) fn text(obj: &Value, pointer: &str) -> String {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The number of entries of a map or list field.
pub(crate) fn len(obj: &Value, pointer: &str) -> i64 {
    match obj.pointer(pointer) {
        Some(Value::Object(m)) => i64::try_from(m.len()).unwrap_or(i64::MAX),
        Some(Value::Array(a)) => i64::try_from(a.len()).unwrap_or(i64::MAX),
        _ => 0,
    }
}

/// `<none>` for an empty cell.
pub(crate) fn or_none(s: String) -> String {
    if s.is_empty() { "<none>".into() } else { s }
}

/// A comma-separated field of each container.
pub(crate) fn images(obj: &Value, pointer: &str, field: &str) -> String {
    obj.pointer(pointer)
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get(field).and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// A workload's selector, `k=v,…`.
pub(crate) fn selector(obj: &Value) -> String {
    crate::rest::object::selector_string(obj.pointer("/spec/selector/matchLabels"))
}

fn row(def: &ResourceDef, obj: &Value, include: IncludeObject) -> Value {
    let mut all = vec![json!(meta_str(obj, "name").unwrap_or_default())];
    all.extend(def.strategy().cells(obj));
    let mut row = json!({"cells": all});
    let object = match include {
        IncludeObject::None => None,
        IncludeObject::Object => Some(obj.clone()),
        IncludeObject::Metadata => Some(json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
        })),
    };
    if let (Some(o), Some(map)) = (object, row.as_object_mut()) {
        map.insert("object".into(), o);
    }
    row
}

/// A Table of `objects`, with list metadata (`resourceVersion`, `continue`).
pub fn table(
    def: &ResourceDef,
    objects: &[Value],
    list_meta: Value,
    include: IncludeObject,
) -> Value {
    let mut defs = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0}),
    ];
    defs.extend(def.strategy().columns().iter().map(|(name, ty, priority)| {
        json!({"name": name, "type": ty, "format": "", "description": name, "priority": priority})
    }));
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": defs,
        "rows": objects.iter().map(|o| row(def, o, include)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::lookup;

    #[test]
    fn durations_match_upstream() {
        for (s, want) in [
            (5, "5s"),
            (119, "119s"),
            (125, "2m5s"),
            (600, "10m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60, "3h1m"),
            (50 * 3600, "2d2h"),
            (9 * 86400, "9d"),
            (3 * 365 * 86400, "3y"),
        ] {
            assert_eq!(human_duration(s), want, "{s}");
        }
    }

    #[test]
    fn every_kind_has_matching_cells() {
        for def in crate::registry::builtin().iter() {
            let obj =
                json!({"metadata": {"name": "x", "creationTimestamp": "2020-01-01T00:00:00Z"}});
            let t = table(def, &[obj], json!({}), IncludeObject::Metadata);
            assert_eq!(
                t["rows"][0]["cells"].as_array().unwrap().len(),
                t["columnDefinitions"].as_array().unwrap().len(),
                "{}",
                def.plural()
            );
        }
        let d = lookup(&bulwark_api::GroupVersionResource::new(
            "apps",
            "v1",
            "deployments",
        ))
        .unwrap();
        let obj = json!({"metadata": {"name": "web"}, "spec": {"replicas": 3}, "status": {"readyReplicas": 2}});
        let t = table(&d, &[obj], json!({}), IncludeObject::None);
        assert_eq!(t["rows"][0]["cells"][1], "2/3");
        assert!(t["rows"][0].get("object").is_none());
    }
}
