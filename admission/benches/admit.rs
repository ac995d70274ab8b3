//! Admission latency under the shipped Pod Security profiles (restricted, the default):
//! reviews of a compliant Pod with 1 and 5 containers, a compliant Deployment, a violating Pod
//! (denied, with messages built), and a ConfigMap (no pod security policy applies to it), each
//! beside the cost of building every entity with one trivial policy per entity type. Prints
//! p50/p99 µs and reviews per second.
//!
//! Run: `cargo bench -p bulwark-admission --bench admit`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "bench code"
)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use bulwark_admission::object_model::{KindSource, schema_of};
use bulwark_admission::{AdmissionInput, AdmissionModel, AdmissionSnapshot, Mode, Operation};
use bulwark_api::k8s_openapi::api::{apps, core};
use bulwark_policies::CompiledPolicies;
use bulwark_policies::engine::POD_SECURITY;
use serde_json::{Value, json};

const ROUNDS: usize = 20_000;

fn percentiles(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q) as usize];
    (at(0.5), at(0.99))
}

fn restricted_container(name: &str) -> Value {
    json!({"name": name, "image": "registry.local/app:1",
           "ports": [{"containerPort": 8080, "protocol": "TCP"}],
           "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}},
           "env": [{"name": "MODE", "value": "prod"}],
           "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}})
}

fn pod_spec(containers: usize) -> Value {
    json!({
        "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": (0..containers).map(|i| restricted_container(&format!("c{i}"))).collect::<Vec<_>>(),
        "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}}],
        "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
    })
}

fn input<'a>(group: &'a str, kind: &'a str, object: &'a Value) -> AdmissionInput<'a> {
    AdmissionInput {
        user: "alice",
        groups: &[],
        auth_method: "x509",
        cert_fingerprint: None,
        source_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        operation: Operation::Create,
        group,
        kind,
        subresource: None,
        namespace: Some("team-a"),
        name: "x",
        object: Some(object),
        old_object: None,
        namespace_labels: &[],
        dry_run: false,
    }
}

/// The kinds this bench writes (the API server models its whole registry).
const KINDS: &[KindSource] = &[
    KindSource {
        group: "",
        kind: "Pod",
        register: schema_of::<core::v1::Pod>,
        pod_template: Some(""),
    },
    KindSource {
        group: "",
        kind: "ConfigMap",
        register: schema_of::<core::v1::ConfigMap>,
        pod_template: None,
    },
    KindSource {
        group: "apps",
        kind: "Deployment",
        register: schema_of::<apps::v1::Deployment>,
        pod_template: Some("/spec/template"),
    },
];

fn main() {
    let model = AdmissionModel::build(&KINDS).unwrap();
    let compiled = Arc::new(CompiledPolicies::compile_admission("pss", POD_SECURITY).unwrap());
    let (restricted, _) = AdmissionSnapshot::build(&model, &[(compiled, Mode::Enforce)]).unwrap();
    let empty = AdmissionSnapshot::empty(&model);
    // One trivial policy per entity type: every entity is built, almost nothing evaluated.
    let unrelated = Arc::new(
        CompiledPolicies::compile_admission(
            "trivial",
            r#"@id("t1") forbid (principal, action, resource is k8s::admission::Container) when { resource.name == "-" };
               @id("t2") forbid (principal, action, resource is k8s::admission::Workload) when { resource.name == "-" };
               @id("t3") forbid (principal, action, resource is k8s::core::v1::Pod) when { resource.metadata has name && resource.metadata.name == "-" };
               @id("t4") forbid (principal, action, resource is k8s::apps::v1::Deployment) when { resource.metadata has name && resource.metadata.name == "-" };
               @id("t5") forbid (principal, action, resource is k8s::core::v1::ConfigMap) when { resource.metadata has name && resource.metadata.name == "-" };"#,
        )
        .unwrap(),
    );
    let (entities_only, _) =
        AdmissionSnapshot::build(&model, &[(unrelated, Mode::Enforce)]).unwrap();
    let pod1 = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "labels": {"app": "x"}}, "spec": pod_spec(1)});
    let pod5 =
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": pod_spec(5)});
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "x"}},
                 "template": {"metadata": {"labels": {"app": "x"}}, "spec": pod_spec(2)}}});
    let mut bad = pod1.clone();
    bad["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
    let configmap = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "b"}});
    let cases: [(&str, &str, &str, &Value, bool); 5] = [
        ("Pod, 1 container", "", "Pod", &pod1, true),
        ("Pod, 5 containers", "", "Pod", &pod5, true),
        (
            "Deployment, 2 containers",
            "apps",
            "Deployment",
            &deployment,
            true,
        ),
        ("Pod, privileged (denied)", "", "Pod", &bad, false),
        ("ConfigMap", "", "ConfigMap", &configmap, true),
    ];
    println!(
        "{:<28} {:>24} {:>12} {:>22}",
        "admission under restricted", "p50 / p99 µs", "reviews/s", "entities + trivial p50 µs"
    );
    for (label, group, kind, object, admitted) in cases {
        let i = input(group, kind, object);
        assert_eq!(restricted.review(&i).admitted(), admitted, "{label}");
        for _ in 0..1_000 {
            std::hint::black_box(restricted.review(&i));
        }
        let mut samples = Vec::with_capacity(ROUNDS);
        let started = Instant::now();
        for _ in 0..ROUNDS {
            let t = Instant::now();
            std::hint::black_box(restricted.review(&i));
            samples.push(t.elapsed().as_secs_f64() * 1e6);
        }
        let rate = ROUNDS as f64 / started.elapsed().as_secs_f64();
        let (p50, p99) = percentiles(samples);
        let mut build = Vec::with_capacity(ROUNDS / 4);
        for _ in 0..ROUNDS / 4 {
            let t = Instant::now();
            std::hint::black_box(entities_only.review(&i));
            build.push(t.elapsed().as_secs_f64() * 1e6);
        }
        let (build50, _) = percentiles(build);
        println!(
            "{label:<28} {:>24} {:>12.0} {:>22.1}",
            format!("{p50:.1} / {p99:.1}"),
            rate,
            build50
        );
    }
    // No admission policies: the floor (nothing is built).
    let i = input("", "Pod", &pod1);
    let mut samples = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let t = Instant::now();
        std::hint::black_box(empty.review(&i));
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let (p50, p99) = percentiles(samples);
    println!(
        "{:<28} {:>24}",
        "no policies (Pod)",
        format!("{p50:.2} / {p99:.2}")
    );
}
