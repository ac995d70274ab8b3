//! What the audit log costs the API server: throughput of GETs and creates of ConfigMaps
//! through the whole pipeline, in process, 32 at a time, with audit off and with the hardened
//! default policy (Metadata for configmaps) writing to a real, fsynced, signed log in the same
//! run. Then verifies the log that was written and prints the verifier's speed.
//!
//! Run: `cargo bench -p bulwark-apiserver --bench audit_overhead`
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
use bulwark_apiserver::audit::record::Auditing;
use bulwark_apiserver::authn::ConnInfo;
use bulwark_apiserver::{ApiState, default_state, pipeline};
use bulwark_audit::chain::{SigningKey, VerifyingKey, public_key_path};
use bulwark_audit::{AuditLog, AuditOptions, AuditPolicy};
use bulwark_pki::CertIdentity;
use bulwark_store::{EmbeddedEngine, Store, StoreOptions};

/// The allocator the `bulwark` binary uses, so the figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const REQUESTS: usize = 40_000;
const CONCURRENCY: usize = 32;

fn with_conn(mut request: http::Request<Body>) -> http::Request<Body> {
    request.extensions_mut().insert(ConnInfo {
        peer: "127.0.0.1:40000".parse().unwrap(),
        client_cert: Some(CertIdentity {
            user: "root".into(),
            groups: vec!["system:masters".into()],
            fingerprint: "00".repeat(32),
        }),
    });
    request
}

fn get() -> http::Request<Body> {
    with_conn(
        http::Request::get("/api/v1/namespaces/default/configmaps/settings")
            .header("accept", "application/json")
            .header("user-agent", "bench/1.0")
            .body(Body::empty())
            .unwrap(),
    )
}

fn create(i: usize, tag: &str) -> http::Request<Body> {
    with_conn(
        http::Request::post("/api/v1/namespaces/default/configmaps")
            .header("content-type", "application/json")
            .body(Body::from(format!(
                r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"c-{tag}-{i}"}},"data":{{"a":"b"}}}}"#
            )))
            .unwrap(),
    )
}

/// Requests per second for `n` requests made by `make`, `CONCURRENCY` at a time.
async fn throughput(
    state: &Arc<ApiState>,
    n: usize,
    make: impl Fn(usize) -> http::Request<Body> + Send + Sync + 'static,
    expect: u16,
) -> f64 {
    let make = Arc::new(make);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..CONCURRENCY {
        let state = Arc::clone(state);
        let make = Arc::clone(&make);
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while i < n {
                let r = pipeline::handle(Arc::clone(&state), make(i)).await;
                assert_eq!(r.status(), expect);
                i += CONCURRENCY;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    n as f64 / started.elapsed().as_secs_f64()
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
    let plain = Arc::new(default_state(store.clone(), "system:masters", None));
    bulwark_apiserver::bootstrap(&plain).await.unwrap();
    let r = pipeline::handle(Arc::clone(&plain), create(0, "seed")).await;
    assert_eq!(r.status(), 201);
    let _ = pipeline::handle(
        Arc::clone(&plain),
        with_conn(
            http::Request::post("/api/v1/namespaces/default/configmaps")
                .header("content-type", "application/json")
                .body(Body::from(
                    r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"settings"}}"#,
                ))
                .unwrap(),
        ),
    )
    .await;

    let key_path = dir.path().join("pki").join("audit-signing.key");
    let log = AuditLog::open(
        AuditOptions::new(dir.path().join("audit")),
        SigningKey::load_or_create(&key_path).unwrap(),
    )
    .unwrap();
    let mut audited = default_state(store.clone(), "system:masters", None);
    audited.auditing = Some(Auditing {
        sink: Arc::new(log.clone()),
        policy: AuditPolicy::hardened_default().unwrap(),
        reader: None,
    });
    let audited = Arc::new(audited);
    bulwark_apiserver::bootstrap(&audited).await.unwrap();

    println!("ConfigMap requests through the whole pipeline, in process, {CONCURRENCY} at a time");
    println!(
        "{:<10} {:>14} {:>14} {:>8}",
        "request", "audit off /s", "Metadata /s", "cost"
    );
    // Warm both up, then alternate so drift hits both alike.
    throughput(&plain, 2_000, |_| get(), 200).await;
    throughput(&audited, 2_000, |_| get(), 200).await;
    let mut off = Vec::new();
    let mut on = Vec::new();
    for _ in 0..3 {
        off.push(throughput(&plain, REQUESTS, |_| get(), 200).await);
        on.push(throughput(&audited, REQUESTS, |_| get(), 200).await);
    }
    let best = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let (a, b) = (best(&off), best(&on));
    println!(
        "{:<10} {a:>14.0} {b:>14.0} {:>7.1}%",
        "GET",
        (a - b) / a * 100.0
    );
    let creates = 4_000;
    let a = throughput(&plain, creates, |i| create(i, "off"), 201).await;
    let b = throughput(&audited, creates, |i| create(i, "on"), 201).await;
    println!(
        "{:<10} {a:>14.0} {b:>14.0} {:>7.1}%",
        "create",
        (a - b) / a * 100.0
    );

    log.flush().await;
    let public =
        VerifyingKey::from_pem(&std::fs::read_to_string(public_key_path(&key_path)).unwrap())
            .unwrap();
    let started = Instant::now();
    let report =
        bulwark_audit::verify::verify(&dir.path().join("audit"), Some(&public), None).unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert!(report.ok(), "{:?}", report.problems);
    println!(
        "audit verify: {} records, {:.1} MB in {:.2} s = {:.0} MB/s, {:.0} records/s",
        report.records,
        report.bytes as f64 / 1e6,
        secs,
        report.bytes as f64 / 1e6 / secs,
        report.records as f64 / secs
    );
}
