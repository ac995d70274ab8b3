//! Cedar admission in the real server, driven with kubectl: the shipped Pod Security
//! Standards (restricted by default, kube-system privileged, the namespace label choosing),
//! pod templates in workloads, the three modes (a warn-mode policy admits with a warning that
//! kubectl prints), policies on other kinds that read the old object, and admission policies
//! refused at acceptance (validator messages, permits, guardrail permission).

use crate::server::{TestServer, admin, apply, eventually, policy_manifest, run, user};

const PRIVILEGED_POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: root\n  namespace: NS\nspec:\n  containers:\n  - name: shell\n    image: registry.local/busybox:1\n    securityContext:\n      privileged: true\n";

const BARE_POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bare\n  namespace: NS\nspec:\n  containers:\n  - name: app\n    image: registry.local/busybox:1\n";

const PRIVILEGED_DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: agent
  namespace: NS
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: agent
        image: registry.local/agent:1
        securityContext:
          privileged: true
          allowPrivilegeEscalation: false
          capabilities: {drop: [ALL]}
"#;

fn in_ns(template: &str, ns: &str) -> String {
    template.replace("NS", ns)
}

#[test]
fn pod_security_is_enforced_by_default() {
    let s = TestServer::start();
    let root = admin(&s);
    let (ok, text) = apply(
        &s,
        &root,
        "namespaces",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: apps\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: legacy\n  labels:\n    pod-security.kubernetes.io/enforce: baseline\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: tools\n  labels:\n    pod-security.kubernetes.io/enforce: privileged\n",
    );
    assert!(ok, "{text}");

    // The shipped profiles are an object like any other.
    let (ok, text) = run(&s, &root, &["get", "cedarpolicies"]);
    assert!(
        ok && text.contains("bulwark-pod-security") && text.contains("Admission"),
        "{text}"
    );

    // Restricted by default: a privileged pod is denied, naming the policy and its reason;
    // even the bootstrap admin is subject to it.
    let (ok, text) = apply(&s, &root, "priv-apps", &in_ns(PRIVILEGED_POD, "apps"));
    assert!(!ok, "{text}");
    assert!(
        text.contains("pods \"root\" is forbidden")
            && text.contains("pss.baseline.privileged (container \"shell\")")
            && text.contains("privileged containers are not allowed"),
        "{text}"
    );
    // A Deployment with a privileged template is denied before any pod exists.
    let (ok, text) = apply(
        &s,
        &root,
        "deploy-apps",
        &in_ns(PRIVILEGED_DEPLOYMENT, "apps"),
    );
    assert!(!ok, "{text}");
    assert!(
        text.contains("deployments.apps \"agent\" is forbidden")
            || text.contains("deployments \"agent\" is forbidden"),
        "{text}"
    );
    assert!(
        text.contains("pss.baseline.privileged (container \"agent\")"),
        "{text}"
    );
    let (_, listed) = run(&s, &root, &["get", "deploy", "-n", "apps"]);
    assert!(!listed.contains("agent"), "{listed}");
    // A bare pod fails restricted, not baseline.
    let (ok, text) = apply(&s, &root, "bare-apps", &in_ns(BARE_POD, "apps"));
    assert!(
        !ok && text.contains("pss.restricted.run-as-non-root"),
        "{text}"
    );
    assert!(!text.contains("pss.baseline."), "{text}");

    // The namespace label chooses the level.
    let (ok, text) = apply(&s, &root, "bare-legacy", &in_ns(BARE_POD, "legacy"));
    assert!(ok, "{text}");
    let (ok, text) = apply(&s, &root, "priv-legacy", &in_ns(PRIVILEGED_POD, "legacy"));
    assert!(!ok && text.contains("pss.baseline.privileged"), "{text}");
    let (ok, text) = apply(&s, &root, "priv-tools", &in_ns(PRIVILEGED_POD, "tools"));
    assert!(ok, "{text}");
    // kube-system is privileged unless labelled otherwise.
    let (ok, text) = apply(
        &s,
        &root,
        "deploy-system",
        &in_ns(PRIVILEGED_DEPLOYMENT, "kube-system"),
    );
    assert!(ok, "{text}");
    // Relabelling a namespace takes effect for the next write.
    let (ok, text) = run(
        &s,
        &root,
        &[
            "label",
            "ns",
            "legacy",
            "pod-security.kubernetes.io/enforce=restricted",
            "--overwrite",
        ],
    );
    assert!(ok, "{text}");
    eventually("restricted after relabel", || {
        let (ok, text) = apply(
            &s,
            &root,
            "bare-legacy-2",
            &in_ns(BARE_POD, "legacy").replace("name: bare", "name: bare2"),
        );
        (!ok && text.contains("pss.restricted."), text)
    });

    // Rolling the profiles out in Warn mode first: violations are admitted with warnings
    // that kubectl prints.
    let (ok, text) = run(
        &s,
        &root,
        &[
            "patch",
            "cedarpolicy",
            "bulwark-pod-security",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"mode":"Warn"}}"#,
        ],
    );
    assert!(ok, "{text}");
    eventually("warn mode in force", || {
        let (ok, text) = apply(&s, &root, "priv-apps-warn", &in_ns(PRIVILEGED_POD, "apps"));
        (
            ok && text.contains(
                "Warning: admission policy pss.baseline.privileged (container \"shell\")",
            ),
            text,
        )
    });
    let (ok, text) = run(&s, &root, &["get", "pod", "root", "-n", "apps"]);
    assert!(ok, "{text}");
}

#[test]
fn admission_policies_in_every_mode() {
    let s = TestServer::start();
    let root = admin(&s);
    // An enforced policy on ConfigMaps that reads the old object: the owner label, once set,
    // may not be removed.
    let keep_owner = r#"@id("configmaps.keep-owner")
@reason("the owner label may not be removed")
forbid (principal, action == k8s::admission::Action::"update", resource is k8s::core::v1::ConfigMap)
when {
  resource has oldObject && resource.oldObject.metadata has labels &&
  resource.oldObject.metadata.labels.keys.contains("owner") &&
  !(resource.metadata has labels && resource.metadata.labels.keys.contains("owner"))
};"#;
    let (ok, text) = apply(
        &s,
        &root,
        "keep-owner",
        &policy_manifest("keep-owner", "Admission", None, None, keep_owner),
    );
    assert!(ok, "{text}");
    // A warn-mode policy: every ConfigMap should say which team owns it.
    let team_label = r#"@id("configmaps.team-label")
@reason("configmaps should carry a team label")
forbid (principal, action in [k8s::admission::Action::"create", k8s::admission::Action::"update"], resource is k8s::core::v1::ConfigMap)
unless { resource.metadata has labels && resource.metadata.labels.keys.contains("team") };"#;
    let (ok, text) = apply(
        &s,
        &root,
        "team-label",
        &policy_manifest("team-label", "Admission", None, Some("Warn"), team_label),
    );
    assert!(ok, "{text}");
    // An audit-mode policy: recorded, never shown.
    let audit = r#"@id("configmaps.audit-all")
@reason("every configmap write is recorded")
forbid (principal, action, resource is k8s::core::v1::ConfigMap);"#;
    let (ok, text) = apply(
        &s,
        &root,
        "audit-all",
        &policy_manifest("audit-all", "Admission", None, Some("Audit"), audit),
    );
    assert!(ok, "{text}");
    eventually("team-label loaded", || {
        let (ok, text) = run(
            &s,
            &root,
            &[
                "get",
                "cedarpolicy",
                "team-label",
                "-o",
                "jsonpath={.status.conditions[0].status}",
            ],
        );
        (ok && text.trim() == "True", text)
    });

    let (ok, text) = apply(
        &s,
        &root,
        "settings",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: b\n",
    );
    assert!(ok, "{text}");
    assert!(
        text.contains("Warning: admission policy configmaps.team-label (the object): configmaps should carry a team label"),
        "{text}"
    );
    assert!(!text.contains("audit-all"), "{text}");
    let (ok, text) = run(
        &s,
        &root,
        &["label", "configmap", "settings", "team=a", "owner=alice"],
    );
    assert!(ok && !text.contains("Warning"), "{text}");
    let (ok, text) = run(&s, &root, &["label", "configmap", "settings", "owner-"]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("configmaps.keep-owner (the object): the owner label may not be removed"),
        "{text}"
    );
    eventually("audit hit logged", || {
        let log = s.log();
        (
            log.contains("audit-mode admission policy hit") && log.contains("configmaps.audit-all"),
            String::new(),
        )
    });
    // …and on the request's audit event.
    eventually("audit hit in the audit log", || {
        let mut log = String::new();
        for entry in std::fs::read_dir(s.data_dir().join("audit")).unwrap() {
            log.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default());
        }
        (
            log.lines().any(|l| {
                l.contains("admission.bulwark.dev/audit") && l.contains("configmaps.audit-all")
            }),
            String::new(),
        )
    });
    // Deleting the enforced policy lifts it.
    let (ok, text) = run(&s, &root, &["delete", "cedarpolicy", "keep-owner"]);
    assert!(ok, "{text}");
    eventually("keep-owner lifted", || {
        run(&s, &root, &["label", "configmap", "settings", "owner-"])
    });
}

#[test]
fn admission_policies_are_refused_with_reasons() {
    let s = TestServer::start();
    let root = admin(&s);
    let refused = |name: &str, text: &str, mode: Option<&str>| {
        let (ok, out) = apply(
            &s,
            &root,
            name,
            &policy_manifest(name, "Admission", None, mode, text),
        );
        assert!(!ok, "{name} was accepted: {out}");
        out
    };
    // Unknown attribute of a typed object: the validator says so.
    let out = refused(
        "bad-attr",
        r#"@id("a") forbid (principal, action, resource is k8s::core::v1::Pod) when { resource.spec.privileged };"#,
        None,
    );
    assert!(
        out.contains("is invalid") && out.contains("privileged"),
        "{out}"
    );
    // Unknown entity type.
    let out = refused(
        "bad-type",
        r#"@id("a") forbid (principal, action, resource is k8s::core::v1::Pdo);"#,
        None,
    );
    assert!(out.contains("k8s::core::v1::Pdo"), "{out}");
    // A permit means nothing in admission.
    let out = refused(
        "permit",
        r#"@id("a") permit (principal, action, resource);"#,
        None,
    );
    assert!(out.contains("may only forbid"), "{out}");
    // Namespaced admission objects are refused.
    let (ok, out) = apply(
        &s,
        &root,
        "confined",
        &policy_manifest(
            "confined",
            "Admission",
            Some("team-a"),
            None,
            r#"@id("a") forbid (principal, action, resource is k8s::core::v1::Pod);"#,
        ),
    );
    assert!(!ok && out.contains("cluster-wide"), "{out}");
    // An @id already used by the shipped profiles.
    let out = refused(
        "dup",
        r#"@id("pss.baseline.privileged") forbid (principal, action, resource is k8s::core::v1::Pod);"#,
        None,
    );
    assert!(out.contains("already used"), "{out}");
    // Writing admission policies needs the guardrail permission: a cluster admin without it is refused.
    let lead = user(&s, "lead", &["bulwark:cluster-admins"]);
    let guardrail_off = r#"@id("deny-guardrails") @reason("only the security team writes guardrails")
forbid (principal in k8s::Group::"bulwark:cluster-admins", action, resource is k8s::Resource)
when { resource.resource == "cedarpolicies" && resource has subresource && resource.subresource == "guardrails" };"#;
    let (ok, text) = apply(
        &s,
        &root,
        "deny-guardrails",
        &policy_manifest(
            "deny-guardrails",
            "Authorization",
            None,
            None,
            guardrail_off,
        ),
    );
    assert!(ok, "{text}");
    eventually("lead refused", || {
        let (ok, out) = apply(
            &s,
            &lead,
            "lead-adm",
            &policy_manifest(
                "lead-adm",
                "Admission",
                None,
                None,
                r#"@id("lead.a") forbid (principal, action, resource is k8s::core::v1::Secret);"#,
            ),
        );
        (!ok && out.contains("cedarpolicies/guardrails"), out)
    });
    // Offline validation agrees.
    let file = s.dir.path().join("pss.cedar");
    std::fs::write(&file, r#"@id("a") forbid (principal, action, resource is k8s::admission::Container) when { resource.securityContext.privileged };"#).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["policy", "validate"])
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && text.contains("securityContext"),
        "{text}"
    );
}

/// A node's write of a pod bound elsewhere is refused: by the read restriction when kubectl
/// reads the pod first, else by the node-restriction admission policy.
fn refused_for_node(text: &str) -> bool {
    text.contains("node-restriction.bound-pods") || text.contains("a pod bound elsewhere")
}

fn bound_pod(name: &str, node: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  nodeName: {node}\n  securityContext: {{runAsNonRoot: true, seccompProfile: {{type: RuntimeDefault}}}}\n  containers:\n  - name: c\n    image: registry.local/x:1\n    securityContext: {{allowPrivilegeEscalation: false, capabilities: {{drop: [ALL]}}}}\n"
    )
}

#[test]
fn nodes_write_only_what_is_bound_to_them() {
    let s = TestServer::start();
    let root = admin(&s);
    let node = user(&s, "system:node:n1", &["system:nodes"]);
    // A node registers itself, not others.
    let (ok, text) = apply(
        &s,
        &node,
        "n1",
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n",
    );
    assert!(ok, "{text}");
    let (ok, text) = apply(
        &s,
        &node,
        "n2",
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: n2\n",
    );
    assert!(!ok && text.contains("node-restriction.own-node"), "{text}");
    // Pods: only those bound to it, status included.
    for (name, on) in [("mine", "n1"), ("theirs", "n2")] {
        let (ok, text) = apply(&s, &root, name, &bound_pod(name, on));
        assert!(ok, "{text}");
    }
    // Reads too: its own pods only.
    let (ok, text) = run(
        &s,
        &node,
        &[
            "get",
            "pods",
            "-n",
            "default",
            "--field-selector",
            "spec.nodeName=n1",
        ],
    );
    assert!(
        ok && text.contains("mine") && !text.contains("theirs"),
        "{text}"
    );
    let (ok, text) = run(&s, &node, &["get", "pods", "-n", "default"]);
    assert!(!ok && text.contains("spec.nodeName=n1"), "{text}");
    let (ok, text) = run(
        &s,
        &node,
        &["get", "pods", "-A", "--field-selector", "spec.nodeName=n2"],
    );
    assert!(!ok && text.contains("Forbidden"), "{text}");
    assert!(run(&s, &node, &["get", "pod", "mine", "-n", "default"]).0);
    let (ok, text) = run(
        &s,
        &node,
        &["get", "pod", "theirs", "-n", "default", "-o", "json"],
    );
    assert!(!ok && text.contains("bound elsewhere"), "{text}");
    let (ok, text) = run(
        &s,
        &node,
        &["label", "pod", "mine", "seen=yes", "-n", "default"],
    );
    assert!(ok, "{text}");
    let (ok, text) = run(
        &s,
        &node,
        // (`kubectl label` would first GET the pod, which the read restriction refuses.)
        &[
            "patch",
            "pod",
            "theirs",
            "-n",
            "default",
            "--type=merge",
            "-p",
            r#"{"metadata":{"labels":{"seen":"yes"}}}"#,
        ],
    );
    assert!(!ok && refused_for_node(&text), "{text}");
    let status = r#"{"status":{"phase":"Running"}}"#;
    let (ok, text) = run(
        &s,
        &node,
        &[
            "patch",
            "pod",
            "mine",
            "-n",
            "default",
            "--subresource=status",
            "--type=merge",
            "-p",
            status,
        ],
    );
    assert!(ok, "{text}");
    let (ok, text) = run(
        &s,
        &node,
        &[
            "patch",
            "pod",
            "theirs",
            "-n",
            "default",
            "--subresource=status",
            "--type=merge",
            "-p",
            status,
        ],
    );
    assert!(!ok && refused_for_node(&text), "{text}");
    // Without kubectl's read first, the write itself meets the node-restriction policy.
    let creds = bulwark_client::Credentials::from_kubeconfig(&node).unwrap();
    let text = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let client = bulwark_client::ApiClient::builder(&creds)
            .connect()
            .await
            .unwrap();
        let r = client
            .send(
                http::Method::PATCH,
                "/api/v1/namespaces/default/pods/theirs",
                &[("content-type", "application/merge-patch+json")],
                br#"{"metadata":{"labels":{"seen":"yes"}}}"#.to_vec(),
            )
            .await
            .unwrap();
        assert_eq!(r.status.as_u16(), 403);
        String::from_utf8_lossy(&r.body).into_owned()
    });
    assert!(text.contains("node-restriction.bound-pods"), "{text}");
    // Nothing else: no secrets, no exec-like subresources, no deleting other nodes.
    let (ok, text) = run(&s, &node, &["get", "secrets", "-n", "default"]);
    assert!(!ok && text.contains("Forbidden"), "{text}");
    let (ok, text) = run(&s, &node, &["delete", "pod", "theirs", "-n", "default"]);
    assert!(!ok && refused_for_node(&text), "{text}");
    // The same user name outside system:nodes is just a user, with no grants.
    let impostor = user(&s, "system:node:n3", &[]);
    let (ok, text) = run(&s, &impostor, &["get", "pods", "-n", "default"]);
    assert!(!ok && text.contains("Forbidden"), "{text}");
}
