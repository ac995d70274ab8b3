//! Network checks (KSPM-NET-*).

use serde_json::Value;

use super::{Ctx, config, is_system_namespace, not_evaluated};
use crate::outcome::{Outcome, Source};
use crate::workload::object_ref;

pub(super) fn enforcement(ctx: &Ctx<'_>) -> Vec<Outcome> {
    super::node::each(ctx, "the network plugin enforces NetworkPolicy", |n| {
        (
            n.network_policy_enforced,
            n.network_policy_enforced.to_string(),
            "NetworkPolicy is enforced".into(),
            "the network plugin does not enforce NetworkPolicy".into(),
        )
    })
}

/// Whether a NetworkPolicy selects every pod and denies `direction` (`Ingress`/`Egress`) by
/// default (the type is listed and no rule of that direction exists).
fn denies_all(policy: &Value, direction: &str) -> bool {
    let selects_all = policy
        .pointer("/spec/podSelector")
        .and_then(Value::as_object)
        .is_some_and(|s| {
            s.values().all(|v| {
                v.as_object().is_some_and(|m| m.is_empty())
                    || v.as_array().is_some_and(|a| a.is_empty())
            })
        });
    let types: Vec<&str> = policy
        .pointer("/spec/policyTypes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    // Without policyTypes, Ingress is implied, and Egress when egress rules exist.
    let listed = if types.is_empty() {
        direction == "Ingress"
    } else {
        types.contains(&direction)
    };
    let rules_key = if direction == "Ingress" {
        "/spec/ingress"
    } else {
        "/spec/egress"
    };
    let no_rules = policy
        .pointer(rules_key)
        .and_then(Value::as_array)
        .is_none_or(|r| r.is_empty());
    selects_all && listed && no_rules
}

pub(super) fn default_deny(ctx: &Ctx<'_>) -> Vec<Outcome> {
    let expected = "default-deny Ingress and Egress";
    if let Err(reason) = ctx.snapshot.objects.get() {
        return not_evaluated(config("objects"), expected, reason);
    }
    let mut out = Vec::new();
    for (name, ns) in &ctx.namespaces {
        if is_system_namespace(name) {
            continue;
        }
        let policies: Vec<&Value> = ctx
            .of_kind("networking.k8s.io", "NetworkPolicy")
            .filter(|p| p.pointer("/metadata/namespace").and_then(Value::as_str) == Some(name))
            .collect();
        let ingress = policies.iter().any(|p| denies_all(p, "Ingress"));
        let egress = policies.iter().any(|p| denies_all(p, "Egress"));
        let missing: Vec<&str> = [("Ingress", ingress), ("Egress", egress)]
            .into_iter()
            .filter(|(_, has)| !has)
            .map(|(d, _)| d)
            .collect();
        out.push(Outcome::check(
            missing.is_empty(),
            Source::Object {
                object: object_ref(ns),
                path: String::new(),
            },
            if missing.is_empty() {
                "default-deny Ingress and Egress".to_owned()
            } else {
                format!("no default-deny {}", missing.join(", "))
            },
            expected,
            format!("namespace {name} denies by default"),
            format!(
                "namespace {name} has no default-deny {} policy",
                missing.join(" or ")
            ),
        ));
    }
    if out.is_empty() {
        return super::not_applicable(config("objects"), "no non-system namespace exists");
    }
    out
}

pub(super) fn sensitive_endpoints(ctx: &Ctx<'_>) -> Vec<Outcome> {
    super::node::each(
        ctx,
        "metadata and node endpoints blocked from pods",
        |n| match n.sensitive_endpoints_blocked {
            Some(blocked) => (
                blocked,
                blocked.to_string(),
                "pods cannot reach the metadata or node agent endpoints".into(),
                "pods can reach the metadata or node agent endpoints".into(),
            ),
            None => (
                false,
                "not reported".into(),
                String::new(),
                "the node did not report whether pods reach sensitive endpoints".into(),
            ),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::denies_all;
    use serde_json::json;

    #[test]
    fn default_deny_shapes() {
        let both = json!({"spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}});
        assert!(denies_all(&both, "Ingress") && denies_all(&both, "Egress"));
        let implied = json!({"spec": {"podSelector": {}}});
        assert!(denies_all(&implied, "Ingress") && !denies_all(&implied, "Egress"));
        let allows =
            json!({"spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}]}});
        assert!(!denies_all(&allows, "Ingress"));
        let some = json!({"spec": {"podSelector": {"matchLabels": {"a": "b"}}, "policyTypes": ["Ingress"]}});
        assert!(!denies_all(&some, "Ingress"));
    }
}
