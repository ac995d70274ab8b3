//! Upstream's semantic validation of the built-in kinds' specs (beyond the types, which
//! k8s-openapi decoding already checks): the mistakes people actually make — a Deployment
//! whose selector does not match its template, a container without an image, a port out of
//! range, a Job that restarts Always — are 422 Invalid with one cause per field, as on any
//! Kubernetes cluster.

use std::collections::BTreeSet;

use bulwark_api::{StatusCause, names};
use serde_json::Value;

use crate::registry::ResourceDef;

/// Field causes for `obj`'s spec (metadata is validated separately).
pub fn validate_spec(def: &ResourceDef, obj: &Value) -> Vec<StatusCause> {
    let mut v = Causes::default();
    def.strategy.validate(obj, &mut v);
    v.0
}

/// The causes a validation found, one per field, in upstream's words.
#[derive(Debug, Default)]
pub struct Causes(Vec<StatusCause>);

/// Whether `v` is a port number (1–65535).
pub(crate) fn port_ok(v: &Value) -> bool {
    v.as_i64().is_some_and(|p| (1..=65535).contains(&p))
}

impl Causes {
    /// Adds a cause.
    pub(crate) fn push(&mut self, cause: StatusCause) {
        self.0.push(cause);
    }

    /// `field` is required.
    pub(crate) fn required(&mut self, field: &str) {
        self.0.push(StatusCause::required(field));
    }

    /// `field` has an invalid `value`.
    pub(crate) fn invalid(&mut self, field: &str, value: impl std::fmt::Display, why: &str) {
        self.0.push(StatusCause::invalid(
            field,
            format!("Invalid value: \"{value}\": {why}"),
        ));
    }

    /// `field` has a value outside `allowed`.
    pub(crate) fn unsupported(&mut self, field: &str, value: &str, allowed: &[&str]) {
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

    /// `replicas` is not negative.
    pub(crate) fn replicas(&mut self, spec: &Value, path: &str) {
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

    /// A pod spec's rules: restart policy in `restart_policies`, containers with unique
    /// valid names, images and valid ports.
    pub(crate) fn pod_spec(&mut self, spec: &Value, path: &str, restart_policies: &[&str]) {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::lookup;
    use serde_json::json;

    fn fields(def: (&str, &str, &str), obj: Value) -> Vec<String> {
        let def = lookup(&bulwark_api::GroupVersionResource::new(def.0, def.1, def.2)).unwrap();
        validate_spec(&def, &obj)
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
