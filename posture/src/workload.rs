//! The pods a scan judges: every Pod and the pod template of every workload kind (the same
//! kinds admission checks), each with the reference and JSON path evidence points at.

use serde_json::Value;

use crate::outcome::ObjectRef;

/// Workload kinds (group, kind) and where their pod template is (a JSON pointer; `""` for a
/// Pod).
pub const WORKLOAD_KINDS: &[(&str, &str, &str)] = &[
    ("", "Pod", ""),
    ("", "PodTemplate", "/template"),
    ("", "ReplicationController", "/spec/template"),
    ("apps", "Deployment", "/spec/template"),
    ("apps", "ReplicaSet", "/spec/template"),
    ("apps", "StatefulSet", "/spec/template"),
    ("apps", "DaemonSet", "/spec/template"),
    ("batch", "Job", "/spec/template"),
    ("batch", "CronJob", "/spec/jobTemplate/spec/template"),
];

/// The API group of an `apiVersion` (`apps/v1` → `apps`, `v1` → ``).
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

/// A reference to `object` (with its resourceVersion and uid when it has them).
pub fn object_ref(object: &Value) -> ObjectRef {
    let text = |p: &str| {
        object
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    ObjectRef {
        api_version: text("/apiVersion"),
        kind: text("/kind"),
        namespace: text("/metadata/namespace"),
        name: text("/metadata/name"),
        resource_version: text("/metadata/resourceVersion"),
        uid: text("/metadata/uid"),
        file: text("/metadata/annotations/posture.bulwark.dev~1source"),
    }
}

/// Whether `object` is of `group`/`kind`.
pub fn is_kind(object: &Value, group: &str, kind: &str) -> bool {
    object.get("kind").and_then(Value::as_str) == Some(kind)
        && group_of(
            object
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        ) == group
}

/// One pod (or pod template) to judge.
#[derive(Debug, Clone)]
pub struct Workload<'a> {
    /// The object holding it.
    pub object: &'a Value,
    /// Its reference.
    pub reference: ObjectRef,
    /// The pod's (or template's) metadata.
    pub metadata: Option<&'a Value>,
    /// The pod spec.
    pub spec: &'a Value,
    /// The JSON path of the spec, dotted (`spec.template.spec`).
    pub spec_path: String,
}

impl<'a> Workload<'a> {
    /// The workload `object` runs, if it is of a workload kind.
    pub fn of(object: &'a Value) -> Option<Self> {
        let api_version = object.get("apiVersion").and_then(Value::as_str)?;
        let kind = object.get("kind").and_then(Value::as_str)?;
        let group = group_of(api_version);
        let (_, _, template) = WORKLOAD_KINDS
            .iter()
            .find(|(g, k, _)| *g == group && *k == kind)?;
        let view = bulwark_admission::workload::pod_view(template, object)?;
        let mut spec_path: String = template.trim_start_matches('/').replace('/', ".");
        if !spec_path.is_empty() {
            spec_path.push('.');
        }
        spec_path.push_str("spec");
        Some(Self {
            object,
            reference: object_ref(object),
            metadata: view.metadata,
            spec: view.spec,
            spec_path,
        })
    }

    /// The namespace it runs in.
    pub fn namespace(&self) -> &str {
        &self.reference.namespace
    }

    /// Every init, regular and ephemeral container with its dotted path.
    pub fn containers(&self) -> Vec<(String, &'a Value)> {
        let mut out = Vec::new();
        for (list, _) in bulwark_admission::workload::CONTAINER_LISTS {
            for (i, c) in self
                .spec
                .get(*list)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                out.push((format!("{}.{list}[{i}]", self.spec_path), c));
            }
        }
        out
    }

    /// A path inside the pod spec (`hostPID` → `spec.template.spec.hostPID`).
    pub fn path(&self, rest: &str) -> String {
        format!("{}.{rest}", self.spec_path)
    }
}

/// A container's name (or its index path when it has none).
pub fn container_name<'v>(path: &'v str, container: &'v Value) -> &'v str {
    container
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_of_every_kind_are_found_with_their_paths() {
        let cron = json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c", "namespace": "n"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "a"}], "initContainers": [{"name": "i"}]}}}}}});
        let w = Workload::of(&cron).unwrap();
        assert_eq!(w.spec_path, "spec.jobTemplate.spec.template.spec");
        let names: Vec<String> = w.containers().into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            names,
            [
                "spec.jobTemplate.spec.template.spec.initContainers[0]",
                "spec.jobTemplate.spec.template.spec.containers[0]"
            ]
        );
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}});
        assert_eq!(Workload::of(&pod).unwrap().spec_path, "spec");
        // A kind check includes the group.
        let fake = json!({"apiVersion": "example.com/v1", "kind": "Deployment", "spec": {"template": {"spec": {}}}});
        assert!(Workload::of(&fake).is_none());
        assert!(Workload::of(&json!({"kind": "Pod"})).is_none());
    }
}
