//! End-to-end: the real `bulwark server` binary driven by real kubectl, as a person would.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::server::TestServer;

const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      # Meets the restricted Pod Security profile, which Bulwark enforces by default.
      securityContext:
        runAsNonRoot: true
        seccompProfile:
          type: RuntimeDefault
      containers:
      - name: app
        image: registry.local/web:1
        ports:
        - containerPort: 80
        env:
        - name: MODE
          value: blue
        securityContext: &restricted
          allowPrivilegeEscalation: false
          capabilities:
            drop: [ALL]
      - name: sidecar
        image: registry.local/side:1
        securityContext: *restricted
"#;

fn write(server: &TestServer, name: &str, text: &str) -> String {
    let path = server.dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn deployment_lifecycle_with_kubectl() {
    let s = TestServer::start();
    let first = write(&s, "deploy.yaml", DEPLOYMENT);
    assert!(
        s.ok(&["apply", "-f", &first])
            .contains("deployment.apps/web created")
    );

    // Apply again, changed: strategic merge keeps merge keys, drops the removed container.
    let changed = DEPLOYMENT
        .replace("web:1", "web:2")
        .replace("replicas: 2", "replicas: 3")
        .replace(
            "      - name: sidecar\n        image: registry.local/side:1\n        securityContext: *restricted\n",
            "",
        );
    let second = write(&s, "deploy2.yaml", &changed);
    assert!(
        s.ok(&["apply", "-f", &second])
            .contains("deployment.apps/web configured")
    );
    let obj: serde_json::Value =
        serde_json::from_str(&s.ok(&["get", "deploy", "web", "-o", "json"])).unwrap();
    let containers = obj["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1, "{containers:?}");
    assert_eq!(containers[0]["image"], "registry.local/web:2");
    assert_eq!(containers[0]["env"][0]["value"], "blue");
    assert_eq!(obj["spec"]["replicas"], 3);
    assert_eq!(obj["metadata"]["generation"], 2);

    // Server-side Table.
    let table = s.ok(&["get", "deployments"]);
    assert!(
        table.contains("READY") && table.contains("UP-TO-DATE") && table.contains("AGE"),
        "{table}"
    );
    assert!(table.contains("0/3"), "{table}");
    let yaml = s.ok(&["get", "deploy", "web", "-o", "yaml"]);
    assert!(
        yaml.contains("image: registry.local/web:2") && !yaml.contains("sidecar"),
        "{yaml}"
    );

    // Replace (edit through a full PUT).
    let mut edited = obj.clone();
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.local/web:3".into();
    let replaced = write(&s, "replaced.json", &edited.to_string());
    assert!(s.ok(&["replace", "-f", &replaced]).contains("replaced"));
    // The same stale object again: optimistic concurrency says no.
    let stale = s.kubectl(&["replace", "-f", &replaced]);
    assert!(!stale.status.success());
    assert!(
        String::from_utf8_lossy(&stale.stderr).contains("the object has been modified"),
        "{}",
        String::from_utf8_lossy(&stale.stderr)
    );

    s.ok(&["label", "deploy", "web", "tier=front"]);
    s.ok(&["annotate", "deploy", "web", "owner=team-a"]);
    s.ok(&["scale", "deploy", "web", "--replicas=5"]);
    let fields = s.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas} {.metadata.labels.tier} {.metadata.annotations.owner} {.spec.template.spec.containers[0].image}"]);
    assert_eq!(fields, "5 front team-a registry.local/web:3");
    assert!(
        s.ok(&["get", "deploy", "-l", "tier=front", "-o", "name"])
            .contains("deployment.apps/web")
    );
    assert!(
        s.ok(&["get", "deploy", "-l", "tier in (back)", "-o", "name"])
            .trim()
            .is_empty()
    );

    assert!(s.ok(&["delete", "deploy", "web"]).contains("deleted"));
    let gone = s.kubectl(&["get", "deploy", "web"]);
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("NotFound"),
        "{}",
        String::from_utf8_lossy(&gone.stderr)
    );
}

#[test]
fn get_watch_sees_changes() {
    let s = TestServer::start();
    let mut watch = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .args(["get", "configmaps", "--watch", "--output-watch-events"])
        .env("HOME", s.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Give the watch time to start, then change things until all three events were seen.
    std::thread::sleep(Duration::from_millis(700));
    let cm = write(
        &s,
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: watched\ndata:\n  a: b\n",
    );
    s.ok(&["apply", "-f", &cm]);
    s.ok(&["label", "cm", "watched", "seen=yes"]);
    s.ok(&["delete", "cm", "watched"]);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < 3 && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200))
            && line.contains("watched")
        {
            // Table rows: EVENT NAME DATA AGE.
            let cells: Vec<&str> = line.split_whitespace().collect();
            seen.push(format!("{} {} {}", cells[0], cells[1], cells[2]));
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!(
        seen,
        ["ADDED watched 1", "MODIFIED watched 1", "DELETED watched 1"],
    );
}

#[test]
fn discovery_explain_and_access() {
    let s = TestServer::start();
    let resources = s.ok(&["api-resources"]);
    for needle in [
        "deployments",
        "deploy",
        "apps/v1",
        "certificatesigningrequests",
        "leases",
        "cronjobs",
    ] {
        assert!(
            resources.contains(needle),
            "{needle} missing from:\n{resources}"
        );
    }
    let explain = s.ok(&["explain", "deployment.spec.replicas"]);
    assert!(explain.contains("Number of desired pods"), "{explain}");
    // The Swagger 2.0 document in protobuf (what client-go's OpenAPISchema reads).
    let explain = s.ok(&[
        "explain",
        "deployment.spec.template.spec.containers",
        "--output=plaintext-openapiv2",
    ]);
    assert!(
        explain.contains("KIND:") && explain.contains("Deployment"),
        "{explain}"
    );
    assert!(explain.contains("imagePullPolicy"), "{explain}");
    let pod = write(
        &s,
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: solo\nspec:\n  securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}\n  containers:\n  - name: c\n    image: registry.local/x:1\n    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}\n",
    );
    s.ok(&["apply", "-f", &pod]);
    let pods = s.ok(&["get", "pods", "-o", "wide"]);
    let header: Vec<&str> = pods.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"],
        "{pods}"
    );
    assert!(pods.contains("0/1") && pods.contains("Pending"), "{pods}");
    let namespaces = s.ok(&["get", "namespaces"]);
    assert!(
        namespaces.contains("kube-system") && namespaces.contains("Active"),
        "{namespaces}"
    );
    assert!(s.ok(&["version"]).contains("Server Version"));

    // A person onboarded with `bulwark kubeconfig` is authenticated but, until policies grant
    // anything, denied (default deny): 403, not 401.
    let alice = s.dir.path().join("alice.kubeconfig");
    let out = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args([
            "kubeconfig",
            "--user",
            "alice",
            "--group",
            "dev",
            "--group",
            "ops",
            "--ttl",
            "1h",
            "--data-dir",
        ])
        .arg(s.data_dir())
        .arg("--out")
        .arg(&alice)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&alice).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let denied = s.kubectl_as(&alice, &["get", "configmaps"]);
    let err = String::from_utf8_lossy(&denied.stderr);
    assert!(
        err.contains("Forbidden")
            && err.contains("User \"alice\" cannot list resource \"configmaps\""),
        "{err}"
    );

    // Namespaced objects need an existing, Active namespace; deleting one marks it
    // Terminating (the namespace controller empties it later) and refuses new content.
    let ns = write(
        &s,
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: scratch\n",
    );
    let cm = write(
        &s,
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: scratch\n",
    );
    let missing = s.kubectl(&["apply", "-f", &cm]);
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("namespaces \"scratch\" not found"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    s.ok(&["apply", "-f", &ns]);
    s.ok(&["apply", "-f", &cm]);
    s.ok(&["delete", "namespace", "scratch", "--wait=false"]);
    assert!(
        s.ok(&["get", "namespace", "scratch"])
            .contains("Terminating")
    );
    let cm2 = write(
        &s,
        "cm2.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c2\n  namespace: scratch\n",
    );
    let refused = s.kubectl(&["apply", "-f", &cm2]);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("because it is being terminated"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let protected = s.kubectl(&["delete", "namespace", "kube-system", "--wait=false"]);
    assert!(
        String::from_utf8_lossy(&protected.stderr).contains("may not be deleted"),
        "{}",
        String::from_utf8_lossy(&protected.stderr)
    );
}

/// The typed `kubectl create` commands, `kubectl run` and `kubectl certificate approve`:
/// kubectl sends each as protobuf and reads protobuf back.
#[test]
fn typed_commands_send_protobuf() {
    let s = TestServer::start();
    let json = |args: &[&str]| -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&s.ok(&all)).unwrap()
    };
    assert!(
        s.ok(&["create", "namespace", "demo"])
            .contains("namespace/demo created")
    );
    // Workload templates are held to the namespace's Pod Security level (restricted unless
    // the namespace says otherwise): kubectl's bare templates need baseline.
    s.ok(&[
        "label",
        "namespace",
        "demo",
        "pod-security.kubernetes.io/enforce=baseline",
    ]);
    let n = ["-n", "demo"];
    let create = |args: &[&str]| {
        let mut all = vec!["create"];
        all.extend_from_slice(&n);
        all.extend_from_slice(args);
        let out = s.ok(&all);
        assert!(out.contains("created"), "{args:?}: {out}");
    };
    create(&["configmap", "cm", "--from-literal=colour=blue"]);
    create(&["secret", "generic", "pw", "--from-literal=password=hunter2"]);
    let key = s.dir.path().join("tls.key");
    let cert = s.dir.path().join("tls.crt");
    let issued = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=demo.example"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(issued.status.success());
    create(&[
        "secret",
        "tls",
        "web-tls",
        &format!("--cert={}", cert.display()),
        &format!("--key={}", key.display()),
    ]);
    create(&[
        "deployment",
        "web",
        "--image=registry.local/web:1",
        "--replicas=0",
    ]);
    create(&["job", "once", "--image=registry.local/job:1", "--", "true"]);
    create(&[
        "cronjob",
        "tick",
        "--image=registry.local/job:1",
        "--schedule=*/5 * * * *",
    ]);
    create(&["serviceaccount", "robot"]);
    create(&["role", "reader", "--verb=get,list", "--resource=pods"]);
    create(&[
        "rolebinding",
        "robot-reads",
        "--role=reader",
        "--serviceaccount=demo:robot",
    ]);
    create(&["quota", "small", "--hard=pods=10,requests.cpu=2"]);
    assert!(
        s.ok(&[
            "create",
            "clusterrole",
            "node-reader",
            "--verb=get",
            "--resource=nodes"
        ])
        .contains("created")
    );
    assert!(
        s.ok(&[
            "create",
            "priorityclass",
            "high",
            "--value=1000",
            "--description=important"
        ])
        .contains("created")
    );

    assert_eq!(
        json(&["get", "configmap", "cm", "-n", "demo"])["data"]["colour"],
        "blue"
    );
    let secret = json(&["get", "secret", "pw", "-n", "demo"]);
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(secret["data"]["password"], "aHVudGVyMg==");
    assert_eq!(
        json(&["get", "secret", "web-tls", "-n", "demo"])["type"],
        "kubernetes.io/tls"
    );
    // An explicit zero survives protobuf (a pointer field), and the defaults are filled in.
    let deploy = json(&["get", "deployment", "web", "-n", "demo"]);
    assert_eq!(deploy["spec"]["replicas"], 0);
    assert_eq!(deploy["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(
        json(&["get", "cronjob", "tick", "-n", "demo"])["spec"]["schedule"],
        "*/5 * * * *"
    );
    assert_eq!(
        json(&["get", "rolebinding", "robot-reads", "-n", "demo"])["subjects"][0]["name"],
        "robot"
    );
    assert_eq!(
        json(&["get", "quota", "small", "-n", "demo"])["spec"]["hard"]["pods"],
        "10"
    );
    let high = json(&["get", "priorityclass", "high"]);
    assert_eq!(high["value"], 1000);
    assert_eq!(high["preemptionPolicy"], "PreemptLowerPriority");
    let table = s.ok(&["get", "priorityclass", "high"]);
    assert!(table.contains("VALUE") && table.contains("1000"), "{table}");

    // A token for the service account (TokenRequest, as protobuf).
    let token = s.ok(&["create", "token", "robot", "-n", "demo"]);
    assert_eq!(token.trim().split('.').count(), 3, "{token}");

    // kubectl run, with an override that meets the restricted profile of `default`.
    let overrides = r#"{"apiVersion": "v1", "spec": {"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}}, "containers": [{"name": "hello", "image": "registry.local/hello:1", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]}}"#;
    let ran = s.ok(&[
        "run",
        "hello",
        "--image=registry.local/hello:1",
        "--restart=Never",
        &format!("--overrides={overrides}"),
    ]);
    assert!(ran.contains("pod/hello created"), "{ran}");
    let pod = json(&["get", "pod", "hello"]);
    assert_eq!(
        pod["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    // Without the override the restricted profile refuses it, with a readable reason.
    let refused = s.kubectl(&["run", "bare", "--image=registry.local/hello:1"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("allowPrivilegeEscalation"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // kubectl certificate approve (an UpdateApproval, as protobuf).
    let request = "bm90IGEgcmVhbCByZXF1ZXN0";
    let csr = format!(
        "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: node-csr\nspec:\n  request: {request}\n  signerName: kubernetes.io/kube-apiserver-client\n  usages: [client auth]\n"
    );
    let file = write(&s, "csr.yaml", &csr);
    s.ok(&["apply", "-f", &file]);
    assert!(
        s.ok(&["certificate", "approve", "node-csr"])
            .contains("approved")
    );
    let conditions = json(&["get", "csr", "node-csr"])["status"]["conditions"].clone();
    assert_eq!(conditions[0]["type"], "Approved", "{conditions}");
    let table = s.ok(&["get", "csr"]);
    assert!(table.contains("Approved"), "{table}");
}

/// Server-side apply as GitOps tools use it: create, co-own, conflict, force, remove,
/// server-side diff, and the upgrade from client-side apply.
#[test]
fn server_side_apply_with_kubectl() {
    let s = TestServer::start();
    let manifest = write(&s, "web.yaml", DEPLOYMENT);
    assert!(
        s.ok(&["apply", "--server-side", "-f", &manifest])
            .contains("deployment.apps/web serverside-applied")
    );
    let managers = |name: &str| {
        s.ok(&[
            "get",
            "deploy",
            name,
            "-o",
            "jsonpath={range .metadata.managedFields[*]}{.manager}/{.operation}/{.subresource} {end}",
        ])
    };
    assert_eq!(managers("web").trim(), "kubectl/Apply/");
    let fields = s.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.metadata.managedFields[0].fieldsV1}",
    ]);
    let fields: serde_json::Value = serde_json::from_str(&fields).unwrap();
    assert!(
        fields["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"]["f:image"]
            .is_object(),
        "{fields}"
    );

    // Another manager takes replicas; applying a different value conflicts, naming it.
    s.ok(&["scale", "deploy", "web", "--replicas=4"]);
    let conflict = s.kubectl(&["apply", "--server-side", "-f", &manifest]);
    assert!(!conflict.status.success());
    let text = String::from_utf8_lossy(&conflict.stderr);
    assert!(
        text.contains("Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\" using apps/v1: .spec.replicas"),
        "{text}"
    );
    assert!(
        s.ok(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            &manifest
        ])
        .contains("serverside-applied")
    );
    assert_eq!(
        s.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "2"
    );

    // The server-side diff (a dry-run apply) shows the change and changes nothing.
    let changed = write(
        &s,
        "web2.yaml",
        &DEPLOYMENT.replace("registry.local/web:1", "registry.local/web:2"),
    );
    let diff = s.kubectl(&["diff", "--server-side", "-f", &changed]);
    let out = String::from_utf8_lossy(&diff.stdout);
    assert_eq!(diff.status.code(), Some(1), "{out}");
    let line =
        |sign: char, text: &str| out.lines().any(|l| l.starts_with(sign) && l.contains(text));
    assert!(
        line('-', "image: registry.local/web:1") && line('+', "image: registry.local/web:2"),
        "{out}"
    );
    assert_eq!(
        s.ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}"
        ]),
        "registry.local/web:1"
    );

    // A field the manifest no longer sets is removed (the sidecar container here).
    let without_sidecar = write(
        &s,
        "web3.yaml",
        &DEPLOYMENT.replace(
            "      - name: sidecar\n        image: registry.local/side:1\n        securityContext: *restricted\n",
            "",
        ),
    );
    s.ok(&["apply", "--server-side", "-f", &without_sidecar]);
    assert_eq!(
        s.ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[*].name}"
        ]),
        "app"
    );

    // The upgrade from client-side apply: the same manifest applies server-side without
    // conflicts, and kubectl moves the client-side fields to its apply manager.
    let csa = write(
        &s,
        "csa.yaml",
        &DEPLOYMENT.replace("name: web\n", "name: csa\n"),
    );
    s.ok(&["apply", "-f", &csa]);
    assert_eq!(managers("csa").trim(), "kubectl-client-side-apply/Update/");
    s.ok(&["apply", "--server-side", "-f", &csa]);
    assert!(
        !managers("csa").contains("kubectl-client-side-apply"),
        "{}",
        managers("csa")
    );
    let scaled = write(
        &s,
        "csa2.yaml",
        &DEPLOYMENT
            .replace("name: web\n", "name: csa\n")
            .replace("replicas: 2", "replicas: 3"),
    );
    s.ok(&["apply", "--server-side", "-f", &scaled]);
    assert_eq!(
        s.ok(&["get", "deploy", "csa", "-o", "jsonpath={.spec.replicas}"]),
        "3"
    );
}
