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

use std::sync::Arc;

use bulwark_policies::engine::{DEFAULT_GRANTS, default_sources};
use bulwark_policies::{AccessRequest, CompiledPolicies, PolicyEngine, Snapshot, Target};
use cedar_policy::{Authorizer, PolicySet};
use rayon::prelude::*;

const SAMPLES: usize = 2_000;

/// Policies per `CedarPolicy` object in the bench (a team's grants).
const PER_SOURCE: usize = 10;

/// `n` grants as sources of [`PER_SOURCE`] policies: per-team group grants, and per-team
/// grants confined to the team's namespace. Returns the sources' (name, namespace, text).
fn grants(n: usize) -> Vec<(String, Option<String>, String)> {
    let mut sources = Vec::new();
    for chunk in 0..n.div_ceil(PER_SOURCE) {
        let namespaced = chunk % 2 == 1;
        let mut text = String::new();
        for j in 0..PER_SOURCE.min(n - chunk * PER_SOURCE) {
            let i = chunk * PER_SOURCE + j;
            if namespaced {
                text.push_str(&format!(
                    "@id(\"grants.ns-{i}\") permit (principal in k8s::Group::\"team-{i}\", action, resource is k8s::Resource);\n"
                ));
            } else {
                text.push_str(&format!(
                    "@id(\"grants.team-{i}\") permit (principal in k8s::Group::\"team-{i}\", action in [k8s::Action::\"get\", k8s::Action::\"list\"], resource is k8s::Resource) when {{ resource.resource == \"configmaps\" }};\n"
                ));
            }
        }
        let namespace = namespaced.then(|| format!("ns-{chunk}"));
        sources.push((format!("team-{chunk}"), namespace, text));
    }
    sources
}

/// The same policies as one plain Cedar text (namespace confinement as a condition).
fn plain_text(sources: &[(String, Option<String>, String)]) -> String {
    let mut text = format!("{GUARDRAILS}\n{DEFAULT_GRANTS}\n");
    for (_, namespace, policies) in sources {
        match namespace {
            None => text.push_str(policies),
            Some(ns) => text.push_str(&policies.replace(
                "resource is k8s::Resource);",
                &format!("resource is k8s::Resource) when {{ resource has namespace && resource.namespace == \"{ns}\" }};"),
            )),
        }
    }
    text
}

fn compile_all(sources: &[(String, Option<String>, String)]) -> Vec<Arc<CompiledPolicies>> {
    let mut compiled = vec![Arc::new(
        CompiledPolicies::compile("guardrails", None, GUARDRAILS).unwrap(),
    )];
    compiled.extend(default_sources().unwrap());
    // On every core, as the API server's policy sync compiles objects.
    compiled.par_extend(sources.par_iter().map(|(name, namespace, text)| {
        Arc::new(CompiledPolicies::compile(name, namespace.as_deref(), text).unwrap())
    }));
    compiled
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
    let groups = vec!["team-15".to_owned(), "system:authenticated".to_owned()];
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
        "authorization decision latency (alice in team-15, granted namespace ns-1, lists configmaps there; {SAMPLES} samples)"
    );
    println!(
        "{:>8} {:>22} {:>22} {:>11} {:>11}",
        "policies", "bulwark p50 / p99 µs", "plain cedar p50 / p99", "full load", "reload one"
    );
    for extra in [0, 1_000, 10_000] {
        let sources = grants(extra);
        let started = Instant::now();
        let mut compiled = compile_all(&sources);
        let (engine, skipped) = PolicyEngine::new(&compiled).unwrap();
        let full_load = started.elapsed();
        assert!(skipped.is_empty());
        // One object changes: recompile it and rebuild the snapshot (what a watch event costs).
        let started = Instant::now();
        if let Some((name, namespace, text)) = sources.last() {
            let last = compiled.len() - 1;
            compiled[last] =
                Arc::new(CompiledPolicies::compile(name, namespace.as_deref(), text).unwrap());
        }
        let (snapshot, _) = Snapshot::build(&compiled).unwrap();
        engine.install(snapshot);
        let reload = started.elapsed();
        let mut ours = Vec::with_capacity(SAMPLES);
        let mut allowed = false;
        for _ in 0..SAMPLES {
            let t = Instant::now();
            let d = engine.decide(&request);
            ours.push(t.elapsed().as_secs_f64() * 1e6);
            allowed = d.allowed;
        }
        // Plain Cedar: every policy in one set, the same request and entities.
        let plain: PolicySet = plain_text(&sources).parse().unwrap();
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
        let total = extra + 5;
        println!(
            "{total:>8} {o50:>10.1} / {o99:>9.1} {t50:>10.1} / {t99:>9.1} {:>9.0}ms {:>9.0}ms  ({})",
            full_load.as_secs_f64() * 1000.0,
            reload.as_secs_f64() * 1000.0,
            if allowed { "allowed" } else { "denied" }
        );
    }
}
