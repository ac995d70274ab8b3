//! The `core/v1` kinds.

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use bulwark_api::{StatusCause, names};
use k8s_openapi::api::core::v1 as api;
use serde_json::{Map, Value, json};

use crate::codec::table::{age, int, len, or_none, text};
use crate::registry::ResourceDef;
use crate::registry::defaults::{default, map, map_or_insert, pod_spec};
use crate::registry::strategy::{Column, KindStrategy, plain_kind, typed};
use crate::registry::validation::{Causes, port_ok};

/// Namespaces: the `kubernetes` finalizer, phase Active.
#[derive(Debug)]
pub(crate) struct Namespaces;

impl KindStrategy for Namespaces {
    typed!(api::Namespace);

    fn default(&self, root: &mut Map<String, Value>) {
        if let Some(spec) = map_or_insert(root, "spec") {
            default(spec, "finalizers", json!(["kubernetes"]));
        }
    }

    fn initial_status(&self, _: &ResourceDef, _: Option<Value>) -> Option<Value> {
        Some(json!({"phase": "Active"}))
    }

    fn terminating_status(&self) -> Option<Value> {
        Some(json!({"phase": "Terminating"}))
    }

    fn deletion_waits(&self, obj: &Value) -> bool {
        obj.pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty())
    }

    fn columns(&self) -> &'static [Column] {
        &[("Status", "string", 0), ("Age", "string", 0)]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![json!(text(o, "/status/phase")), age(o)]
    }
}

/// Keys of `data`-like maps: config keys, as upstream checks them.
fn data_keys(v: &mut Causes, obj: &Value, field: &str) {
    for key in obj
        .get(field)
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(Map::keys)
    {
        let ok = !key.is_empty()
            && key.len() <= names::SUBDOMAIN_MAX
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            && key != "."
            && key != "..";
        if !ok {
            v.invalid(
                &format!("{field}[{key}]"),
                key,
                "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
            );
        }
    }
}

/// ConfigMaps: valid keys, none in both `data` and `binaryData`.
#[derive(Debug)]
pub(crate) struct ConfigMaps;

impl KindStrategy for ConfigMaps {
    typed!(api::ConfigMap);

    fn validate(&self, obj: &Value, v: &mut Causes) {
        data_keys(v, obj, "data");
        data_keys(v, obj, "binaryData");
        if let (Some(Value::Object(d)), Some(Value::Object(b))) =
            (obj.get("data"), obj.get("binaryData"))
        {
            for key in d.keys().filter(|k| b.contains_key(*k)) {
                v.invalid(
                    &format!("data[{key}]"),
                    key,
                    "duplicate of key present in binaryData",
                );
            }
        }
    }

    fn columns(&self) -> &'static [Column] {
        &[("Data", "integer", 0), ("Age", "string", 0)]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![json!(len(o, "/data") + len(o, "/binaryData")), age(o)]
    }
}

/// Secrets: type Opaque by default, `stringData` merged into `data` (and never kept), valid
/// keys.
#[derive(Debug)]
pub(crate) struct Secrets;

impl KindStrategy for Secrets {
    typed!(api::Secret);

    fn default(&self, root: &mut Map<String, Value>) {
        default(root, "type", json!("Opaque"));
        // Upstream: stringData is a write-only convenience; its values win over data's.
        let Some(Value::Object(string_data)) = root.remove("stringData") else {
            return;
        };
        if !root.get("data").is_some_and(Value::is_object) {
            root.insert("data".into(), json!({}));
        }
        if let Some(data) = map(root, "data") {
            for (key, value) in string_data {
                if let Value::String(text) = value {
                    data.insert(key, Value::String(BASE64.encode(text)));
                }
            }
        }
    }

    fn validate(&self, obj: &Value, v: &mut Causes) {
        data_keys(v, obj, "data");
    }

    fn columns(&self) -> &'static [Column] {
        &[
            ("Type", "string", 0),
            ("Data", "integer", 0),
            ("Age", "string", 0),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![json!(text(o, "/type")), json!(len(o, "/data")), age(o)]
    }
}

/// ServiceAccounts.
#[derive(Debug)]
pub(crate) struct ServiceAccounts;

impl KindStrategy for ServiceAccounts {
    typed!(api::ServiceAccount);

    fn delete_returns_object(&self) -> bool {
        true
    }

    fn columns(&self) -> &'static [Column] {
        &[("Secrets", "integer", 0), ("Age", "string", 0)]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![json!(len(o, "/secrets")), age(o)]
    }
}

/// A pod assigned to a node: its deletion waits for the node agent.
fn is_bound(pod: &Value) -> bool {
    pod.pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty())
}

/// Pods: pod spec defaults and rules, phase Pending, `kubectl get pods` columns.
#[derive(Debug)]
pub(crate) struct Pods;

impl KindStrategy for Pods {
    typed!(api::Pod);

    fn pod_template(&self) -> Option<&'static str> {
        Some("")
    }

    fn default(&self, root: &mut Map<String, Value>) {
        if let Some(spec) = map(root, "spec") {
            pod_spec(spec);
        }
    }

    fn validate(&self, obj: &Value, v: &mut Causes) {
        if let Some(spec) = obj.get("spec") {
            v.pod_spec(spec, "spec", &["Always", "OnFailure", "Never"]);
        } else {
            v.required("spec");
        }
    }

    fn initial_status(&self, _: &ResourceDef, _: Option<Value>) -> Option<Value> {
        Some(json!({"phase": "Pending"}))
    }

    fn graceful_delete(&self, obj: &Value) -> bool {
        is_bound(obj)
    }

    fn delete_returns_object(&self) -> bool {
        true
    }

    fn deletion_waits(&self, obj: &Value) -> bool {
        is_bound(obj)
    }

    fn columns(&self) -> &'static [Column] {
        &[
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "integer", 0),
            ("Age", "string", 0),
            ("IP", "string", 1),
            ("Node", "string", 1),
        ]
    }

    fn cells(&self, pod: &Value) -> Vec<Value> {
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
}

/// Nodes: the status is the kubelet's (kept as submitted).
#[derive(Debug)]
pub(crate) struct Nodes;

impl KindStrategy for Nodes {
    typed!(api::Node);

    fn initial_status(&self, _: &ResourceDef, submitted: Option<Value>) -> Option<Value> {
        submitted
    }

    fn columns(&self) -> &'static [Column] {
        &[
            ("Status", "string", 0),
            ("Roles", "string", 0),
            ("Age", "string", 0),
            ("Version", "string", 0),
        ]
    }

    fn cells(&self, node: &Value) -> Vec<Value> {
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
        let roles: Vec<String> = crate::rest::object::labels(node)
            .map(|l| {
                l.keys()
                    .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let roles = if roles.is_empty() {
            "<none>".to_owned()
        } else {
            roles.join(",")
        };
        vec![
            json!(status),
            json!(roles),
            age(node),
            json!(text(node, "/status/nodeInfo/kubeletVersion")),
        ]
    }
}

/// Services: type ClusterIP, ports TCP with their target port, valid types and ports.
#[derive(Debug)]
pub(crate) struct Services;

impl KindStrategy for Services {
    typed!(api::Service);

    fn default(&self, root: &mut Map<String, Value>) {
        let Some(spec) = map(root, "spec") else {
            return;
        };
        default(spec, "type", json!("ClusterIP"));
        default(spec, "sessionAffinity", json!("None"));
        for port in spec
            .get_mut("ports")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(port) = port.as_object_mut() {
                default(port, "protocol", json!("TCP"));
                if let Some(p) = port.get("port").cloned() {
                    default(port, "targetPort", p);
                }
            }
        }
    }

    fn validate(&self, obj: &Value, v: &mut Causes) {
        const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
        let Some(spec) = obj.get("spec") else { return };
        let ty = spec
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP");
        if !TYPES.contains(&ty) {
            v.unsupported("spec.type", ty, TYPES);
        }
        let ports = spec
            .get("ports")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if ports.is_empty()
            && ty != "ExternalName"
            && spec.get("clusterIP").and_then(Value::as_str) != Some("None")
        {
            v.required("spec.ports");
        }
        let mut names = BTreeSet::new();
        for (i, p) in ports.iter().enumerate() {
            let at = format!("spec.ports[{i}]");
            match p.get("port") {
                None => v.required(&format!("{at}.port")),
                Some(port) if !port_ok(port) => v.invalid(
                    &format!("{at}.port"),
                    port,
                    "must be between 1 and 65535, inclusive",
                ),
                Some(_) => {}
            }
            let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
            if ports.len() > 1 && name.is_empty() {
                v.required(&format!("{at}.name"));
            }
            if !name.is_empty() && !names.insert(name.to_owned()) {
                v.push(StatusCause {
                    kind: "FieldValueDuplicate".into(),
                    message: format!("Duplicate value: \"{name}\""),
                    field: format!("{at}.name"),
                });
            }
        }
    }

    fn initial_status(&self, _: &ResourceDef, _: Option<Value>) -> Option<Value> {
        Some(json!({"loadBalancer": {}}))
    }

    fn delete_returns_object(&self) -> bool {
        true
    }

    fn columns(&self) -> &'static [Column] {
        &[
            ("Type", "string", 0),
            ("Cluster-IP", "string", 0),
            ("External-IP", "string", 0),
            ("Port(s)", "string", 0),
            ("Age", "string", 0),
            ("Selector", "string", 1),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let ports = o
            .pointer("/spec/ports")
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
            .unwrap_or_else(|| "<none>".into());
        vec![
            json!(text(o, "/spec/type")),
            json!(or_none(text(o, "/spec/clusterIP"))),
            json!("<none>"),
            json!(ports),
            age(o),
            json!(or_none(crate::rest::object::selector_string(
                o.pointer("/spec/selector")
            ))),
        ]
    }
}

/// Endpoints.
#[derive(Debug)]
pub(crate) struct EndpointsKind;

impl KindStrategy for EndpointsKind {
    typed!(api::Endpoints);

    fn columns(&self) -> &'static [Column] {
        &[("Endpoints", "string", 0), ("Age", "string", 0)]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let endpoints = o
            .pointer("/subsets")
            .and_then(Value::as_array)
            .map(|ss| {
                ss.iter()
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
                    .join(",")
            })
            .unwrap_or_default();
        vec![json!(or_none(endpoints)), age(o)]
    }
}

/// The columns `kubectl get events` shows, for both Event APIs.
pub(crate) const EVENT_COLUMNS: &[Column] = &[
    ("Type", "string", 0),
    ("Reason", "string", 0),
    ("Object", "string", 0),
    ("Message", "string", 0),
    ("Age", "string", 0),
];

/// The cells of an Event in either API: `object` holds the involved object, `message`
/// the text.
pub(crate) fn event_cells(o: &Value, object: &str, message: &str) -> Vec<Value> {
    vec![
        json!(text(o, "/type")),
        json!(text(o, "/reason")),
        json!(format!(
            "{}/{}",
            text(o, &format!("{object}/kind")).to_lowercase(),
            text(o, &format!("{object}/name"))
        )),
        json!(text(o, message)),
        age(o),
    ]
}

/// `core/v1` Events (also the storage of `events.k8s.io/v1` Events).
#[derive(Debug)]
pub(crate) struct Events;

impl KindStrategy for Events {
    typed!(api::Event);

    fn columns(&self) -> &'static [Column] {
        EVENT_COLUMNS
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        event_cells(o, "/involvedObject", "/message")
    }
}

plain_kind!(
    /// ResourceQuotas (`kubectl create quota`); usage is not tracked yet.
    ResourceQuotas,
    api::ResourceQuota
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_string_data_is_merged_into_data_and_dropped() {
        let mut secret = json!({"data": {"a": "b2xk", "keep": "eA=="},
            "stringData": {"a": "new", "c": "hunter2"}});
        Secrets.default(secret.as_object_mut().unwrap());
        assert_eq!(
            secret,
            json!({"type": "Opaque", "data": {"a": "bmV3", "keep": "eA==", "c": "aHVudGVyMg=="}})
        );
        let mut null_data = json!({"data": null, "stringData": {"k": "v"}});
        Secrets.default(null_data.as_object_mut().unwrap());
        assert_eq!(null_data["data"], json!({"k": "dg=="}));
    }

    #[test]
    fn deletion_rules() {
        assert!(Services.delete_returns_object() && ServiceAccounts.delete_returns_object());
        assert!(!ConfigMaps.delete_returns_object());
        assert_eq!(
            Namespaces.terminating_status(),
            Some(json!({"phase": "Terminating"}))
        );
        assert!(Namespaces.deletion_waits(&json!({"spec": {"finalizers": ["kubernetes"]}})));
        assert!(!Namespaces.deletion_waits(&json!({"spec": {"finalizers": []}})));
    }
}
