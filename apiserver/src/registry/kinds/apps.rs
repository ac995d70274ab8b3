//! The `apps/v1` workloads: Deployments, ReplicaSets, StatefulSets and DaemonSets.

use serde_json::{Map, Value, json};

use crate::codec::table::{age, images, int, selector};
use crate::registry::ResourceDef;
use crate::registry::defaults::{default, map, map_or_insert, pod_template};
use crate::registry::strategy::{Column, KindStrategy, typed};
use crate::registry::validation::Causes;

/// What every workload needs: a selector that matches the template's labels, a valid pod
/// template (restart policy Always), replicas not negative.
fn workload(v: &mut Causes, obj: &Value) {
    let Some(spec) = obj.get("spec") else {
        v.required("spec");
        return;
    };
    v.replicas(spec, "spec");
    let match_labels = spec
        .pointer("/selector/matchLabels")
        .and_then(Value::as_object);
    let has_expressions = spec
        .pointer("/selector/matchExpressions")
        .and_then(Value::as_array)
        .is_some_and(|e| !e.is_empty());
    if match_labels.is_none_or(Map::is_empty) && !has_expressions {
        v.required("spec.selector");
    }
    let labels = spec
        .pointer("/template/metadata/labels")
        .and_then(Value::as_object);
    if let Some(want) = match_labels {
        let matches = want
            .iter()
            .all(|(k, val)| labels.and_then(|l| l.get(k)) == Some(val));
        if !matches {
            let shown =
                crate::rest::object::selector_string(spec.pointer("/template/metadata/labels"));
            v.invalid(
                "spec.template.metadata.labels",
                shown,
                "`selector` does not match template `labels`",
            );
        }
    }
    match spec.pointer("/template/spec") {
        Some(pod) => v.pod_spec(pod, "spec.template.spec", &["Always"]),
        None => v.required("spec.template.spec"),
    }
}

/// The `rollingUpdate` defaults of a strategy whose type defaults to RollingUpdate.
fn rolling_update(spec: &mut Map<String, Value>, field: &str, defaults: &[(&str, Value)]) {
    if let Some(strategy) = map_or_insert(spec, field) {
        default(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type") == Some(&json!("RollingUpdate"))
            && let Some(rolling) = map_or_insert(strategy, "rollingUpdate")
        {
            for (key, value) in defaults {
                default(rolling, key, value.clone());
            }
        }
    }
}

/// Deployments.
#[derive(Debug)]
pub(crate) struct Deployments;

impl KindStrategy for Deployments {
    typed!(k8s_openapi::api::apps::v1::Deployment);

    fn pod_template(&self) -> Option<&'static str> {
        Some("/spec/template")
    }

    fn default(&self, root: &mut Map<String, Value>) {
        let Some(spec) = map(root, "spec") else {
            return;
        };
        default(spec, "replicas", json!(1));
        default(spec, "revisionHistoryLimit", json!(10));
        default(spec, "progressDeadlineSeconds", json!(600));
        rolling_update(
            spec,
            "strategy",
            &[("maxUnavailable", json!("25%")), ("maxSurge", json!("25%"))],
        );
        pod_template(spec);
    }

    fn validate(&self, obj: &Value, v: &mut Causes) {
        workload(v, obj);
    }

    fn columns(&self) -> &'static [Column] {
        &[
            ("Ready", "string", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![
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
        ]
    }
}

/// ReplicaSets.
#[derive(Debug)]
pub(crate) struct ReplicaSets;

impl KindStrategy for ReplicaSets {
    /// Upstream writes the status fields its type requires, zero or not (typed clients
    /// reject a status without them).
    fn initial_status(&self, _: &ResourceDef, _: Option<Value>) -> Option<Value> {
        Some(json!({"replicas": 0}))
    }

    typed!(k8s_openapi::api::apps::v1::ReplicaSet);

    fn pod_template(&self) -> Option<&'static str> {
        Some("/spec/template")
    }

    fn default(&self, root: &mut Map<String, Value>) {
        let Some(spec) = map(root, "spec") else {
            return;
        };
        default(spec, "replicas", json!(1));
        pod_template(spec);
    }

    fn validate(&self, obj: &Value, v: &mut Causes) {
        workload(v, obj);
    }

    fn columns(&self) -> &'static [Column] {
        &[
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![
            json!(int(o, "/spec/replicas")),
            json!(int(o, "/status/replicas")),
            json!(int(o, "/status/readyReplicas")),
            age(o),
            json!(images(o, "/spec/template/spec/containers", "name")),
            json!(images(o, "/spec/template/spec/containers", "image")),
        ]
    }
}

/// StatefulSets.
#[derive(Debug)]
pub(crate) struct StatefulSets;

impl KindStrategy for StatefulSets {
    /// Upstream writes the status fields its type requires, zero or not (typed clients
    /// reject a status without them).
    fn initial_status(&self, _: &ResourceDef, _: Option<Value>) -> Option<Value> {
        Some(json!({"replicas": 0, "availableReplicas": 0}))
    }

    typed!(k8s_openapi::api::apps::v1::StatefulSet);

    fn pod_template(&self) -> Option<&'static str> {
        Some("/spec/template")
    }

    fn default(&self, root: &mut Map<String, Value>) {
        let Some(spec) = map(root, "spec") else {
            return;
        };
        default(spec, "replicas", json!(1));
        default(spec, "revisionHistoryLimit", json!(10));
        default(spec, "podManagementPolicy", json!("OrderedReady"));
        rolling_update(spec, "updateStrategy", &[("partition", json!(0))]);
        pod_template(spec);
    }

    fn validate(&self, obj: &Value, v: &mut Causes) {
        workload(v, obj);
    }

    fn columns(&self) -> &'static [Column] {
        &[("Ready", "string", 0), ("Age", "string", 0)]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![
            json!(format!(
                "{}/{}",
                int(o, "/status/readyReplicas"),
                int(o, "/spec/replicas")
            )),
            age(o),
        ]
    }
}

/// DaemonSets.
#[derive(Debug)]
pub(crate) struct DaemonSets;

impl KindStrategy for DaemonSets {
    /// Upstream writes the status fields its type requires, zero or not (typed clients
    /// reject a status without them).
    fn initial_status(&self, _: &ResourceDef, _: Option<Value>) -> Option<Value> {
        Some(
            json!({"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0, "numberReady": 0}),
        )
    }

    typed!(k8s_openapi::api::apps::v1::DaemonSet);

    fn pod_template(&self) -> Option<&'static str> {
        Some("/spec/template")
    }

    fn default(&self, root: &mut Map<String, Value>) {
        let Some(spec) = map(root, "spec") else {
            return;
        };
        default(spec, "revisionHistoryLimit", json!(10));
        rolling_update(
            spec,
            "updateStrategy",
            &[("maxUnavailable", json!(1)), ("maxSurge", json!(0))],
        );
        pod_template(spec);
    }

    fn validate(&self, obj: &Value, v: &mut Causes) {
        workload(v, obj);
    }

    fn columns(&self) -> &'static [Column] {
        &[
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Age", "string", 0),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![
            json!(int(o, "/status/desiredNumberScheduled")),
            json!(int(o, "/status/currentNumberScheduled")),
            json!(int(o, "/status/numberReady")),
            json!(int(o, "/status/updatedNumberScheduled")),
            json!(int(o, "/status/numberAvailable")),
            age(o),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The status of a new workload has the fields its type requires, as the typed clients
    /// (the Python client's models) expect.
    #[test]
    fn new_workloads_have_their_required_status_fields() {
        for def in crate::registry::builtin()
            .iter()
            .filter(|d| d.group() == "apps")
        {
            let status = def.strategy.initial_status(def, None).unwrap();
            let typed = def
                .strategy
                .roundtrip(&json!({"metadata": {"name": "x"}, "status": status.clone()}))
                .unwrap();
            assert_eq!(typed["status"], status, "{}", def.kind());
        }
    }
}
