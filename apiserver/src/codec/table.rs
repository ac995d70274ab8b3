//! Server-side `Table` output (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`): the
//! columns upstream prints for the common kinds, so `kubectl get` shows READY, STATUS, AGE and
//! friends without knowing the kinds itself.

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

fn age_of(obj: &Value, field: &str) -> String {
    match meta_str(obj, field).and_then(parse_time) {
        Some(t) => human_duration((OffsetDateTime::now_utc() - t).whole_seconds()),
        None => "<unknown>".into(),
    }
}

fn age(obj: &Value) -> Value {
    Value::String(age_of(obj, "creationTimestamp"))
}

fn int(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn text(obj: &Value, pointer: &str) -> String {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn len(obj: &Value, pointer: &str) -> i64 {
    match obj.pointer(pointer) {
        Some(Value::Object(m)) => i64::try_from(m.len()).unwrap_or(i64::MAX),
        Some(Value::Array(a)) => i64::try_from(a.len()).unwrap_or(i64::MAX),
        _ => 0,
    }
}

fn or_none(s: String) -> String {
    if s.is_empty() { "<none>".into() } else { s }
}

fn pod_cells(pod: &Value) -> Vec<Value> {
    let total = len(pod, "/spec/containers");
    let statuses = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ready = statuses
        .iter()
        .filter(|s| s.get("ready") == Some(&Value::Bool(true)))
        .count();
    let restarts: i64 = statuses
        .iter()
        .map(|s| s.get("restartCount").and_then(Value::as_i64).unwrap_or(0))
        .sum();
    let mut status = text(pod, "/status/reason");
    if status.is_empty() {
        status = text(pod, "/status/phase");
    }
    for s in &statuses {
        if let Some(reason) = s.pointer("/state/waiting/reason").and_then(Value::as_str) {
            status = reason.to_owned();
        }
    }
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        status = "Terminating".into();
    }
    vec![
        json!(format!("{ready}/{total}")),
        json!(status),
        json!(restarts),
        age(pod),
        json!(or_none(text(pod, "/status/podIP"))),
        json!(or_none(text(pod, "/spec/nodeName"))),
    ]
}

fn images(obj: &Value, pointer: &str, field: &str) -> String {
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

fn selector(obj: &Value) -> String {
    crate::rest::object::selector_string(obj.pointer("/spec/selector/matchLabels"))
}

fn service_ports(svc: &Value) -> String {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    let port = int(p, "/port");
                    let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                    match p.get("nodePort").and_then(Value::as_i64) {
                        Some(np) => format!("{port}:{np}/{proto}"),
                        None => format!("{port}/{proto}"),
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "<none>".into())
}

fn node_status(node: &Value) -> String {
    let ready = node
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        })
        .and_then(|c| c.get("status").and_then(Value::as_str));
    let mut status = match ready {
        Some("True") => "Ready".to_owned(),
        _ => "NotReady".to_owned(),
    };
    if node.pointer("/spec/unschedulable") == Some(&Value::Bool(true)) {
        status.push_str(",SchedulingDisabled");
    }
    status
}

fn node_roles(node: &Value) -> String {
    let roles: Vec<String> = crate::rest::object::labels(node)
        .map(|l| {
            l.keys()
                .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if roles.is_empty() {
        "<none>".into()
    } else {
        roles.join(",")
    }
}

fn csr_condition(csr: &Value) -> String {
    let types: Vec<String> = csr
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("type").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut out = if types.is_empty() {
        "Pending".to_owned()
    } else {
        types.join(",")
    };
    if csr.pointer("/status/certificate").is_some() {
        out.push_str(",Issued");
    }
    out
}

type Column = (&'static str, &'static str, u8);

/// Columns (name, type, priority) after NAME, and the cells of one object.
fn columns(def: &ResourceDef) -> &'static [Column] {
    match (def.group, def.plural) {
        ("", "pods") => &[
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "integer", 0),
            ("Age", "string", 0),
            ("IP", "string", 1),
            ("Node", "string", 1),
        ],
        ("", "namespaces") => &[("Status", "string", 0), ("Age", "string", 0)],
        ("", "nodes") => &[
            ("Status", "string", 0),
            ("Roles", "string", 0),
            ("Age", "string", 0),
            ("Version", "string", 0),
        ],
        ("", "services") => &[
            ("Type", "string", 0),
            ("Cluster-IP", "string", 0),
            ("External-IP", "string", 0),
            ("Port(s)", "string", 0),
            ("Age", "string", 0),
            ("Selector", "string", 1),
        ],
        ("", "configmaps") => &[("Data", "integer", 0), ("Age", "string", 0)],
        ("", "secrets") => &[
            ("Type", "string", 0),
            ("Data", "integer", 0),
            ("Age", "string", 0),
        ],
        ("", "serviceaccounts") => &[("Secrets", "integer", 0), ("Age", "string", 0)],
        ("", "endpoints") => &[("Endpoints", "string", 0), ("Age", "string", 0)],
        ("", "events") | ("events.k8s.io", "events") => &[
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Message", "string", 0),
            ("Age", "string", 0),
        ],
        ("apps", "deployments") => &[
            ("Ready", "string", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        ("apps", "replicasets") => &[
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
        ],
        ("apps", "daemonsets") => &[
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Age", "string", 0),
        ],
        ("apps", "statefulsets") => &[("Ready", "string", 0), ("Age", "string", 0)],
        ("batch", "jobs") => &[("Completions", "string", 0), ("Age", "string", 0)],
        ("batch", "cronjobs") => &[
            ("Schedule", "string", 0),
            ("Suspend", "boolean", 0),
            ("Active", "integer", 0),
            ("Last Schedule", "string", 0),
            ("Age", "string", 0),
        ],
        ("coordination.k8s.io", "leases") => &[("Holder", "string", 0), ("Age", "string", 0)],
        ("certificates.k8s.io", "certificatesigningrequests") => &[
            ("Age", "string", 0),
            ("SignerName", "string", 0),
            ("Requestor", "string", 0),
            ("Condition", "string", 0),
        ],
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => {
            &[("Role", "string", 0), ("Age", "string", 0)]
        }
        ("policy.bulwark.dev", "cedarpolicies") => &[
            ("Kind", "string", 0),
            ("Mode", "string", 0),
            ("Namespace", "string", 0),
            ("Policies", "integer", 0),
            ("Loaded", "string", 0),
            ("Age", "string", 0),
        ],
        _ => &[("Age", "string", 0)],
    }
}

/// A CedarPolicy's `Loaded` condition status (`True`, `False`, or `Unknown` before any API
/// server has looked at it).
fn loaded_condition(o: &Value) -> String {
    o.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Loaded"))
        })
        .and_then(|c| c.get("status").and_then(Value::as_str))
        .unwrap_or("Unknown")
        .to_owned()
}

fn cells(def: &ResourceDef, o: &Value) -> Vec<Value> {
    match (def.group, def.plural) {
        ("", "pods") => pod_cells(o),
        ("", "namespaces") => vec![json!(text(o, "/status/phase")), age(o)],
        ("", "nodes") => vec![
            json!(node_status(o)),
            json!(node_roles(o)),
            age(o),
            json!(text(o, "/status/nodeInfo/kubeletVersion")),
        ],
        ("", "services") => vec![
            json!(text(o, "/spec/type")),
            json!(or_none(text(o, "/spec/clusterIP"))),
            json!("<none>"),
            json!(service_ports(o)),
            age(o),
            json!(or_none(crate::rest::object::selector_string(
                o.pointer("/spec/selector")
            ))),
        ],
        ("", "configmaps") => vec![json!(len(o, "/data") + len(o, "/binaryData")), age(o)],
        ("", "secrets") => vec![json!(text(o, "/type")), json!(len(o, "/data")), age(o)],
        ("", "serviceaccounts") => vec![json!(len(o, "/secrets")), age(o)],
        ("", "endpoints") => vec![
            json!(or_none(
                o.pointer("/subsets")
                    .and_then(Value::as_array)
                    .map(|ss| ss
                        .iter()
                        .flat_map(|s| {
                            let ports: Vec<i64> = s
                                .get("ports")
                                .and_then(Value::as_array)
                                .map(|p| p.iter().map(|p| int(p, "/port")).collect())
                                .unwrap_or_default();
                            let ips: Vec<String> = s
                                .get("addresses")
                                .and_then(Value::as_array)
                                .map(|a| a.iter().map(|a| text(a, "/ip")).collect())
                                .unwrap_or_default();
                            ips.into_iter().flat_map(move |ip| {
                                ports.clone().into_iter().map(move |p| format!("{ip}:{p}"))
                            })
                        })
                        .collect::<Vec<_>>()
                        .join(","))
                    .unwrap_or_default()
            )),
            age(o),
        ],
        ("", "events") => vec![
            json!(text(o, "/type")),
            json!(text(o, "/reason")),
            json!(format!(
                "{}/{}",
                text(o, "/involvedObject/kind").to_lowercase(),
                text(o, "/involvedObject/name")
            )),
            json!(text(o, "/message")),
            age(o),
        ],
        ("events.k8s.io", "events") => vec![
            json!(text(o, "/type")),
            json!(text(o, "/reason")),
            json!(format!(
                "{}/{}",
                text(o, "/regarding/kind").to_lowercase(),
                text(o, "/regarding/name")
            )),
            json!(text(o, "/note")),
            age(o),
        ],
        ("apps", "deployments") => vec![
            json!(format!(
                "{}/{}",
                int(o, "/status/readyReplicas"),
                int(o, "/spec/replicas")
            )),
            json!(int(o, "/status/updatedReplicas")),
            json!(int(o, "/status/availableReplicas")),
            age(o),
            json!(images(o, "/spec/template/spec/containers", "name")),
            json!(images(o, "/spec/template/spec/containers", "image")),
            json!(selector(o)),
        ],
        ("apps", "replicasets") => vec![
            json!(int(o, "/spec/replicas")),
            json!(int(o, "/status/replicas")),
            json!(int(o, "/status/readyReplicas")),
            age(o),
            json!(images(o, "/spec/template/spec/containers", "name")),
            json!(images(o, "/spec/template/spec/containers", "image")),
        ],
        ("apps", "daemonsets") => vec![
            json!(int(o, "/status/desiredNumberScheduled")),
            json!(int(o, "/status/currentNumberScheduled")),
            json!(int(o, "/status/numberReady")),
            json!(int(o, "/status/updatedNumberScheduled")),
            json!(int(o, "/status/numberAvailable")),
            age(o),
        ],
        ("apps", "statefulsets") => vec![
            json!(format!(
                "{}/{}",
                int(o, "/status/readyReplicas"),
                int(o, "/spec/replicas")
            )),
            age(o),
        ],
        ("batch", "jobs") => vec![
            json!(format!(
                "{}/{}",
                int(o, "/status/succeeded"),
                o.pointer("/spec/completions")
                    .and_then(Value::as_i64)
                    .unwrap_or(1)
            )),
            age(o),
        ],
        ("batch", "cronjobs") => vec![
            json!(text(o, "/spec/schedule")),
            json!(
                o.pointer("/spec/suspend")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            ),
            json!(len(o, "/status/active")),
            json!(
                o.pointer("/status/lastScheduleTime")
                    .and_then(Value::as_str)
                    .and_then(parse_time)
                    .map_or("<none>".into(), |t| human_duration(
                        (OffsetDateTime::now_utc() - t).whole_seconds()
                    ))
            ),
            age(o),
        ],
        ("coordination.k8s.io", "leases") => vec![json!(text(o, "/spec/holderIdentity")), age(o)],
        ("certificates.k8s.io", "certificatesigningrequests") => vec![
            age(o),
            json!(text(o, "/spec/signerName")),
            json!(text(o, "/spec/username")),
            json!(csr_condition(o)),
        ],
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => vec![
            json!(format!(
                "{}/{}",
                text(o, "/roleRef/kind"),
                text(o, "/roleRef/name")
            )),
            age(o),
        ],
        ("policy.bulwark.dev", "cedarpolicies") => vec![
            json!(text(o, "/spec/kind")),
            json!(or_none(text(o, "/spec/mode"))),
            json!(or_none(text(o, "/spec/namespace"))),
            json!(len(o, "/status/policyIds")),
            json!(loaded_condition(o)),
            age(o),
        ],
        _ => vec![age(o)],
    }
}

fn row(def: &ResourceDef, obj: &Value, include: IncludeObject) -> Value {
    let mut all = vec![json!(meta_str(obj, "name").unwrap_or_default())];
    all.extend(cells(def, obj));
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
    defs.extend(columns(def).iter().map(|(name, ty, priority)| {
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
        for def in crate::registry::RESOURCES {
            let obj =
                json!({"metadata": {"name": "x", "creationTimestamp": "2020-01-01T00:00:00Z"}});
            let t = table(def, &[obj], json!({}), IncludeObject::Metadata);
            assert_eq!(
                t["rows"][0]["cells"].as_array().unwrap().len(),
                t["columnDefinitions"].as_array().unwrap().len(),
                "{}",
                def.plural
            );
        }
        let d = lookup("apps", "v1", "deployments").unwrap();
        let obj = json!({"metadata": {"name": "web"}, "spec": {"replicas": 3}, "status": {"readyReplicas": 2}});
        let t = table(d, &[obj], json!({}), IncludeObject::None);
        assert_eq!(t["rows"][0]["cells"][1], "2/3");
        assert!(t["rows"][0].get("object").is_none());
    }
}
