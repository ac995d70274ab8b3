//! Authorization by tiered Cedar policies in the real server, driven with kubectl and user
//! kubeconfigs from `bulwark kubeconfig`: default deny, CedarPolicy objects taking effect
//! without a restart, `kubectl auth can-i` agreeing with what happens, guardrails beating
//! grants, namespace labels as tags, impersonation, and every way a policy change is refused
//! (invalid text, escalation, guardrails without the permission, lock-out, oversize).

use std::path::Path;
use std::process::Command;

use crate::server::{TestServer, admin, apply, can_i, eventually, policy_manifest, run, user};

/// An Authorization CedarPolicy manifest.
fn policy(name: &str, namespace: Option<&str>, text: &str) -> String {
    policy_manifest(name, "Authorization", namespace, None, text)
}

#[test]
fn cedar_policy_objects_decide() {
    let s = TestServer::start();
    let root = admin(&s);
    let (ok, text) = apply(
        &s,
        &root,
        "ns",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-b\n  labels:\n    env: prod\n",
    );
    assert!(ok, "{text}");
    for ns in ["team-a", "team-b", "default"] {
        let (ok, text) = apply(
            &s,
            &root,
            &format!("cm-{ns}"),
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: {ns}\ndata:\n  a: b\n"
            ),
        );
        assert!(ok, "{text}");
    }
    // The shipped defaults are an object, loaded.
    let listed = s.ok(&["get", "cedarpolicies"]);
    assert!(
        listed.contains("bulwark-default-grants") && listed.contains("True"),
        "{listed}"
    );

    // A new user is denied everything but discovery and asking about itself.
    let alice = user(&s, "alice", &["dev"]);
    let (ok, text) = run(&s, &alice, &["get", "configmaps", "-n", "team-a"]);
    assert!(!ok && text.contains("default deny"), "{text}");
    let (ok, text) = run(&s, &alice, &["api-resources"]);
    assert!(ok && text.contains("cedarpolicies"), "{text}");
    assert_eq!(
        can_i(&s, &alice, &["list", "configmaps", "-n", "team-a"]),
        "no - no policy allows this request (default deny)"
    );

    // A grant of get,list on configmaps confined to team-a: exactly that works.
    let (ok, text) = apply(
        &s,
        &root,
        "grant",
        &policy(
            "team-a-dev-read",
            Some("team-a"),
            r#"@id("team-a.dev-read-configmaps")
@reason("developers read configmaps in team-a")
permit (principal in k8s::Group::"dev", action in [k8s::Action::"get", k8s::Action::"list"], resource is k8s::Resource)
when { resource.resource == "configmaps" };"#,
        ),
    );
    assert!(ok, "{text}");
    let took = eventually("grant takes effect", || {
        run(&s, &alice, &["get", "configmaps", "-n", "team-a"])
    });
    eprintln!("grant in force after {took:?}");
    assert!(can_i(&s, &alice, &["list", "configmaps", "-n", "team-a"]).starts_with("yes"));
    assert!(can_i(&s, &alice, &["get", "configmaps/settings", "-n", "team-a"]).starts_with("yes"));
    // (kubectl arguments, the matching can-i question, what differs from the grant)
    let outside: [(&[&str], &[&str], &str); 5] = [
        (
            &["get", "configmaps", "-n", "default"],
            &["list", "configmaps", "-n", "default"],
            "other namespace",
        ),
        (
            &["get", "secrets", "-n", "team-a"],
            &["list", "secrets", "-n", "team-a"],
            "other resource",
        ),
        (
            &["delete", "configmap", "settings", "-n", "team-a"],
            &["delete", "configmaps/settings", "-n", "team-a"],
            "other verb",
        ),
        (
            &["get", "configmaps", "-A"],
            &["list", "configmaps", "-A"],
            "all namespaces",
        ),
        (
            &["get", "namespaces"],
            &["list", "namespaces"],
            "cluster scope",
        ),
    ];
    for (args, question, what) in outside {
        let (ok, text) = run(&s, &alice, args);
        assert!(!ok && text.contains("Forbidden"), "{what}: {text}");
        let answer = can_i(&s, &alice, question);
        assert!(answer.starts_with("no"), "can-i agrees ({what}): {answer}");
    }
    let (_, rules) = run(&s, &alice, &["auth", "can-i", "--list", "-n", "team-a"]);
    assert!(
        rules
            .lines()
            .any(|l| l.starts_with("configmaps") && l.contains("[get list]")),
        "{rules}"
    );
    assert!(!rules.contains("secrets"), "{rules}");
    let status = s.ok(&[
        "get",
        "cedarpolicy",
        "team-a-dev-read",
        "-o",
        "jsonpath={.status.policyIds}",
    ]);
    assert!(status.contains("team-a.dev-read-configmaps"), "{status}");

    // Namespace labels are the resource's tags; a guardrail forbid beats the grant and the
    // denial names it.
    let (ok, text) = apply(
        &s,
        &root,
        "grant-b",
        &policy(
            "dev-read-everywhere",
            None,
            r#"@id("dev.read-configmaps")
permit (principal in k8s::Group::"dev", action in [k8s::Action::"get", k8s::Action::"list"], resource is k8s::Resource)
when { resource.resource == "configmaps" };"#,
        ),
    );
    assert!(ok, "{text}");
    eventually("cluster-wide grant", || {
        run(&s, &alice, &["get", "configmaps", "-n", "team-b"])
    });
    let (ok, text) = apply(
        &s,
        &root,
        "freeze",
        &policy(
            "prod-freeze",
            None,
            r#"@id("guardrails.prod-freeze")
@reason("production namespaces are frozen for developers")
forbid (principal in k8s::Group::"dev", action, resource is k8s::Resource)
when { resource.hasTag("env") && resource.getTag("env") == "prod" };"#,
        ),
    );
    assert!(ok, "{text}");
    eventually("guardrail takes effect", || {
        let (ok, text) = run(&s, &alice, &["get", "configmaps", "-n", "team-b"]);
        (
            !ok && text.contains("guardrails.prod-freeze")
                && text.contains("production namespaces are frozen"),
            text,
        )
    });
    assert!(run(&s, &alice, &["get", "configmaps", "-n", "default"]).0);
    let answer = can_i(&s, &alice, &["list", "configmaps", "-n", "team-b"]);
    assert!(answer.contains("guardrails.prod-freeze"), "{answer}");
    // `bulwark policy explain` asks the cluster about another identity and names the policies.
    let explain = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_bulwark"))
            .args(["policy", "explain", "--kubeconfig"])
            .arg(&root)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = explain(&[
        "--as",
        "alice",
        "--as-group",
        "dev",
        "list",
        "cm",
        "-n",
        "team-b",
    ]);
    assert!(
        text.contains("decision: denied")
            && text.contains("guardrails.prod-freeze")
            && text.contains("request:  list configmaps in namespace team-b"),
        "{text}"
    );
    let text = explain(&[
        "--as",
        "alice",
        "--as-group",
        "dev",
        "get",
        "configmaps",
        "settings",
        "-n",
        "team-a",
    ]);
    assert!(
        text.contains("decision: allowed") && text.contains("team-a.dev-read-configmaps"),
        "{text}"
    );
    let text = explain(&["--as", "alice", "get", "/version"]);
    assert!(
        text.contains("decision: allowed") && text.contains("grants.discovery"),
        "{text}"
    );
    let text = explain(&[
        "--as",
        "alice",
        "delete",
        "deployments.apps",
        "-n",
        "team-a",
    ]);
    assert!(
        text.contains("decision: denied") && text.contains("default deny"),
        "{text}"
    );
    // The bootstrap admin is never subject to guardrails.
    assert!(
        s.ok(&["get", "configmaps", "-n", "team-b"])
            .contains("settings")
    );

    // Impersonation: allowed for the admin, decided as the impersonated identity.
    let (ok, text) = run(
        &s,
        &root,
        &[
            "get",
            "configmaps",
            "-n",
            "team-b",
            "--as",
            "alice",
            "--as-group",
            "dev",
        ],
    );
    assert!(!ok && text.contains("guardrails.prod-freeze"), "{text}");
    let (ok, text) = run(
        &s,
        &alice,
        &["get", "configmaps", "-n", "team-a", "--as", "bob"],
    );
    assert!(!ok && text.contains("cannot impersonate"), "{text}");

    // Deleting a grant takes it away.
    s.ok(&[
        "delete",
        "cedarpolicy",
        "team-a-dev-read",
        "dev-read-everywhere",
    ]);
    eventually("grant removed", || {
        let (ok, text) = run(&s, &alice, &["get", "configmaps", "-n", "team-a"]);
        (!ok, text)
    });
}

#[test]
fn policy_changes_are_refused_with_reasons() {
    let s = TestServer::start();
    let root = admin(&s);

    // Invalid policies: a 422 with Cedar's diagnostics.
    for (text, expect) in [
        (
            "permit (principal, action, resource",
            "unexpected end of input",
        ),
        (r#"permit (principal, action, resource);"#, "no @id"),
        (
            r#"@id("x") permit (principal is k8s::Pod, action, resource);"#,
            "k8s::Pod",
        ),
        (
            r#"@id("x") permit (principal, action, resource is k8s::Resource) when { resource.colour == "red" };"#,
            "attribute `colour`",
        ),
        (
            r#"@id("x") permit (principal, action == k8s::Action::"post", resource is k8s::Resource);"#,
            "impossible",
        ),
    ] {
        let (ok, out) = apply(&s, &root, "bad", &policy("bad", None, text));
        assert!(!ok, "accepted: {text}");
        assert!(
            out.contains("is invalid") && out.to_lowercase().contains(&expect.to_lowercase()),
            "{text}: {out}"
        );
    }
    let big = format!("// {}\n", "x".repeat(1_100_000));
    // (`create`: `apply` would first trip over its last-applied annotation's size limit.)
    let file = s.dir.path().join("big.yaml");
    std::fs::write(&file, policy("big", None, &big)).unwrap();
    let (ok, out) = run(&s, &root, &["create", "-f", file.to_str().unwrap()]);
    assert!(
        !ok && out.contains("must be at most"),
        "{}",
        &out[..out.len().min(300)]
    );
    let (ok, out) = apply(
        &s,
        &root,
        "ns-forbid",
        &policy(
            "ns-forbid",
            Some("default"),
            r#"@id("y") forbid (principal, action, resource);"#,
        ),
    );
    assert!(!ok && out.contains("cluster-wide"), "{out}");

    // Policy sets that would lock every admin out are refused, naming what would break.
    let (ok, out) = run(
        &s,
        &root,
        &["delete", "cedarpolicy", "bulwark-default-grants"],
    );
    assert!(!ok && out.contains("lock out the cluster admins"), "{out}");
    let (ok, out) = apply(
        &s,
        &root,
        "lock",
        &policy(
            "lock",
            None,
            r#"@id("lock") forbid (principal, action, resource is k8s::Resource) when { resource.resource == "cedarpolicies" };"#,
        ),
    );
    assert!(!ok && out.contains("lock out the cluster admins"), "{out}");

    // No escalation: a team lead who may write policies only grants what they hold.
    let (ok, out) = apply(
        &s,
        &root,
        "leads",
        &policy(
            "team-a-leads",
            None,
            r#"@id("leads.own-team-a") permit (principal in k8s::Group::"team-a-leads", action, resource is k8s::Resource) when { resource has namespace && resource.namespace == "team-a" };
@id("leads.write-policies") permit (principal in k8s::Group::"team-a-leads", action in [k8s::Action::"create", k8s::Action::"get", k8s::Action::"patch"], resource is k8s::Resource) when { resource.resource == "cedarpolicies" };"#,
        ),
    );
    assert!(ok, "{out}");
    let lead = user(&s, "lead", &["team-a-leads"]);
    eventually("lead grant", || {
        run(&s, &lead, &["get", "pods", "-n", "team-a"])
    });
    let (ok, out) = apply(
        &s,
        &lead,
        "confined",
        &policy(
            "team-a-devs",
            Some("team-a"),
            r#"@id("team-a.devs") permit (principal in k8s::Group::"dev", action, resource is k8s::Resource) when { resource.resource == "configmaps" };"#,
        ),
    );
    assert!(ok, "a grant inside what the lead holds: {out}");
    let (ok, out) = apply(
        &s,
        &lead,
        "escalate",
        &policy(
            "devs-everywhere",
            None,
            r#"@id("devs.everywhere") permit (principal in k8s::Group::"dev", action == k8s::Action::"get", resource is k8s::Resource) when { resource.resource == "configmaps" };"#,
        ),
    );
    assert!(
        !ok && out.contains("does not hold") && out.contains("devs.everywhere"),
        "{out}"
    );
    // Guardrails need the guardrail permission (the lead's create covers cedarpolicies/*,
    // so this lead has it; a user without policy rights is refused before admission).
    let eve = user(&s, "eve", &["dev"]);
    let (ok, out) = apply(
        &s,
        &eve,
        "eve",
        &policy(
            "eve",
            None,
            r#"@id("eve") forbid (principal, action, resource);"#,
        ),
    );
    assert!(!ok && out.contains("Forbidden"), "{out}");

    // `bulwark policy validate` says why, offline.
    let file = s.dir.path().join("broken.cedar");
    std::fs::write(&file, "forbid (principal, action, resource").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["policy", "validate"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("syntax error"));

    // `bulwark policy test` runs test cases offline; a wrong expectation fails the run.
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/examples");
    let out = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["policy", "test"])
        .arg(&examples)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("0 failed"), "{text}");
    let cases = s.dir.path().join("cases");
    std::fs::create_dir(&cases).unwrap();
    std::fs::copy(examples.join("team-a.yaml"), cases.join("team-a.yaml")).unwrap();
    std::fs::write(
        cases.join("t.yaml"),
        "policies: [team-a.yaml]\ncases:\n  - name: devs delete in prod\n    request: {user: a, groups: [dev], verb: delete, resource: pods, namespace: team-a, namespaceLabels: {env: prod}}\n    expect: allow\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["policy", "test"])
        .arg(&cases)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(
            "FAIL devs delete in prod: expected allow, got denied by [guardrails.prod-freeze]"
        ),
        "{text}"
    );
}
