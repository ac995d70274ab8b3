//! Query latency over 1,000,000 audit events (the figure), next to the peer an
//! auditor would otherwise use: reading the whole log and filtering every event (what `jq`
//! over the JSON lines does), in the same run.
//!
//! The log is written through the real writer (chained, checkpointed, fsynced, rotated into
//! 64 MiB segments). Events look like the API server's: 1,000 users, 50 namespaces, 12
//! resources, 8 verbs, 5% refused, spread over 30 days.
//!
//! `cargo bench -p bulwark-audit --bench query` (`BULWARK_BENCH_EVENTS` to change the count).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::print_stdout,
    reason = "benchmark"
)]

use std::time::{Duration, Instant};

use bulwark_audit::chain::SigningKey;
use bulwark_audit::event::{Event, Level, ObjectRef, ResponseStatus, Stage, UserInfo};
use bulwark_audit::index::{Decision, Row, index_path, parse_time};
use bulwark_audit::query::{AuditReader, Query};
use bulwark_audit::writer::segments;
use bulwark_audit::{AuditLog, AuditOptions, AuditSink};

const RESOURCES: [&str; 12] = [
    "pods",
    "configmaps",
    "secrets",
    "deployments",
    "services",
    "leases",
    "events",
    "nodes",
    "replicasets",
    "serviceaccounts",
    "cedarpolicies",
    "rolebindings",
];
const VERBS: [&str; 8] = [
    "get", "get", "list", "watch", "update", "patch", "create", "delete",
];
const START: i64 = 1_800_000_000;
const SPAN_SECONDS: i64 = 30 * 86_400;

fn event(i: usize, n: usize) -> Event {
    // A cheap deterministic scramble, so neighbours differ.
    let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16;
    let user = format!("user-{}", h % 1000);
    let verb = VERBS[(h >> 10) as usize % VERBS.len()];
    let resource = RESOURCES[(h >> 14) as usize % RESOURCES.len()];
    let namespace = format!("ns-{}", (h >> 20) % 50);
    let denied = (h >> 30).is_multiple_of(20);
    let mut e = Event::new(
        format!("{:08x}-1f2e-4d3c-8b7a-{:012x}", h as u32, i),
        Stage::ResponseComplete,
        Level::Metadata,
        verb,
        format!("/api/v1/namespaces/{namespace}/{resource}/obj-{}", h % 997),
        UserInfo {
            username: user,
            groups: vec!["system:authenticated".into(), "dev".into()],
        },
    );
    e.source_ips = vec!["10.0.3.17".into()];
    e.user_agent = "kubectl/v1.32.0 (linux/amd64) kubernetes/abcdef0".into();
    e.object_ref = Some(ObjectRef {
        resource: resource.into(),
        namespace: Some(namespace),
        name: Some(format!("obj-{}", h % 997)),
        api_group: String::new(),
        api_version: "v1".into(),
        subresource: None,
    });
    e.response_status = Some(ResponseStatus {
        code: if denied { 403 } else { 200 },
        ..ResponseStatus::default()
    });
    e.annotations.insert(
        "authorization.k8s.io/decision".into(),
        if denied { "forbid" } else { "allow" }.into(),
    );
    e.annotations.insert(
        "authorization.k8s.io/reason".into(),
        if denied {
            "no policy permits it".into()
        } else {
            "permitted by grants.team-dev".into()
        },
    );
    e.annotations.insert(
        "authorization.bulwark.dev/policies".into(),
        if denied { "" } else { "grants.team-dev" }.into(),
    );
    let t = START + SPAN_SECONDS * i as i64 / n as i64;
    let time = time::OffsetDateTime::from_unix_timestamp(t).unwrap();
    e.stage_timestamp = time
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    e.request_received_timestamp = e.stage_timestamp.clone();
    e
}

fn rfc3339(t: i64) -> i64 {
    let time = time::OffsetDateTime::from_unix_timestamp(t).unwrap();
    parse_time(
        &time
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap(),
    )
    .unwrap()
}

/// The peer: read every line, parse it, filter (one user's refused requests).
fn full_scan(dir: &std::path::Path, user: &str) -> (usize, u64) {
    let mut hits = 0;
    let mut bytes = 0;
    for segment in segments(dir).unwrap() {
        let text = std::fs::read(&segment).unwrap();
        bytes += text.len() as u64;
        for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let v: serde_json::Value = serde_json::from_slice(line).unwrap();
            let e = &v["event"];
            if e["user"]["username"] == user
                && e["annotations"]["authorization.k8s.io/decision"] == "forbid"
            {
                hits += 1;
            }
        }
    }
    (hits, bytes)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let n: usize = std::env::var("BULWARK_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let rt = tokio::runtime::Runtime::new().unwrap();

    let log = rt.block_on(async {
        let key = SigningKey::load_or_create(&tmp.path().join("audit.key")).unwrap();
        AuditLog::open(AuditOptions::new(dir.clone()), key).unwrap()
    });
    let started = Instant::now();
    rt.block_on(async {
        for i in 0..n {
            log.record(event(i, n)).await;
        }
        log.flush().await;
    });
    let wrote = started.elapsed();
    let log_bytes: u64 = segments(&dir)
        .unwrap()
        .iter()
        .map(|s| std::fs::metadata(s).unwrap().len())
        .sum();
    let idx_bytes: u64 = segments(&dir)
        .unwrap()
        .iter()
        .filter_map(|s| std::fs::metadata(index_path(s)).ok())
        .map(|m| m.len())
        .sum();
    println!(
        "{n} events written through the audit writer in {:.1} s ({:.0}/s): {:.0} MB of log in {} segments, {:.1} MB of saved index",
        wrote.as_secs_f64(),
        n as f64 / wrote.as_secs_f64(),
        log_bytes as f64 / 1e6,
        segments(&dir).unwrap().len(),
        idx_bytes as f64 / 1e6,
    );
    println!(
        "index rows in memory: {} bytes each, {:.0} MB for {n} events",
        std::mem::size_of::<Row>(),
        (std::mem::size_of::<Row>() * n) as f64 / 1e6
    );

    let base = Query {
        limit: 500,
        ..Query::default()
    };
    let queries: Vec<(&str, Query)> = vec![
        (
            "one user's refused requests",
            Query {
                user: Some("user-17".into()),
                decision: Some(Decision::Deny),
                ..base.clone()
            },
        ),
        (
            "one user, all requests",
            Query {
                user: Some("user-17".into()),
                ..base.clone()
            },
        ),
        (
            "deletes of secrets in a namespace",
            Query {
                verb: Some("delete".into()),
                resource: Some("secrets".into()),
                namespace: Some("ns-3".into()),
                ..base.clone()
            },
        ),
        (
            "all refusals, first 500 + count",
            Query {
                decision: Some(Decision::Deny),
                ..base.clone()
            },
        ),
        (
            "last 24 hours, first 500 + count",
            Query {
                since: Some(rfc3339(START + SPAN_SECONDS - 86_400)),
                ..base.clone()
            },
        ),
        ("everything, first 500 + count", base.clone()),
        (
            "no such user",
            Query {
                user: Some("mallory".into()),
                ..base.clone()
            },
        ),
    ];

    let live = log.reader();
    println!();
    println!("query over {n} events (live server reader, indexes warm), 20 runs each");
    println!(
        "{:<36} {:>9} {:>10} {:>9} {:>9}",
        "query", "returned", "matching", "p50 ms", "p99 ms"
    );
    for (name, q) in &queries {
        live.query(q).unwrap(); // warm
        let mut times = Vec::new();
        let mut page = None;
        for _ in 0..20 {
            let t = Instant::now();
            page = Some(live.query(q).unwrap());
            times.push(t.elapsed());
        }
        times.sort();
        let page = page.unwrap();
        println!(
            "{name:<36} {:>9} {:>10} {:>9.2} {:>9.2}",
            page.events.len(),
            page.events.len() as u64 + page.remaining,
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99)),
        );
    }

    // A restarted server or an auditor's copy: indexes read from disk, then rebuilt from
    // the log when there are none.
    drop(live);
    drop(log);
    std::thread::sleep(Duration::from_millis(500));
    let (name, q) = &queries[0];
    let t = Instant::now();
    AuditReader::offline(dir.clone()).query(q).unwrap();
    let from_disk = t.elapsed();
    for segment in segments(&dir).unwrap() {
        let _ = std::fs::remove_file(index_path(&segment));
    }
    let t = Instant::now();
    let page = AuditReader::offline(dir.clone()).query(q).unwrap();
    let rebuilt = t.elapsed();
    let t = Instant::now();
    let (scan_hits, scan_bytes) = full_scan(&dir, "user-17");
    let scan = t.elapsed();
    assert_eq!(scan_hits, page.events.len() + page.remaining as usize);
    println!();
    println!("\"{name}\" with cold caches, side by side with reading the whole log:");
    println!(
        "  fresh reader, saved indexes          {:>9.0} ms",
        ms(from_disk)
    );
    println!(
        "  fresh reader, no indexes (rebuilt)   {:>9.0} ms",
        ms(rebuilt)
    );
    println!(
        "  peer: parse and filter every line    {:>9.0} ms ({:.0} MB/s)",
        ms(scan),
        scan_bytes as f64 / 1e6 / scan.as_secs_f64()
    );
}
