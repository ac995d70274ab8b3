//! Encryption at rest through the real binary: no Secret value, nor its base64 or base64 of
//! base64, in any file under the data directory (written with kubectl and raw JSON, `data`
//! and `stringData`), before and after `bulwark secrets rotate`; rotation under concurrent
//! writes loses nothing; a rotation killed with the server resumes; old keys are kept while
//! used and retired after; an upstream `EncryptionConfiguration` with a KMS v2 provider works
//! against the test plugin, also while the plugin is down and when it comes back.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bulwark_client::ApiClient;
use bulwark_encryption::kms::test_plugin::{Behaviour, TestPlugin};
use http::Method;
use serde_json::{Value, json};

use crate::server::{TestServer, eventually, user};

const SECRETS: &str = "/api/v1/namespaces/default/secrets";
const API: &str = "/apis/encryption.bulwark.dev/v1";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A marker as stored anywhere: itself, its base64 and its base64 of base64.
fn encodings(marker: &str) -> Vec<Vec<u8>> {
    let once = b64(marker.as_bytes());
    let twice = b64(once.as_bytes());
    vec![
        marker.as_bytes().to_vec(),
        once.into_bytes(),
        twice.into_bytes(),
    ]
}

/// Every file under `dir` holding one of `needles`, with the needle found.
fn files_containing(dir: &Path, needles: &[Vec<u8>]) -> Vec<(PathBuf, String)> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap().flatten() {
                stack.push(entry.path());
            }
        } else if let Ok(bytes) = std::fs::read(&path) {
            for needle in needles {
                if bytes.windows(needle.len()).any(|w| w == needle.as_slice()) {
                    hits.push((path.clone(), String::from_utf8_lossy(needle).into_owned()));
                }
            }
        }
    }
    hits
}

/// Runs `bulwark secrets <sub> --kubeconfig K [args]` as the admin: (success, output).
fn secrets(s: &TestServer, sub: &str, args: &[&str]) -> (bool, String) {
    secrets_as(&s.kubeconfig, sub, args)
}

fn secrets_as(kubeconfig: &Path, sub: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["secrets", sub, "--kubeconfig"])
        .arg(kubeconfig)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    crate::server::outcome(&out)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn client(s: &TestServer) -> ApiClient {
    ApiClient::builder(&s.credentials())
        .connect()
        .await
        .unwrap()
}

fn secret_value(s: &TestServer, name: &str, key: &str) -> String {
    let encoded = s.ok(&[
        "get",
        "secret",
        name,
        "-o",
        &format!("jsonpath={{.data.{key}}}"),
    ]);
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .unwrap(),
    )
    .unwrap()
}

/// The status of the latest rotation.
async fn latest_rotation(c: &ApiClient) -> Value {
    let r = c.get(&format!("{API}/keyrotations/latest")).await.unwrap();
    assert!(r.status.is_success(), "{}", r.json());
    r.json()["status"].clone()
}

async fn start_rotation(c: &ApiClient) -> bulwark_client::ClientResponse {
    c.post_json(
        &format!("{API}/keyrotations"),
        &json!({"kind": "KeyRotation"}),
    )
    .await
    .unwrap()
}

async fn retire(c: &ApiClient, key: &str) -> bulwark_client::ClientResponse {
    c.send(
        Method::DELETE,
        &format!("{API}/encryptionkeys/{key}"),
        &[],
        Vec::new(),
    )
    .await
    .unwrap()
}

async fn keys(c: &ApiClient) -> Vec<Value> {
    let r = c.get(&format!("{API}/encryptionkeys")).await.unwrap();
    assert!(r.status.is_success(), "{}", r.json());
    r.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["status"].clone())
        .collect()
}

/// No Secret value, in any encoding, is in the data directory or in the store's bytes, before
/// or after a key rotation, while a ConfigMap's value is (so the scan would find one). On
/// FoundationDB (`BULWARK_E2E_STORE`) the store's bytes are every key and value of the server's
/// subspace, read with fdbcli.
#[test]
fn no_secret_value_reaches_the_disk_before_or_after_rotation() {
    let s = TestServer::start();
    let data = s.data_dir();
    // kubectl (protobuf on the wire), kubectl apply with stringData, raw JSON data and
    // stringData.
    s.ok(&[
        "create",
        "secret",
        "generic",
        "by-kubectl",
        "--from-literal=password=MARKER-kubectl-5b2e1",
    ]);
    let yaml = s.dir.path().join("secret.yaml");
    std::fs::write(
        &yaml,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: by-apply\nstringData:\n  token: MARKER-apply-8c4d2\n",
    )
    .unwrap();
    s.ok(&["apply", "-f", yaml.to_str().unwrap()]);
    let rt = runtime();
    rt.block_on(async {
        let c = client(&s).await;
        for (name, body) in [
            (
                "raw-data",
                json!({"data": {"k": b64(b"MARKER-rawdata-71f3a")}}),
            ),
            (
                "raw-stringdata",
                json!({"stringData": {"k": "MARKER-rawstring-2d9e6"}}),
            ),
        ] {
            let mut object =
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}});
            object
                .as_object_mut()
                .unwrap()
                .extend(body.as_object().unwrap().clone());
            let r = c.post_json(SECRETS, &object).await.unwrap();
            assert_eq!(r.status.as_u16(), 201, "{}", r.json());
        }
    });
    // A ConfigMap is not encrypted: the scan finds its marker, so it would find a Secret's.
    s.ok(&[
        "create",
        "configmap",
        "control",
        "--from-literal=k=CONTROL-plain-9a8b7",
    ]);
    let markers = [
        "MARKER-kubectl-5b2e1",
        "MARKER-apply-8c4d2",
        "MARKER-rawdata-71f3a",
        "MARKER-rawstring-2d9e6",
    ];
    let needles: Vec<Vec<u8>> = markers.iter().flat_map(|m| encodings(m)).collect();
    let control = b"CONTROL-plain-9a8b7".to_vec();
    let check = |when: &str| {
        let hits = files_containing(&data, &needles);
        assert!(hits.is_empty(), "{when}: secret values on disk: {hits:?}");
        // The store's bytes: the embedded file in the data directory, or on FoundationDB
        // every key and value of the server's subspace.
        let store_shows_plaintext = match s.fdb_dump() {
            None => !files_containing(&data, std::slice::from_ref(&control)).is_empty(),
            Some(dump) => {
                let contains = |needle: &[u8]| dump.windows(needle.len()).any(|w| w == needle);
                for needle in &needles {
                    assert!(
                        !contains(needle),
                        "{when}: {} in FoundationDB",
                        String::from_utf8_lossy(needle)
                    );
                }
                assert!(contains(b"/registry/core/secrets/default/by-kubectl"));
                contains(&control)
            }
        };
        assert!(
            store_shows_plaintext,
            "{when}: the scan does not see the store's plaintext at all"
        );
        assert_eq!(secret_value(&s, "by-kubectl", "password"), markers[0]);
        assert_eq!(secret_value(&s, "by-apply", "token"), markers[1]);
        assert_eq!(secret_value(&s, "raw-data", "k"), markers[2]);
        assert_eq!(secret_value(&s, "raw-stringdata", "k"), markers[3]);
    };
    check("after create");

    let (ok, out) = secrets(&s, "verify", &[]);
    assert!(ok, "{out}");
    assert!(out.contains("verified"), "{out}");
    let (ok, out) = secrets(&s, "status", &[]);
    assert!(ok, "{out}");
    assert!(
        out.contains("bulwark-local") && out.contains("in plaintext"),
        "{out}"
    );
    assert!(out.contains(" 0 in plaintext"), "{out}");

    // kubectl shows the encryption objects as tables.
    let keys_table = s.ok(&["get", "encryptionkeys"]);
    let header: Vec<&str> = keys_table
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "PROVIDER", "PRIMARY", "OBJECTS", "STATE", "AGE"],
        "{keys_table}"
    );
    assert!(
        keys_table.contains("bulwark-local") && keys_table.contains("true"),
        "{keys_table}"
    );
    let status_table = s.ok(&["get", "encryptionstatus", "cluster"]);
    assert!(
        status_table.contains("ENCRYPTED") && status_table.contains("cluster"),
        "{status_table}"
    );
    // Auditors may check, not rotate.
    let auditor = user(&s, "audrey", &["bulwark:auditors"]);
    let (ok, out) = secrets_as(&auditor, "verify", &[]);
    assert!(ok, "{out}");
    let (ok, out) = secrets_as(&auditor, "status", &[]);
    assert!(ok, "{out}");
    let (ok, out) = secrets_as(&auditor, "rotate", &[]);
    assert!(!ok && out.contains("403"), "{out}");

    let (ok, out) = secrets(&s, "rotate", &[]);
    assert!(ok, "{out}");
    assert!(
        out.contains("Retiring") || out.contains("Complete"),
        "{out}"
    );
    check("after rotation");
    let (ok, out) = secrets(&s, "verify", &[]);
    assert!(ok, "{out}");
    rt.block_on(async {
        let c = client(&s).await;
        let keys = keys(&c).await;
        let primary: Vec<&Value> = keys.iter().filter(|k| k["primary"] == true).collect();
        assert_eq!(primary.len(), 1, "{keys:?}");
        assert_eq!(primary[0]["objects"], 4, "{keys:?}");
        for old in keys.iter().filter(|k| k["primary"] != true) {
            assert_eq!(old["objects"], 0, "{keys:?}");
        }
    });
    // The key files are private.
    use std::os::unix::fs::PermissionsExt;
    let dir = data.join("encryption").join("local");
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", entry.path().display());
    }
}

#[test]
fn more_resources_are_encrypted_when_named() {
    let s = TestServer::start_with(&[
        "--encrypt-resource",
        "configmaps",
        "--encrypt-resource",
        "cedarpolicies.policy.bulwark.dev",
    ]);
    s.ok(&[
        "create",
        "configmap",
        "named",
        "--from-literal=k=CMMARKER-3f1d0",
    ]);
    let needles = encodings("CMMARKER-3f1d0");
    assert!(files_containing(&s.data_dir(), &needles).is_empty());
    // The default policies, written at the first start, are under the key too.
    assert!(files_containing(&s.data_dir(), &[b"grants.auditors".to_vec()]).is_empty());
    assert!(
        s.ok(&["get", "configmap", "named", "-o", "yaml"])
            .contains("CMMARKER-3f1d0")
    );
    let (ok, out) = secrets(&s, "status", &[]);
    assert!(ok, "{out}");
    for resource in ["secrets", "configmaps", "cedarpolicies.policy.bulwark.dev"] {
        assert!(out.contains(resource), "{resource} missing: {out}");
    }
    let (ok, out) = secrets(&s, "verify", &[]);
    assert!(ok, "{out}");
    assert!(out.contains("cedarpolicies"), "{out}");
}

#[test]
fn rotation_under_concurrent_writes_loses_no_write() {
    let s = TestServer::start();
    let rt = runtime();
    let c = Arc::new(rt.block_on(client(&s)));
    // Enough values that the rotation's passes take a while, next to the writers.
    let count = 300;
    rt.block_on(async {
        for i in 0..count {
            let r = c
                .post_json(
                    SECRETS,
                    &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("s{i}")},
                        "data": {"v": b64(b"0")}}),
                )
                .await
                .unwrap();
            assert_eq!(r.status.as_u16(), 201);
        }
    });
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Writers: each owns five secrets and records the last value the server acknowledged.
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let c = Arc::clone(&c);
            let stop = Arc::clone(&stop);
            rt.spawn(async move {
                let mut last = std::collections::BTreeMap::new();
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || n < 20 {
                    n += 1;
                    let name = format!("s{}", w * 5 + (n % 5) as usize);
                    let value = format!("w{w}-{n}");
                    let r = c
                        .send(
                            Method::PATCH,
                            &format!("{SECRETS}/{name}"),
                            &[("content-type", "application/merge-patch+json")],
                            serde_json::to_vec(&json!({"data": {"v": b64(value.as_bytes())}}))
                                .unwrap(),
                        )
                        .await
                        .unwrap();
                    assert!(r.status.is_success(), "{}", r.json());
                    last.insert(name, value);
                }
                last
            })
        })
        .collect();
    let (ok, out) = secrets(&s, "rotate", &[]);
    assert!(ok, "{out}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut expected = std::collections::BTreeMap::new();
    for w in writers {
        expected.extend(rt.block_on(w).unwrap());
    }
    for (name, value) in &expected {
        assert_eq!(&secret_value(&s, name, "v"), value, "{name}");
    }
    let (ok, out) = secrets(&s, "verify", &[]);
    assert!(ok, "{out}");
    rt.block_on(async {
        let rotation = latest_rotation(&c).await;
        let keys = keys(&c).await;
        let target = rotation["targetKeyId"].as_str().unwrap();
        for k in &keys {
            let expected = if k["keyID"] == target { count } else { 0 };
            assert_eq!(k["objects"], expected, "{keys:?}");
        }
    });
}

#[test]
fn a_rotation_killed_with_the_server_resumes_and_completes() {
    let mut s = TestServer::start();
    let rt = runtime();
    let total = 1500;
    rt.block_on(async {
        let c = Arc::new(client(&s).await);
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let c = Arc::clone(&c);
                tokio::spawn(async move {
                    for i in (t..total).step_by(8) {
                        let r = c
                            .post_json(
                                SECRETS,
                                &json!({"apiVersion": "v1", "kind": "Secret",
                                    "metadata": {"name": format!("k{i}")},
                                    "stringData": {"v": format!("value-{i}")}}),
                            )
                            .await
                            .unwrap();
                        assert_eq!(r.status.as_u16(), 201, "{}", r.json());
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let name = rt.block_on(async {
        let c = client(&s).await;
        let r = start_rotation(&c).await;
        assert_eq!(r.status.as_u16(), 201, "{}", r.json());
        let name = r.json()["status"]["name"].as_str().unwrap().to_owned();
        // Kill once it is under way, before it is done.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = latest_rotation(&c).await;
            let rewritten = status["rewritten"].as_u64().unwrap();
            if rewritten > 0 {
                assert_eq!(
                    status["phase"], "Running",
                    "finished before the kill: {status}"
                );
                assert!(rewritten < total as u64, "{status}");
                break;
            }
            assert!(Instant::now() < deadline, "the rotation did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        name
    });
    s.restart(true);
    rt.block_on(async {
        let c = client(&s).await;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let status = latest_rotation(&c).await;
            assert_eq!(status["name"], name.as_str(), "{status}");
            if status["phase"] == "Retiring" || status["phase"] == "Complete" {
                break;
            }
            assert_ne!(status["phase"], "Failed", "{status}");
            assert!(
                Instant::now() < deadline,
                "the rotation did not resume: {status}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let status = latest_rotation(&c).await;
        let keys = keys(&c).await;
        for k in &keys {
            let expected = if k["keyID"] == status["targetKeyId"] {
                total
            } else {
                0
            };
            assert_eq!(k["objects"], expected, "{keys:?}");
        }
    });
    for i in [0, 1, total / 2, total - 1] {
        assert_eq!(
            secret_value(&s, &format!("k{i}"), "v"),
            format!("value-{i}")
        );
    }
    let (ok, out) = secrets(&s, "verify", &[]);
    assert!(ok, "{out}");
}

#[test]
fn old_keys_are_kept_while_needed_and_retired_after() {
    let s = TestServer::start_with(&["--history", "2s"]);
    for i in 0..20 {
        s.ok(&[
            "create",
            "secret",
            "generic",
            &format!("r{i}"),
            "--from-literal=v=x",
        ]);
    }
    let rt = runtime();
    rt.block_on(async {
        let c = client(&s).await;
        let old = keys(&c).await[0]["keyID"].as_str().unwrap().to_owned();
        // The primary key is not retired.
        let r = retire(&c, &old).await;
        assert_eq!(r.status.as_u16(), 409, "{}", r.json());
        assert!(
            r.json()["message"].as_str().unwrap().contains("primary"),
            "{}",
            r.json()
        );
        let r = start_rotation(&c).await;
        assert_eq!(r.status.as_u16(), 201);
        // While values or the rotation still need it, the old key stays.
        let r = retire(&c, &old).await;
        assert_eq!(r.status.as_u16(), 409, "{}", r.json());
        assert!(
            r.json()["message"]
                .as_str()
                .unwrap()
                .contains("cannot be retired"),
            "{}",
            r.json()
        );
        let key_file = s
            .data_dir()
            .join("encryption/local")
            .join(format!("{old}.key"));
        assert!(key_file.exists());
        // After the history window, it retires by itself and its file is gone.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = latest_rotation(&c).await;
            if status["phase"] == "Complete" {
                assert_eq!(status["retiredKeyIds"], json!([old]), "{status}");
                break;
            }
            assert!(Instant::now() < deadline, "not retired: {status}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(!key_file.exists());
        // The audit log holds the rotation's own actions and the configuration in force.
        eventually("the retirement in the audit log", || {
            let audit = s.audit_text();
            (
                audit.contains("\"verb\":\"retire\"") && audit.contains(old.as_str()),
                audit,
            )
        });
        let log = s.audit_text();
        assert!(log.contains("bulwark:encryption"), "no component events");
        assert!(log.contains("\"verb\":\"rotate\""), "no rotate event");
        assert!(
            log.contains("encryption.bulwark.dev/configuration"),
            "no configuration at start"
        );
        let retired = keys(&c)
            .await
            .into_iter()
            .find(|k| k["keyID"] == old.as_str())
            .unwrap();
        assert!(retired["retired"].is_string(), "{retired}");
    });
    let (ok, out) = secrets(&s, "verify", &[]);
    assert!(ok, "{out}");
    assert_eq!(secret_value(&s, "r3", "v"), "x");
}

#[test]
fn an_upstream_configuration_with_kms_v2_works_against_the_test_plugin() {
    let rt = runtime();
    let plugin_dir = tempfile::tempdir().unwrap();
    let socket = plugin_dir.path().join("kms.sock");
    let plugin = rt.block_on(TestPlugin::start(&socket)).unwrap();
    let config = plugin_dir.path().join("encryption.yaml");
    std::fs::write(
        &config,
        format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets, configmaps]\n    providers:\n      - kms:\n          apiVersion: v2\n          name: test-kms\n          endpoint: {}\n          timeout: 2s\n      - identity: {{}}\n",
            plugin.endpoint()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    // A configuration others can read is refused (it may hold keys).
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(plugin_dir.path().join("refused"))
        .arg("--encryption-provider-config")
        .arg(&config)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("chmod 600"));
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();

    let mut s = TestServer::start_with(&["--encryption-provider-config", config.to_str().unwrap()]);
    for i in 0..30 {
        s.ok(&[
            "create",
            "secret",
            "generic",
            &format!("kms{i}"),
            &format!("--from-literal=v=KMSMARKER-{i}-e41c"),
        ]);
    }
    s.ok(&[
        "create",
        "configmap",
        "kmscm",
        "--from-literal=v=KMSCM-77d1",
    ]);
    let needles: Vec<Vec<u8>> = (0..30)
        .flat_map(|i| encodings(&format!("KMSMARKER-{i}-e41c")))
        .chain(encodings("KMSCM-77d1"))
        .collect();
    let hits = files_containing(&s.data_dir(), &needles);
    assert!(hits.is_empty(), "{hits:?}");
    assert_eq!(secret_value(&s, "kms7", "v"), "KMSMARKER-7-e41c");
    // One seed wrapped for all those writes.
    assert!(
        plugin.calls("encrypt") <= 2,
        "{} encrypt calls",
        plugin.calls("encrypt")
    );
    let (ok, out) = secrets(&s, "status", &[]);
    assert!(
        ok && out.contains("test-kms") && out.contains("kms"),
        "{out}"
    );
    let (ok, out) = secrets(&s, "verify", &[]);
    assert!(ok, "{out}");

    // A new key in the KMS: rotation rewrites everything under it.
    let new_key = plugin.rotate();
    let (ok, out) = secrets(&s, "rotate", &[]);
    assert!(ok, "{out}");
    rt.block_on(async {
        let c = client(&s).await;
        let keys = keys(&c).await;
        let current = keys
            .iter()
            .find(|k| k["keyID"] == new_key.as_str())
            .unwrap();
        assert_eq!(current["objects"], 31, "{keys:?}");
        assert_eq!(current["primary"], true);
    });

    // The plugin goes down: what is cached keeps working.
    plugin.set(Behaviour::Down);
    assert_eq!(secret_value(&s, "kms3", "v"), "KMSMARKER-3-e41c");
    s.ok(&[
        "create",
        "secret",
        "generic",
        "while-down",
        "--from-literal=v=x",
    ]);
    // A server that starts while it is down has no seed: writes fail with a 503 and
    // nothing is written; reads fail too (no seed to read with).
    s.restart(false);
    let out = s.kubectl(&[
        "create",
        "secret",
        "generic",
        "refused",
        "--from-literal=v=x",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ServiceUnavailable") || err.contains("unavailable"),
        "{err}"
    );
    assert!(!s.kubectl(&["get", "secret", "refused"]).status.success());
    let (ok, out) = secrets(&s, "status", &[]);
    assert!(ok && out.contains("NO"), "{out}");
    let metrics = s.ok(&["get", "--raw", "/metrics"]);
    assert!(
        metrics.contains("apiserver_envelope_encryption_provider_healthy{provider=\"test-kms\"} 0"),
        "{metrics}"
    );
    // Back up: writes and reads recover without a restart.
    plugin.set(Behaviour::Healthy);
    eventually("writes after the plugin is back", || {
        let out = s.kubectl(&[
            "create",
            "secret",
            "generic",
            "after",
            "--from-literal=v=back",
        ]);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    });
    assert_eq!(secret_value(&s, "after", "v"), "back");
    assert_eq!(secret_value(&s, "kms3", "v"), "KMSMARKER-3-e41c");
    plugin.stop();
}
