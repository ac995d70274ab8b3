//! Upstream's built-in defaulting (`SetDefaults_*`) for the fields clients read back. Each
//! kind's own defaults are in its strategy (`registry::kinds`); the pod spec and container
//! defaults every workload shares are here.
//! It runs on every create and update, before validation and admission, so stored objects look
//! like they do on any Kubernetes cluster (`kubectl describe` shows `StrategyType:
//! RollingUpdate`, ports `80/TCP`, …). Only absent fields are filled; nothing is overwritten.

use serde_json::{Map, Value, json};

use crate::registry::ResourceDef;

/// The object at `key`, if it is one.
pub(crate) fn map<'a>(
    parent: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    parent.get_mut(key).and_then(Value::as_object_mut)
}

/// The object at `key`, inserted empty when absent.
pub(crate) fn map_or_insert<'a>(
    parent: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    parent
        .entry(key)
        .or_insert_with(|| json!({}))
        .as_object_mut()
}

/// Sets `key` to `value` unless it is present.
pub(crate) fn default(map: &mut Map<String, Value>, key: &str, value: Value) {
    map.entry(key).or_insert(value);
}

/// Applies the defaults of `def`'s kind to `obj`.
pub fn apply(def: &ResourceDef, obj: &mut Value) {
    if let Some(root) = obj.as_object_mut() {
        def.strategy.default(root);
    }
}

/// The defaults of a workload's pod template (`spec.template.spec`).
pub(crate) fn pod_template(spec: &mut Map<String, Value>) {
    if let Some(pod) = map(spec, "template").and_then(|t| map(t, "spec")) {
        pod_spec(pod);
    }
}

/// Upstream's pod spec and container defaults.
pub(crate) fn pod_spec(spec: &mut Map<String, Value>) {
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "schedulerName", json!("default-scheduler"));
    default(spec, "securityContext", json!({}));
    for list in ["initContainers", "containers"] {
        for container in spec
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(c) = container.as_object_mut() {
                container_defaults(c);
            }
        }
    }
}

fn container_defaults(c: &mut Map<String, Value>) {
    default(c, "terminationMessagePath", json!("/dev/termination-log"));
    default(c, "terminationMessagePolicy", json!("File"));
    let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
    // Upstream: Always for `:latest` or untagged images, IfNotPresent otherwise.
    let last = image.rsplit('/').next().unwrap_or_default();
    let tag = if image.contains('@') {
        Some("digest")
    } else {
        last.split_once(':').map(|(_, t)| t)
    };
    let policy = if tag.is_none_or(|t| t == "latest") {
        "Always"
    } else {
        "IfNotPresent"
    };
    default(c, "imagePullPolicy", json!(policy));
    for port in c
        .get_mut("ports")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(p) = port.as_object_mut() {
            default(p, "protocol", json!("TCP"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::lookup;

    #[test]
    fn deployment_and_pod_defaults() {
        let def = lookup(&bulwark_api::GroupVersionResource::new(
            "apps",
            "v1",
            "deployments",
        ))
        .unwrap();
        let mut d = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "registry.local/a:1", "ports": [{"containerPort": 80}]},
            {"name": "b", "image": "registry.local/b"},
            {"name": "c", "image": "registry.local:5000/c", "imagePullPolicy": "Never"},
        ]}}}});
        apply(&def, &mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Always");
        assert_eq!(pod["containers"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(pod["containers"][0]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(pod["containers"][1]["imagePullPolicy"], "Always");
        assert_eq!(pod["containers"][2]["imagePullPolicy"], "Never");

        let mut recreate = json!({"spec": {"replicas": 3, "strategy": {"type": "Recreate"}}});
        apply(&def, &mut recreate);
        assert_eq!(recreate["spec"]["replicas"], 3);
        assert!(recreate["spec"]["strategy"].get("rollingUpdate").is_none());
    }

    #[test]
    fn service_and_job_defaults() {
        let svc = lookup(&bulwark_api::GroupVersionResource::new(
            "", "v1", "services",
        ))
        .unwrap();
        let mut s = json!({"spec": {"ports": [{"port": 80}]}});
        apply(&svc, &mut s);
        assert_eq!(
            s["spec"]["ports"][0],
            json!({"port": 80, "protocol": "TCP", "targetPort": 80})
        );
        let cj = lookup(&bulwark_api::GroupVersionResource::new(
            "batch", "v1", "cronjobs",
        ))
        .unwrap();
        let mut c = json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}}});
        apply(&cj, &mut c);
        assert_eq!(c["spec"]["jobTemplate"]["spec"]["backoffLimit"], 6);
        assert_eq!(
            c["spec"]["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"],
            "ClusterFirst"
        );
    }
}
