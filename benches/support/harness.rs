//! What the benches share: starting the real `bulwark server` on a fresh data directory,
//! connecting clients, counting operations per second, and reading a process's RSS and CPU.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bulwark_client::{ApiClient, Credentials};
use serde_json::json;

pub fn connections() -> usize {
    std::env::var("BULWARK_BENCH_CONNECTIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4)
}

pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time (user + system) the process has used, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

pub struct Server {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub kubeconfig: std::path::PathBuf,
    pub started: Instant,
}

impl Drop for Server {
    /// Stops the server (also when a phase panics), before its data directory goes.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_server(audit_off: bool) -> Server {
    start_server_with(audit_off, &[])
}

pub fn start_server_with(audit_off: bool, extra: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let none_policy = dir.path().join("audit-none.yaml");
    std::fs::write(
        &none_policy,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: None\n",
    )
    .unwrap();
    let started = Instant::now();
    let mut command = Command::new(env!("CARGO_BIN_EXE_bulwark"));
    command
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data);
    if audit_off {
        command.arg("--audit-policy").arg(&none_policy);
    }
    command.args(extra);
    let mut child = command
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("server start");
        if line.starts_with("Bulwark API server listening on ") {
            break;
        }
    }
    Server {
        child,
        kubeconfig: data.join("admin.kubeconfig"),
        dir,
        started,
    }
}

pub async fn connect_all(creds: &Credentials) -> Vec<ApiClient> {
    let mut clients = Vec::new();
    for _ in 0..connections() {
        clients.push(ApiClient::builder(creds).connect().await.unwrap());
    }
    clients
}

pub async fn throughput<F, Fut>(clients: &[ApiClient], workers: usize, seconds: u64, op: F) -> f64
where
    F: Fn(ApiClient, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (client, op, done, stop) = (
            clients[w % clients.len()].clone(),
            Arc::clone(&op),
            Arc::clone(&done),
            Arc::clone(&stop),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                op(client.clone(), (w as u64) << 32 | i).await;
                i += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let count = done.load(Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    count as f64 / elapsed
}

/// Connects to a freshly started server once it is ready, and creates `bench-w`.
pub async fn ready_clients(server: &Server) -> Vec<ApiClient> {
    let creds = Credentials::from_kubeconfig(&server.kubeconfig).unwrap();
    let clients = loop {
        if let Ok(c) = ApiClient::builder(&creds).connect().await
            && let Ok(r) = c.get("/readyz").await
            && r.status.as_u16() == 200
        {
            break connect_all(&creds).await;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let r = clients[0]
        .post_json(
            "/api/v1/namespaces",
            &json!({"metadata": {"name": "bench-w"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status.as_u16(), 201);
    clients
}

/// Creates `count` objects at `path`, `writers` at a time, the `i`-th with body `make(i)`.
pub async fn fill(
    writers: usize,
    clients: &[ApiClient],
    path: &'static str,
    count: usize,
    make: impl Fn(u64) -> serde_json::Value + Send + Sync + 'static,
) {
    let make = Arc::new(make);
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (c, next, make) = (
            clients[w % clients.len()].clone(),
            Arc::clone(&next),
            Arc::clone(&make),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count as u64 {
                    break;
                }
                let r = c.post_json(path, &make(i)).await.unwrap();
                assert_eq!(r.status.as_u16(), 201, "{}", r.json());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}
