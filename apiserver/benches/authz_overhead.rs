//! What Cedar authorization costs per API request: the same GET of one ConfigMap through the
//! whole request pipeline (authentication, authorization, store read, JSON response), in
//! process, with the bootstrap authorizer (admins only, no policy evaluation) and with Cedar
//! deciding by a grant among the shipped defaults plus 1,000 and 10,000 policies.
//!
//! Run: `cargo bench -p bulwark-apiserver --bench authz_overhead`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "benchmark harness"
)]

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use bulwark_apiserver::authn::ConnInfo;
use bulwark_apiserver::authz::CedarAuthorizer;
use bulwark_apiserver::{ApiState, default_state, pipeline};
use bulwark_pki::CertIdentity;
use bulwark_policies::engine::default_sources;
use bulwark_policies::{CompiledPolicies, PolicyEngine};
use bulwark_store::{EmbeddedEngine, Store, StoreOptions};

const SAMPLES: usize = 20_000;

fn extra_sources(n: usize) -> Vec<Arc<CompiledPolicies>> {
    (0..n / 10)
        .map(|chunk| {
            let text: String = (0..10)
                .map(|j| {
                    let i = chunk * 10 + j;
                    format!("@id(\"team-{i}\") permit (principal in k8s::Group::\"team-{i}\", action in [k8s::Action::\"get\", k8s::Action::\"list\"], resource is k8s::Resource) when {{ resource.resource == \"configmaps\" }};\n")
                })
                .collect();
            Arc::new(CompiledPolicies::compile(&format!("team-{chunk}"), None, &text).unwrap())
        })
        .collect()
}

fn request(user: &str, group: &str) -> http::Request<Body> {
    let mut request = http::Request::get("/api/v1/namespaces/default/configmaps/settings")
        .header("accept", "application/json")
        .body(Body::empty())
        .unwrap();
    request.extensions_mut().insert(ConnInfo {
        peer: "127.0.0.1:40000".parse().unwrap(),
        client_cert: Some(CertIdentity {
            user: user.into(),
            groups: vec![group.into()],
            fingerprint: "00".repeat(32),
        }),
    });
    request
}

async fn measure(state: &Arc<ApiState>, user: &str, group: &str) -> (f64, f64, f64) {
    for _ in 0..1_000 {
        let r = pipeline::handle(Arc::clone(state), request(user, group)).await;
        assert_eq!(r.status(), 200);
    }
    let mut samples = Vec::with_capacity(SAMPLES);
    let started = Instant::now();
    for _ in 0..SAMPLES {
        let t = Instant::now();
        let r = pipeline::handle(Arc::clone(state), request(user, group)).await;
        samples.push(t.elapsed().as_secs_f64() * 1e6);
        assert_eq!(r.status(), 200);
    }
    let rate = SAMPLES as f64 / started.elapsed().as_secs_f64();
    samples.sort_by(f64::total_cmp);
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    (at(0.5), at(0.99), rate)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        EmbeddedEngine::open(dir.path().join("db")).unwrap(),
        StoreOptions::default(),
    )
    .await
    .unwrap();
    let bootstrap_state = Arc::new(default_state(store.clone(), "system:masters", None));
    bulwark_apiserver::bootstrap(&bootstrap_state)
        .await
        .unwrap();
    let create = http::Request::post("/api/v1/namespaces/default/configmaps")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"settings"},"data":{"a":"b"}}"#))
        .unwrap();
    let mut create = create;
    create.extensions_mut().insert(
        request("root", "system:masters")
            .extensions()
            .get::<ConnInfo>()
            .cloned()
            .unwrap(),
    );
    assert_eq!(
        pipeline::handle(Arc::clone(&bootstrap_state), create)
            .await
            .status(),
        201
    );

    println!(
        "GET one ConfigMap through the whole pipeline, in process ({SAMPLES} requests, one at a time)"
    );
    println!(
        "{:<44} {:>10} {:>10} {:>10}",
        "authorizer", "p50 µs", "p99 µs", "req/s"
    );
    let (p50, p99, rate) = measure(&bootstrap_state, "root", "system:masters").await;
    println!(
        "{:<44} {p50:>10.1} {p99:>10.1} {rate:>10.0}",
        "bootstrap (admins only, no policies)"
    );
    let base = p50;
    for extra in [0, 1_000, 10_000] {
        let mut sources = default_sources().unwrap();
        sources.extend(extra_sources(extra));
        sources.push(Arc::new(
            CompiledPolicies::compile(
                "bench",
                None,
                r#"@id("bench.read") permit (principal in k8s::Group::"bench", action == k8s::Action::"get", resource is k8s::Resource) when { resource.resource == "configmaps" };"#,
            )
            .unwrap(),
        ));
        let (engine, _) = PolicyEngine::new(&sources).unwrap();
        let mut state = default_state(store.clone(), "system:masters", None);
        state.authorizer = Box::new(CedarAuthorizer::new(Arc::new(engine)));
        let state = Arc::new(state);
        bulwark_apiserver::bootstrap(&state).await.unwrap();
        let (p50, p99, rate) = measure(&state, "dev", "bench").await;
        let label = format!("cedar, grant tier, defaults + {extra} policies");
        println!(
            "{label:<44} {p50:>10.1} {p99:>10.1} {rate:>10.0}   (+{:.1} µs p50)",
            p50 - base
        );
    }
}
