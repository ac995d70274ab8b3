//! RBAC (`rbac.authorization.k8s.io/v1`) as Cedar: every binding becomes a set of permits,
//! one per subject and rule of the role it binds, so existing RBAC manifests keep working on a
//! cluster that decides with Cedar. A RoleBinding's permits are confined to its namespace (a
//! RoleBinding of a ClusterRole grants the role's rules there only), a ClusterRoleBinding's
//! are cluster-wide. The rule semantics are upstream's: `*` verbs, groups and resources;
//! `resource/subresource` and `*/subresource`; `resourceNames`; `nonResourceURLs` with a
//! trailing `*` as a prefix match (cluster roles bound cluster-wide only).
//!
//! Verbs the schema does not know (`use`, custom verbs) cannot be expressed and are reported.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;

use crate::request::RESOURCE_VERBS;

/// The verbs a non-resource rule can name.
pub const PATH_VERBS: &[&str] = &["get", "post"];

/// One RBAC rule.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    /// Verbs, or `*`.
    #[serde(default)]
    pub verbs: Vec<String>,
    /// API groups, or `*`.
    #[serde(default)]
    pub api_groups: Vec<String>,
    /// Resources (`pods`, `pods/log`, `*/scale`, `*`).
    #[serde(default)]
    pub resources: Vec<String>,
    /// Object names (empty: any).
    #[serde(default)]
    pub resource_names: Vec<String>,
    /// Non-resource URLs (`/healthz`, `/apis/*`).
    #[serde(default, rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
}

/// A binding subject.
#[derive(Debug, Clone, Deserialize)]
pub struct Subject {
    /// User, Group or ServiceAccount.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// For service accounts: the namespace (defaults to the binding's).
    #[serde(default)]
    pub namespace: Option<String>,
}

/// What a binding refers to.
#[derive(Debug, Clone, Deserialize)]
pub struct RoleRef {
    /// Role or ClusterRole.
    pub kind: String,
    /// Its name.
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
struct Meta {
    name: String,
    #[serde(default)]
    namespace: Option<String>,
}

/// Any RBAC object, as far as translation goes.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RbacObject {
    kind: String,
    metadata: Meta,
    #[serde(default)]
    rules: Vec<PolicyRule>,
    #[serde(default)]
    subjects: Vec<Subject>,
    #[serde(default)]
    role_ref: Option<RoleRef>,
}

/// Roles by (namespace, name) (cluster roles: namespace None), and bindings.
#[derive(Debug, Clone, Default)]
pub struct RbacSet {
    roles: BTreeMap<(Option<String>, String), Vec<PolicyRule>>,
    bindings: Vec<Binding>,
}

/// A RoleBinding or ClusterRoleBinding.
#[derive(Debug, Clone)]
pub struct Binding {
    /// RoleBinding or ClusterRoleBinding.
    pub kind: String,
    /// Its namespace (RoleBinding).
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    /// Who it grants to.
    pub subjects: Vec<Subject>,
    /// What it grants.
    pub role_ref: RoleRef,
}

/// One binding as Cedar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translation {
    /// The source name: `rbac:<kind>:<namespace>/<name>`.
    pub name: String,
    /// The namespace its permits are confined to (RoleBindings).
    pub namespace: Option<String>,
    /// The policies (may be empty, when the role is missing or grants nothing expressible).
    pub text: String,
    /// What could not be translated.
    pub warnings: Vec<String>,
}

/// Why an object is not RBAC the translator understands.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RbacError(String);

impl RbacSet {
    /// A set that already holds the ClusterRole `cluster-admin` (everything), which upstream
    /// creates at bootstrap and which many manifests bind to; an object of that name replaces it.
    pub fn with_builtin_roles() -> Self {
        let mut set = Self::default();
        set.roles.insert(
            (None, "cluster-admin".to_owned()),
            vec![
                PolicyRule {
                    verbs: vec!["*".into()],
                    api_groups: vec!["*".into()],
                    resources: vec!["*".into()],
                    ..PolicyRule::default()
                },
                PolicyRule {
                    verbs: vec!["*".into()],
                    non_resource_urls: vec!["*".into()],
                    ..PolicyRule::default()
                },
            ],
        );
        set
    }

    /// Adds a Role, ClusterRole, RoleBinding or ClusterRoleBinding (JSON); other kinds are
    /// ignored (returns false).
    pub fn add(&mut self, object: &serde_json::Value) -> Result<bool, RbacError> {
        let kind = object.get("kind").and_then(serde_json::Value::as_str);
        if !matches!(
            kind,
            Some("Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding")
        ) {
            return Ok(false);
        }
        let obj: RbacObject = serde_json::from_value(object.clone())
            .map_err(|e| RbacError(format!("{}: {e}", kind.unwrap_or_default())))?;
        match obj.kind.as_str() {
            "Role" => {
                let ns = obj
                    .metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".into());
                self.roles.insert((Some(ns), obj.metadata.name), obj.rules);
            }
            "ClusterRole" => {
                self.roles.insert((None, obj.metadata.name), obj.rules);
            }
            _ => {
                let role_ref = obj.role_ref.ok_or_else(|| {
                    RbacError(format!("{} {}: no roleRef", obj.kind, obj.metadata.name))
                })?;
                let namespace = match obj.kind.as_str() {
                    "RoleBinding" => {
                        Some(obj.metadata.namespace.unwrap_or_else(|| "default".into()))
                    }
                    _ => None,
                };
                self.bindings.push(Binding {
                    kind: obj.kind,
                    namespace,
                    name: obj.metadata.name,
                    subjects: obj.subjects,
                    role_ref,
                });
            }
        }
        Ok(true)
    }

    /// The bindings.
    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }

    /// The rules a binding grants (empty if its role does not exist).
    pub fn rules_of(&self, binding: &Binding) -> Option<&[PolicyRule]> {
        let key = match binding.role_ref.kind.as_str() {
            "Role" => (binding.namespace.clone(), binding.role_ref.name.clone()),
            _ => (None, binding.role_ref.name.clone()),
        };
        self.roles.get(&key).map(Vec::as_slice)
    }

    /// Every binding as Cedar.
    pub fn translate(&self) -> Vec<Translation> {
        self.bindings
            .iter()
            .map(|b| self.translate_binding(b))
            .collect()
    }

    /// One binding as Cedar.
    pub fn translate_binding(&self, binding: &Binding) -> Translation {
        let ns_part = binding.namespace.as_deref().unwrap_or("");
        let name = format!("rbac:{}:{ns_part}/{}", binding.kind, binding.name);
        let mut warnings = Vec::new();
        let mut text = String::new();
        let Some(rules) = self.rules_of(binding) else {
            warnings.push(format!(
                "{} {} does not exist yet; the binding grants nothing until it does",
                binding.role_ref.kind, binding.role_ref.name
            ));
            return Translation {
                name,
                namespace: binding.namespace.clone(),
                text,
                warnings,
            };
        };
        for (s, subject) in binding.subjects.iter().enumerate() {
            let Some(principal) = principal(subject, binding.namespace.as_deref()) else {
                warnings.push(format!(
                    "subject kind {:?} is not User, Group or ServiceAccount",
                    subject.kind
                ));
                continue;
            };
            for (r, rule) in rules.iter().enumerate() {
                let id = format!("{name}#{s}.{r}");
                let reason = format!(
                    "{} {} binds {} {}",
                    binding.kind, binding.name, binding.role_ref.kind, binding.role_ref.name
                );
                if !rule.resources.is_empty() {
                    match resource_policy(&id, &reason, &principal, rule) {
                        Ok(policy) => text.push_str(&policy),
                        Err(w) => warnings.push(format!("rule {r}: {w}")),
                    }
                }
                if !rule.non_resource_urls.is_empty() {
                    if binding.namespace.is_some() {
                        warnings.push(format!(
                            "rule {r}: nonResourceURLs apply only through ClusterRoleBindings"
                        ));
                    } else {
                        match path_policy(&format!("{id}.paths"), &reason, &principal, rule) {
                            Ok(policy) => text.push_str(&policy),
                            Err(w) => warnings.push(format!("rule {r}: {w}")),
                        }
                    }
                }
            }
        }
        Translation {
            name,
            namespace: binding.namespace.clone(),
            text,
            warnings,
        }
    }
}

fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| quoted(i)).collect();
    format!("[{}]", quoted.join(", "))
}

/// The principal scope of a subject.
fn principal(subject: &Subject, binding_ns: Option<&str>) -> Option<String> {
    Some(match subject.kind.as_str() {
        "Group" => format!("principal in k8s::Group::{}", quoted(&subject.name)),
        "ServiceAccount" => {
            let ns = subject
                .namespace
                .as_deref()
                .or(binding_ns)
                .unwrap_or("default");
            format!(
                "principal == k8s::ServiceAccount::{}",
                quoted(&format!("system:serviceaccount:{ns}:{}", subject.name))
            )
        }
        "User" => match subject.name.strip_prefix("system:node:") {
            Some(node) => format!("principal == k8s::Node::{}", quoted(node)),
            None if subject.name.starts_with("system:serviceaccount:") => {
                format!(
                    "principal == k8s::ServiceAccount::{}",
                    quoted(&subject.name)
                )
            }
            None => format!("principal == k8s::User::{}", quoted(&subject.name)),
        },
        _ => return None,
    })
}

/// `action …` for the verbs of a rule among `known`; Err when none can be expressed.
fn actions(verbs: &[String], known: &[&str]) -> Result<String, String> {
    if verbs.iter().any(|v| v == "*") {
        let all: Vec<String> = known
            .iter()
            .map(|v| format!("k8s::Action::{}", quoted(v)))
            .collect();
        return Ok(format!("action in [{}]", all.join(", ")));
    }
    let usable: Vec<&String> = verbs
        .iter()
        .filter(|v| known.contains(&v.as_str()))
        .collect();
    if usable.is_empty() {
        return Err(format!("no verb Bulwark knows among {verbs:?}"));
    }
    let all: Vec<String> = usable
        .iter()
        .map(|v| format!("k8s::Action::{}", quoted(v)))
        .collect();
    Ok(format!("action in [{}]", all.join(", ")))
}

fn resource_policy(
    id: &str,
    reason: &str,
    principal: &str,
    rule: &PolicyRule,
) -> Result<String, String> {
    let action = actions(&rule.verbs, RESOURCE_VERBS)?;
    let mut conditions = Vec::new();
    if !rule.api_groups.iter().any(|g| g == "*") {
        if rule.api_groups.is_empty() {
            return Err("no apiGroups".into());
        }
        conditions.push(format!(
            "{}.contains(resource.apiGroup)",
            list(&rule.api_groups)
        ));
    }
    if !rule.resources.iter().any(|r| r == "*") {
        let mut main = Vec::new();
        let mut alternatives = Vec::new();
        for r in &rule.resources {
            match r.split_once('/') {
                None => main.push(r.clone()),
                Some(("*", sub)) => alternatives.push(format!(
                    "(resource has subresource && resource.subresource == {})",
                    quoted(sub)
                )),
                Some((res, sub)) => alternatives.push(format!(
                    "(resource has subresource && resource.resource == {} && resource.subresource == {})",
                    quoted(res),
                    quoted(sub)
                )),
            }
        }
        if !main.is_empty() {
            alternatives.insert(
                0,
                format!(
                    "(!(resource has subresource) && {}.contains(resource.resource))",
                    list(&main)
                ),
            );
        }
        conditions.push(format!("({})", alternatives.join(" || ")));
    }
    if !rule.resource_names.is_empty() {
        conditions.push(format!(
            "resource has name && {}.contains(resource.name)",
            list(&rule.resource_names)
        ));
    }
    let mut out = String::new();
    let _ = write!(
        out,
        "@id({})\n@reason({})\npermit (\n  {principal},\n  {action},\n  resource is k8s::Resource\n)",
        quoted(id),
        quoted(reason)
    );
    if !conditions.is_empty() {
        let _ = write!(out, " when {{\n  {}\n}}", conditions.join(" &&\n  "));
    }
    out.push_str(";\n\n");
    Ok(out)
}

fn path_policy(
    id: &str,
    reason: &str,
    principal: &str,
    rule: &PolicyRule,
) -> Result<String, String> {
    let action = actions(&rule.verbs, PATH_VERBS)?;
    let mut out = String::new();
    let _ = write!(
        out,
        "@id({})\n@reason({})\npermit (\n  {principal},\n  {action},\n  resource is k8s::NonResourceURL\n)",
        quoted(id),
        quoted(reason)
    );
    if !rule.non_resource_urls.iter().any(|u| u == "*") {
        let alternatives: Vec<String> = rule
            .non_resource_urls
            .iter()
            .map(|u| match u.strip_suffix('*') {
                // Cedar's `like` treats `*` as a wildcard; escape any other `*` in the prefix.
                Some(prefix) => format!(
                    "resource.path like {}",
                    quoted(&format!("{}*", prefix.replace('*', "\\*")))
                ),
                None => format!("resource.path == {}", quoted(u)),
            })
            .collect();
        let _ = write!(out, " when {{\n  {}\n}}", alternatives.join(" ||\n  "));
    }
    out.push_str(";\n\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::CompiledPolicies;
    use crate::engine::PolicyEngine;
    use crate::request::{AccessRequest, Target};

    fn engine(objects: &[serde_json::Value]) -> PolicyEngine {
        let mut set = RbacSet::default();
        for o in objects {
            assert!(set.add(o).unwrap());
        }
        let sources: Vec<Arc<CompiledPolicies>> = set
            .translate()
            .into_iter()
            .filter(|t| !t.text.is_empty())
            .map(|t| {
                Arc::new(
                    CompiledPolicies::compile(&t.name, t.namespace.as_deref(), &t.text)
                        .unwrap_or_else(|e| panic!("{e}\n{}", t.text)),
                )
            })
            .collect();
        PolicyEngine::new(&sources).unwrap().0
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "one request attribute per argument reads best in the cases"
    )]
    fn allowed(
        engine: &PolicyEngine,
        user: &str,
        groups: &[&str],
        verb: &str,
        group: &str,
        resource: &str,
        sub: Option<&str>,
        ns: Option<&str>,
        name: Option<&str>,
    ) -> bool {
        let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
        engine
            .decide(&AccessRequest {
                user,
                groups: &groups,
                auth_method: "x509",
                cert_fingerprint: None,
                source_ip: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
                verb,
                target: Target::Resource {
                    api_group: group,
                    resource,
                    subresource: sub,
                    namespace: ns,
                    name,
                    namespace_labels: &[],
                },
            })
            .allowed
    }

    #[test]
    fn role_bindings_grant_within_their_namespace() {
        let e = engine(&[
            json!({"kind": "Role", "metadata": {"name": "reader", "namespace": "team-a"},
                   "rules": [{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]},
                             {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["web"], "verbs": ["*"]}]}),
            json!({"kind": "RoleBinding", "metadata": {"name": "devs", "namespace": "team-a"},
                   "subjects": [{"kind": "Group", "name": "dev"}, {"kind": "ServiceAccount", "name": "ci"}],
                   "roleRef": {"kind": "Role", "name": "reader"}}),
        ]);
        let ok = |u, g: &[&str], v, grp, r, sub, ns, n| allowed(&e, u, g, v, grp, r, sub, ns, n);
        assert!(ok(
            "alice",
            &["dev"],
            "list",
            "",
            "pods",
            None,
            Some("team-a"),
            None
        ));
        assert!(ok(
            "alice",
            &["dev"],
            "get",
            "",
            "pods",
            Some("log"),
            Some("team-a"),
            Some("p")
        ));
        assert!(!ok(
            "alice",
            &["dev"],
            "get",
            "",
            "pods",
            Some("exec"),
            Some("team-a"),
            Some("p")
        ));
        assert!(!ok(
            "alice",
            &["dev"],
            "list",
            "",
            "pods",
            None,
            Some("team-b"),
            None
        ));
        assert!(!ok(
            "alice",
            &["dev"],
            "delete",
            "",
            "pods",
            None,
            Some("team-a"),
            Some("p")
        ));
        assert!(ok(
            "alice",
            &["dev"],
            "delete",
            "apps",
            "deployments",
            None,
            Some("team-a"),
            Some("web")
        ));
        assert!(!ok(
            "alice",
            &["dev"],
            "delete",
            "apps",
            "deployments",
            None,
            Some("team-a"),
            Some("api")
        ));
        assert!(ok(
            "system:serviceaccount:team-a:ci",
            &[],
            "get",
            "",
            "pods",
            None,
            Some("team-a"),
            Some("p")
        ));
        assert!(!ok(
            "system:serviceaccount:team-b:ci",
            &[],
            "get",
            "",
            "pods",
            None,
            Some("team-a"),
            Some("p")
        ));
    }

    #[test]
    fn cluster_roles_bound_cluster_wide_or_in_a_namespace() {
        let view = json!({"kind": "ClusterRole", "metadata": {"name": "view"},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"]},
                      {"nonResourceURLs": ["/healthz", "/apis/*"], "verbs": ["get"]},
                      {"apiGroups": [""], "resources": ["*/scale"], "verbs": ["use", "update"]}]});
        let e = engine(&[
            view,
            json!({"kind": "ClusterRoleBinding", "metadata": {"name": "ops-view"},
                   "subjects": [{"kind": "User", "name": "olga"}], "roleRef": {"kind": "ClusterRole", "name": "view"}}),
            json!({"kind": "RoleBinding", "metadata": {"name": "bob-view", "namespace": "team-b"},
                   "subjects": [{"kind": "User", "name": "bob"}], "roleRef": {"kind": "ClusterRole", "name": "view"}}),
        ]);
        assert!(allowed(
            &e,
            "olga",
            &[],
            "list",
            "apps",
            "deployments",
            None,
            None,
            None
        ));
        assert!(allowed(
            &e,
            "olga",
            &[],
            "update",
            "",
            "deployments",
            Some("scale"),
            Some("x"),
            Some("d")
        ));
        assert!(allowed(
            &e,
            "bob",
            &[],
            "list",
            "",
            "secrets",
            None,
            Some("team-b"),
            None
        ));
        assert!(!allowed(
            &e,
            "bob",
            &[],
            "list",
            "",
            "secrets",
            None,
            Some("team-a"),
            None
        ));
        assert!(!allowed(
            &e,
            "bob",
            &[],
            "list",
            "",
            "secrets",
            None,
            None,
            None
        ));
        let path = |user: &str, p: &str| {
            e.decide(&AccessRequest {
                user,
                groups: &[],
                auth_method: "x509",
                cert_fingerprint: None,
                source_ip: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
                verb: "get",
                target: Target::NonResource { path: p },
            })
            .allowed
        };
        assert!(path("olga", "/healthz") && path("olga", "/apis/apps/v1"));
        assert!(!path("olga", "/metrics") && !path("bob", "/healthz"));
        let set = {
            let mut s = RbacSet::default();
            s.add(&json!({"kind": "ClusterRole", "metadata": {"name": "psp"}, "rules": [{"apiGroups": ["policy"], "resources": ["podsecuritypolicies"], "verbs": ["use"]}]})).unwrap();
            s.add(&json!({"kind": "ClusterRoleBinding", "metadata": {"name": "psp"}, "subjects": [{"kind": "Group", "name": "g"}], "roleRef": {"kind": "ClusterRole", "name": "psp"}})).unwrap();
            s
        };
        let t = set.translate();
        assert!(
            t[0].text.is_empty() && t[0].warnings[0].contains("no verb"),
            "{t:?}"
        );
    }

    #[test]
    fn missing_roles_grant_nothing_and_say_so() {
        let mut set = RbacSet::default();
        set.add(&json!({"kind": "ClusterRoleBinding", "metadata": {"name": "x"}, "subjects": [{"kind": "User", "name": "u"}], "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"}})).unwrap();
        let t = set.translate();
        assert!(t[0].text.is_empty() && t[0].warnings[0].contains("does not exist"));
        assert!(
            !set.add(&json!({"kind": "ConfigMap", "metadata": {"name": "x"}}))
                .unwrap()
        );
    }

    #[test]
    fn names_with_quotes_cannot_break_out() {
        let mut set = RbacSet::default();
        set.add(&json!({"kind": "ClusterRole", "metadata": {"name": "r"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "resourceNames": ["a\") || true || (\""], "verbs": ["get"]}]})).unwrap();
        set.add(&json!({"kind": "ClusterRoleBinding", "metadata": {"name": "b"}, "subjects": [{"kind": "User", "name": "u\"x"}], "roleRef": {"kind": "ClusterRole", "name": "r"}})).unwrap();
        let t = &set.translate()[0];
        let compiled = CompiledPolicies::compile(&t.name, None, &t.text).unwrap();
        let e = PolicyEngine::new(&[Arc::new(compiled)]).unwrap().0;
        assert!(!allowed(
            &e,
            "u\"x",
            &[],
            "get",
            "",
            "pods",
            None,
            Some("n"),
            Some("other")
        ));
        assert!(allowed(
            &e,
            "u\"x",
            &[],
            "get",
            "",
            "pods",
            None,
            Some("n"),
            Some("a\") || true || (\"")
        ));
    }
}
