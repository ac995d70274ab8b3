//! Encryption at rest's cost and speed, on the real binary over TLS, in one run:
//!
//! - Secret creates/s (1 KiB) and gets/s with Secrets stored in plaintext (an upstream
//!   `EncryptionConfiguration` with `identity` only), with Bulwark's default (envelope under
//!   the local keyring) and with a KMS v2 plugin (the test plugin over gRPC on a unix socket),
//!   in alternating rounds; the median cost of each against plaintext;
//! - KMS calls per 1,000 writes and per 1,000 reads (DEK seed caching);
//! - rotation rate, objects/s, for 10,000 Secrets under the local keyring and the KMS plugin.
//!
//! Run: `cargo bench --bench encryption` (BULWARK_BENCH_SECONDS sets each throughput phase,
//! default 3; BULWARK_BENCH_ROUNDS the alternating rounds, default 3).
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
use std::time::{Duration, Instant};

use base64::Engine as _;
use bulwark_client::{ApiClient, Credentials};
use bulwark_encryption::kms::test_plugin::TestPlugin;
use harness::{
    Server, connect_all, fill, percentile, ready_clients, start_server_with, throughput,
};
use serde_json::json;

const WRITERS: usize = 64;
const READERS: usize = 64;
const ROTATED: usize = 10_000;
const SECRETS: &str = "/api/v1/namespaces/bench-w/secrets";
const API: &str = "/apis/encryption.bulwark.dev/v1";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn value() -> String {
    base64::engine::general_purpose::STANDARD.encode(vec![b'v'; 1024])
}

async fn creates(clients: &[ApiClient], seconds: u64, tag: &str) -> f64 {
    let tag = tag.to_owned();
    let data = Arc::new(value());
    throughput(clients, WRITERS, seconds, move |c, i| {
        let body = json!({"metadata": {"name": format!("s-{tag}{i:x}")}, "data": {"k": *data}});
        async move {
            let r = c.post_json(SECRETS, &body).await.unwrap();
            assert_eq!(r.status.as_u16(), 201, "{}", r.json());
        }
    })
    .await
}

async fn gets(clients: &[ApiClient], seconds: u64) -> f64 {
    throughput(clients, READERS, seconds, |c, _| async move {
        let r = c.get(&format!("{SECRETS}/hot")).await.unwrap();
        assert_eq!(r.status.as_u16(), 200);
    })
    .await
}

async fn seed(clients: &[ApiClient]) {
    let r = clients[0]
        .post_json(
            SECRETS,
            &json!({"metadata": {"name": "hot"}, "data": {"k": value()}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status.as_u16(), 201);
}

/// Rotates and waits until every value is rewritten: (values rewritten, seconds).
async fn rotate(c: &ApiClient) -> (u64, f64) {
    let started = Instant::now();
    let r = c
        .post_json(
            &format!("{API}/keyrotations"),
            &json!({"kind": "KeyRotation"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status.as_u16(), 201, "{}", r.json());
    loop {
        let status = c
            .get(&format!("{API}/keyrotations/latest"))
            .await
            .unwrap()
            .json()["status"]
            .clone();
        match status["phase"].as_str().unwrap() {
            "Retiring" | "Complete" => {
                return (
                    status["rewritten"].as_u64().unwrap(),
                    started.elapsed().as_secs_f64(),
                );
            }
            "Failed" => panic!("rotation failed: {status}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

struct Setup {
    name: &'static str,
    /// Kept running until the setup is dropped.
    _server: Server,
    credentials: Credentials,
}

fn config(dir: &std::path::Path, name: &str, providers: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers:\n{providers}"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

#[tokio::main]
async fn main() {
    let seconds = env_or("BULWARK_BENCH_SECONDS", 3);
    let rounds = env_or("BULWARK_BENCH_ROUNDS", 3) as usize;
    let dir = tempfile::tempdir().unwrap();
    let plugin = TestPlugin::start(&dir.path().join("kms.sock"))
        .await
        .unwrap();
    let plain = config(dir.path(), "plain", "      - identity: {}\n");
    let kms = config(
        dir.path(),
        "kms",
        &format!(
            "      - kms:\n          apiVersion: v2\n          name: bench-kms\n          endpoint: {}\n",
            plugin.endpoint()
        ),
    );
    let mut setups = Vec::new();
    for (name, extra) in [
        (
            "plaintext",
            vec!["--encryption-provider-config", plain.to_str().unwrap()],
        ),
        ("local", vec![]),
        (
            "kms",
            vec!["--encryption-provider-config", kms.to_str().unwrap()],
        ),
    ] {
        let server = start_server_with(true, &extra);
        let clients = ready_clients(&server).await;
        seed(&clients).await;
        setups.push(Setup {
            name,
            credentials: Credentials::from_kubeconfig(&server.kubeconfig).unwrap(),
            _server: server,
        });
    }
    println!(
        "encryption at rest (1 KiB Secrets, {WRITERS} writers / {READERS} readers, audit off, {rounds} alternating rounds of {seconds} s)"
    );
    // figures[setup] = (creates per round, gets per round)
    let mut figures: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); setups.len()];
    let (mut kms_writes, mut kms_encrypts, mut kms_reads, mut kms_decrypts) =
        (0.0, 0u64, 0.0, 0u64);
    for round in 0..rounds {
        let mut order: Vec<usize> = (0..setups.len()).collect();
        order.rotate_left(round % setups.len());
        for i in order {
            let setup = &setups[i];
            // Fresh connections per phase: the others' phases outlast an idle connection's
            // first-request deadline.
            let clients = connect_all(&setup.credentials).await;
            let (enc_before, dec_before) = (plugin.calls("encrypt"), plugin.calls("decrypt"));
            let c = creates(&clients, seconds, &format!("{round}-")).await;
            let g = gets(&clients, seconds).await;
            if setup.name == "kms" {
                kms_writes += c * seconds as f64;
                kms_reads += g * seconds as f64;
                kms_encrypts += plugin.calls("encrypt") - enc_before;
                kms_decrypts += plugin.calls("decrypt") - dec_before;
            }
            figures[i].0.push(c);
            figures[i].1.push(g);
        }
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        percentile(&v, 0.5)
    };
    let (base_c, base_g) = (median(&figures[0].0), median(&figures[0].1));
    println!(
        "  {:<10} {:>10} {:>8} {:>10} {:>8}   rounds (creates/s; gets/s)",
        "secrets", "creates/s", "cost", "gets/s", "cost"
    );
    for (setup, (c, g)) in setups.iter().zip(&figures) {
        let (mc, mg) = (median(c), median(g));
        let fmt = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!(
            "  {:<10} {:>10.0} {:>+7.1}% {:>10.0} {:>+7.1}%   {}; {}",
            setup.name,
            mc,
            (base_c - mc) / base_c * 100.0,
            mg,
            (base_g - mg) / base_g * 100.0,
            fmt(c),
            fmt(g)
        );
    }
    println!(
        "  KMS calls: {:.2} Encrypt per 1,000 writes ({kms_encrypts} in {kms_writes:.0}), {:.2} Decrypt per 1,000 reads ({kms_decrypts} in {kms_reads:.0})",
        kms_encrypts as f64 * 1000.0 / kms_writes.max(1.0),
        kms_decrypts as f64 * 1000.0 / kms_reads.max(1.0),
    );
    drop(setups);
    // Rotation on fresh servers holding exactly ROTATED Secrets (and the seeded one).
    for (name, extra) in [
        ("local", vec![]),
        (
            "kms",
            vec!["--encryption-provider-config", kms.to_str().unwrap()],
        ),
    ] {
        let server = start_server_with(true, &extra);
        let clients = ready_clients(&server).await;
        let data = value();
        fill(
            WRITERS,
            &clients,
            SECRETS,
            ROTATED,
            move |i| json!({"metadata": {"name": format!("fill-{i}")}, "data": {"k": data}}),
        )
        .await;
        if name == "kms" {
            plugin.rotate();
        }
        let (rewritten, secs) = rotate(&clients[0]).await;
        println!(
            "  rotation ({name}): {rewritten} Secrets rewritten under a new key in {secs:.1} s, {:.0} objects/s",
            rewritten as f64 / secs
        );
    }
    plugin.stop();
}
