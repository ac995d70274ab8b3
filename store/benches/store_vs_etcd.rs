//! Storage benchmark: the embedded Bulwark store against etcd 3.4 (Debian `etcd-server`),
//! side by side in one run, same workloads, both durable (fsync per commit; etcd's default).
//! Prints one table with the ratio per row.
//!
//! `cargo bench -p bulwark-store --bench store_vs_etcd` (set `BENCH_SECONDS` to change the
//! duration of each throughput row; default 3).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a benchmark binary: failing loudly is the right behaviour"
)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bulwark_store::{EmbeddedEngine, ListOptions, Revision, Store, StoreOptions};
use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp, WatchOptions};
use tokio::sync::Mutex;

const VALUE_LEN: usize = 1024;
const LIST_OBJECTS: usize = 10_000;
const WATCHERS: usize = 1_000;
const WATCH_EVENTS: usize = 100;

fn value(tag: &str) -> Vec<u8> {
    let mut v = tag.as_bytes().to_vec();
    v.resize(VALUE_LEN, b'.');
    v
}

/// What both systems must do.
trait Target: Clone + Send + Sync + 'static {
    fn create(&self, key: String) -> impl Future<Output = u64> + Send;
    /// Compare-and-swap; `None` on conflict.
    fn cas(&self, key: String, expected: u64) -> impl Future<Output = Option<u64>> + Send;
    fn get(&self, key: String) -> impl Future<Output = ()> + Send;
    fn list(&self, prefix: &'static str) -> impl Future<Output = usize> + Send;
}

#[derive(Clone)]
struct Bulwark(Store<EmbeddedEngine>);

impl Target for Bulwark {
    async fn create(&self, key: String) -> u64 {
        self.0
            .create(&key, value(&key))
            .await
            .unwrap()
            .mod_revision
            .get()
    }
    async fn cas(&self, key: String, expected: u64) -> Option<u64> {
        match self
            .0
            .update(&key, value(&key), Some(Revision(expected)))
            .await
        {
            Ok(kv) => Some(kv.mod_revision.get()),
            Err(bulwark_store::StoreError::Conflict { .. }) => None,
            Err(e) => panic!("{e}"),
        }
    }
    async fn get(&self, key: String) {
        assert!(self.0.get(&key).await.unwrap().is_some());
    }
    async fn list(&self, prefix: &'static str) -> usize {
        self.0
            .list(prefix, ListOptions::default())
            .await
            .unwrap()
            .items
            .len()
    }
}

#[derive(Clone)]
struct Etcd(Client);

impl Target for Etcd {
    async fn create(&self, key: String) -> u64 {
        // A create is a transaction "if the key does not exist, put" (as the Kubernetes
        // apiserver does it).
        let txn = Txn::new()
            .when([Compare::mod_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.clone(), value(&key), None)]);
        let resp = self.0.kv_client().txn(txn).await.unwrap();
        assert!(resp.succeeded());
        resp.header().unwrap().revision() as u64
    }
    async fn cas(&self, key: String, expected: u64) -> Option<u64> {
        let txn = Txn::new()
            .when([Compare::mod_revision(
                key.clone(),
                CompareOp::Equal,
                expected as i64,
            )])
            .and_then([TxnOp::put(key.clone(), value(&key), None)]);
        let resp = self.0.kv_client().txn(txn).await.unwrap();
        resp.succeeded()
            .then(|| resp.header().unwrap().revision() as u64)
    }
    async fn get(&self, key: String) {
        let resp = self.0.kv_client().get(key, None).await.unwrap();
        assert_eq!(resp.kvs().len(), 1);
    }
    async fn list(&self, prefix: &'static str) -> usize {
        // The 10 MB response exceeds tonic's default 4 MiB decode limit.
        let mut kv = self.0.kv_client().max_decoding_message_size(64 << 20);
        let resp = kv
            .get(prefix, Some(GetOptions::new().with_prefix()))
            .await
            .unwrap();
        resp.kvs().len()
    }
}

fn seconds() -> Duration {
    Duration::from_secs(
        std::env::var("BENCH_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3),
    )
}

/// Operations per second of `writers` concurrent loops of `op` for the configured duration.
async fn throughput<T: Target, F, Fut>(t: &T, writers: usize, op: F) -> f64
where
    F: Fn(T, usize, u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = ()> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let start = Instant::now();
    for w in 0..writers {
        let (t, op, stop, count) = (t.clone(), op.clone(), stop.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                op(t.clone(), w, n).await;
                n += 1;
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(seconds()).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Row {
    name: String,
    unit: &'static str,
    bulwark: f64,
    etcd: f64,
    higher_is_better: bool,
}

async fn run_target<T: Target>(
    name: &str,
    t: T,
    rows: &mut Vec<(String, &'static str, f64, bool)>,
    prefix: &str,
) {
    eprintln!("== {name}");
    for writers in [1, 8, 64] {
        let p = prefix.to_string();
        let r = throughput(&t, writers, move |t: T, w, n| {
            let key = format!("{p}create/{writers}/{w}/{n}");
            async move {
                t.create(key).await;
            }
        })
        .await;
        eprintln!("creates/s {writers} writers: {r:.0}");
        rows.push((format!("creates/s, {writers} writers"), "ops/s", r, true));
    }
    for writers in [1, 8, 64] {
        // Each writer owns one key and updates it with compare-and-swap.
        let mut revs = Vec::new();
        for w in 0..writers {
            revs.push(t.create(format!("{prefix}cas/{writers}/{w}")).await);
        }
        let revs: Arc<Vec<Mutex<u64>>> = Arc::new(revs.into_iter().map(Mutex::new).collect());
        let p = prefix.to_string();
        let r = throughput(&t, writers, move |t: T, w, _| {
            let revs = revs.clone();
            let key = format!("{p}cas/{writers}/{w}");
            async move {
                let mut at = revs[w].lock().await;
                *at = t.cas(key, *at).await.expect("uncontended CAS must succeed");
            }
        })
        .await;
        eprintln!("CAS updates/s {writers} writers: {r:.0}");
        rows.push((
            format!("CAS updates/s, {writers} writers"),
            "ops/s",
            r,
            true,
        ));
    }
    // 10,000 objects for gets and lists, written by 64 writers.
    let mut tasks = Vec::new();
    for w in 0..64 {
        let t = t.clone();
        let p = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            for i in (w..LIST_OBJECTS).step_by(64) {
                t.create(format!("{p}list/{i:05}")).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let p = prefix.to_string();
    let r = throughput(&t, 16, move |t: T, w, n| {
        let key = format!(
            "{p}list/{:05}",
            (w * 7919 + n as usize * 104_729) % LIST_OBJECTS
        );
        async move { t.get(key).await }
    })
    .await;
    eprintln!("gets/s: {r:.0}");
    rows.push(("gets/s, 16 readers".into(), "ops/s", r, true));
    let list_prefix: &'static str = Box::leak(format!("{prefix}list/").into_boxed_str());
    let mut times = Vec::new();
    for _ in 0..15 {
        let start = Instant::now();
        assert_eq!(t.list(list_prefix).await, LIST_OBJECTS);
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    eprintln!("list 10k p50: {:.1} ms", percentile(&times, 0.5));
    rows.push((
        "list 10,000 objects, p50".into(),
        "ms",
        percentile(&times, 0.5),
        false,
    ));
}

/// Delivery latency of `WATCH_EVENTS` paced writes to `WATCHERS` watchers: from just before
/// the write is issued to the event's arrival at each watcher.
async fn watch_fanout<W, Fut>(spawn_watcher: W, write: impl Fn(usize) -> Fut) -> (f64, f64)
where
    W: Fn(
        Arc<Vec<std::sync::Mutex<Option<Instant>>>>,
        Arc<std::sync::Mutex<Vec<f64>>>,
    ) -> tokio::task::JoinHandle<()>,
    Fut: Future<Output = ()>,
{
    let sent: Arc<Vec<std::sync::Mutex<Option<Instant>>>> = Arc::new(
        (0..WATCH_EVENTS)
            .map(|_| std::sync::Mutex::new(None))
            .collect(),
    );
    let samples = Arc::new(std::sync::Mutex::new(Vec::with_capacity(
        WATCHERS * WATCH_EVENTS,
    )));
    let mut tasks = Vec::new();
    for _ in 0..WATCHERS {
        tasks.push(spawn_watcher(sent.clone(), samples.clone()));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..WATCH_EVENTS {
        *sent[i].lock().unwrap() = Some(Instant::now());
        write(i).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("watchers stalled")
            .unwrap();
    }
    let mut s = samples.lock().unwrap().clone();
    assert_eq!(
        s.len(),
        WATCHERS * WATCH_EVENTS,
        "every watcher sees every event"
    );
    s.sort_by(f64::total_cmp);
    (percentile(&s, 0.5), percentile(&s, 0.99))
}

fn record(
    sent: &[std::sync::Mutex<Option<Instant>>],
    samples: &std::sync::Mutex<Vec<f64>>,
    value: &[u8],
) {
    let idx: usize = std::str::from_utf8(value)
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .trim_start_matches("ev")
        .parse()
        .unwrap();
    let at = sent[idx].lock().unwrap().expect("event before its write");
    samples
        .lock()
        .unwrap()
        .push(at.elapsed().as_secs_f64() * 1000.0);
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct EtcdServer(Child);

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_etcd(dir: &std::path::Path) -> (EtcdServer, Client) {
    let (client, peer) = (free_port(), free_port());
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let child = Command::new("etcd")
        .args([
            "--name",
            "bench",
            "--data-dir",
            dir.to_str().unwrap(),
            "--listen-client-urls",
            &client_url,
            "--advertise-client-urls",
            &client_url,
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
            "--initial-cluster",
            &format!("bench={peer_url}"),
            "--quota-backend-bytes",
            "8589934592",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcd not found: install Debian's etcd-server (scripts/deps does)");
    let server = EtcdServer(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut c) = Client::connect([client_url.as_str()], None).await
            && c.status().await.is_ok()
        {
            return (server, c);
        }
        assert!(Instant::now() < deadline, "etcd did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn etcd_version() -> String {
    Command::new("etcd")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(|l| l.replace("etcd Version: ", "")))
        .unwrap_or_else(|| "?".into())
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        EmbeddedEngine::open(dir.path().join("bench.redb")).unwrap(),
        StoreOptions::default(),
    )
    .await
    .unwrap();
    let (_etcd, client) = start_etcd(&dir.path().join("etcd")).await;

    let mut bulwark_rows = Vec::new();
    let mut etcd_rows = Vec::new();
    run_target(
        "bulwark embedded",
        Bulwark(store.clone()),
        &mut bulwark_rows,
        "/b/",
    )
    .await;
    run_target("etcd", Etcd(client.clone()), &mut etcd_rows, "/e/").await;

    eprintln!("== watch fan-out");
    let s = store.clone();
    let (b50, b99) = watch_fanout(
        |sent, samples| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut w = s
                    .watch("/b/watch/", s.current_revision().await.unwrap())
                    .await
                    .unwrap();
                for _ in 0..WATCH_EVENTS {
                    let e = w.next().await.unwrap();
                    record(&sent, &samples, &e.kv.value);
                }
            })
        },
        |i| {
            let s = store.clone();
            async move {
                s.create(&format!("/b/watch/{i}"), value(&format!("ev{i}")))
                    .await
                    .unwrap();
            }
        },
    )
    .await;
    let (e50, e99) = watch_fanout(
        |sent, samples| {
            let c = client.clone();
            tokio::spawn(async move {
                let mut stream = c
                    .watch_client()
                    .watch("/e/watch/", Some(WatchOptions::new().with_prefix()))
                    .await
                    .unwrap();
                let mut seen = 0;
                while seen < WATCH_EVENTS {
                    let msg = stream.message().await.unwrap().expect("watch ended");
                    for e in msg.events() {
                        record(&sent, &samples, e.kv().unwrap().value());
                        seen += 1;
                    }
                }
            })
        },
        |i| {
            let c = Etcd(client.clone());
            async move {
                let mut kv = c.0.kv_client();
                kv.put(format!("/e/watch/{i}"), value(&format!("ev{i}")), None)
                    .await
                    .unwrap();
            }
        },
    )
    .await;

    let mut rows: Vec<Row> = bulwark_rows
        .into_iter()
        .zip(etcd_rows)
        .map(|((name, unit, b, hib), (_, _, e, _))| Row {
            name,
            unit,
            bulwark: b,
            etcd: e,
            higher_is_better: hib,
        })
        .collect();
    rows.push(Row {
        name: format!("watch delivery p50, {WATCHERS} watchers"),
        unit: "ms",
        bulwark: b50,
        etcd: e50,
        higher_is_better: false,
    });
    rows.push(Row {
        name: format!("watch delivery p99, {WATCHERS} watchers"),
        unit: "ms",
        bulwark: b99,
        etcd: e99,
        higher_is_better: false,
    });

    println!();
    println!(
        "Storage benchmark: bulwark embedded (redb, group commit) vs etcd {} — 1 KiB values, durable on both sides, {} s per throughput row",
        etcd_version(),
        seconds().as_secs()
    );
    println!();
    println!("| workload | unit | bulwark | etcd | bulwark advantage |");
    println!("|---|---|---:|---:|---:|");
    for r in &rows {
        let advantage = if r.higher_is_better {
            r.bulwark / r.etcd
        } else {
            r.etcd / r.bulwark
        };
        let fmt = |v: f64| {
            if r.unit == "ms" {
                format!("{v:.2}")
            } else {
                format!("{v:.0}")
            }
        };
        println!(
            "| {} | {} | {} | {} | {:.2}x |",
            r.name,
            r.unit,
            fmt(r.bulwark),
            fmt(r.etcd),
            advantage
        );
    }
    println!();
    println!(
        "(advantage = bulwark/etcd for throughput, etcd/bulwark for latency; >1 means bulwark is better)"
    );
}
