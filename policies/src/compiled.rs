//! One policy source (a `CedarPolicy` object, or a shipped default) compiled and validated,
//! ready to enter a [`crate::engine::Snapshot`]. Compiling happens once per change of the
//! source, so a reload after one object changes re-parses only that object.

use cedar_policy::{ActionConstraint, Effect, PolicySet, ResourceConstraint};

use crate::{PolicyError, PolicyKind, policy_text};

/// What a permit's scope covers, conditions aside (conditions only ever narrow a permit):
/// the basis of the no-escalation check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermitScope {
    /// The policy id.
    pub id: String,
    /// The actions named (None: every action).
    pub actions: Option<Vec<String>>,
    /// Whether `k8s::Resource` requests are covered.
    pub resources: bool,
    /// Whether `k8s::NonResourceURL` requests are covered.
    pub paths: bool,
}

/// Whether a policy's conditions read the object: `resource.name` or the namespace labels
/// (`hasTag` / `getTag`).
pub fn reads_object(policy: &cedar_policy::Policy) -> bool {
    fn walk(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::Object(map) => map.iter().any(|(k, inner)| {
                let reads_name = (k == "." || k == "has")
                    && inner.get("left") == Some(&serde_json::json!({"Var": "resource"}))
                    && inner.get("attr") == Some(&serde_json::json!("name"));
                reads_name || k == "getTag" || k == "hasTag" || walk(inner)
            }),
            serde_json::Value::Array(items) => items.iter().any(walk),
            _ => false,
        }
    }
    // A policy that cannot be rendered is treated as reading the object (the safe answer
    // for "is this list complete?").
    policy
        .to_json()
        .map(|json| walk(json.get("conditions").unwrap_or(&serde_json::Value::Null)))
        .unwrap_or(true)
}

/// A validated set of authorization policies from one source.
#[derive(Debug, Clone)]
pub struct CompiledPolicies {
    /// The source's name (the `CedarPolicy` object name).
    pub name: String,
    /// The namespace its grants are confined to (None: cluster-wide).
    pub namespace: Option<String>,
    /// Authorization or admission.
    pub kind: PolicyKind,
    /// The policies, with their `@id`s as policy ids.
    pub policies: PolicySet,
}

impl CompiledPolicies {
    /// Parses and validates `text` strictly (see [`policy_text::parse`]). A source confined to
    /// a namespace may hold only permits: guardrails (forbids) are cluster-wide and belong to
    /// the security team.
    pub fn compile(name: &str, namespace: Option<&str>, text: &str) -> Result<Self, PolicyError> {
        let policies = policy_text::parse(name, text)?;
        if let Some(ns) = namespace
            && let Some(forbid) = policies.policies().find(|p| p.effect() == Effect::Forbid)
        {
            return Err(PolicyError::Tier {
                source_name: name.to_owned(),
                message: format!(
                    "policy {} is a forbid, but policies confined to namespace {ns} may only permit; guardrails are cluster-wide",
                    forbid.id()
                ),
            });
        }
        Ok(Self {
            name: name.to_owned(),
            namespace: namespace.map(str::to_owned),
            kind: PolicyKind::Authorization,
            policies,
        })
    }

    /// Parses and validates admission policies against the object schema. They may only
    /// forbid: admission admits whatever no policy forbids (authorization already decided
    /// who may write), so a permit could never change an outcome.
    pub fn compile_admission(name: &str, text: &str) -> Result<Self, PolicyError> {
        let policies = policy_text::parse_for(name, text, PolicyKind::Admission)?;
        if let Some(permit) = policies.policies().find(|p| p.effect() == Effect::Permit) {
            return Err(PolicyError::Tier {
                source_name: name.to_owned(),
                message: format!(
                    "policy {} is a permit, but admission policies may only forbid: anything no policy forbids is admitted",
                    permit.id()
                ),
            });
        }
        Ok(Self {
            name: name.to_owned(),
            namespace: None,
            kind: PolicyKind::Admission,
            policies,
        })
    }

    /// The policy ids (`@id`s), in source order.
    pub fn ids(&self) -> Vec<String> {
        self.policies
            .policies()
            .map(|p| p.id().to_string())
            .collect()
    }

    /// The scopes of the permits.
    pub fn permit_scopes(&self) -> Vec<PermitScope> {
        self.policies
            .policies()
            .filter(|p| p.effect() == Effect::Permit)
            .map(|p| {
                let actions = match p.action_constraint() {
                    ActionConstraint::Any => None,
                    ActionConstraint::Eq(a) => Some(vec![a.id().unescaped().to_owned()]),
                    ActionConstraint::In(list) => {
                        Some(list.iter().map(|a| a.id().unescaped().to_owned()).collect())
                    }
                };
                let resource_type = match p.resource_constraint() {
                    ResourceConstraint::Any => None,
                    ResourceConstraint::Is(t) | ResourceConstraint::IsIn(t, _) => {
                        Some(t.to_string())
                    }
                    ResourceConstraint::Eq(uid) | ResourceConstraint::In(uid) => {
                        Some(uid.type_name().to_string())
                    }
                };
                PermitScope {
                    id: p.id().to_string(),
                    actions,
                    resources: resource_type
                        .as_deref()
                        .is_none_or(|t| t == "k8s::Resource"),
                    paths: resource_type
                        .as_deref()
                        .is_none_or(|t| t == "k8s::NonResourceURL"),
                }
            })
            .collect()
    }

    /// Whether any policy is a forbid (the source writes the guardrail tier).
    pub fn has_guardrails(&self) -> bool {
        self.policies
            .policies()
            .any(|p| p.effect() == Effect::Forbid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaced_sources_only_permit() {
        let permit = r#"@id("a") permit (principal, action == k8s::Action::"get", resource is k8s::Resource);"#;
        let forbid = r#"@id("b") forbid (principal, action == k8s::Action::"get", resource is k8s::Resource);"#;
        assert!(CompiledPolicies::compile("x", Some("team"), permit).is_ok());
        let err = CompiledPolicies::compile("x", Some("team"), forbid).unwrap_err();
        assert!(err.to_string().contains("cluster-wide"), "{err}");
        let global = CompiledPolicies::compile("x", None, forbid).unwrap();
        assert!(global.has_guardrails());
        assert_eq!(global.ids(), ["b"]);
        assert!(global.permit_scopes().is_empty());
    }

    #[test]
    fn permit_scopes_ignore_conditions() {
        let text = r#"
            @id("a") permit (principal, action in [k8s::Action::"get", k8s::Action::"list"], resource is k8s::Resource) when { resource.resource == "pods" };
            @id("b") permit (principal, action == k8s::Action::"get", resource is k8s::NonResourceURL);
            @id("c") permit (principal in k8s::Group::"g", action, resource);"#;
        let scopes = CompiledPolicies::compile("x", None, text)
            .unwrap()
            .permit_scopes();
        let get = |id: &str| scopes.iter().find(|s| s.id == id).unwrap().clone();
        assert_eq!(
            get("a").actions,
            Some(vec!["get".to_owned(), "list".to_owned()])
        );
        assert!(get("a").resources && !get("a").paths);
        assert!(!get("b").resources && get("b").paths);
        assert_eq!(get("c").actions, None);
        assert!(get("c").resources && get("c").paths);
    }

    #[test]
    fn object_reads_are_found() {
        let text = r#"
            @id("name") permit (principal, action, resource is k8s::Resource) when { resource has name && resource.name == "x" };
            @id("tag") permit (principal, action, resource is k8s::Resource) when { resource.hasTag("env") };
            @id("plain") permit (principal, action, resource is k8s::Resource) when { resource.resource == "pods" && resource has namespace };"#;
        let compiled = CompiledPolicies::compile("x", None, text).unwrap();
        let reads: Vec<String> = compiled
            .policies
            .policies()
            .filter(|p| reads_object(p))
            .map(|p| p.id().to_string())
            .collect();
        assert_eq!(reads, ["name", "tag"]);
    }
}
