//! The posture scanner's speed, on the real binary over TLS, in one run:
//!
//! - a full scan of the live server holding 10,000 objects (ConfigMaps, Deployments,
//!   ServiceAccounts, Services): seconds per scan and the server's memory (RSS, peak);
//! - from an object change (a new namespace labelled privileged) to the updated finding
//!   (KSPM-ADM-01 failing for it), driven by the server's own watch: p50 and p99;
//! - an offline scan of a manifest corpus (tests/posture-corpus, copied into many files) by
//!   `bulwark posture scan` side by side with Checkov on the same files: files/s and the
//!   ratio, and for every control both tools have, which files each flagged.
//!
//! Run: `cargo bench --bench posture`. Checkov is found on PATH, in $CHECKOV, or in
//! /opt/checkov-venv (`python3 -m venv /opt/checkov-venv && /opt/checkov-venv/bin/pip
//! install checkov`); without it the side-by-side is skipped, saying so.
//! BULWARK_BENCH_OBJECTS sets the object count (default 10,000), BULWARK_BENCH_COPIES the
//! corpus copies (default 50).
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

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use harness::{fill, percentile, ready_clients, rss_kib, start_server_with};
use serde_json::{Value, json};

const API: &str = "/apis/posture.bulwark.dev/v1";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn peak_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn restricted_template(i: u64) -> Value {
    json!({
        "metadata": {"labels": {"app": format!("app-{i}")}},
        "spec": {
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "app",
                "image": "registry.example.com/app:1",
                "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}
            }]
        }
    })
}

async fn live(objects: usize) {
    let server = start_server_with(false, &["--posture-interval", "1h"]);
    let pid = server.child.id();
    let clients = ready_clients(&server).await;
    let rss_idle = rss_kib(pid);
    let share = objects / 10;
    let started = Instant::now();
    fill(32, &clients, "/api/v1/namespaces/bench-w/configmaps", share * 4, |i| {
        json!({"metadata": {"name": format!("cm-{i}")}, "data": {"LOG_LEVEL": "info", "payload": "x".repeat(200)}})
    })
    .await;
    fill(32, &clients, "/apis/apps/v1/namespaces/bench-w/deployments", share * 3, |i| {
        json!({"metadata": {"name": format!("d-{i}")}, "spec": {"selector": {"matchLabels": {"app": format!("app-{i}")}}, "template": restricted_template(i)}})
    })
    .await;
    fill(
        32,
        &clients,
        "/api/v1/namespaces/bench-w/serviceaccounts",
        share * 2,
        |i| json!({"metadata": {"name": format!("sa-{i}")}, "automountServiceAccountToken": false}),
    )
    .await;
    fill(32, &clients, "/api/v1/namespaces/bench-w/services", share, |i| {
        json!({"metadata": {"name": format!("svc-{i}")}, "spec": {"ports": [{"port": 80}], "selector": {"app": format!("app-{i}")}}})
    })
    .await;
    println!(
        "filled {objects} objects in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let rss_filled = rss_kib(pid);
    let c = &clients[0];
    let mut times = Vec::new();
    let mut findings = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let r = c.post_json(&format!("{API}/posturescans"), &json!({"apiVersion": "posture.bulwark.dev/v1", "kind": "PostureScan", "metadata": {"name": "now"}})).await.unwrap();
        assert_eq!(r.status.as_u16(), 201, "{}", r.json());
        times.push(t.elapsed().as_secs_f64());
        let f = c
            .get(&format!("{API}/posturefindings?framework=all"))
            .await
            .unwrap();
        findings = f.json()["items"].as_array().map_or(0, Vec::len);
    }
    times.sort_by(f64::total_cmp);
    println!("\n## Full scan, live server, {objects} objects ({findings} findings)\n");
    println!("| scans | min | median | max |");
    println!("|---:|---:|---:|---:|");
    println!(
        "| {} | {:.3} s | {:.3} s | {:.3} s |",
        times.len(),
        times[0],
        times[times.len() / 2],
        times[times.len() - 1]
    );
    println!(
        "\nserver RSS: idle {:.1} MiB, filled {:.1} MiB, after scans {:.1} MiB, peak {:.1} MiB",
        rss_idle as f64 / 1024.0,
        rss_filled as f64 / 1024.0,
        rss_kib(pid) as f64 / 1024.0,
        peak_kib(pid) as f64 / 1024.0
    );

    // Change → finding, through the server's watch (no scan is requested).
    let mut latencies = Vec::new();
    for i in 0..20 {
        let name = format!("lax-{i}");
        let t = Instant::now();
        let r = c.post_json("/api/v1/namespaces", &json!({"metadata": {"name": name, "labels": {"pod-security.kubernetes.io/enforce": "privileged"}}})).await.unwrap();
        assert_eq!(r.status.as_u16(), 201);
        loop {
            let f = c
                .get(&format!(
                    "{API}/posturefindings?control=KSPM-ADM-01&state=fail"
                ))
                .await
                .unwrap();
            let seen = f.json()["items"].as_array().is_some_and(|items| {
                items.iter().any(|x| {
                    x.pointer("/source/object/name").and_then(Value::as_str) == Some(name.as_str())
                })
            });
            if seen {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "no finding for {name}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "\n## Object change to updated finding ({objects} objects stored, watch-driven, 200 ms debounce)\n"
    );
    println!("| changes | p50 | p99 | max |");
    println!("|---:|---:|---:|---:|");
    println!(
        "| {} | {:.0} ms | {:.0} ms | {:.0} ms |",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1]
    );
}

/// Checkov's checks that are the same control as one of ours.
const SHARED: &[(&str, &str)] = &[
    ("CKV_K8S_16", "KSPM-WL-01"),
    ("CKV_K8S_17", "KSPM-WL-02"),
    ("CKV_K8S_18", "KSPM-WL-02"),
    ("CKV_K8S_19", "KSPM-WL-02"),
    ("CKV_K8S_27", "KSPM-WL-03"),
    ("CKV_K8S_26", "KSPM-WL-04"),
    ("CKV_K8S_28", "KSPM-WL-05"),
    ("CKV_K8S_39", "KSPM-WL-05"),
    ("CKV_K8S_20", "KSPM-WL-06"),
    ("CKV_K8S_23", "KSPM-WL-07"),
    ("CKV_K8S_31", "KSPM-WL-08"),
    ("CKV_K8S_22", "KSPM-WL-11"),
    ("CKV_K8S_10", "KSPM-WL-12"),
    ("CKV_K8S_11", "KSPM-WL-12"),
    ("CKV_K8S_12", "KSPM-WL-12"),
    ("CKV_K8S_13", "KSPM-WL-12"),
    ("CKV_K8S_35", "KSPM-WL-13"),
    ("CKV_K8S_38", "KSPM-AUTH-10"),
    ("CKV_K8S_49", "KSPM-AUTH-04"),
];

fn checkov() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("CHECKOV") {
        return Some(PathBuf::from(path));
    }
    let venv = PathBuf::from("/opt/checkov-venv/bin/checkov");
    if venv.exists() {
        return Some(venv);
    }
    Command::new("checkov")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| PathBuf::from("checkov"))
}

fn corpus(copies: usize) -> (tempfile::TempDir, usize) {
    // Not a hidden directory (tempfile's default `.tmp…`): Checkov skips those.
    let dir = tempfile::Builder::new()
        .prefix("posture-corpus-")
        .tempdir()
        .unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/posture-corpus");
    let mut n = 0;
    for part in ["insecure", "hardened"] {
        for entry in std::fs::read_dir(src.join(part)).unwrap() {
            let path = entry.unwrap().path();
            let Some(ext) = path.extension().and_then(|e| e.to_str()).map(str::to_owned) else {
                continue;
            };
            if ext != "yaml" && ext != "json" {
                continue;
            }
            let stem = path.file_stem().unwrap().to_string_lossy().to_string();
            for c in 0..copies {
                std::fs::copy(&path, dir.path().join(format!("{part}-{stem}-{c}.{ext}"))).unwrap();
                n += 1;
            }
        }
    }
    (dir, n)
}

/// Per file (name only), the shared controls each tool flagged.
type Flags = BTreeMap<String, BTreeSet<String>>;

fn bulwark_flags(dir: &Path) -> (f64, Flags) {
    let mut best = f64::MAX;
    let mut text = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_bulwark"))
            .args([
                "posture",
                "scan",
                "--format",
                "json",
                "--fail-on",
                "none",
                "-f",
            ])
            .arg(dir)
            .output()
            .unwrap();
        best = best.min(t.elapsed().as_secs_f64());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text = out.stdout;
    }
    let report: Value = serde_json::from_slice(&text).unwrap();
    let shared: BTreeSet<&str> = SHARED.iter().map(|(_, ours)| *ours).collect();
    let mut flags = Flags::new();
    for c in report["controls"].as_array().unwrap() {
        let id = c["id"].as_str().unwrap();
        if !shared.contains(id) {
            continue;
        }
        for f in c["findings"].as_array().unwrap() {
            if f["state"] != "fail" {
                continue;
            }
            let file = f
                .pointer("/source/object/file")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let name = Path::new(file.split('#').next().unwrap_or_default())
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            flags.entry(name).or_default().insert(id.to_owned());
        }
    }
    (best, flags)
}

fn checkov_flags(checkov: &Path, dir: &Path) -> (f64, Flags) {
    let t = Instant::now();
    let out = Command::new(checkov)
        .args([
            "--framework",
            "kubernetes",
            "-o",
            "json",
            "--quiet",
            "--compact",
            "-d",
        ])
        .arg(dir)
        .output()
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let reports: Vec<Value> = match doc {
        Value::Array(a) => a,
        other => vec![other],
    };
    let mut flags = Flags::new();
    for r in &reports {
        for f in r
            .pointer("/results/failed_checks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let id = f["check_id"].as_str().unwrap_or_default();
            let Some((_, ours)) = SHARED.iter().find(|(c, _)| *c == id) else {
                continue;
            };
            let file = f["file_path"].as_str().unwrap_or_default();
            let name = Path::new(file)
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            flags.entry(name).or_default().insert((*ours).to_owned());
        }
    }
    (secs, flags)
}

fn offline(copies: usize) {
    let (dir, files) = corpus(copies);
    let (bulwark_secs, ours) = bulwark_flags(dir.path());
    println!("\n## Offline manifest scan: {files} files (tests/posture-corpus × {copies})\n");
    let Some(checkov) = checkov() else {
        println!(
            "| tool | seconds | files/s |\n|---|---:|---:|\n| bulwark posture scan | {bulwark_secs:.3} | {:.0} |",
            files as f64 / bulwark_secs
        );
        println!("\nCheckov not found (PATH, $CHECKOV, /opt/checkov-venv): side-by-side skipped.");
        return;
    };
    let version = Command::new(&checkov)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let (checkov_secs, theirs) = checkov_flags(&checkov, dir.path());
    println!("| tool | seconds | files/s |");
    println!("|---|---:|---:|");
    println!(
        "| bulwark posture scan (best of 3) | {bulwark_secs:.3} | {:.0} |",
        files as f64 / bulwark_secs
    );
    println!(
        "| checkov {version} | {checkov_secs:.2} | {:.1} |",
        files as f64 / checkov_secs
    );
    println!(
        "\nratio: Bulwark {:.0}× Checkov's files/s",
        checkov_secs / bulwark_secs
    );
    // Per shared control: files flagged by both, by Checkov only, by Bulwark only.
    println!("\n| control (Checkov checks) | both | Checkov only | Bulwark only |");
    println!("|---|---:|---:|---:|");
    let controls: BTreeSet<&str> = SHARED.iter().map(|(_, o)| *o).collect();
    let mut missed = Vec::new();
    for control in controls {
        let checks: Vec<&str> = SHARED
            .iter()
            .filter(|(_, o)| *o == control)
            .map(|(c, _)| *c)
            .collect();
        let files_of = |f: &Flags| -> BTreeSet<String> {
            f.iter()
                .filter(|(_, c)| c.contains(control))
                .map(|(n, _)| n.clone())
                .collect()
        };
        let (a, b) = (files_of(&ours), files_of(&theirs));
        let only_checkov: Vec<&String> = b.difference(&a).collect();
        if !only_checkov.is_empty() {
            missed.push(format!(
                "{control}: {}",
                only_checkov
                    .iter()
                    .take(3)
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        println!(
            "| {control} ({}) | {} | {} | {} |",
            checks.join(", "),
            a.intersection(&b).count(),
            only_checkov.len(),
            a.difference(&b).count()
        );
    }
    if missed.is_empty() {
        println!("\nNo file that Checkov flags for a shared control goes unflagged by Bulwark.");
    } else {
        println!(
            "\nFlagged by Checkov, not by Bulwark: {}",
            missed.join("; ")
        );
    }
    println!(
        "\nKnown differences by design: CKV_K8S_31 accepts only RuntimeDefault where KSPM-WL-08 also \
         accepts a Localhost profile (as the Pod Security Standards' restricted level does); \
         KSPM-WL-03 flags every hostPath and non-restricted volume, CKV_K8S_27 only the Docker \
         socket; KSPM-WL-13 also flags credential-looking literal env values and ConfigMap keys."
    );
}

#[tokio::main]
async fn main() {
    let objects = env_usize("BULWARK_BENCH_OBJECTS", 10_000);
    let copies = env_usize("BULWARK_BENCH_COPIES", 50);
    offline(copies);
    live(objects).await;
}
