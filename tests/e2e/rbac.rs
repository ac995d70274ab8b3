//! RBAC manifests on a Cedar cluster, driven with kubectl: roles and bindings are accepted,
//! translated into Cedar grants that take effect without a restart (can-i agrees), bindings
//! to the built-in `cluster-admin` work, deleting a binding revokes it, and writing a role or
//! binding that grants more than its author holds is refused (escalation prevention).

use crate::server::{TestServer, admin, apply, can_i, eventually, policy_manifest, run, user};

const POD_READER: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: team-a
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: pod-reader
  namespace: team-a
rules:
- apiGroups: [""]
  resources: ["pods", "pods/log"]
  verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: read-pods
  namespace: team-a
subjects:
- kind: User
  name: jane
  apiGroup: rbac.authorization.k8s.io
roleRef:
  kind: Role
  name: pod-reader
  apiGroup: rbac.authorization.k8s.io
"#;

#[test]
fn rbac_manifests_grant_and_cannot_escalate() {
    let s = TestServer::start();
    let root = admin(&s);
    let jane = user(&s, "jane", &[]);
    assert!(!run(&s, &jane, &["get", "pods", "-n", "team-a"]).0);

    let (ok, text) = apply(&s, &root, "pod-reader", POD_READER);
    assert!(ok, "{text}");
    let took = eventually("binding takes effect", || {
        run(&s, &jane, &["get", "pods", "-n", "team-a"])
    });
    eprintln!("RBAC binding in force after {took:?}");
    assert!(can_i(&s, &jane, &["list", "pods", "-n", "team-a"]).starts_with("yes"));
    assert!(can_i(&s, &jane, &["get", "pods/log", "-n", "team-a"]).starts_with("yes"));
    assert!(can_i(&s, &jane, &["delete", "pods", "-n", "team-a"]).starts_with("no"));
    assert!(can_i(&s, &jane, &["list", "pods", "-n", "default"]).starts_with("no"));
    let (ok, text) = run(&s, &jane, &["get", "pods", "-n", "default"]);
    assert!(!ok && text.contains("Forbidden"), "{text}");
    let (ok, text) = run(&s, &root, &["get", "rolebindings", "-n", "team-a"]);
    assert!(
        ok && text.contains("read-pods") && text.contains("Role/pod-reader"),
        "{text}"
    );
    // The decision names the translated binding.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["policy", "explain", "--kubeconfig"])
        .arg(&root)
        .args(["--as", "jane", "list", "pods", "-n", "team-a"])
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(
        answer.contains("decision: allowed")
            && answer.contains("rbac:RoleBinding:team-a/read-pods#0.0"),
        "{answer}"
    );

    // Bindings to the built-in cluster-admin role work cluster-wide.
    let olga = user(&s, "olga", &["ops"]);
    let (ok, text) = apply(
        &s,
        &root,
        "ops-admin",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: ops-admin\nsubjects:\n- kind: Group\n  name: ops\n  apiGroup: rbac.authorization.k8s.io\nroleRef:\n  kind: ClusterRole\n  name: cluster-admin\n  apiGroup: rbac.authorization.k8s.io\n",
    );
    assert!(ok, "{text}");
    eventually("cluster-admin binding", || {
        run(&s, &olga, &["get", "secrets", "-A"])
    });

    // Escalation prevention: a team lead who manages RBAC in team-a and may read pods there
    // can hand out pod-reader, but cannot write a role that deletes pods, nor bind cluster-admin.
    let lead = user(&s, "lead", &["team-a-leads"]);
    let grant = r#"@id("team-a.leads-manage-rbac")
permit (
  principal in k8s::Group::"team-a-leads",
  action in [k8s::Action::"get", k8s::Action::"list", k8s::Action::"watch", k8s::Action::"create",
             k8s::Action::"update", k8s::Action::"patch", k8s::Action::"delete"],
  resource is k8s::Resource
)
when { resource.apiGroup == "rbac.authorization.k8s.io" && ["roles", "rolebindings"].contains(resource.resource) };
@id("team-a.leads-read-pods")
permit (principal in k8s::Group::"team-a-leads", action in [k8s::Action::"get", k8s::Action::"list", k8s::Action::"watch"], resource is k8s::Resource)
when { resource.apiGroup == "" && resource.resource == "pods" };"#;
    let (ok, text) = apply(
        &s,
        &root,
        "leads",
        &policy_manifest("team-a-leads", "Authorization", Some("team-a"), None, grant),
    );
    assert!(ok, "{text}");
    let bind_reader = "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: bob-reads\n  namespace: team-a\nsubjects:\n- kind: User\n  name: bob\nroleRef:\n  kind: Role\n  name: pod-reader\n";
    eventually("lead may bind pod-reader", || {
        apply(&s, &lead, "bob-reads", bind_reader)
    });
    let (ok, text) = apply(
        &s,
        &lead,
        "deleter",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: deleter\n  namespace: team-a\nrules:\n- apiGroups: [\"\"]\n  resources: [\"pods\"]\n  verbs: [\"delete\"]\n",
    );
    assert!(!ok, "{text}");
    assert!(
        text.contains("attempting to grant permissions not currently held")
            && text.contains("delete core/pods"),
        "{text}"
    );
    let (ok, text) = apply(
        &s,
        &lead,
        "lead-admin",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: lead-admin\n  namespace: team-a\nsubjects:\n- kind: User\n  name: lead\nroleRef:\n  kind: ClusterRole\n  name: cluster-admin\n",
    );
    assert!(!ok && text.contains("not currently held"), "{text}");

    // Deleting the binding revokes it.
    let (ok, text) = run(
        &s,
        &root,
        &["delete", "rolebinding", "read-pods", "-n", "team-a"],
    );
    assert!(ok, "{text}");
    eventually("binding revoked", || {
        let (ok, text) = run(&s, &jane, &["get", "pods", "-n", "team-a"]);
        (!ok, text)
    });

    // The translation can be reviewed offline.
    let file = s.dir.path().join("rbac.yaml");
    std::fs::write(&file, POD_READER).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["policy", "from-rbac"])
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("principal == k8s::User::\"jane\"")
            && text.contains("confined to namespace team-a"),
        "{text}"
    );
}
