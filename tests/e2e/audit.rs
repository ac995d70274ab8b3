//! The audit log of a real server: every request appears exactly once with the right user,
//! verb and outcome; denials carry the deciding policy; secret values never appear, whatever
//! the audit policy says; the log verifies with `bulwark audit verify`, also after the server
//! is killed with SIGKILL under load; and a tampered copy does not. With a webhook, the same
//! events reach a real HTTPS receiver.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::server::{TestServer, admin, apply, run, user};
use bulwark_client::ApiClient;
use serde_json::{Value, json};

/// Every event in the log, by line.
fn events(data: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(data.join("audit"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    for file in files {
        for line in std::fs::read_to_string(file).unwrap().lines() {
            if let Ok(record) = serde_json::from_str::<Value>(line)
                && let Some(event) = record.get("event")
            {
                out.push(event.clone());
            }
        }
    }
    out
}

fn raw_log(data: &Path) -> String {
    let mut all = String::new();
    for entry in std::fs::read_dir(data.join("audit")).unwrap() {
        all.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default());
    }
    all
}

fn verify(data: &Path, extra: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["audit", "verify"])
        .arg(data.join("audit"))
        .arg("--pubkey")
        .arg(data.join("pki").join("audit-signing.key.pub"))
        .args(extra)
        .output()
        .unwrap();
    crate::server::outcome(&out)
}

/// Waits until `check` holds over the events (the writer is asynchronous; fsync per batch).
fn eventually(data: &Path, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut all = Vec::new();
    crate::server::eventually(what, || {
        all = events(data);
        (check(&all), format!("{} events", all.len()))
    });
    all
}

/// A server whose audit policy records everything at `level` (no stage omitted), and the
/// directory holding the policy file.
fn start_with_audit_level(level: &str) -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("audit-policy.yaml");
    std::fs::write(
        &policy,
        format!("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: {level}\n"),
    )
    .unwrap();
    let s = TestServer::start_with(&["--audit-policy", policy.to_str().unwrap()]);
    (dir, s)
}

const SECRET_VALUE: &str = "hunter2-do-not-log-me";

#[test]
fn requests_are_recorded_once_with_decisions_and_no_secrets() {
    // Even a policy that asks for every body must not get secret values.
    let (policy_dir, s) = start_with_audit_level("RequestResponse");
    let data = s.data_dir();
    let root = admin(&s);

    // Raw requests whose Audit-Id we know.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (ids, watch_id): (Vec<(String, String, u16)>, String) = rt.block_on(async {
        let client = ApiClient::builder(&s.credentials()).connect().await.unwrap();
        let mut ids = Vec::new();
        for (path, verb) in [("/api/v1/namespaces", "list"), ("/api/v1/namespaces/default", "get"), ("/version", "get")] {
            let r = client.get(path).await.unwrap();
            ids.push((r.headers["audit-id"].to_str().unwrap().to_owned(), verb.to_owned(), r.status.as_u16()));
        }
        let r = client
            .post_json("/api/v1/namespaces/default/configmaps", &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "recorded"}, "data": {"k": "visible-configmap-value"}}))
            .await
            .unwrap();
        ids.push((r.headers["audit-id"].to_str().unwrap().to_owned(), "create".into(), r.status.as_u16()));
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                            "data": {"password": base64_of(SECRET_VALUE)}, "stringData": {"other": SECRET_VALUE}});
        let r = client.post_json("/api/v1/namespaces/default/secrets", &secret).await.unwrap();
        assert_eq!(r.status.as_u16(), 201);
        ids.push((r.headers["audit-id"].to_str().unwrap().to_owned(), "create".into(), 201));
        let r = client.get("/api/v1/namespaces/default/secrets/s").await.unwrap();
        ids.push((r.headers["audit-id"].to_str().unwrap().to_owned(), "get".into(), 200));
        // No certificate: 401, recorded all the same.
        let anonymous = ApiClient::builder(&s.credentials()).dangerous().without_client_cert().connect().await.unwrap();
        let r = anonymous.get("/api/v1/namespaces").await.unwrap();
        ids.push((r.headers["audit-id"].to_str().unwrap().to_owned(), "list".into(), 401));
        // A watch that the server ends after a second.
        let watch = client
            .stream(http::Method::GET, "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1")
            .await
            .unwrap();
        let watch_id = watch.headers()["audit-id"].to_str().unwrap().to_owned();
        http_body_util::BodyExt::collect(watch.into_body()).await.unwrap();
        (ids, watch_id)
    });

    // A denial by default deny, and one by an admission policy.
    let jane = user(&s, "jane", &["dev"]);
    let (ok, _) = run(&s, &jane, &["get", "configmaps", "-n", "default"]);
    assert!(!ok);
    let (ok, text) = apply(
        &s,
        &root,
        "priv",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: priv\n  namespace: default\nspec:\n  containers:\n  - name: c\n    image: i\n    securityContext: {privileged: true}\n",
    );
    assert!(!ok && text.contains("pss.baseline.privileged"), "{text}");

    let all = eventually(&data, "the privileged pod denial", |all| {
        all.iter().any(|e| {
            e["annotations"]["admission.bulwark.dev/denied"]
                .as_str()
                .is_some_and(|d| d.contains("pss.baseline.privileged"))
        })
    });
    let by_id: HashMap<&str, Vec<&Value>> = all.iter().fold(HashMap::new(), |mut m, e| {
        m.entry(e["auditID"].as_str().unwrap()).or_default().push(e);
        m
    });
    // The policy omits no stage: RequestReceived (once the user is known) and
    // ResponseComplete, once each; a failed authentication only at the end.
    let complete = |id: &str| -> &Value {
        by_id[id]
            .iter()
            .find(|e| e["stage"] == "ResponseComplete")
            .unwrap()
    };
    for (id, verb, code) in &ids {
        let found = by_id
            .get(id.as_str())
            .unwrap_or_else(|| panic!("{id} ({verb}) not recorded"));
        let stages: Vec<&str> = found.iter().map(|e| e["stage"].as_str().unwrap()).collect();
        let expected: &[&str] = if *code == 401 {
            &["ResponseComplete"]
        } else {
            &["RequestReceived", "ResponseComplete"]
        };
        assert_eq!(stages, expected, "{id}: once per stage");
        if *code != 401 {
            assert_eq!(found[0]["user"], found[1]["user"]);
            assert!(found[0].get("responseStatus").is_none());
        }
        let e = complete(id);
        assert_eq!(e["verb"], verb.as_str(), "{e}");
        assert_eq!(e["responseStatus"]["code"], *code, "{e}");
        let expected_user = if *code == 401 {
            "system:anonymous"
        } else {
            bulwark_pki::bootstrap::ADMIN_USER
        };
        assert_eq!(e["user"]["username"], expected_user, "{e}");
        assert_eq!(e["sourceIPs"][0], "127.0.0.1");
    }
    // The configmap body is there (the policy asked for it); the admin's decision is noted.
    let create = complete(&ids[3].0);
    assert_eq!(
        create["requestObject"]["data"]["k"],
        "visible-configmap-value"
    );
    assert_eq!(
        create["annotations"]["authorization.k8s.io/decision"],
        "allow"
    );
    assert_eq!(create["objectRef"]["resource"], "configmaps");
    assert_eq!(create["objectRef"]["namespace"], "default");
    // Secrets: metadata only.
    let secret_create = complete(&ids[4].0);
    assert_eq!(secret_create["level"], "Metadata");
    assert!(
        secret_create.get("requestObject").is_none()
            && secret_create.get("responseObject").is_none()
    );
    // The unauthenticated request says why.
    // The watch: when it arrived, when its stream started, when it ended.
    let all = eventually(&data, "the end of the watch", |all| {
        all.iter()
            .filter(|e| e["auditID"] == watch_id.as_str())
            .count()
            == 3
    });
    let watch: Vec<&Value> = all
        .iter()
        .filter(|e| e["auditID"] == watch_id.as_str())
        .collect();
    let stages: Vec<&str> = watch.iter().map(|e| e["stage"].as_str().unwrap()).collect();
    assert_eq!(
        stages,
        ["RequestReceived", "ResponseStarted", "ResponseComplete"]
    );
    assert_eq!(watch[2]["verb"], "watch");
    assert!(watch[2]["stageTimestamp"].as_str() > watch[1]["stageTimestamp"].as_str());
    let anon = complete(&ids[6].0);
    assert!(
        anon["annotations"]["authentication.bulwark.dev/failure"].is_string(),
        "{anon}"
    );
    // Jane's denial carries the decision.
    let denied = all
        .iter()
        .find(|e| e["user"]["username"] == "jane" && e["responseStatus"]["code"] == 403)
        .expect("jane's denial");
    assert_eq!(
        denied["annotations"]["authorization.k8s.io/decision"],
        "forbid"
    );
    assert!(
        denied["annotations"]["authorization.k8s.io/reason"]
            .as_str()
            .unwrap()
            .contains("default deny"),
        "{denied}"
    );
    // The admission denial names the object and the policies that denied it.
    let pod = all
        .iter()
        .find(|e| e["annotations"]["admission.bulwark.dev/denied"].is_string())
        .unwrap();
    assert_eq!(pod["objectRef"]["name"], "priv", "{pod}");
    assert!(
        pod["annotations"]["admission.bulwark.dev/policies"]
            .as_str()
            .unwrap()
            .split(',')
            .any(|p| p == "pss.baseline.privileged"),
        "{pod}"
    );
    // Secret values, plain or base64, appear nowhere in the log.
    let raw = raw_log(&data);
    assert!(raw.contains("visible-configmap-value"));
    assert!(
        !raw.contains(SECRET_VALUE) && !raw.contains(&base64_of(SECRET_VALUE)),
        "a secret value leaked into the audit log"
    );

    // Replaying the log against a candidate policy set lists exactly the decisions it changes:
    // the shipped grants plus one for jane turn her denial into an allow and nothing else.
    let candidate = policy_dir.path().join("candidate.cedar");
    let grants = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/cedar/grants.cedar"),
    )
    .unwrap();
    std::fs::write(&candidate, format!("{grants}\n@id(\"jane.read\") permit (principal == k8s::User::\"jane\", action == k8s::Action::\"list\", resource is k8s::Resource) when {{ resource.resource == \"configmaps\" }};\n")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["policy", "replay"])
        .arg(&candidate)
        .arg("--audit-log")
        .arg(data.join("audit"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("jane list configmaps in default: denied -> ALLOWED (jane.read)"),
        "{text}"
    );
    assert!(
        text.contains("would change (0 allowed -> denied, 1 denied -> allowed)"),
        "{text}"
    );

    // The log verifies; a tampered copy does not.
    let (ok, text) = verify(&data, &[]);
    assert!(ok, "{text}");
    let copy = s.dir.path().join("copy");
    std::fs::create_dir_all(copy.join("audit")).unwrap();
    std::fs::create_dir_all(copy.join("pki")).unwrap();
    for entry in std::fs::read_dir(data.join("audit")).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, copy.join("audit").join(p.file_name().unwrap())).unwrap();
    }
    std::fs::copy(
        data.join("pki/audit-signing.key.pub"),
        copy.join("pki/audit-signing.key.pub"),
    )
    .unwrap();
    let segment = std::fs::read_dir(copy.join("audit"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .unwrap();
    let text = std::fs::read_to_string(&segment).unwrap().replacen(
        "\"username\":\"jane\"",
        "\"username\":\"joan\"",
        1,
    );
    std::fs::write(&segment, text).unwrap();
    let (ok, text) = verify(&copy, &[]);
    assert!(!ok && text.contains("was changed"), "{text}");
}

fn base64_of(s: &str) -> String {
    use std::fmt::Write as _;
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = s.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let _ = write!(
                    out,
                    "{}",
                    TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char
                );
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn a_sigkill_under_load_leaves_a_log_that_verifies() {
    let s = TestServer::start();
    let data = s.data_dir();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let creds = s.credentials();
    rt.block_on(async {
        let client = ApiClient::builder(&creds).connect().await.unwrap();
        let mut tasks = Vec::new();
        for w in 0..8 {
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..10_000 {
                    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("load-{w}-{i}")}});
                    if client.post_json("/api/v1/namespaces/default/configmaps", &body).await.is_err() {
                        break;
                    }
                }
            }));
        }
        // Kill mid-load, once a good amount has been written.
        let started = Instant::now();
        while events(&data).len() < 300 && started.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        s.signal("KILL");
        for t in tasks {
            let _ = t.await;
        }
    });
    let (ok, text) = verify(&data, &[]);
    assert!(ok, "{text}");
    assert!(events(&data).len() >= 300, "{text}");
}

/// `bulwark audit query` with `args`: (success, stdout, stderr).
fn audit_query(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["audit", "query"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The items of `bulwark audit query … -o json`.
fn queried(args: &[&str]) -> Vec<Value> {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let (ok, out, err) = audit_query(&all);
    assert!(ok, "{err}");
    let list: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(list["kind"], "EventList");
    list["items"].as_array().unwrap().clone()
}

#[test]
fn auditors_query_the_log_through_the_api_and_the_cli() {
    let s = TestServer::start();
    let root = admin(&s);
    let (ok, text) = apply(
        &s,
        &root,
        "team",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: team-a\ndata:\n  k: v\n",
    );
    assert!(ok, "{text}");
    let alice = user(&s, "alice", &["dev"]);
    let (ok, _) = run(&s, &alice, &["get", "configmaps", "-n", "team-a"]);
    assert!(!ok);
    let auditor = user(&s, "audrey", &["bulwark:auditors"]);
    let auditor_kc = auditor.to_str().unwrap();

    // Alice's denial, with the policy that decided it (default deny names none).
    let mut denied = Vec::new();
    crate::server::eventually("alice's denial is searchable", || {
        denied = queried(&[
            "--kubeconfig",
            auditor_kc,
            "--user",
            "alice",
            "--decision",
            "deny",
        ]);
        (!denied.is_empty(), format!("{denied:?}"))
    });
    // The CLI reads the kubeconfig's current context, not its first entries: a file with
    // another cluster and user listed first (as `kubectl config` merges them) still works.
    let text = std::fs::read_to_string(&auditor).unwrap();
    let merged = text
        .replacen(
            "clusters:\n",
            "clusters:\n- name: elsewhere\n  cluster:\n    server: https://127.0.0.1:1\n    certificate-authority-data: Tk9UIEEgQ0E=\n",
            1,
        )
        .replacen(
            "users:\n",
            "users:\n- name: someone\n  user:\n    token: not-this-one\n",
            1,
        )
        .replacen(
            "contexts:\n",
            "contexts:\n- name: other\n  context: {cluster: elsewhere, user: someone}\n",
            1,
        );
    let merged_path = s.dir.path().join("merged.kubeconfig");
    std::fs::write(&merged_path, merged).unwrap();
    let through_merged = queried(&[
        "--kubeconfig",
        merged_path.to_str().unwrap(),
        "--user",
        "alice",
        "--decision",
        "deny",
    ]);
    assert!(!through_merged.is_empty());
    for e in &denied {
        assert_eq!(e["user"]["username"], "alice");
        assert_eq!(
            e["annotations"]["authorization.k8s.io/decision"], "forbid",
            "{e}"
        );
    }
    assert!(denied.iter().any(|e| e["verb"] == "list"
        && e["objectRef"]["resource"] == "configmaps"
        && e["objectRef"]["namespace"] == "team-a"));
    assert!(
        queried(&[
            "--kubeconfig",
            auditor_kc,
            "--user",
            "alice",
            "--decision",
            "allow"
        ])
        .is_empty()
    );

    // Exactly the one create of the configmap, found by verb, resource and namespace.
    let creates = queried(&[
        "--kubeconfig",
        auditor_kc,
        "--verb",
        "create",
        "--resource",
        "configmaps",
        "-n",
        "team-a",
    ]);
    assert_eq!(creates.len(), 1, "{creates:?}");
    assert_eq!(creates[0]["objectRef"]["name"], "settings");
    assert_eq!(
        creates[0]["user"]["username"],
        bulwark_pki::bootstrap::ADMIN_USER
    );

    // A time window that ends before the server started holds nothing; one from then on
    // holds alice's request.
    assert!(
        queried(&[
            "--kubeconfig",
            auditor_kc,
            "--user",
            "alice",
            "--until",
            "2020-01-01T00:00:00Z"
        ])
        .is_empty()
    );
    assert!(
        !queried(&[
            "--kubeconfig",
            auditor_kc,
            "--user",
            "alice",
            "--since",
            "1h"
        ])
        .is_empty()
    );

    // The table names who, what and the decision.
    let (ok, table, err) = audit_query(&["--kubeconfig", auditor_kc, "--user", "alice"]);
    assert!(ok, "{err}");
    assert!(table.starts_with("TIME"), "{table}");
    let line = table.lines().find(|l| l.contains("configmaps")).unwrap();
    assert!(
        line.contains("alice")
            && line.contains("list")
            && line.contains("deny")
            && line.contains("403"),
        "{line}"
    );

    // kubectl, too: the API serves a Table.
    let (ok, text) = run(
        &s,
        &auditor,
        &["get", "events.audit.bulwark.dev", "-n", "team-a"],
    );
    assert!(
        ok && text.contains("DECISION") && text.contains("settings"),
        "{text}"
    );

    // Users who are not auditors are refused, and the refusal is itself on record.
    let (ok, _, err) = audit_query(&["--kubeconfig", alice.to_str().unwrap()]);
    assert!(
        !ok && err.contains("forbidden") && err.contains("403"),
        "{err}"
    );
    crate::server::eventually("the refused query is on record", || {
        let mine = queried(&[
            "--kubeconfig",
            auditor_kc,
            "--user",
            "alice",
            "--resource",
            "events",
        ]);
        (
            mine.len() == 1 && mine[0]["objectRef"]["apiGroup"] == "audit.bulwark.dev",
            format!("{mine:?}"),
        )
    });

    // Access per namespace: a team lead granted list on audit events in team-a only.
    let (ok, text) = apply(
        &s,
        &root,
        "lead",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: audit-reader\n  namespace: team-a\nrules:\n- apiGroups: [audit.bulwark.dev]\n  resources: [events]\n  verbs: [list]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: lead-audit\n  namespace: team-a\nsubjects:\n- kind: User\n  name: lead\n  apiGroup: rbac.authorization.k8s.io\nroleRef:\n  kind: Role\n  name: audit-reader\n  apiGroup: rbac.authorization.k8s.io\n",
    );
    assert!(ok, "{text}");
    let lead = user(&s, "lead", &[]);
    let lead_kc = lead.to_str().unwrap();
    crate::server::eventually("the lead reads team-a's audit events", || {
        let (ok, out, err) = audit_query(&["--kubeconfig", lead_kc, "-n", "team-a", "-o", "json"]);
        (ok && out.contains("settings"), err)
    });
    for e in queried(&["--kubeconfig", lead_kc, "-n", "team-a"]) {
        assert_eq!(e["objectRef"]["namespace"], "team-a", "{e}");
    }
    let (ok, _, err) = audit_query(&["--kubeconfig", lead_kc]);
    assert!(!ok && err.contains("403"), "{err}");

    // Bad queries are 400s, not errors of the server.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = ApiClient::builder(&s.credentials())
            .connect()
            .await
            .unwrap();
        for query in [
            "decision=maybe",
            "since=yesterday",
            "continue=garbage",
            "limit=x",
        ] {
            let r = client
                .get(&format!("/apis/audit.bulwark.dev/v1/events?{query}"))
                .await
                .unwrap();
            assert_eq!(r.status.as_u16(), 400, "{query}: {:?}", r.json());
            assert_eq!(r.json()["kind"], "Status");
        }
        let r = client
            .post_json("/apis/audit.bulwark.dev/v1/events", &json!({}))
            .await
            .unwrap();
        assert_eq!(r.status.as_u16(), 405);
    });

    // The same answers from the log directory, with no server involved.
    let dir = s.data_dir().join("audit");
    let offline = queried(&[
        "--dir",
        dir.to_str().unwrap(),
        "--user",
        "alice",
        "--decision",
        "deny",
    ]);
    assert!(offline.len() >= denied.len() && !offline.is_empty());
    let (ok, _, err) = audit_query(&["--dir", dir.to_str().unwrap(), "--since", "yesterday"]);
    assert!(!ok && err.contains("age"), "{err}");
}

#[test]
fn the_webhook_receives_every_logged_event() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let receiver = runtime.block_on(crate::receiver::Receiver::start());
    let config = tempfile::tempdir().unwrap();
    let kubeconfig = receiver.kubeconfig(config.path(), Some("siem-token"), true);
    let mut s = TestServer::start_with(&[
        "--audit-webhook-config-file",
        kubeconfig.to_str().unwrap(),
        "--audit-webhook-batch-max-wait",
        "1s",
    ]);
    s.ok(&["get", "namespaces"]);
    s.ok(&["get", "configmaps", "-A"]);
    let bob = user(&s, "bob", &[]);
    let (allowed, _) = run(&s, &bob, &["get", "pods"]);
    assert!(!allowed);
    let metrics = s.ok(&["get", "--raw", "/metrics"]);
    assert!(
        metrics.contains("apiserver_audit_webhook_events_dropped_total 0"),
        "{metrics}"
    );
    let data = s.data_dir();
    // A graceful stop flushes the log and waits for the webhook to take the rest.
    let status = s.stop();
    assert!(status.success(), "{status:?}\n{}", s.log());

    let key = |e: &Value| {
        (
            e["auditID"].as_str().unwrap().to_owned(),
            e["stage"].as_str().unwrap().to_owned(),
        )
    };
    let logged_events = events(&data);
    let mut logged: Vec<(String, String)> = logged_events.iter().map(key).collect();
    let mut received: Vec<(String, String)> = receiver.events().iter().map(key).collect();
    assert!(logged.len() > 5, "{logged:?}");
    logged.sort();
    received.sort();
    let missing: Vec<&Value> = logged_events
        .iter()
        .filter(|e| !received.contains(&key(e)))
        .collect();
    assert_eq!(
        received,
        logged,
        "each logged event reaches the webhook exactly once; logged, never sent: {missing:#?}\nserver log:\n{}",
        s.log()
    );
    let all = receiver.events();
    let start = all
        .iter()
        .find(|e| e["verb"] == "start")
        .expect("the start event");
    assert_eq!(
        start["annotations"]["audit.bulwark.dev/webhook"].as_str(),
        Some(receiver.url.as_str())
    );
    assert!(
        all.iter()
            .any(|e| e["user"]["username"] == "bob" && e["responseStatus"]["code"] == 403),
        "the refusal is sent too"
    );
    let state = receiver.state.lock().unwrap();
    assert!(
        state
            .authorization
            .iter()
            .all(|a| a.as_deref() == Some("Bearer siem-token"))
    );
    assert!(state.client_certs.iter().all(|c| *c));
    drop(state);
    // The last checkpoint the receiver holds is the log's.
    let checkpoint = receiver.last_checkpoint().unwrap();
    let file = config.path().join("checkpoint.json");
    std::fs::write(&file, checkpoint).unwrap();
    let (ok, out) = verify(&data, &["--checkpoint", file.to_str().unwrap()]);
    assert!(ok, "{out}");
}

#[test]
fn a_policy_that_keeps_request_received_records_both_stages() {
    let (_policy_dir, s) = start_with_audit_level("Metadata");
    s.ok(&["get", "configmaps", "-n", "default"]);
    let bob = user(&s, "bob", &[]);
    let (allowed, _) = run(&s, &bob, &["get", "secrets"]);
    assert!(!allowed);
    let of = |all: &[Value], who: &str, resource: &str| -> Vec<Value> {
        all.iter()
            .filter(|e| {
                e["user"]["username"] == who
                    && e["objectRef"]["resource"] == resource
                    && e["verb"] == "list"
            })
            .cloned()
            .collect()
    };
    let all = eventually(&s.data_dir(), "both stages of both requests", |all| {
        of(all, "bulwark-admin", "configmaps").len() >= 2 && of(all, "bob", "secrets").len() >= 2
    });
    for (who, resource, code) in [
        ("bulwark-admin", "configmaps", 200),
        ("bob", "secrets", 403),
    ] {
        let stages = of(&all, who, resource);
        assert_eq!(stages.len(), 2, "{who}: {stages:#?}");
        assert_eq!(stages[0]["stage"], "RequestReceived");
        assert_eq!(stages[1]["stage"], "ResponseComplete");
        assert_eq!(stages[0]["auditID"], stages[1]["auditID"]);
        assert_eq!(
            stages[0]["requestReceivedTimestamp"],
            stages[1]["requestReceivedTimestamp"]
        );
        assert!(stages[0].get("responseStatus").is_none(), "{:#}", stages[0]);
        assert!(
            stages[0]["annotations"]
                .get("authorization.k8s.io/decision")
                .is_none(),
            "decided after this stage"
        );
        assert_eq!(stages[1]["responseStatus"]["code"], code);
    }
}
