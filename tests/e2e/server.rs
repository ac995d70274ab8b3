//! Starts the real `bulwark server` binary on a free port with a fresh data directory, and
//! runs real kubectl against it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct TestServer {
    child: Child,
    pub dir: tempfile::TempDir,
    pub url: String,
    pub kubeconfig: PathBuf,
    extra: Vec<String>,
    /// On FoundationDB: the cluster file and the server's subspace name (`--fdb-prefix`).
    fdb: Option<(String, String)>,
}

impl TestServer {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts with extra `bulwark server` flags. Where `BULWARK_E2E_STORE` names
    /// `fdb:CLUSTER_FILE` (and `extra` chooses no engine), the server keeps its state on that
    /// FoundationDB, in a subspace of its own.
    pub fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut extra: Vec<String> = extra.iter().map(|a| (*a).to_owned()).collect();
        let mut fdb = None;
        if !extra.iter().any(|a| a == "--store")
            && let Some(cluster_file) = fdb_from_env()
        {
            let name = fdb_subspace_name();
            extra.extend(fdb_store_args(&cluster_file, &name));
            fdb = Some((cluster_file, name));
        }
        Self::launch(dir, extra, fdb)
    }

    /// Starts the server in `dir` with `extra` flags, on the store `fdb` names (if any).
    fn launch(dir: tempfile::TempDir, extra: Vec<String>, fdb: Option<(String, String)>) -> Self {
        let (child, url) = spawn(dir.path(), &extra);
        let kubeconfig = dir.path().join("data").join("admin.kubeconfig");
        Self {
            child,
            dir,
            url,
            kubeconfig,
            extra,
            fdb,
        }
    }

    /// Another API server of `other`'s cluster (on FoundationDB): a data directory of its own
    /// holding copies of `other`'s PKI and encryption keys, on the same store and subspace —
    /// how an operator adds a server.
    pub fn start_beside(other: &TestServer) -> Self {
        assert!(other.fdb.is_some(), "a second server needs a shared store");
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        for part in ["pki", "encryption"] {
            copy_private(&other.data_dir().join(part), &data.join(part));
        }
        Self::launch(dir, other.extra.clone(), other.fdb.clone())
    }

    /// On FoundationDB, every key and value of this server's subspace as `fdbcli getrange`
    /// prints them (bytes outside printable ASCII escaped); `None` on the embedded engine.
    /// Needs `BULWARK_E2E_FDBCLI`, the path of fdbcli.
    pub fn fdb_dump(&self) -> Option<Vec<u8>> {
        let (cluster_file, name) = self.fdb.as_ref()?;
        let fdbcli = std::env::var("BULWARK_E2E_FDBCLI")
            .expect("BULWARK_E2E_FDBCLI (fdbcli) is needed with BULWARK_E2E_STORE=fdb:…");
        // The subspace is `NAME/`; `NAME0` is the first key after it.
        let out = Command::new(fdbcli)
            .args(["-C", cluster_file, "--exec"])
            .arg(format!("getrange \"{name}/\" \"{name}0\" 1000000"))
            .output()
            .expect("run fdbcli");
        assert!(
            out.status.success(),
            "fdbcli: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(out.stdout)
    }

    /// Stops the server (SIGKILL when `kill`, else SIGTERM) and starts it again on the same
    /// data directory with the same flags (on a new port; the admin kubeconfig follows).
    pub fn restart(&mut self, kill: bool) {
        if kill {
            let _ = self.child.kill();
            let _ = self.child.wait();
        } else {
            self.stop();
        }
        let (child, url) = spawn(self.dir.path(), &self.extra);
        self.child = child;
        self.url = url;
    }

    /// The server's resident memory now, in KiB (from /proc).
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }

    /// Whether the server process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Everything the audit log holds so far, as text (its segment files, concatenated).
    pub fn audit_text(&self) -> String {
        fn walk(dir: &Path, out: &mut String) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if let Ok(bytes) = std::fs::read(&path) {
                    out.push_str(&String::from_utf8_lossy(&bytes));
                }
            }
        }
        let mut out = String::new();
        walk(&self.data_dir().join("audit"), &mut out);
        out
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Runs kubectl with the admin kubeconfig.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_as(&self.kubeconfig, args)
    }

    pub fn kubectl_as(&self, kubeconfig: &std::path::Path, args: &[&str]) -> Output {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(args)
            .env_remove("KUBECONFIG")
            .env("HOME", self.dir.path())
            .output()
            .expect("run kubectl")
    }

    /// Runs kubectl and requires success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}\nserver log tail:\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout),
            tail(&self.log())
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Sends a signal (e.g. "HUP") to the server process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Stops the server with SIGTERM (a graceful shutdown) and waits for it to exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the server") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn credentials(&self) -> bulwark_client::Credentials {
        bulwark_client::Credentials::from_kubeconfig(&self.kubeconfig).expect("credentials")
    }
}

/// Copies a directory tree, directories 0700 and files with their modes (key files stay
/// 0600, as the server requires).
fn copy_private(from: &Path, to: &Path) {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(to)
        .expect("create a private directory");
    for entry in std::fs::read_dir(from).expect("read a directory").flatten() {
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            copy_private(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy a file");
        }
    }
}

/// The FoundationDB cluster file the e2e servers run on (`BULWARK_E2E_STORE=fdb:FILE`), if
/// any; otherwise they use the embedded engine.
pub fn fdb_from_env() -> Option<String> {
    let store = std::env::var("BULWARK_E2E_STORE").ok()?;
    match store.strip_prefix("fdb:") {
        Some(file) => Some(file.to_owned()),
        None => {
            assert_eq!(
                store, "embedded",
                "BULWARK_E2E_STORE must be embedded or fdb:FILE"
            );
            None
        }
    }
}

/// A subspace name no other server of any run uses, so each server starts on an empty
/// cluster as it does on a fresh data directory.
fn fdb_subspace_name() -> String {
    static SERVERS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    let n = SERVERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("e2e-{}-{n}-{nanos}", std::process::id())
}

/// Server flags for FoundationDB, keeping the server's keys under `name/`.
fn fdb_store_args(cluster_file: &str, name: &str) -> [String; 4] {
    [
        "--store".to_owned(),
        format!("fdb:{cluster_file}"),
        "--fdb-prefix".to_owned(),
        name.to_owned(),
    ]
}

/// Starts `bulwark server` on a free port with the data directory under `dir`; returns it
/// once it prints its URL.
fn spawn(dir: &Path, extra: &[String]) -> (Child, String) {
    let data = dir.join("data");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .expect("log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .args(extra)
        .env(
            "RUST_LOG",
            std::env::var("BULWARK_TEST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start bulwark server");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Keeps draining after the URL line so the server never writes into a closed pipe.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(url) = line.strip_prefix("Bulwark API server listening on ") {
                    return (child, url.to_owned());
                }
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                panic!("server did not start:\n{log}");
            }
        }
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// Helpers for tests that act as several users (kubeconfigs from `bulwark kubeconfig`).

pub fn user(s: &TestServer, name: &str, groups: &[&str]) -> PathBuf {
    let out = s.dir.path().join(format!("{name}.kubeconfig"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bulwark"));
    cmd.args(["kubeconfig", "--user", name, "--ttl", "1h", "--data-dir"])
        .arg(s.data_dir())
        .arg("--out")
        .arg(&out);
    for g in groups {
        cmd.args(["--group", g]);
    }
    let status = cmd.output().unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    out
}

pub fn run(s: &TestServer, kubeconfig: &Path, args: &[&str]) -> (bool, String) {
    outcome(&s.kubectl_as(kubeconfig, args))
}

/// A finished command: whether it succeeded, and its stdout followed by its stderr.
pub fn outcome(out: &Output) -> (bool, String) {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `kubectl apply` of `yaml` as `kubeconfig`.
pub fn apply(s: &TestServer, kubeconfig: &Path, name: &str, yaml: &str) -> (bool, String) {
    let file = s.dir.path().join(format!("{name}.yaml"));
    std::fs::write(&file, yaml).unwrap();
    run(s, kubeconfig, &["apply", "-f", file.to_str().unwrap()])
}

pub fn admin(s: &TestServer) -> PathBuf {
    s.data_dir().join("admin.kubeconfig")
}

/// A CedarPolicy manifest of `kind` (Authorization or Admission).
pub fn policy_manifest(
    name: &str,
    kind: &str,
    namespace: Option<&str>,
    mode: Option<&str>,
    text: &str,
) -> String {
    let mut yaml = format!(
        "apiVersion: policy.bulwark.dev/v1\nkind: CedarPolicy\nmetadata:\n  name: {name}\nspec:\n  kind: {kind}\n"
    );
    if let Some(ns) = namespace {
        yaml.push_str(&format!("  namespace: {ns}\n"));
    }
    if let Some(mode) = mode {
        yaml.push_str(&format!("  mode: {mode}\n"));
    }
    yaml.push_str("  policies: |\n");
    for line in text.lines() {
        yaml.push_str(&format!("    {line}\n"));
    }
    yaml
}

/// Retries until `check` holds (policy objects load asynchronously), at most 10 s; returns
/// how long it took.
pub fn eventually(what: &str, mut check: impl FnMut() -> (bool, String)) -> Duration {
    let started = Instant::now();
    loop {
        let (ok, text) = check();
        if ok {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what}: {text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn can_i(s: &TestServer, kubeconfig: &Path, args: &[&str]) -> String {
    let mut all = vec!["auth", "can-i"];
    all.extend_from_slice(args);
    run(s, kubeconfig, &all).1.trim().to_owned()
}
