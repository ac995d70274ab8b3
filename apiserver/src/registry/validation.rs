//! Upstream's semantic validation of the built-in kinds' specs (beyond the types, which
//! k8s-openapi decoding already checks): the mistakes people actually make — a Deployment
//! whose selector does not match its template, a container without an image, a port out of
//! range, a Job that restarts Always — are 422 Invalid with one cause per field, as on any
//! Kubernetes cluster.

use std::collections::BTreeSet;

use bulwark_api::{StatusCause, names};
use serde_json::{Map, Value};

use crate::registry::ResourceDef;

/// Field causes for `obj`'s spec (metadata is validated separately).
pub fn validate_spec(def: &ResourceDef, obj: &Value) -> Vec<StatusCause> {
    let mut v = Causes::default();
    match (def.group, def.kind) {
        ("", "Pod") => {
            if let Some(spec) = obj.get("spec") {
                v.pod_spec(spec, "spec", &["Always", "OnFailure", "Never"]);
            } else {
                v.required("spec");
            }
        }
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") => v.workload(obj),
        ("batch", "Job") => {
            if let Some(spec) = obj.get("spec") {
                v.job_spec(spec, "spec");
            }
        }
        ("batch", "CronJob") => {
            let schedule = obj
                .pointer("/spec/schedule")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if schedule.trim().is_empty() {
                v.required("spec.schedule");
            } else if !schedule.starts_with('@') && schedule.split_whitespace().count() != 5 {
                v.invalid(
                    "spec.schedule",
                    schedule,
                    "must be a standard cron expression with 5 fields or a @descriptor",
                );
            }
            match obj.pointer("/spec/jobTemplate/spec") {
                Some(job) => v.job_spec(job, "spec.jobTemplate.spec"),
                None => v.required("spec.jobTemplate.spec"),
            }
        }
        ("", "Service") => v.service(obj),
        ("", "ConfigMap") => {
            v.data_keys(obj, "data");
            v.data_keys(obj, "binaryData");
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
        ("", "Secret") => {
            v.data_keys(obj, "data");
            v.data_keys(obj, "stringData");
        }
        ("certificates.k8s.io", "CertificateSigningRequest") => {
            if obj
                .pointer("/spec/request")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                v.required("spec.request");
            }
            if obj
                .pointer("/spec/signerName")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                v.required("spec.signerName");
            }
        }
        _ => {}
    }
    v.0
}

#[derive(Default)]
struct Causes(Vec<StatusCause>);

fn port_ok(v: &Value) -> bool {
    v.as_i64().is_some_and(|p| (1..=65535).contains(&p))
}

impl Causes {
    fn required(&mut self, field: &str) {
        self.0.push(StatusCause::required(field));
    }

    fn invalid(&mut self, field: &str, value: impl std::fmt::Display, why: &str) {
        self.0.push(StatusCause::invalid(
            field,
            format!("Invalid value: \"{value}\": {why}"),
        ));
    }

    fn unsupported(&mut self, field: &str, value: &str, allowed: &[&str]) {
        let allowed = allowed
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", ");
        self.0.push(StatusCause {
            kind: "FieldValueNotSupported".into(),
            message: format!("Unsupported value: \"{value}\": supported values: {allowed}"),
            field: field.into(),
        });
    }

    fn replicas(&mut self, spec: &Value, path: &str) {
        if let Some(r) = spec.get("replicas")
            && r.as_i64().is_none_or(|r| r < 0)
        {
            self.invalid(
                &format!("{path}.replicas"),
                r,
                "must be greater than or equal to 0",
            );
        }
    }

    fn workload(&mut self, obj: &Value) {
        let Some(spec) = obj.get("spec") else {
            self.required("spec");
            return;
        };
        self.replicas(spec, "spec");
        let match_labels = spec
            .pointer("/selector/matchLabels")
            .and_then(Value::as_object);
        let has_expressions = spec
            .pointer("/selector/matchExpressions")
            .and_then(Value::as_array)
            .is_some_and(|e| !e.is_empty());
        if match_labels.is_none_or(Map::is_empty) && !has_expressions {
            self.required("spec.selector");
        }
        let labels = spec
            .pointer("/template/metadata/labels")
            .and_then(Value::as_object);
        if let Some(want) = match_labels {
            let matches = want
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
            if !matches {
                let shown =
                    crate::rest::object::selector_string(spec.pointer("/template/metadata/labels"));
                self.invalid(
                    "spec.template.metadata.labels",
                    shown,
                    "`selector` does not match template `labels`",
                );
            }
        }
        match spec.pointer("/template/spec") {
            Some(pod) => self.pod_spec(pod, "spec.template.spec", &["Always"]),
            None => self.required("spec.template.spec"),
        }
    }

    fn job_spec(&mut self, spec: &Value, path: &str) {
        for field in ["parallelism", "completions", "backoffLimit"] {
            if let Some(n) = spec.get(field)
                && n.as_i64().is_none_or(|n| n < 0)
            {
                self.invalid(
                    &format!("{path}.{field}"),
                    n,
                    "must be greater than or equal to 0",
                );
            }
        }
        match spec.pointer("/template/spec") {
            Some(pod) => {
                let pod_path = format!("{path}.template.spec");
                if pod.get("restartPolicy").is_none() {
                    self.required(&format!("{pod_path}.restartPolicy"));
                }
                self.pod_spec(pod, &pod_path, &["OnFailure", "Never"]);
            }
            None => self.required(&format!("{path}.template.spec")),
        }
    }

    fn pod_spec(&mut self, spec: &Value, path: &str, restart_policies: &[&str]) {
        if let Some(policy) = spec.get("restartPolicy").and_then(Value::as_str)
            && !restart_policies.contains(&policy)
        {
            self.unsupported(&format!("{path}.restartPolicy"), policy, restart_policies);
        }
        let containers = spec.get("containers").and_then(Value::as_array);
        if containers.is_none_or(Vec::is_empty) {
            self.required(&format!("{path}.containers"));
        }
        let mut seen = BTreeSet::new();
        for list in ["initContainers", "containers"] {
            for (i, c) in spec
                .get(list)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let at = format!("{path}.{list}[{i}]");
                let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
                if name.is_empty() {
                    self.required(&format!("{at}.name"));
                } else if let Some(why) = names::dns1123_label(name) {
                    self.invalid(&format!("{at}.name"), name, &why);
                } else if !seen.insert(name.to_owned()) {
                    self.0.push(StatusCause {
                        kind: "FieldValueDuplicate".into(),
                        message: format!("Duplicate value: \"{name}\""),
                        field: format!("{at}.name"),
                    });
                }
                if c.get("image")
                    .and_then(Value::as_str)
                    .is_none_or(|i| i.trim().is_empty())
                {
                    self.required(&format!("{at}.image"));
                }
                for (j, p) in c
                    .get("ports")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    match p.get("containerPort") {
                        None => self.required(&format!("{at}.ports[{j}].containerPort")),
                        Some(port) if !port_ok(port) => self.invalid(
                            &format!("{at}.ports[{j}].containerPort"),
                            port,
                            "must be between 1 and 65535, inclusive",
                        ),
                        Some(_) => {}
                    }
                    if let Some(proto) = p.get("protocol").and_then(Value::as_str)
                        && !matches!(proto, "TCP" | "UDP" | "SCTP")
                    {
                        self.unsupported(
                            &format!("{at}.ports[{j}].protocol"),
                            proto,
                            &["SCTP", "TCP", "UDP"],
                        );
                    }
                }
            }
        }
    }

    fn service(&mut self, obj: &Value) {
        let Some(spec) = obj.get("spec") else { return };
        let ty = spec
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP");
        const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
        if !TYPES.contains(&ty) {
            self.unsupported("spec.type", ty, TYPES);
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
            self.required("spec.ports");
        }
        let mut names = BTreeSet::new();
        for (i, p) in ports.iter().enumerate() {
            let at = format!("spec.ports[{i}]");
            match p.get("port") {
                None => self.required(&format!("{at}.port")),
                Some(port) if !port_ok(port) => self.invalid(
                    &format!("{at}.port"),
                    port,
                    "must be between 1 and 65535, inclusive",
                ),
                Some(_) => {}
            }
            let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
            if ports.len() > 1 && name.is_empty() {
                self.required(&format!("{at}.name"));
            }
            if !name.is_empty() && !names.insert(name.to_owned()) {
                self.0.push(StatusCause {
                    kind: "FieldValueDuplicate".into(),
                    message: format!("Duplicate value: \"{name}\""),
                    field: format!("{at}.name"),
                });
            }
        }
    }

    fn data_keys(&mut self, obj: &Value, field: &str) {
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
                self.invalid(
                    &format!("{field}[{key}]"),
                    key,
                    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::lookup;
    use serde_json::json;

    fn fields(def: (&str, &str, &str), obj: Value) -> Vec<String> {
        let def = lookup(def.0, def.1, def.2).unwrap();
        validate_spec(def, &obj)
            .into_iter()
            .map(|c| c.field)
            .collect()
    }

    #[test]
    fn workloads() {
        let good = json!({"spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "i", "ports": [{"containerPort": 80}]}]}}}});
        assert!(fields(("apps", "v1", "deployments"), good.clone()).is_empty());
        let mut bad = good;
        bad["spec"]["template"]["metadata"]["labels"]["app"] = json!("other");
        bad["spec"]["template"]["spec"]["containers"] = json!([
            {"name": "App", "image": ""}, {"name": "x", "image": "i", "ports": [{"containerPort": 70000}]}, {"name": "x", "image": "i"}]);
        bad["spec"]["replicas"] = json!(-1);
        assert_eq!(
            fields(("apps", "v1", "deployments"), bad),
            [
                "spec.replicas",
                "spec.template.metadata.labels",
                "spec.template.spec.containers[0].name",
                "spec.template.spec.containers[0].image",
                "spec.template.spec.containers[1].ports[0].containerPort",
                "spec.template.spec.containers[2].name",
            ]
        );
        assert_eq!(
            fields(
                ("apps", "v1", "deployments"),
                json!({"spec": {"template": {"spec": {"containers": []}}}})
            ),
            ["spec.selector", "spec.template.spec.containers"]
        );
    }

    #[test]
    fn jobs_services_and_data() {
        let job = json!({"spec": {"template": {"spec": {"restartPolicy": "Always", "containers": [{"name": "c", "image": "i"}]}}}});
        assert_eq!(
            fields(("batch", "v1", "jobs"), job),
            ["spec.template.spec.restartPolicy"]
        );
        let svc = json!({"spec": {"type": "Magic", "ports": [{"port": 0}, {"port": 80}]}});
        assert_eq!(
            fields(("", "v1", "services"), svc),
            [
                "spec.type",
                "spec.ports[0].port",
                "spec.ports[0].name",
                "spec.ports[1].name"
            ]
        );
        let cm =
            json!({"data": {"ok.key": "", "bad key": "", "dup": ""}, "binaryData": {"dup": ""}});
        assert_eq!(
            fields(("", "v1", "configmaps"), cm),
            ["data[bad key]", "data[dup]"]
        );
        let cron = json!({"spec": {"schedule": "* *", "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}}}});
        assert_eq!(fields(("batch", "v1", "cronjobs"), cron), ["spec.schedule"]);
    }
}
