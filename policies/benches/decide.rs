//! Authorization decision latency: Bulwark's tiered engine with the shipped policies and with
//! 1,000 and 10,000 extra grants (per-team grants, namespaced grants, a few guardrails),
//! printed beside plain `cedar_policy::Authorizer` over the same policies in the same run.
//!
//! Run: `cargo bench -p bulwark-policies --bench decide`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "benchmark harness"
)]

use std::time::Instant;

use bulwark_policies::engine::DEFAULT_GRANTS;
use bulwark_policies::{AccessRequest, PolicyEngine, Target};
use cedar_policy::{Authorizer, PolicySet};

const SAMPLES: usize = 2_000;

/// `n` grants: per-team group grants and per-team namespaced grants.
fn grants(n: usize) -> String {
    let mut text = String::from(DEFAULT_GRANTS);
    for i in 0..n {
        if i % 2 == 0 {
            text.push_str(&format!(
                "@id(\"grants.team-{i}\") permit (principal in k8s::Group::\"team-{i}\", action in [k8s::Action::\"get\", k8s::Action::\"list\"], resource is k8s::Resource) when {{ resource.resource == \"configmaps\" }};\n"
            ));
        } else {
            text.push_str(&format!(
                "@id(\"grants.ns-{i}\") permit (principal in k8s::Group::\"team-{i}\", action, resource is k8s::Resource) when {{ resource has namespace && resource.namespace == \"ns-{i}\" }};\n"
            ));
        }
    }
    text
}

const GUARDRAILS: &str = r#"
@id("guardrails.no-kube-system-writes") forbid (principal, action in [k8s::Action::"create", k8s::Action::"update", k8s::Action::"patch", k8s::Action::"delete"], resource is k8s::Resource) when { resource has namespace && resource.namespace == "kube-system" } unless { principal in k8s::Group::"system:masters" };
@id("guardrails.no-secrets-for-auditors") forbid (principal in k8s::Group::"bulwark:auditors", action, resource is k8s::Resource) when { resource.resource == "secrets" };
"#;

fn percentiles(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    (at(0.5), at(0.99))
}

fn main() {
    let groups = vec!["team-1".to_owned(), "system:authenticated".to_owned()];
    let request = AccessRequest {
        user: "alice",
        groups: &groups,
        auth_method: "x509",
        cert_fingerprint: Some("ab"),
        source_ip: "10.1.2.3".parse().unwrap(),
        verb: "list",
        target: Target::Resource {
            api_group: "",
            resource: "configmaps",
            subresource: None,
            namespace: Some("ns-1"),
            name: None,
            namespace_labels: &[],
        },
    };
    println!(
        "authorization decision latency (alice in dev lists configmaps in ns-1; {SAMPLES} samples)"
    );
    println!(
        "{:>8} {:>22} {:>22} {:>9}",
        "policies", "bulwark p50 / p99 µs", "plain cedar p50 / p99", "reload"
    );
    for extra in [0, 1_000, 10_000] {
        let text = grants(extra);
        let reload_started = Instant::now();
        let engine = PolicyEngine::new(GUARDRAILS, &text).unwrap();
        let reload = reload_started.elapsed();
        let mut ours = Vec::with_capacity(SAMPLES);
        let mut allowed = false;
        for _ in 0..SAMPLES {
            let t = Instant::now();
            let d = engine.decide(&request);
            ours.push(t.elapsed().as_secs_f64() * 1e6);
            allowed = d.allowed;
        }
        // Plain Cedar: every policy in one set, the same request and entities.
        let plain: PolicySet = format!("{GUARDRAILS}\n{text}").parse().unwrap();
        let cedar = request.to_cedar().unwrap();
        let authorizer = Authorizer::new();
        let mut theirs = Vec::with_capacity(SAMPLES);
        for _ in 0..SAMPLES {
            let t = Instant::now();
            let r = authorizer.is_authorized(&cedar.request, &plain, &cedar.entities);
            theirs.push(t.elapsed().as_secs_f64() * 1e6);
            assert_eq!(
                r.decision() == cedar_policy::Decision::Allow,
                allowed,
                "both engines must agree"
            );
        }
        let (o50, o99) = percentiles(ours);
        let (t50, t99) = percentiles(theirs);
        let total = extra + 4;
        println!(
            "{total:>8} {o50:>10.1} / {o99:>9.1} {t50:>10.1} / {t99:>9.1} {:>7.0}ms  ({})",
            reload.as_secs_f64() * 1000.0,
            if allowed { "allowed" } else { "denied" }
        );
    }
}
