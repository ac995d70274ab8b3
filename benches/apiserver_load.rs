//! Load generator for `bulwark server` (the real binary, embedded store, TLS with client
//! certificates, persistent HTTP/2 connections). Prints cold start to /readyz, creates/s,
//! gets/s of one hot object, list latency over 10,000 ConfigMaps, watch delivery latency
//! p50/p99 with 1,000 concurrent watchers, and server RSS idle and under load; then the shared
//! load generator's workload (distinct 1 KiB objects, 8 and 64 clients over one connection, a
//! fresh server each), whose figures compare with `../shared/loadgen` and upstream's. Then measures the audit log's cost:
//! two fresh servers, one at the hardened default (Metadata for ConfigMaps, fsynced, signed and
//! indexed) and one with auditing off, run creates and gets in alternating rounds, and the
//! median difference is printed with every round's figures. The limits' cost is measured the
//! same way: a server with the default limits and one with every limit raised out of the way
//! (`--dangerous-no-limits`), creates, gets and patches in alternating rounds. Last, memory
//! with 1,000 watchers that never read, on 10 MB of ConfigMaps, and read latency during a
//! burst of large pods through admission.
//!
//! Run: `cargo bench --bench apiserver_load` (BULWARK_BENCH_SECONDS sets each throughput
//! phase's length, default 3).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "benchmark harness"
)]

#[path = "support/harness.rs"]
#[allow(dead_code, reason = "each bench uses part of the harness")]
mod harness;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bulwark_client::{ApiClient, Credentials};
use harness::{
    connect_all, cpu_seconds, fill, percentile, ready_clients, rss_kib, start_server,
    start_server_with, throughput,
};
use http::Method;
use http_body_util::BodyExt;
use serde_json::json;

const WRITERS: usize = 64;
/// Alternating rounds of the audit-on / audit-off comparison.
const AUDIT_ROUNDS: usize = 5;
const READERS: usize = 64;
const LIST_OBJECTS: usize = 10_000;
const WATCHERS: usize = 1_000;
const WATCH_EVENTS: usize = 200;
/// Pause between watched updates: 20 updates/s, 20,000 deliveries/s with 1,000 watchers.
const WATCH_INTERVAL_MS: u64 = 50;

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// Watches the "hot" ConfigMap from `rv` until [`WATCH_EVENTS`] updates carrying a send time
/// (µs) arrived, calling `each` with every one.
async fn watch_hot(c: ApiClient, rv: String, opened: Arc<AtomicU64>, mut each: impl FnMut(u64)) {
    let path = format!(
        "/api/v1/namespaces/bench-w/configmaps?watch=1&fieldSelector=metadata.name%3Dhot&resourceVersion={rv}&timeoutSeconds=120"
    );
    let response = c.stream(Method::GET, &path).await.unwrap();
    opened.fetch_add(1, Ordering::Relaxed);
    let mut body = response.into_body();
    let mut buffer = Vec::new();
    let mut seen = 0;
    while seen < WATCH_EVENTS {
        let Some(frame) = body.frame().await else {
            break;
        };
        let Ok(data) = frame.unwrap().into_data() else {
            continue;
        };
        buffer.extend_from_slice(&data);
        while let Some(pos) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=pos).collect();
            // Only the send time is read, so the client's parsing does not crowd out the server.
            let text = std::str::from_utf8(&line).unwrap();
            let sent = text
                .split_once("\"sent\":\"")
                .and_then(|(_, rest)| rest.split('"').next())
                .and_then(|s| s.parse::<u64>().ok());
            if let Some(sent) = sent {
                each(sent);
                seen += 1;
            }
        }
    }
    assert_eq!(seen, WATCH_EVENTS, "watch ended early");
}

/// One phase of the shared load generator's workload: `n` operations, `clients` at a time;
/// returns operations per second and the sorted latencies (ms).
async fn count_phase<F, Fut>(clients: usize, n: usize, op: F) -> (f64, Vec<f64>)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (op, next) = (Arc::clone(&op), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= n {
                    return latencies;
                }
                let t = Instant::now();
                op(i).await;
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }));
    }
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    (rate, all)
}

/// The shared load generator's workload (`../shared/loadgen`), so these figures compare with
/// its runs and upstream's: `n` distinct 1 KiB ConfigMaps created `clients` at a time over
/// one HTTP/2 connection, then each read once, `clients` at a time.
async fn distinct_objects(creds: &Credentials, ns: &str, clients: usize, n: usize) {
    let c = ApiClient::builder(creds).connect().await.unwrap();
    let r = c
        .post_json("/api/v1/namespaces", &json!({"metadata": {"name": ns}}))
        .await
        .unwrap();
    assert_eq!(r.status.as_u16(), 201);
    let path: Arc<str> = format!("/api/v1/namespaces/{ns}/configmaps").into();
    let data = "x".repeat(1024);
    let (client, at) = (c.clone(), Arc::clone(&path));
    let (creates, create_ms) = count_phase(clients, n, move |i| {
        let (c, path) = (client.clone(), Arc::clone(&at));
        let body = json!({"metadata": {"name": format!("cm-{i}")}, "data": {"v": data}});
        async move {
            let r = c.post_json(&path, &body).await.unwrap();
            assert_eq!(r.status.as_u16(), 201);
        }
    })
    .await;
    let (client, at) = (c.clone(), Arc::clone(&path));
    let (gets, get_ms) = count_phase(clients, n, move |i| {
        let (c, path) = (client.clone(), Arc::clone(&at));
        async move {
            let r = c.get(&format!("{path}/cm-{i}")).await.unwrap();
            assert_eq!(r.status.as_u16(), 200);
        }
    })
    .await;
    println!(
        "  {clients:>2} clients, {n:>6} distinct objects: creates/s {creates:>6.0} (p50 / p99 {:.2} / {:.2} ms), gets/s {gets:>6.0} (p50 / p99 {:.2} / {:.2} ms)",
        percentile(&create_ms, 0.5),
        percentile(&create_ms, 0.99),
        percentile(&get_ms, 0.5),
        percentile(&get_ms, 0.99),
    );
}

/// The resourceVersion a list was read at.
async fn list_revision(c: &ApiClient, path: &str) -> String {
    c.get(path).await.unwrap().json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Creates of 1 KiB ConfigMaps in `bench-w` per second, [`WRITERS`] at a time.
async fn creates_per_second(clients: &[ApiClient], seconds: u64, tag: &str) -> f64 {
    let tag = tag.to_owned();
    throughput(clients, WRITERS, seconds, move |c, i| {
        let name = format!("cm-{tag}{i:x}");
        async move {
            let r = c
                .post_json(
                    "/api/v1/namespaces/bench-w/configmaps",
                    &json!({"metadata": {"name": name}, "data": {"k": "v".repeat(1024)}}),
                )
                .await
                .unwrap();
            assert_eq!(r.status.as_u16(), 201);
        }
    })
    .await
}

/// Merge patches per second, [`WRITERS`] at a time, each writer patching a ConfigMap of its
/// own in `bench-w` (on one shared object most would lose the compare-and-swap race).
async fn patches_per_second(clients: &[ApiClient], seconds: u64) -> f64 {
    for w in 0..WRITERS {
        let r = clients[0]
            .post_json(
                "/api/v1/namespaces/bench-w/configmaps",
                &json!({"metadata": {"name": format!("patched-{w}")}, "data": {"k": "v".repeat(1024)}}),
            )
            .await
            .unwrap();
        // 409: an earlier round made it.
        assert!(matches!(r.status.as_u16(), 201 | 409));
    }
    throughput(clients, WRITERS, seconds, |c, i| async move {
        let patch =
            json!({"metadata": {"annotations": {"bench/n": (i & 0xffff_ffff).to_string()}}});
        let r = c
            .send(
                Method::PATCH,
                &format!("/api/v1/namespaces/bench-w/configmaps/patched-{}", i >> 32),
                &[("content-type", "application/merge-patch+json")],
                serde_json::to_vec(&patch).unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.status.as_u16(), 200);
    })
    .await
}

/// Runs creates, gets and patches against two servers in alternating rounds (the order flips
/// every round, so drift and noise on this shared machine hit both alike); prints each
/// figure's median difference of `a` over `b` and every round, for throughput and for the
/// server's CPU time per operation (read from /proc, steadier than throughput on a machine
/// whose two cores the load generator shares).
async fn compare(title: &str, a: (&[ApiClient], u32), b: (&[ApiClient], u32), seconds: u64) {
    let rounds_wanted: usize = std::env::var("BULWARK_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(AUDIT_ROUNDS);
    // Per round: [a, b] of creates/s, gets/s, patches/s, then of CPU µs per create, get, patch.
    let mut rounds = Vec::new();
    for round in 0..rounds_wanted {
        let tag = format!("{}{round}-", title.len());
        let mut figures = [0.0; 12];
        let order = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for first in order {
            let (clients, pid) = if first { a } else { b };
            let at = if first { 0 } else { 1 };
            let per_op = |before: f64, rate: f64| {
                (cpu_seconds(pid) - before) * 1e6 / (rate * seconds as f64)
            };
            let cpu = cpu_seconds(pid);
            figures[at] = creates_per_second(clients, seconds, &tag).await;
            figures[6 + at] = per_op(cpu, figures[at]);
            let cpu = cpu_seconds(pid);
            figures[2 + at] = gets_per_second(clients, seconds).await;
            figures[8 + at] = per_op(cpu, figures[2 + at]);
            let cpu = cpu_seconds(pid);
            figures[4 + at] = patches_per_second(clients, seconds).await;
            figures[10 + at] = per_op(cpu, figures[4 + at]);
        }
        rounds.push(figures);
    }
    println!("  {title} ({rounds_wanted} alternating rounds of {seconds} s):");
    for (name, at) in [
        ("creates/s", 0),
        ("gets/s", 2),
        ("patches/s", 4),
        ("CPU µs/create", 6),
        ("CPU µs/get", 8),
        ("CPU µs/patch", 10),
    ] {
        let pairs: Vec<String> = rounds
            .iter()
            .map(|r| format!("{:.0} vs {:.0}", r[at], r[at + 1]))
            .collect();
        let mut costs: Vec<f64> = rounds
            .iter()
            .map(|r| (r[at] - r[at + 1]) / r[at + 1] * 100.0)
            .collect();
        costs.sort_by(f64::total_cmp);
        println!(
            "    {name:<14} median {:+.1}%  ({})",
            percentile(&costs, 0.5),
            pairs.join(", ")
        );
    }
}

/// 1,000 watchers of a namespace holding 10 MB of ConfigMaps that never read their streams:
/// the server's memory before they open, at its peak while they open, and once they stall.
async fn stalled_watchers() {
    const OBJECTS: usize = 10_000;
    let server = start_server(false);
    let pid = server.child.id();
    let clients = ready_clients(&server).await;
    let creds = Credentials::from_kubeconfig(&server.kubeconfig).unwrap();
    fill(
        WRITERS,
        &clients,
        "/api/v1/namespaces/bench-w/configmaps",
        OBJECTS,
        |i| json!({"metadata": {"name": format!("fill-{i:05}")}, "data": {"k": "v".repeat(1024)}}),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_kib(pid);
    let peak = Arc::new(AtomicU64::new(idle));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (Arc::clone(&peak), Arc::clone(&sampling));
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let mut connections = Vec::new();
    for _ in 0..4 {
        connections.push(ApiClient::builder(&creds).connect().await.unwrap());
    }
    let opened_at = Instant::now();
    let mut streams = Vec::new();
    for i in 0..WATCHERS {
        let response = connections[i % connections.len()]
            .stream(Method::GET, "/api/v1/namespaces/bench-w/configmaps?watch=1")
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        streams.push(response);
    }
    let opened = opened_at.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stalled = rss_kib(pid);
    sampling.store(false, Ordering::Relaxed);
    sampler.await.unwrap();
    let peak = peak.load(Ordering::Relaxed).max(stalled);
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "  {WATCHERS} stalled watchers on {OBJECTS} x 1 KiB ConfigMaps (~10 MB; 4 HTTP/2 connections, opened in {:.0} ms):",
        opened.as_secs_f64() * 1000.0
    );
    println!(
        "    RSS idle {:.1} MiB, stalled {:.1} MiB (+{:.1} MiB, {:.0} KiB per watcher), peak {:.1} MiB (+{:.1} MiB)",
        mib(idle),
        mib(stalled),
        mib(stalled.saturating_sub(idle)),
        stalled.saturating_sub(idle) as f64 / WATCHERS as f64,
        mib(peak),
        mib(peak.saturating_sub(idle))
    );
    drop(streams);
    drop(server);
}

/// GET latencies (ms, sorted) of one small object on its own connection for `seconds`.
async fn get_latencies(c: &ApiClient, seconds: u64) -> Vec<f64> {
    let mut out = Vec::new();
    let until = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < until {
        let t = Instant::now();
        let r = c
            .get("/api/v1/namespaces/bench-w/configmaps/hot")
            .await
            .unwrap();
        assert_eq!(r.status.as_u16(), 200);
        out.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    out.sort_by(f64::total_cmp);
    out
}

/// What a burst of large pods (16 writers, ~1 MB pods of 256 containers, each evaluated by the
/// restricted Pod Security admission policies) does to everyone else's reads: GET latency of
/// a small object alone and during the burst.
async fn admission_burst(seconds: u64) {
    let server = start_server(false);
    let clients = ready_clients(&server).await;
    let creds = Credentials::from_kubeconfig(&server.kubeconfig).unwrap();
    let r = clients[0]
        .post_json(
            "/api/v1/namespaces/bench-w/configmaps",
            &json!({"metadata": {"name": "hot"}, "data": {"k": "v"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status.as_u16(), 201);
    let reader = ApiClient::builder(&creds).connect().await.unwrap();
    let alone = get_latencies(&reader, seconds).await;
    let env: Vec<serde_json::Value> = (0..8)
        .map(|i| json!({"name": format!("E{i}"), "value": "x".repeat(480)}))
        .collect();
    let containers: Vec<serde_json::Value> = (0..256)
        .map(|i| json!({"name": format!("c{i}"), "image": "registry.local/app:1", "env": env}))
        .collect();
    let pod =
        Arc::new(json!({"metadata": {"generateName": "big-"}, "spec": {"containers": containers}}));
    let size = serde_json::to_vec(&*pod).unwrap().len();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for w in 0..16 {
        let (c, pod, stop, done) = (
            clients[w % clients.len()].clone(),
            Arc::clone(&pod),
            Arc::clone(&stop),
            Arc::clone(&done),
        );
        writers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let r = c
                    .post_json("/api/v1/namespaces/bench-w/pods", &pod)
                    .await
                    .unwrap();
                // Refused by the restricted profile, after the whole evaluation.
                assert!(r.status.is_client_error(), "{}", r.status);
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = get_latencies(&reader, seconds).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    println!(
        "  admission burst: 16 writers of {:.2} MB pods (256 containers), {} evaluated and refused in {seconds}+ s",
        size as f64 / 1e6,
        done.load(Ordering::Relaxed)
    );
    println!(
        "    GET of a small object p50 / p99: alone {:.2} / {:.2} ms, during the burst {:.2} / {:.2} ms",
        percentile(&alone, 0.5),
        percentile(&alone, 0.99),
        percentile(&during, 0.5),
        percentile(&during, 0.99)
    );
    drop(server);
}

/// Creates the ConfigMap `hot` in `bench-w`, then GETs it per second, [`READERS`] at a time.
async fn gets_per_second(clients: &[ApiClient], seconds: u64) -> f64 {
    let target = clients[0]
        .post_json(
            "/api/v1/namespaces/bench-w/configmaps",
            &json!({"metadata": {"name": "hot"}, "data": {"k": "v"}}),
        )
        .await
        .unwrap();
    // 409: an earlier round made it.
    assert!(matches!(target.status.as_u16(), 201 | 409));
    throughput(clients, READERS, seconds, |c, _| async move {
        let r = c
            .get("/api/v1/namespaces/bench-w/configmaps/hot")
            .await
            .unwrap();
        assert_eq!(r.status.as_u16(), 200);
    })
    .await
}

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// Creates of 1 KiB ConfigMaps per second with protobuf bodies and responses, as kubectl's
/// typed commands and Go controllers send them.
async fn protobuf_creates_per_second(clients: &[ApiClient], seconds: u64, tag: &str) -> f64 {
    let tag = tag.to_owned();
    throughput(clients, WRITERS, seconds, move |c, i| {
        let body = bulwark_apiserver::codec::protobuf::encode(&json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("pb-{tag}{i:x}")}, "data": {"k": "v".repeat(1024)}
        }))
        .unwrap();
        async move {
            let r = c
                .send(
                    Method::POST,
                    "/api/v1/namespaces/bench-w/configmaps",
                    &[("content-type", PROTOBUF), ("accept", PROTOBUF)],
                    body,
                )
                .await
                .unwrap();
            assert_eq!(r.status.as_u16(), 201);
        }
    })
    .await
}

/// Gets per second of one ConfigMap, as protobuf.
async fn protobuf_gets_per_second(clients: &[ApiClient], seconds: u64) -> f64 {
    throughput(clients, READERS, seconds, |c, _| async move {
        let r = c
            .send(
                Method::GET,
                "/api/v1/namespaces/bench-w/configmaps/hot",
                &[("accept", PROTOBUF)],
                Vec::new(),
            )
            .await
            .unwrap();
        assert_eq!(r.status.as_u16(), 200);
        assert!(r.body.starts_with(b"k8s\0"));
    })
    .await
}

/// JSON against protobuf on one server, in alternating rounds (the order flips each round),
/// medians printed with every round.
async fn wire_comparison(clients: &[ApiClient], seconds: u64) {
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (mut jc, mut pc, mut jg, mut pg) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..3 {
        let tag = format!("r{round}-");
        if round % 2 == 0 {
            jc.push(creates_per_second(clients, seconds, &tag).await);
            pc.push(protobuf_creates_per_second(clients, seconds, &tag).await);
            jg.push(gets_per_second(clients, seconds).await);
            pg.push(protobuf_gets_per_second(clients, seconds).await);
        } else {
            pc.push(protobuf_creates_per_second(clients, seconds, &tag).await);
            jc.push(creates_per_second(clients, seconds, &tag).await);
            pg.push(protobuf_gets_per_second(clients, seconds).await);
            jg.push(gets_per_second(clients, seconds).await);
        }
    }
    let rounds = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "  JSON vs protobuf, one server, 3 alternating rounds of {seconds} s (median; rounds):"
    );
    let (jcm, pcm, jgm, pgm) = (
        median(jc.clone()),
        median(pc.clone()),
        median(jg.clone()),
        median(pg.clone()),
    );
    println!(
        "    creates/s  JSON {jcm:>7.0}  protobuf {pcm:>7.0}  ratio {:.2}  ({} | {})",
        pcm / jcm,
        rounds(&jc),
        rounds(&pc)
    );
    println!(
        "    gets/s     JSON {jgm:>7.0}  protobuf {pgm:>7.0}  ratio {:.2}  ({} | {})",
        pgm / jgm,
        rounds(&jg),
        rounds(&pg)
    );
}

/// Server-side apply of Deployments (a restricted-compliant template): latency of the apply
/// that creates each one, and of re-applying it with a changed image.
async fn apply_latencies(c: &ApiClient) {
    const APPLIES: usize = 200;
    let manifest = |name: &str, image: &str| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": {
                    "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{"name": "app", "image": image,
                        "ports": [{"containerPort": 80}],
                        "env": [{"name": "MODE", "value": "blue"}],
                        "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]}}}})
    };
    let apply = |name: String, image: &'static str| {
        let body = serde_json::to_vec(&manifest(&name, image)).unwrap();
        async move {
            let t = Instant::now();
            let r = c
                .send(
                    Method::PATCH,
                    &format!(
                        "/apis/apps/v1/namespaces/bench-w/deployments/{name}?fieldManager=bench"
                    ),
                    &[("content-type", "application/apply-patch+yaml")],
                    body,
                )
                .await
                .unwrap();
            assert!(r.status.is_success(), "{}", r.json());
            t.elapsed().as_secs_f64() * 1000.0
        }
    };
    let (mut create, mut update) = (Vec::new(), Vec::new());
    for i in 0..APPLIES {
        create.push(apply(format!("apply-{i}"), "registry.local/web:1").await);
    }
    for i in 0..APPLIES {
        update.push(apply(format!("apply-{i}"), "registry.local/web:2").await);
    }
    create.sort_by(f64::total_cmp);
    update.sort_by(f64::total_cmp);
    println!(
        "  server-side apply of a Deployment, p50 / p99: create {:.2} / {:.2} ms, change {:.2} / {:.2} ms ({APPLIES} each, one client)",
        percentile(&create, 0.5),
        percentile(&create, 0.99),
        percentile(&update, 0.5),
        percentile(&update, 0.99)
    );
}

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::var("BULWARK_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let server = start_server(false);
    let pid = server.child.id();
    let creds = Credentials::from_kubeconfig(&server.kubeconfig).unwrap();
    // Cold start: process spawn to the first 200 from /readyz.
    let ready = loop {
        if let Ok(c) = ApiClient::builder(&creds).connect().await
            && let Ok(r) = c.get("/readyz").await
            && r.status.as_u16() == 200
        {
            break server.started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = rss_kib(pid);
    let clients = connect_all(&creds).await;
    let c0 = clients[0].clone();
    for ns in ["bench-w", "bench-l"] {
        let r = c0
            .post_json("/api/v1/namespaces", &json!({"metadata": {"name": ns}}))
            .await
            .unwrap();
        assert_eq!(r.status.as_u16(), 201);
    }

    let creates = creates_per_second(&clients, seconds, "").await;
    let rss_load = rss_kib(pid);

    let gets = gets_per_second(&clients, seconds).await;

    let before_fill = list_revision(&c0, "/api/v1/namespaces/bench-w/configmaps?limit=1").await;
    // 10,000 ConfigMaps in one namespace, listed whole.
    fill(WRITERS, &clients, "/api/v1/namespaces/bench-l/configmaps", LIST_OBJECTS, |i| {
        json!({"metadata": {"name": format!("item-{i:05}"), "labels": {"bench": "list"}}, "data": {"k": "v".repeat(256)}})
    })
    .await;
    let mut list_ms = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let r = c0
            .get("/api/v1/namespaces/bench-l/configmaps")
            .await
            .unwrap();
        list_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(r.json()["items"].as_array().unwrap().len(), LIST_OBJECTS);
    }
    list_ms.sort_by(f64::total_cmp);

    // 1,000 watchers on one object; each update carries its send time.
    // Watch from "now" (the list's revision), as an informer does after its initial list.
    let rv = list_revision(
        &c0,
        "/api/v1/namespaces/bench-w/configmaps?fieldSelector=metadata.name%3Dhot",
    )
    .await;
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<f64>::new()));
    let mut watchers = Vec::new();
    let opened = Arc::new(AtomicU64::new(0));
    for w in 0..WATCHERS {
        let (c, latencies, rv, opened) = (
            clients[w % clients.len()].clone(),
            Arc::clone(&latencies),
            rv.clone(),
            Arc::clone(&opened),
        );
        watchers.push(tokio::spawn(watch_hot(c, rv, opened, move |sent| {
            let latency = (now_micros().saturating_sub(sent)) as f64 / 1000.0;
            latencies.lock().unwrap().push(latency);
        })));
    }
    while opened.load(Ordering::Relaxed) < WATCHERS as u64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut rss_watch = 0;
    for i in 0..WATCH_EVENTS {
        let patch = json!({"data": {"sent": now_micros().to_string()}});
        let r = c0
            .send(
                Method::PATCH,
                "/api/v1/namespaces/bench-w/configmaps/hot",
                &[("content-type", "application/merge-patch+json")],
                serde_json::to_vec(&patch).unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.status.as_u16(), 200);
        if i == WATCH_EVENTS / 2 {
            rss_watch = rss_kib(pid);
        }
        tokio::time::sleep(Duration::from_millis(WATCH_INTERVAL_MS)).await;
    }
    for w in watchers {
        tokio::time::timeout(Duration::from_secs(60), w)
            .await
            .expect("watchers finish")
            .unwrap();
    }
    // 1,000 watchers resuming from before the 10,000-object fill (as informers do after an
    // apiserver restart or a dropped connection): every one replays the same 200 updates.
    let resume_started = Instant::now();
    let resumed = Arc::new(AtomicU64::new(0));
    let mut resuming = Vec::new();
    for w in 0..WATCHERS {
        resuming.push(tokio::spawn(watch_hot(
            clients[w % clients.len()].clone(),
            before_fill.clone(),
            Arc::clone(&resumed),
            |_| {},
        )));
    }
    for r in resuming {
        tokio::time::timeout(Duration::from_secs(120), r)
            .await
            .expect("resumed watchers finish")
            .unwrap();
    }
    let resume = resume_started.elapsed();
    let mut lat = latencies.lock().unwrap().clone();
    lat.sort_by(f64::total_cmp);
    if std::env::var("BULWARK_BENCH_DEBUG").is_ok() {
        for p in [0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999] {
            eprintln!("p{p}: {:.2} ms", percentile(&lat, p));
        }
    }

    println!(
        "bulwark apiserver load (embedded store, TLS 1.3 + client certs, {} HTTP/2 connections)",
        clients.len()
    );
    println!(
        "  cold start to /readyz          {:>9.1} ms",
        ready.as_secs_f64() * 1000.0
    );
    println!("  creates/s ({WRITERS} writers, 1 KiB)   {creates:>9.0}");
    println!("  gets/s ({READERS} readers, one hot object) {gets:>5.0}");
    println!(
        "  list {LIST_OBJECTS} ConfigMaps p50 / max {:>7.1} / {:.1} ms",
        percentile(&list_ms, 0.5),
        percentile(&list_ms, 1.0)
    );
    println!(
        "  watch latency p50 / p99        {:>7.2} / {:.2} ms ({WATCHERS} watchers, {} deliveries, an update every {WATCH_INTERVAL_MS} ms)",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.len()
    );
    println!(
        "  resume: {WATCHERS} watchers from {LIST_OBJECTS}+ revisions back, all replayed in {:.0} ms",
        resume.as_secs_f64() * 1000.0
    );
    println!(
        "  RSS idle / creates / 1k watchers {:>6.1} / {:.1} / {:.1} MiB",
        rss_idle as f64 / 1024.0,
        rss_load as f64 / 1024.0,
        rss_watch as f64 / 1024.0
    );
    wire_comparison(&clients, seconds).await;
    apply_latencies(&c0).await;
    drop(server);

    // The shared load generator's workload, each size on a fresh server as it measures.
    println!("  the shared load generator's workload (one HTTP/2 connection, fresh server each):");
    for (clients, n) in [(8, 2_000), (64, 20_000)] {
        let fresh = start_server(false);
        let creds = Credentials::from_kubeconfig(&fresh.kubeconfig).unwrap();
        ready_clients(&fresh).await;
        distinct_objects(&creds, "load", clients, n).await;
    }

    // Audit cost: two fresh servers, the hardened default and a policy recording nothing.
    let audited = start_server(false);
    let quiet = start_server(true);
    let on = ready_clients(&audited).await;
    let off = ready_clients(&quiet).await;
    compare(
        "audit cost (Metadata vs off)",
        (&on, audited.child.id()),
        (&off, quiet.child.id()),
        seconds,
    )
    .await;
    drop((audited, quiet));

    // Limits cost: the default limits against every limit raised out of the way.
    let limited = start_server(false);
    let unlimited = start_server_with(false, &["--dangerous-no-limits"]);
    let with = ready_clients(&limited).await;
    let without = ready_clients(&unlimited).await;
    compare(
        "limits cost (defaults vs --dangerous-no-limits)",
        (&with, limited.child.id()),
        (&without, unlimited.child.id()),
        seconds,
    )
    .await;
    drop((limited, unlimited));

    stalled_watchers().await;
    admission_burst(seconds).await;
}
