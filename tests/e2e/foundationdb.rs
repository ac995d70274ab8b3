//! What only FoundationDB gives: several API servers of one cluster on one store. Runs in the
//! e2e pass on FoundationDB (`BULWARK_E2E_STORE=fdb:…`, `scripts/fdb-tests`) and says it
//! skipped otherwise.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::server::{TestServer, apply, eventually, policy_manifest, run, user};

#[test]
fn two_api_servers_share_one_cluster_on_fdb() {
    if crate::server::fdb_from_env().is_none() {
        eprintln!("skipped: needs BULWARK_E2E_STORE=fdb:CLUSTER_FILE (scripts/fdb-tests sets it)");
        return;
    }
    let a = TestServer::start();
    let b = TestServer::start_beside(&a);
    assert_ne!(a.url, b.url);

    // What one server writes, the other reads, Secrets included (the same keys).
    a.ok(&["create", "configmap", "shared", "--from-literal=k=from-a"]);
    assert_eq!(
        b.ok(&["get", "configmap", "shared", "-o", "jsonpath={.data.k}"]),
        "from-a"
    );
    b.ok(&[
        "create",
        "secret",
        "generic",
        "token",
        "--from-literal=t=from-b",
    ]);
    assert_eq!(
        a.ok(&["get", "secret", "token", "-o", "jsonpath={.data.t}"]),
        "ZnJvbS1i" // base64 of from-b
    );

    // A watch on one server sees a change made through the other.
    let mut watch = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&b.kubeconfig)
        .args([
            "get",
            "configmap",
            "shared",
            "-w",
            "-o",
            "jsonpath={.data.k}{\"\\n\"}",
        ])
        .env_remove("KUBECONFIG")
        .env("HOME", b.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(20)).unwrap(),
        "from-a",
        "the watch's first event"
    );
    a.ok(&[
        "patch",
        "configmap",
        "shared",
        "-p",
        r#"{"data":{"k":"changed-on-a"}}"#,
    ]);
    let seen = rx.recv_timeout(Duration::from_secs(20));
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!(seen.unwrap(), "changed-on-a");

    // Optimistic concurrency holds across servers: an update carrying the version read
    // before the other server's write is refused.
    let stale = b.ok(&[
        "get",
        "configmap",
        "shared",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    a.ok(&[
        "patch",
        "configmap",
        "shared",
        "-p",
        r#"{"data":{"k":"again-on-a"}}"#,
    ]);
    let body = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"shared","namespace":"default","resourceVersion":"{stale}"}},"data":{{"k":"stale-on-b"}}}}"#
    );
    let file = b.dir.path().join("stale.json");
    std::fs::write(&file, body).unwrap();
    let out = b.kubectl(&["replace", "-f", file.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && text.contains("the object has been modified"),
        "{text}"
    );

    // A grant written through one server is enforced by the other.
    let carol = user(&b, "carol", &[]);
    let (allowed, _) = run(&b, &carol, &["get", "configmap", "shared"]);
    assert!(!allowed, "denied by default");
    let (ok, text) = apply(
        &a,
        &a.kubeconfig,
        "carol-reads",
        &policy_manifest(
            "carol-reads",
            "Authorization",
            None,
            None,
            "@id(\"carol-reads\")\npermit (principal == k8s::User::\"carol\", action == k8s::Action::\"get\", resource is k8s::Resource);",
        ),
    );
    assert!(ok, "{text}");
    eventually("the other server enforces the new grant", || {
        run(&b, &carol, &["get", "configmap", "shared"])
    });
}
