//! Hostile clients against the real server: a tenant holding a grant for one namespace, and a
//! stranger with no certificate. Every case from the hostile-client review is replayed, and
//! the ones that already held: each gets its answer (a 4xx `Status`, or its connection
//! closed), the server stays up and keeps serving everyone else, and its memory stays bounded
//! (read from /proc; nothing here is timed).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::server::{TestServer, admin, apply, eventually, policy_manifest, run, user};
use base64::Engine as _;
use bulwark_client::{ApiClient, ClientResponse, Credentials};
use http::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// More than this much growth of the server's memory during one attack is a failure. The
/// attacks below would each need gigabytes on the old code; the bounded server needs a few
/// MiB for them.
const MEMORY_BUDGET_KIB: u64 = 256 * 1024;

fn status_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

fn assert_status(r: &ClientResponse, code: u16, reason: &str) {
    let body = r.json();
    assert_eq!(r.status.as_u16(), code, "{body}");
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["reason"], reason, "{body}");
}

/// The admin still gets an answer: the server is up and serving.
fn serving(s: &mut TestServer) {
    assert!(s.alive(), "the server died:\n{}", s.log());
    s.ok(&["get", "--raw", "/readyz"]);
}

const TENANT_POLICY: &str = r#"@id("alice.all") permit (principal == k8s::User::"alice", action, resource is k8s::Resource);"#;

/// A tenant with every right inside `team-a` (a namespace-confined grant, as in the review).
fn tenant(s: &TestServer) -> std::path::PathBuf {
    let admin = admin(s);
    let (ok, out) = apply(
        s,
        &admin,
        "team-a",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\n  namespace: team-a\ndata:\n  a: b\n",
    );
    assert!(ok, "{out}");
    let (ok, out) = apply(
        s,
        &admin,
        "alice-policy",
        &policy_manifest(
            "alice-team-a",
            "Authorization",
            Some("team-a"),
            None,
            TENANT_POLICY,
        ),
    );
    assert!(ok, "{out}");
    let alice = user(s, "alice", &[]);
    eventually("alice's grant is in force", || {
        run(s, &alice, &["-n", "team-a", "get", "configmap", "bomb"])
    });
    alice
}

/// `kubectl patch --type=json --patch-file` of ConfigMap `bomb` in `team-a` with `ops`, as
/// `who`.
fn json_patch_bomb(s: &TestServer, who: &std::path::Path, ops: &[Value]) -> (bool, String) {
    let file = s.dir.path().join("bomb.json");
    std::fs::write(&file, serde_json::to_vec(ops).unwrap()).unwrap();
    let file = file.to_str().unwrap();
    let args = [
        "-n",
        "team-a",
        "patch",
        "configmap",
        "bomb",
        "--type=json",
        "--patch-file",
        file,
    ];
    run(s, who, &args)
}

#[test]
fn a_tenant_cannot_exhaust_the_server_with_patches_or_pods() {
    let mut s = TestServer::start();
    let alice = tenant(&s);
    let before = s.rss_kib();

    // 1. The copy bomb: 24 copies doubling a 1 KB annotation map (16 GB if applied).
    let mut ops = vec![
        json!({"op": "add", "path": "/metadata/annotations", "value": {"a": "x".repeat(1000)}}),
    ];
    for i in 0..24 {
        ops.push(json!({"op": "copy", "from": "/metadata/annotations", "path": format!("/metadata/annotations/c{i}")}));
    }
    let (ok, out) = json_patch_bomb(&s, &alice, &ops);
    assert!(!ok, "{out}");
    assert!(
        out.contains("RequestEntityTooLarge") && out.contains("would copy more than the limit"),
        "{out}"
    );
    let grown = s.rss_kib().saturating_sub(before);
    assert!(
        grown < MEMORY_BUDGET_KIB,
        "the patch grew the server by {grown} KiB"
    );
    serving(&mut s);

    // 2. More operations than a JSON patch may have.
    let many: Vec<Value> = (0..10_001)
        .map(|_| json!({"op": "test", "path": "/data/a", "value": "b"}))
        .collect();
    let (ok, out) = json_patch_bomb(&s, &alice, &many);
    assert!(
        !ok && out.contains("maximum operations in a JSON patch is 10000"),
        "{out}"
    );

    // 3. A pod with more containers than admission will evaluate.
    let containers: Vec<Value> = (0..300)
        .map(|i| json!({"name": format!("c{i}"), "image": "registry.local/x:1"}))
        .collect();
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "wide", "namespace": "team-a"},
                     "spec": {"containers": containers}});
    let (ok, out) = apply(&s, &alice, "wide-pod", &pod.to_string());
    assert!(!ok, "{out}");
    assert!(out.contains("must have at most 256 containers"), "{out}");
    serving(&mut s);

    // Each refusal is counted by its limit and recorded on the request's audit event.
    let metrics = s.ok(&["get", "--raw", "/metrics"]);
    for limit in [
        "max-json-patch-copy-bytes",
        "max-json-patch-operations",
        "max-containers-per-pod",
    ] {
        assert!(
            metrics.contains(&format!(
                "bulwark_limit_refusals_total{{limit=\"{limit}\"}} 1"
            )),
            "{limit}:\n{metrics}"
        );
    }
    eventually("the refusals are audited", || {
        let audit = s.audit_text();
        let found = audit.lines().any(|l| {
            l.contains("\"limits.bulwark.dev/refused\":\"max-json-patch-copy-bytes\"")
                && l.contains("\"username\":\"alice\"")
        });
        (found, String::new())
    });
}

#[test]
fn a_namespace_grant_does_not_reach_the_namespace_itself() {
    let mut s = TestServer::start();
    let alice = tenant(&s);
    // The review's escape: relabel the namespace out of Pod Security, then run a privileged
    // pod with the host's root file system.
    let (ok, out) = run(
        &s,
        &alice,
        &[
            "label",
            "ns",
            "team-a",
            "pod-security.kubernetes.io/enforce=privileged",
        ],
    );
    assert!(!ok && out.contains("Forbidden"), "{out}");
    let (ok, out) = run(&s, &alice, &["delete", "ns", "team-a", "--dry-run=server"]);
    assert!(!ok && out.contains("Forbidden"), "{out}");
    let (ok, out) = run(&s, &alice, &["get", "ns", "team-a"]);
    assert!(!ok && out.contains("Forbidden"), "{out}");
    let labels = s.ok(&["get", "ns", "team-a", "-o", "jsonpath={.metadata.labels}"]);
    assert!(!labels.contains("privileged"), "{labels}");
    let privileged = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "root", "namespace": "team-a"},
        "spec": {"hostPID": true, "containers": [{"name": "c", "image": "registry.local/x:1",
                 "securityContext": {"privileged": true}, "volumeMounts": [{"name": "host", "mountPath": "/host"}]}],
                 "volumes": [{"name": "host", "hostPath": {"path": "/"}}]}});
    let (ok, out) = apply(&s, &alice, "root-pod", &privileged.to_string());
    assert!(!ok, "{out}");
    // Inside the namespace the grant still works.
    let (ok, out) = run(&s, &alice, &["-n", "team-a", "get", "configmaps"]);
    assert!(ok, "{out}");
    serving(&mut s);
}

#[test]
fn impersonation_and_approval_checks_hold() {
    let mut s = TestServer::start();
    let admin = admin(&s);
    // A guardrail on impersonating service accounts of namespaces labelled tier=system.
    let (ok, out) = apply(
        &s,
        &admin,
        "namespaces",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: infra\n  labels:\n    tier: system\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: apps\n",
    );
    assert!(ok, "{out}");
    let (ok, out) = apply(
        &s,
        &admin,
        "guard",
        &policy_manifest(
            "no-system-sa-impersonation",
            "Authorization",
            None,
            None,
            r#"@id("guard.no-system-sa") forbid (principal, action == k8s::Action::"impersonate", resource is k8s::Resource)
when { resource.resource == "serviceaccounts" && resource.hasTag("tier") && resource.getTag("tier") == "system" };
@id("ops.impersonate") permit (principal in k8s::Group::"ops", action == k8s::Action::"impersonate", resource);
@id("csr.approver") permit (principal == k8s::User::"carol", action in [k8s::Action::"get", k8s::Action::"list", k8s::Action::"update"], resource is k8s::Resource)
when { resource.apiGroup == "certificates.k8s.io" && resource.resource == "certificatesigningrequests" };"#,
        ),
    );
    assert!(ok, "{out}");
    let bob = user(&s, "bob", &["ops"]);
    eventually("the guardrail is in force", || {
        let (_, out) = run(
            &s,
            &bob,
            &[
                "--as",
                "system:serviceaccount:infra:robot",
                "get",
                "pods",
                "-n",
                "infra",
            ],
        );
        (out.contains("guard.no-system-sa"), out)
    });
    // Impersonating an account of an unlabelled namespace gets past impersonation (and is
    // then judged as that account: it may do nothing).
    let (_, out) = run(
        &s,
        &bob,
        &[
            "--as",
            "system:serviceaccount:apps:robot",
            "get",
            "pods",
            "-n",
            "apps",
        ],
    );
    assert!(
        out.contains("User \"system:serviceaccount:apps:robot\" cannot list"),
        "{out}"
    );

    // CSR approval: update on the approval subresource is not enough without approve on the
    // signer; and a denied request never becomes approved.
    let request = base64::engine::general_purpose::STANDARD.encode("not a real request");
    let csr = format!(
        "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: node-csr\nspec:\n  request: {request}\n  signerName: kubernetes.io/kube-apiserver-client\n  usages: [client auth]\n"
    );
    let (ok, out) = apply(&s, &admin, "csr", &csr);
    assert!(ok, "{out}");
    let carol = user(&s, "carol", &[]);
    eventually("carol may read CSRs", || {
        run(&s, &carol, &["get", "csr", "node-csr"])
    });
    // What `kubectl certificate approve|deny` sends (as protobuf; here as JSON, so a test can
    // also drop the other conditions): the CSR with one more condition, PUT to /approval.
    let decide = |who: &std::path::Path, condition: &str, drop_others: bool| {
        let mut csr: Value =
            serde_json::from_str(&s.ok(&["get", "csr", "node-csr", "-o", "json"])).unwrap();
        let entry = json!({"type": condition, "status": "True", "reason": "Test", "message": "by the test"});
        let conditions = csr["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut next = if drop_others { Vec::new() } else { conditions };
        next.push(entry);
        csr["status"]["conditions"] = Value::Array(next);
        let file = s.dir.path().join(format!("{condition}.json"));
        std::fs::write(&file, csr.to_string()).unwrap();
        run(
            &s,
            who,
            &[
                "replace",
                "--raw",
                "/apis/certificates.k8s.io/v1/certificatesigningrequests/node-csr/approval",
                "-f",
                file.to_str().unwrap(),
            ],
        )
    };
    let (ok, out) = decide(&carol, "Approved", false);
    assert!(!ok, "{out}");
    assert!(
        out.contains("user not permitted to approve requests with signerName"),
        "{out}"
    );
    let (ok, out) = decide(&admin, "Denied", false);
    assert!(ok, "{out}");
    // Denied, then approved instead: refused, and so is approving next to the denial.
    let (ok, out) = decide(&admin, "Approved", true);
    assert!(!ok, "{out}");
    assert!(out.contains("may not remove a condition of type"), "{out}");
    let (ok, out) = decide(&admin, "Approved", false);
    assert!(!ok && out.contains("mutually exclusive"), "{out}");
    serving(&mut s);
}

/// A client that speaks HTTP/1.1 over TLS from `source`, with or without the admin's
/// certificate, to send what no well-behaved client would.
async fn raw_tls(
    s: &TestServer,
    source: IpAddr,
    with_cert: bool,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let creds = s.credentials();
    let client = with_cert.then_some((creds.cert_pem.as_str(), &creds.key_pem));
    let mut config = bulwark_pki::tls::client_config(&creds.ca_pem, client).unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = connect_from(s, source).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap()
}

fn server_addr(s: &TestServer) -> SocketAddr {
    s.url.strip_prefix("https://").unwrap().parse().unwrap()
}

async fn connect_from(s: &TestServer, source: IpAddr) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(server_addr(s)).await
}

/// Reads until the server closes the connection (or `limit` passes); returns what came.
async fn read_until_closed<R: tokio::io::AsyncRead + Unpin>(
    stream: &mut R,
    limit: Duration,
) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let read = tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| out)
}

/// The answer of [`raw_request`] is a `Status` of `code` and `reason`.
fn assert_raw_status((got, body): (u16, Value), code: u16, reason: &str) {
    assert_eq!(
        (got, body["reason"].as_str()),
        (code, Some(reason)),
        "{body}"
    );
}

/// One request over raw HTTP/1.1 (the connection closes after it); the response's status
/// line code and body.
async fn raw_request(s: &TestServer, with_cert: bool, head: &str, body: &[u8]) -> (u16, Value) {
    let mut tls = raw_tls(s, "127.0.0.1".parse().unwrap(), with_cert).await;
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(body).await.unwrap();
    let response = read_until_closed(&mut tls, Duration::from_secs(60))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&response);
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    // A chunked body: the JSON object is the part between the first '{' and the last '}'.
    let json = match (body.find('{'), body.rfind('}')) {
        (Some(a), Some(b)) if a < b => status_of(&body[a..=b]),
        _ => Value::Null,
    };
    (code, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_status_answers() {
    let mut s = TestServer::start_with(&["--body-read-timeout", "2s"]);
    let c = ApiClient::builder(&s.credentials())
        .connect()
        .await
        .unwrap();

    // Request targets and headers over the limits: 414 and 431 with Status bodies, over
    // HTTP/2 and HTTP/1.1 alike.
    let long = format!("/api/v1/namespaces?labelSelector={}", "a".repeat(20_000));
    assert_status(&c.get(&long).await.unwrap(), 414, "RequestURITooLong");
    let big = "v".repeat(8_000);
    let headers: Vec<(String, String)> = (0..10)
        .map(|i| (format!("x-big-{i}"), big.clone()))
        .collect();
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let r = c
        .send(Method::GET, "/api/v1/namespaces", &refs, Vec::new())
        .await
        .unwrap();
    assert_status(&r, 431, "RequestHeaderFieldsTooLarge");
    assert_raw_status(
        raw_request(
            &s,
            true,
            &format!("GET {long} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
            b"",
        )
        .await,
        414,
        "RequestURITooLong",
    );
    // (Beyond 100 headers hyper itself refuses an HTTP/1.1 head, with a bare 431.)
    let flood: String = (0..10).map(|i| format!("x-h{i}: {big}\r\n")).collect();
    assert_raw_status(
        raw_request(
            &s,
            true,
            &format!("GET /api HTTP/1.1\r\nHost: localhost\r\n{flood}Connection: close\r\n\r\n"),
            b"",
        )
        .await,
        431,
        "RequestHeaderFieldsTooLarge",
    );

    // A body sent too slowly: 408 once the body read timeout passes.
    let slow = "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n";
    let answer = raw_request(&s, true, slow, b"{\"metadata\"").await;
    assert_raw_status(answer, 408, "Timeout");

    // Smuggling: both Content-Length and Transfer-Encoding is refused by the HTTP layer.
    let (code, _) = raw_request(
        &s,
        true,
        "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\nGET /api HTTP/1.1\r\n\r\n",
        b"",
    )
    .await;
    assert_eq!(code, 400);

    // Forged service-account tokens: alg none and a tampered signature.
    let none = format!(
        "{}.{}.",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"x"}"#),
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"sub":"system:serviceaccount:kube-system:admin"}"#)
    );
    for token in [none.as_str(), "a.b.c", "e30.e30.AAAA"] {
        let head = format!(
            "GET /api/v1/namespaces HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        );
        let answer = raw_request(&s, false, &head, b"").await;
        assert_raw_status(answer, 401, "Unauthorized");
    }

    // Deeply nested and oversized bodies.
    let deep = "[".repeat(100_000) + &"]".repeat(100_000);
    let r = c
        .send(
            Method::POST,
            "/api/v1/namespaces/default/configmaps",
            &[("content-type", "application/json")],
            deep.into_bytes(),
        )
        .await
        .unwrap();
    assert_status(&r, 400, "BadRequest");
    let huge = vec![b' '; 4 * 1024 * 1024];
    let r = c
        .send(
            Method::POST,
            "/api/v1/namespaces/default/configmaps",
            &[("content-type", "application/json")],
            huge,
        )
        .await
        .unwrap();
    assert_status(&r, 413, "RequestEntityTooLarge");

    // A Secret whose value is in the wrong shape: the error names the field, never the value,
    // in the answer and in the audit log.
    let r = c
        .post_json(
            "/api/v1/namespaces/default/secrets",
            &json!({"metadata": {"name": "s"}, "stringData": {"password": 8_675_309_123_u64}}),
        )
        .await
        .unwrap();
    assert_status(&r, 400, "BadRequest");
    let message = r.json()["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("stringData.password: invalid type: integer"),
        "{message}"
    );
    assert!(!message.contains("8675309123"), "{message}");

    // A stale status write is a conflict, not a lost update.
    let svc = c
        .post_json(
            "/api/v1/namespaces/default/services",
            &json!({"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}),
        )
        .await
        .unwrap();
    assert_eq!(svc.status.as_u16(), 201, "{}", svc.json());
    let mut stale = svc.json();
    let mut fresh = stale.clone();
    fresh["status"] = json!({"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}});
    let r = c
        .send(
            Method::PUT,
            "/api/v1/namespaces/default/services/web/status",
            &[("content-type", "application/json")],
            serde_json::to_vec(&fresh).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status.as_u16(), 200, "{}", r.json());
    stale["status"] = json!({"loadBalancer": {"ingress": [{"ip": "10.9.9.9"}]}});
    let r = c
        .send(
            Method::PUT,
            "/api/v1/namespaces/default/services/web/status",
            &[("content-type", "application/json")],
            serde_json::to_vec(&stale).unwrap(),
        )
        .await
        .unwrap();
    assert_status(&r, 409, "Conflict");
    let now = c
        .get("/api/v1/namespaces/default/services/web")
        .await
        .unwrap()
        .json();
    assert_eq!(
        now["status"]["loadBalancer"]["ingress"][0]["ip"],
        "10.0.0.1"
    );

    // deletecollection with the dry run in its DeleteOptions body deletes nothing.
    for i in 0..3 {
        let r = c
            .post_json(
                "/api/v1/namespaces/default/configmaps",
                &json!({"metadata": {"name": format!("keep-{i}"), "labels": {"set": "keep"}}}),
            )
            .await
            .unwrap();
        assert_eq!(r.status.as_u16(), 201);
    }
    let r = c
        .send(
            Method::DELETE,
            "/api/v1/namespaces/default/configmaps?labelSelector=set%3Dkeep",
            &[("content-type", "application/json")],
            serde_json::to_vec(
                &json!({"kind": "DeleteOptions", "apiVersion": "v1", "dryRun": ["All"]}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status.as_u16(), 200, "{}", r.json());
    let left = c
        .get("/api/v1/namespaces/default/configmaps?labelSelector=set%3Dkeep")
        .await
        .unwrap()
        .json();
    assert_eq!(left["items"].as_array().unwrap().len(), 3, "{left}");

    serving(&mut s);
    let audit = s.audit_text();
    assert!(
        !audit.contains("8675309123"),
        "a secret's value reached the audit log"
    );
}

/// A GET as the admin on a new connection; its status code.
async fn admin_get(s: &TestServer, path: &str) -> u16 {
    let c = ApiClient::builder(&s.credentials())
        .connect()
        .await
        .unwrap();
    c.get(path).await.unwrap().status.as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_cannot_hold_or_flood_connections() {
    let mut s = TestServer::start_with(&[
        "--max-connections-per-source",
        "40",
        "--first-request-timeout",
        "5s",
        "--idle-connection-timeout",
        "3s",
    ]);
    let stranger: IpAddr = "127.0.0.2".parse().unwrap();
    let before = s.rss_kib();

    // 40 strangers complete the handshake without a certificate and send nothing.
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(raw_tls(&s, stranger, false).await);
    }
    // The 41st connection from that address is closed at once, before TLS.
    let mut extra = connect_from(&s, stranger).await.unwrap();
    let closed = read_until_closed(&mut extra, Duration::from_secs(30)).await;
    assert_eq!(
        closed,
        Some(Vec::new()),
        "the connection over the cap was not closed"
    );
    // Everyone else is still served meanwhile (another source address).
    let admin = ApiClient::builder(&s.credentials())
        .connect()
        .await
        .unwrap();
    assert_eq!(
        admin
            .get("/api/v1/namespaces")
            .await
            .unwrap()
            .status
            .as_u16(),
        200
    );
    // The idle strangers are closed without a request (first-request timeout).
    for mut conn in idle {
        let got = read_until_closed(&mut conn, Duration::from_secs(60)).await;
        assert!(
            got.is_some(),
            "an idle unauthenticated connection stayed open"
        );
    }
    // So the address may connect again.
    let again = raw_tls(&s, stranger, false).await;
    drop(again);

    // Slowloris: request heads trickled in a byte at a time do not stop anyone else.
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut conn = raw_tls(&s, stranger, false).await;
        conn.write_all(b"GET /api HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(conn);
    }
    for conn in &mut slow {
        conn.write_all(b"X").await.unwrap();
    }
    assert_eq!(admin_get(&s, "/version").await, 200);
    drop(slow);

    // HTTP/2 rapid reset: streams opened and cancelled at once, many times over.
    let resets = ApiClient::builder(&s.credentials())
        .dangerous()
        .without_client_cert()
        .connect()
        .await
        .unwrap();
    for _ in 0..2_000 {
        let request = resets.get("/api/v1/namespaces");
        // Polled once (the stream is opened), then dropped (the stream is reset).
        let _ = tokio::time::timeout(Duration::from_micros(1), request).await;
    }
    assert_eq!(admin_get(&s, "/version").await, 200);

    // An authenticated connection with nothing in flight is closed after the idle timeout.
    let idle_admin = ApiClient::builder(&s.credentials())
        .connect()
        .await
        .unwrap();
    assert_eq!(
        idle_admin.get("/version").await.unwrap().status.as_u16(),
        200
    );
    let mut waited = Duration::ZERO;
    while idle_admin.get("/version").await.is_ok() && waited < Duration::from_secs(60) {
        // Requests keep it busy; the loop only ends when one finds it closed.
        tokio::time::sleep(Duration::from_secs(4)).await;
        waited += Duration::from_secs(4);
    }
    assert!(
        waited < Duration::from_secs(60),
        "an idle connection was never closed"
    );

    let grown = s.rss_kib().saturating_sub(before);
    assert!(
        grown < MEMORY_BUDGET_KIB,
        "strangers grew the server by {grown} KiB"
    );
    let metrics = ApiClient::builder(&s.credentials())
        .connect()
        .await
        .unwrap()
        .get("/metrics")
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&metrics.body).into_owned();
    for limit in [
        "max-connections-per-source",
        "first-request-timeout",
        "idle-connection-timeout",
    ] {
        let line = text
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    "bulwark_limit_refusals_total{{limit=\"{limit}\"}}"
                ))
            })
            .unwrap_or_default();
        let n: u64 = line
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(n >= 1, "{limit} never counted:\n{text}");
    }
    serving(&mut s);
    // Connection refusals are summarised in the audit log (at latest when the server stops).
    assert!(s.stop().success());
    let audit = s.audit_text();
    let summary = audit
        .lines()
        .find(|l| l.contains("\"verb\":\"refuse-connections\""))
        .unwrap_or_else(|| panic!("no refusal summary in the audit log"));
    assert!(summary.contains("127.0.0.2="), "{summary}");
    assert!(summary.contains("max-connections-per-source="), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_that_do_not_read_stay_cheap_and_are_ended() {
    let mut s = TestServer::start_with(&["--write-stall-timeout", "2s"]);
    let creds: Credentials = s.credentials();
    let c = ApiClient::builder(&creds).connect().await.unwrap();
    // 8 MB of ConfigMaps in one namespace.
    let r = c
        .post_json("/api/v1/namespaces", &json!({"metadata": {"name": "big"}}))
        .await
        .unwrap();
    assert_eq!(r.status.as_u16(), 201);
    for i in 0..80 {
        let r = c
            .post_json(
                "/api/v1/namespaces/big/configmaps",
                &json!({"metadata": {"name": format!("cm-{i:03}")}, "data": {"k": "x".repeat(100_000)}}),
            )
            .await
            .unwrap();
        assert_eq!(r.status.as_u16(), 201);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = s.rss_kib();

    // 300 watchers of the whole namespace over 4 HTTP/2 connections, none of them reading.
    // Each used to build the 8 MB initial state in memory (2.4 GB here).
    let mut conns = Vec::new();
    for _ in 0..4 {
        conns.push(ApiClient::builder(&creds).connect().await.unwrap());
    }
    let mut stalled = Vec::new();
    for i in 0..300 {
        let response = conns[i % 4]
            .stream(Method::GET, "/api/v1/namespaces/big/configmaps?watch=1")
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        stalled.push(response);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let grown = s.rss_kib().saturating_sub(before);
    assert!(
        grown < MEMORY_BUDGET_KIB,
        "300 stalled watchers grew the server by {grown} KiB"
    );
    assert_eq!(c.get("/version").await.unwrap().status.as_u16(), 200);
    drop(stalled);

    // A watcher on HTTP/1.1 that never reads is closed once its writes stall.
    let mut tls = raw_tls(&s, "127.0.0.1".parse().unwrap(), true).await;
    tls.write_all(
        b"GET /api/v1/namespaces/big/configmaps?watch=1 HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let got = read_until_closed(&mut tls, Duration::from_secs(60)).await;
    let got = got.expect("a stalled watcher's connection was never closed");
    assert!(
        got.len() < 8_000_000,
        "the whole initial state was sent to a stalled reader"
    );

    // Watches are capped per user.
    let mut capped = TestServer::start_with(&["--max-watches-per-user", "3"]);
    let cc = ApiClient::builder(&capped.credentials())
        .connect()
        .await
        .unwrap();
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(
            cc.stream(Method::GET, "/api/v1/namespaces/default/configmaps?watch=1")
                .await
                .unwrap(),
        );
    }
    let r = cc
        .get("/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1")
        .await
        .unwrap();
    assert_status(&r, 429, "TooManyRequests");
    drop(open);
    serving(&mut capped);
    serving(&mut s);
}

#[test]
fn issued_client_certificates_verify_against_the_cluster_ca() {
    let s = TestServer::start();
    let alice = user(&s, "alice", &["dev"]);
    let kubeconfig: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&alice).unwrap()).unwrap();
    let cert = kubeconfig["users"][0]["user"]["client-certificate-data"]
        .as_str()
        .unwrap();
    let cert = base64::engine::general_purpose::STANDARD
        .decode(cert)
        .unwrap();
    let cert_file = s.dir.path().join("alice.crt");
    std::fs::write(&cert_file, cert).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(s.data_dir().join("pki").join("ca.crt"))
        .arg(&cert_file)
        .output()
        .expect("openssl (scripts/deps installs it)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
