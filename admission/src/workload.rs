//! Pod security views. Cedar has no way to say "for every container", so the pod that an
//! object runs is also handed to policies in pieces they can quantify over: one
//! `k8s::admission::Workload` (the Pod itself, or the pod template of a Deployment, ReplicaSet,
//! DaemonSet, StatefulSet, Job or CronJob) and one `k8s::admission::Container` per init,
//! regular and ephemeral container. Every admission policy is evaluated against each piece.
//!
//! Derived attributes make the remaining per-element checks one expression:
//! `Workload.volumeTypes` (the volume sources in use, e.g. `hostPath`),
//! `Workload.sysctlNames`, and `Container.hostPorts`. The deprecated AppArmor annotations
//! (`container.apparmor.security.beta.kubernetes.io/<container>`) are read into the
//! container's `securityContext.appArmorProfile` when the field is unset, as upstream's API
//! server does, so policies check one place.

use serde_json::{Map, Value, json};

const APPARMOR_ANNOTATION: &str = "container.apparmor.security.beta.kubernetes.io/";

/// Container lists and the `containerType` each is reported as.
pub const CONTAINER_LISTS: &[(&str, &str)] = &[
    ("initContainers", "initContainer"),
    ("containers", "container"),
    ("ephemeralContainers", "ephemeralContainer"),
];

/// A pod (or pod template) found in an object.
#[derive(Debug, Clone, PartialEq)]
pub struct PodView<'a> {
    /// The pod's (or template's) metadata.
    pub metadata: Option<&'a Value>,
    /// The pod spec.
    pub spec: &'a Value,
}

/// The pod `object` runs, found at `template` (the JSON pointer of its kind's pod template,
/// "" for a Pod; the kind's registry strategy says where).
pub fn pod_view<'a>(template: &str, object: &'a Value) -> Option<PodView<'a>> {
    let holder = object.pointer(template)?;
    Some(PodView {
        metadata: holder.get("metadata"),
        spec: holder.get("spec")?,
    })
}

/// How many containers (init, regular and ephemeral) a pod spec declares.
pub fn container_count(spec: &Value) -> usize {
    CONTAINER_LISTS
        .iter()
        .filter_map(|(list, _)| spec.get(*list).and_then(Value::as_array))
        .map(Vec::len)
        .sum()
}

/// The volume sources a pod uses (`hostPath`, `emptyDir`, …).
pub fn volume_types(spec: &Value) -> Vec<String> {
    let mut out: Vec<String> = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|v| v.keys().filter(|k| *k != "name").cloned())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The sysctls a pod sets.
pub fn sysctl_names(spec: &Value) -> Vec<String> {
    spec.pointer("/securityContext/sysctls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// The host ports a container asks for (0 included: "none").
pub fn host_ports(container: &Value) -> Vec<i64> {
    container
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("hostPort").and_then(Value::as_i64))
        .collect()
}

fn apparmor_profile(annotation: &str) -> Value {
    match annotation {
        "runtime/default" => json!({"type": "RuntimeDefault"}),
        "unconfined" => json!({"type": "Unconfined"}),
        other => match other.strip_prefix("localhost/") {
            Some(profile) => json!({"type": "Localhost", "localhostProfile": profile}),
            // Not a value upstream accepts: keep it visible so no profile check passes it.
            None => json!({"type": other}),
        },
    }
}

/// A container with its AppArmor annotation applied to an unset `appArmorProfile`.
pub fn container_with_annotations(metadata: Option<&Value>, container: &Value) -> Value {
    let mut container = container.clone();
    let name = container
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let annotation = metadata
        .and_then(|m| m.pointer("/annotations"))
        .and_then(|a| a.get(format!("{APPARMOR_ANNOTATION}{name}")))
        .and_then(Value::as_str)
        .map(apparmor_profile);
    if let (Some(profile), Some(map)) = (annotation, container.as_object_mut()) {
        let context = map
            .entry("securityContext")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(context) = context.as_object_mut() {
            context.entry("appArmorProfile").or_insert(profile);
        }
    }
    container
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]
    use super::*;

    #[test]
    fn templates_are_found_in_every_workload_kind() {
        let pod = json!({"spec": {"containers": []}});
        assert!(pod_view("", &pod).is_some());
        let template = json!({"spec": {"template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": []}}}});
        let view = pod_view("/spec/template", &template).unwrap();
        assert_eq!(view.metadata.unwrap()["labels"]["a"], "b");
        let cron =
            json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"hostPID": true}}}}}});
        assert_eq!(
            pod_view("/spec/jobTemplate/spec/template", &cron)
                .unwrap()
                .spec["hostPID"],
            true
        );
        assert!(pod_view("/spec/template", &pod).is_none());
    }

    #[test]
    fn derived_sets() {
        let spec = json!({
            "volumes": [{"name": "a", "hostPath": {"path": "/"}}, {"name": "b", "emptyDir": {}}, {"name": "c", "emptyDir": {}}],
            "securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]},
        });
        assert_eq!(volume_types(&spec), ["emptyDir", "hostPath"]);
        assert_eq!(sysctl_names(&spec), ["kernel.msgmax"]);
        assert_eq!(
            host_ports(
                &json!({"ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 81}]})
            ),
            [8080]
        );
    }

    #[test]
    fn apparmor_annotations_fill_unset_fields_only() {
        let meta = json!({"annotations": {
            "container.apparmor.security.beta.kubernetes.io/a": "unconfined",
            "container.apparmor.security.beta.kubernetes.io/b": "localhost/p",
        }});
        let a = container_with_annotations(Some(&meta), &json!({"name": "a"}));
        assert_eq!(
            a["securityContext"]["appArmorProfile"]["type"],
            "Unconfined"
        );
        let b = container_with_annotations(
            Some(&meta),
            &json!({"name": "b", "securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}}}),
        );
        assert_eq!(
            b["securityContext"]["appArmorProfile"]["type"],
            "RuntimeDefault"
        );
        let c = container_with_annotations(Some(&meta), &json!({"name": "c"}));
        assert!(c.get("securityContext").is_none());
    }
}
