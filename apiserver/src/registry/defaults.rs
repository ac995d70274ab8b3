//! Upstream's built-in defaulting (`SetDefaults_*`) for the fields clients read back:
//! replicas, rollout strategies, pod spec and container defaults, service and job defaults.
//! It runs on every create and update, before validation and admission, so stored objects look
//! like they do on any Kubernetes cluster (`kubectl describe` shows `StrategyType:
//! RollingUpdate`, ports `80/TCP`, …). Only absent fields are filled; nothing is overwritten.

use serde_json::{Map, Value, json};

use crate::registry::ResourceDef;

fn map<'a>(parent: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    parent.get_mut(key).and_then(Value::as_object_mut)
}

fn map_or_insert<'a>(
    parent: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    parent
        .entry(key)
        .or_insert_with(|| json!({}))
        .as_object_mut()
}

fn default(map: &mut Map<String, Value>, key: &str, value: Value) {
    map.entry(key).or_insert(value);
}

/// Applies the defaults of `def`'s kind to `obj`.
pub fn apply(def: &ResourceDef, obj: &mut Value) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    match (def.group, def.kind) {
        ("", "Pod") => {
            if let Some(spec) = map(root, "spec") {
                pod_spec(spec);
            }
        }
        ("", "Service") => {
            if let Some(spec) = map(root, "spec") {
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
        }
        ("", "Namespace") => {
            if let Some(spec) = map_or_insert(root, "spec") {
                default(spec, "finalizers", json!(["kubernetes"]));
            }
        }
        ("", "Secret") => default(root, "type", json!("Opaque")),
        ("apps", kind) => {
            let Some(spec) = map(root, "spec") else {
                return;
            };
            match kind {
                "Deployment" => {
                    default(spec, "replicas", json!(1));
                    default(spec, "revisionHistoryLimit", json!(10));
                    default(spec, "progressDeadlineSeconds", json!(600));
                    if let Some(strategy) = map_or_insert(spec, "strategy") {
                        default(strategy, "type", json!("RollingUpdate"));
                        if strategy.get("type") == Some(&json!("RollingUpdate"))
                            && let Some(rolling) = map_or_insert(strategy, "rollingUpdate")
                        {
                            default(rolling, "maxUnavailable", json!("25%"));
                            default(rolling, "maxSurge", json!("25%"));
                        }
                    }
                }
                "ReplicaSet" => default(spec, "replicas", json!(1)),
                "StatefulSet" => {
                    default(spec, "replicas", json!(1));
                    default(spec, "revisionHistoryLimit", json!(10));
                    default(spec, "podManagementPolicy", json!("OrderedReady"));
                    if let Some(strategy) = map_or_insert(spec, "updateStrategy") {
                        default(strategy, "type", json!("RollingUpdate"));
                        if strategy.get("type") == Some(&json!("RollingUpdate"))
                            && let Some(rolling) = map_or_insert(strategy, "rollingUpdate")
                        {
                            default(rolling, "partition", json!(0));
                        }
                    }
                }
                "DaemonSet" => {
                    default(spec, "revisionHistoryLimit", json!(10));
                    if let Some(strategy) = map_or_insert(spec, "updateStrategy") {
                        default(strategy, "type", json!("RollingUpdate"));
                        if strategy.get("type") == Some(&json!("RollingUpdate"))
                            && let Some(rolling) = map_or_insert(strategy, "rollingUpdate")
                        {
                            default(rolling, "maxUnavailable", json!(1));
                            default(rolling, "maxSurge", json!(0));
                        }
                    }
                }
                _ => {}
            }
            pod_template(spec);
        }
        ("batch", "Job") => {
            if let Some(spec) = map(root, "spec") {
                job_spec(spec);
            }
        }
        ("batch", "CronJob") => {
            if let Some(spec) = map(root, "spec") {
                default(spec, "concurrencyPolicy", json!("Allow"));
                default(spec, "suspend", json!(false));
                default(spec, "successfulJobsHistoryLimit", json!(3));
                default(spec, "failedJobsHistoryLimit", json!(1));
                if let Some(job) = map(spec, "jobTemplate").and_then(|t| map(t, "spec")) {
                    job_spec(job);
                }
            }
        }
        _ => {}
    }
}

fn job_spec(spec: &mut Map<String, Value>) {
    if !spec.contains_key("completions") && !spec.contains_key("parallelism") {
        spec.insert("completions".into(), json!(1));
        spec.insert("parallelism".into(), json!(1));
    }
    default(spec, "parallelism", json!(1));
    default(spec, "backoffLimit", json!(6));
    default(spec, "completionMode", json!("NonIndexed"));
    default(spec, "suspend", json!(false));
    pod_template(spec);
}

fn pod_template(spec: &mut Map<String, Value>) {
    if let Some(pod) = map(spec, "template").and_then(|t| map(t, "spec")) {
        pod_spec(pod);
    }
}

fn pod_spec(spec: &mut Map<String, Value>) {
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
        let def = lookup("apps", "v1", "deployments").unwrap();
        let mut d = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "registry.local/a:1", "ports": [{"containerPort": 80}]},
            {"name": "b", "image": "registry.local/b"},
            {"name": "c", "image": "registry.local:5000/c", "imagePullPolicy": "Never"},
        ]}}}});
        apply(def, &mut d);
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
        apply(def, &mut recreate);
        assert_eq!(recreate["spec"]["replicas"], 3);
        assert!(recreate["spec"]["strategy"].get("rollingUpdate").is_none());
    }

    #[test]
    fn service_and_job_defaults() {
        let svc = lookup("", "v1", "services").unwrap();
        let mut s = json!({"spec": {"ports": [{"port": 80}]}});
        apply(svc, &mut s);
        assert_eq!(
            s["spec"]["ports"][0],
            json!({"port": 80, "protocol": "TCP", "targetPort": 80})
        );
        let cj = lookup("batch", "v1", "cronjobs").unwrap();
        let mut c = json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}}});
        apply(cj, &mut c);
        assert_eq!(c["spec"]["jobTemplate"]["spec"]["backoffLimit"], 6);
        assert_eq!(
            c["spec"]["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"],
            "ClusterFirst"
        );
    }
}
