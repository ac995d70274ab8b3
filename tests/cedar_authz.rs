//! Authorization by tiered Cedar policies in the real server, driven with kubectl and user
//! kubeconfigs from `bulwark kubeconfig`: default deny, the shipped grants, operator grants
//! and guardrails reloaded without a restart, and denials that name their policies.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

#[path = "support/server.rs"]
mod server;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use server::TestServer;

fn user(s: &TestServer, name: &str, groups: &[&str]) -> PathBuf {
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

fn run(s: &TestServer, kubeconfig: &Path, args: &[&str]) -> (bool, String) {
    let out = s.kubectl_as(kubeconfig, args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Retries until `check` holds (a reload is asynchronous to the signal), at most 10 s.
fn eventually(what: &str, mut check: impl FnMut() -> (bool, String)) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (ok, text) = check();
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn cedar_policies_decide_and_reload() {
    let s = TestServer::start();
    let ns = s.dir.path().join("ns.yaml");
    std::fs::write(
        &ns,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a\n",
    )
    .unwrap();
    s.ok(&["apply", "-f", ns.to_str().unwrap()]);
    let cm = s.dir.path().join("cm.yaml");
    std::fs::write(&cm, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: team-a\ndata:\n  a: b\n").unwrap();
    s.ok(&["apply", "-f", cm.to_str().unwrap()]);

    // A new user is denied everything but discovery.
    let alice = user(&s, "alice", &["dev"]);
    let (ok, text) = run(&s, &alice, &["get", "configmaps", "-n", "team-a"]);
    assert!(!ok && text.contains("default deny"), "{text}");
    let (ok, text) = run(&s, &alice, &["api-resources"]);
    assert!(ok && text.contains("configmaps"), "{text}");

    // The shipped auditors grant: read everything but secrets.
    let auditor = user(&s, "eve", &["bulwark:auditors"]);
    let (ok, text) = run(&s, &auditor, &["get", "configmaps", "-n", "team-a"]);
    assert!(ok && text.contains("settings"), "{text}");
    let (ok, text) = run(&s, &auditor, &["get", "secrets", "-n", "team-a"]);
    assert!(!ok && text.contains("Forbidden"), "{text}");
    let (ok, _) = run(
        &s,
        &auditor,
        &["delete", "configmap", "settings", "-n", "team-a"],
    );
    assert!(!ok);

    // The operator grants developers read access to configmaps in team-a and reloads.
    let grants = s.data_dir().join("policies/grants.cedar");
    let mut text = std::fs::read_to_string(&grants).unwrap();
    text.push_str(r#"
@id("grants.team-a.dev-read-configmaps")
@reason("developers read configmaps in team-a")
permit (
  principal in k8s::Group::"dev",
  action in [k8s::Action::"get", k8s::Action::"list", k8s::Action::"watch"],
  resource is k8s::Resource
) when { resource.resource == "configmaps" && resource has namespace && resource.namespace == "team-a" };
"#);
    std::fs::write(&grants, &text).unwrap();
    s.signal("HUP");
    eventually("grant takes effect", || {
        run(&s, &alice, &["get", "configmaps", "-n", "team-a"])
    });
    let (ok, text) = run(&s, &alice, &["get", "configmaps", "-n", "default"]);
    assert!(
        !ok && text.contains("default deny"),
        "exactly the granted scope: {text}"
    );
    let (ok, _) = run(
        &s,
        &alice,
        &["delete", "configmap", "settings", "-n", "team-a"],
    );
    assert!(!ok);

    // A guardrail forbid beats the grant, and the denial names it.
    let guardrails = s.data_dir().join("policies/guardrails.cedar");
    std::fs::write(
        &guardrails,
        r#"
@id("guardrails.freeze-team-a")
@reason("team-a is frozen for the audit")
forbid (principal, action, resource is k8s::Resource)
when { resource has namespace && resource.namespace == "team-a" };
"#,
    )
    .unwrap();
    s.signal("HUP");
    eventually("guardrail takes effect", || {
        let (ok, text) = run(&s, &alice, &["get", "configmaps", "-n", "team-a"]);
        (
            !ok && text.contains("guardrails.freeze-team-a") && text.contains("team-a is frozen"),
            text,
        )
    });
    // The bootstrap admin is never locked out.
    assert!(
        s.ok(&["get", "configmaps", "-n", "team-a"])
            .contains("settings")
    );

    // A broken policy file is refused on reload; the policies in force stay.
    std::fs::write(&guardrails, "forbid (principal, action, resource").unwrap();
    s.signal("HUP");
    std::thread::sleep(Duration::from_millis(500));
    let (ok, text) = run(&s, &alice, &["get", "configmaps", "-n", "team-a"]);
    assert!(!ok && text.contains("guardrails.freeze-team-a"), "{text}");
    assert!(s.log().contains("policies not reloaded"), "{}", s.log());

    // `bulwark policy validate` says why offline.
    let out = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["policy", "validate"])
        .arg(&guardrails)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("syntax error"));
    let out = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["policy", "validate"])
        .arg(&grants)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
