//! The audit policy: which level each request is recorded at, in upstream's
//! `audit.k8s.io/v1 Policy` file format (first matching rule wins; no match: not recorded).
//!
//! Whatever the policy says, two rules are fixed in code: bodies of secrets, token requests
//! and token reviews are never recorded (at most Metadata), and failed authentications are
//! always recorded at Metadata (see [`AuditPolicy::level_for_unauthenticated`]).

use serde::Deserialize;

use crate::AuditError;
use crate::event::{Level, Stage};

/// The hardened default: Metadata for everything; request and response bodies for changes to
/// policies, RBAC, certificate approval and exec/attach/port-forward; never bodies of
/// secrets, tokens or key material; the RequestReceived stage omitted (ResponseComplete
/// carries everything it would).
pub const DEFAULT_POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    resources:
      - group: ""
        resources: [secrets, serviceaccounts/token]
      - group: authentication.k8s.io
        resources: [tokenreviews]
  - level: RequestResponse
    verbs: [create, update, patch, delete, deletecollection]
    resources:
      - group: policy.bulwark.dev
        resources: [cedarpolicies]
      - group: rbac.authorization.k8s.io
        resources: [roles, clusterroles, rolebindings, clusterrolebindings]
      - group: certificates.k8s.io
        resources: [certificatesigningrequests/approval]
      - group: ""
        resources: [pods/exec, pods/attach, pods/portforward]
  - level: Metadata
"#;

/// Resources whose bodies are never recorded, whatever the policy says: (group, resource,
/// subresource).
const NEVER_BODIES: &[(&str, &str, Option<&str>)] = &[
    ("", "secrets", None),
    ("", "serviceaccounts", Some("token")),
    ("authentication.k8s.io", "tokenreviews", None),
];

/// One group's resources in a rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupResources {
    /// API group ("" for core).
    #[serde(default)]
    pub group: String,
    /// Resources: `pods`, `pods/log`, `pods/*`, `*/status`, `*` (empty: all).
    #[serde(default)]
    pub resources: Vec<String>,
    /// Object names (empty: all).
    #[serde(default)]
    pub resource_names: Vec<String>,
}

/// One rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyRule {
    /// The level for matching requests.
    pub level: Level,
    /// User names (empty: all).
    #[serde(default)]
    pub users: Vec<String>,
    /// Groups, any of which matches (empty: all).
    #[serde(default)]
    pub user_groups: Vec<String>,
    /// Verbs (empty: all).
    #[serde(default)]
    pub verbs: Vec<String>,
    /// Resources (empty: all resources; never matches non-resource requests unless empty).
    #[serde(default)]
    pub resources: Vec<GroupResources>,
    /// Namespaces (empty: all; `""` matches cluster-scoped requests).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Non-resource paths, `*` suffix for prefixes (empty: all).
    #[serde(default, rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
    /// Stages not recorded for matching requests.
    #[serde(default)]
    pub omit_stages: Vec<Stage>,
}

/// An audit policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditPolicy {
    /// `audit.k8s.io/v1`.
    #[serde(default)]
    pub api_version: String,
    /// `Policy`.
    #[serde(default)]
    pub kind: String,
    /// The rules, first match wins.
    #[serde(default)]
    pub rules: Vec<PolicyRule>,
    /// Stages never recorded.
    #[serde(default)]
    pub omit_stages: Vec<Stage>,
}

/// (group, resource, subresource, namespace, name) of a resource request.
pub type ResourceAttributes<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
);

/// A set of stages (those a request's event omits); a copyable bit set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stages(u8);

impl Stages {
    fn bit(stage: Stage) -> u8 {
        match stage {
            Stage::RequestReceived => 1,
            Stage::ResponseStarted => 2,
            Stage::ResponseComplete => 4,
            Stage::Panic => 8,
        }
    }

    /// The set with `stage` added.
    #[must_use]
    pub fn with(self, stage: Stage) -> Self {
        Self(self.0 | Self::bit(stage))
    }

    /// Whether `stage` is in the set.
    pub fn contains(self, stage: Stage) -> bool {
        self.0 & Self::bit(stage) != 0
    }
}

/// What a request is, for the policy.
#[derive(Debug, Clone, Default)]
pub struct RequestAttributes<'a> {
    /// User name.
    pub user: &'a str,
    /// Groups.
    pub groups: &'a [String],
    /// Verb.
    pub verb: &'a str,
    /// For resource requests: what is addressed.
    pub resource: Option<ResourceAttributes<'a>>,
    /// For non-resource requests: the path.
    pub path: &'a str,
}

fn resource_matches(rule: &str, resource: &str, subresource: Option<&str>) -> bool {
    if rule == "*" {
        return true;
    }
    match (rule.split_once('/'), subresource) {
        (None, None) => rule == resource,
        (None, Some(_)) => false,
        (Some((r, s)), Some(sub)) => (r == "*" || r == resource) && (s == "*" || s == sub),
        (Some(_), None) => false,
    }
}

impl PolicyRule {
    fn matches(&self, a: &RequestAttributes<'_>) -> bool {
        if !self.users.is_empty() && !self.users.iter().any(|u| u == a.user) {
            return false;
        }
        if !self.user_groups.is_empty() && !self.user_groups.iter().any(|g| a.groups.contains(g)) {
            return false;
        }
        if !self.verbs.is_empty() && !self.verbs.iter().any(|v| v == a.verb) {
            return false;
        }
        match a.resource {
            Some((group, resource, subresource, namespace, name)) => {
                if !self.non_resource_urls.is_empty() {
                    return false;
                }
                if !self.namespaces.is_empty()
                    && !self.namespaces.iter().any(|n| n == namespace.unwrap_or(""))
                {
                    return false;
                }
                self.resources.is_empty()
                    || self.resources.iter().any(|gr| {
                        gr.group == group
                            && (gr.resources.is_empty()
                                || gr
                                    .resources
                                    .iter()
                                    .any(|r| resource_matches(r, resource, subresource)))
                            && (gr.resource_names.is_empty()
                                || name.is_some_and(|n| gr.resource_names.iter().any(|rn| rn == n)))
                    })
            }
            None => {
                if !self.resources.is_empty() || !self.namespaces.is_empty() {
                    return false;
                }
                self.non_resource_urls.is_empty()
                    || self
                        .non_resource_urls
                        .iter()
                        .any(|u| match u.strip_suffix('*') {
                            Some(prefix) => a.path.starts_with(prefix),
                            None => a.path == u,
                        })
            }
        }
    }
}

impl AuditPolicy {
    /// Parses a policy file (YAML or JSON).
    pub fn parse(text: &str) -> Result<Self, AuditError> {
        let policy: Self =
            serde_yaml_ng::from_str(text).map_err(|e| AuditError::Policy(e.to_string()))?;
        if !policy.kind.is_empty() && policy.kind != "Policy" {
            return Err(AuditError::Policy(format!(
                "kind is {:?}, not Policy",
                policy.kind
            )));
        }
        Ok(policy)
    }

    /// The hardened default ([`DEFAULT_POLICY`]).
    pub fn hardened_default() -> Result<Self, AuditError> {
        Self::parse(DEFAULT_POLICY)
    }

    /// The level and omitted stages for a request. Bodies of secrets and tokens are never
    /// recorded, whatever the rules say. Asked on every request: nothing is allocated.
    pub fn level_for(&self, a: &RequestAttributes<'_>) -> (Level, Stages) {
        let Some(rule) = self.rules.iter().find(|r| r.matches(a)) else {
            return (Level::None, Stages::default());
        };
        let mut level = rule.level;
        if level > Level::Metadata
            && let Some((group, resource, subresource, _, _)) = a.resource
            && NEVER_BODIES.contains(&(group, resource, subresource))
        {
            level = Level::Metadata;
        }
        let omit = self
            .omit_stages
            .iter()
            .chain(&rule.omit_stages)
            .fold(Stages::default(), |set, stage| set.with(*stage));
        (level, omit)
    }

    /// Failed authentications are always recorded, at Metadata.
    pub fn level_for_unauthenticated(&self) -> Level {
        Level::Metadata
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    fn res<'a>(
        user: &'a str,
        verb: &'a str,
        group: &'a str,
        resource: &'a str,
        sub: Option<&'a str>,
    ) -> RequestAttributes<'a> {
        RequestAttributes {
            user,
            groups: &[],
            verb,
            resource: Some((group, resource, sub, Some("default"), Some("x"))),
            path: "",
        }
    }

    #[test]
    fn the_default_is_hardened() {
        let p = AuditPolicy::hardened_default().unwrap();
        assert_eq!(
            p.level_for(&res("a", "get", "", "pods", None)).0,
            Level::Metadata
        );
        assert_eq!(
            p.level_for(&res("a", "create", "", "secrets", None)).0,
            Level::Metadata
        );
        assert_eq!(
            p.level_for(&res(
                "a",
                "create",
                "policy.bulwark.dev",
                "cedarpolicies",
                None
            ))
            .0,
            Level::RequestResponse
        );
        assert_eq!(
            p.level_for(&res(
                "a",
                "get",
                "policy.bulwark.dev",
                "cedarpolicies",
                None
            ))
            .0,
            Level::Metadata
        );
        assert_eq!(
            p.level_for(&res(
                "a",
                "update",
                "certificates.k8s.io",
                "certificatesigningrequests",
                Some("approval")
            ))
            .0,
            Level::RequestResponse
        );
        assert_eq!(
            p.level_for(&res("a", "create", "", "pods", Some("exec"))).0,
            Level::RequestResponse
        );
        let path = RequestAttributes {
            user: "a",
            groups: &[],
            verb: "get",
            resource: None,
            path: "/healthz",
        };
        assert_eq!(p.level_for(&path).0, Level::Metadata);
        assert!(p.level_for(&path).1.contains(Stage::RequestReceived));
        assert!(!p.level_for(&path).1.contains(Stage::ResponseComplete));
    }

    #[test]
    fn secrets_never_get_bodies_whatever_the_policy() {
        let p = AuditPolicy::parse("rules:\n  - level: RequestResponse\n").unwrap();
        assert_eq!(
            p.level_for(&res("a", "create", "", "secrets", None)).0,
            Level::Metadata
        );
        assert_eq!(
            p.level_for(&res("a", "create", "", "serviceaccounts", Some("token")))
                .0,
            Level::Metadata
        );
        assert_eq!(
            p.level_for(&res("a", "create", "", "configmaps", None)).0,
            Level::RequestResponse
        );
    }

    #[test]
    fn rules_match_like_upstream() {
        let p = AuditPolicy::parse(
            "rules:\n  - level: None\n    users: [system:kube-proxy]\n    verbs: [watch]\n  - level: Request\n    userGroups: [dev]\n    namespaces: [team-a]\n    resources: [{group: apps, resources: [\"deployments/*\"]}]\n  - level: None\n    nonResourceURLs: [\"/healthz*\"]\n  - level: Metadata\n    resources: [{group: \"\", resources: [pods], resourceNames: [web]}]\n",
        )
        .unwrap();
        assert_eq!(
            p.level_for(&res("system:kube-proxy", "watch", "", "pods", None))
                .0,
            Level::None
        );
        let dev = ["dev".to_owned()];
        let scale = RequestAttributes {
            user: "u",
            groups: &dev,
            verb: "update",
            resource: Some((
                "apps",
                "deployments",
                Some("scale"),
                Some("team-a"),
                Some("d"),
            )),
            path: "",
        };
        assert_eq!(p.level_for(&scale).0, Level::Request);
        let main = RequestAttributes {
            resource: Some(("apps", "deployments", None, Some("team-a"), Some("d"))),
            ..scale.clone()
        };
        assert_eq!(p.level_for(&main).0, Level::None);
        let health = RequestAttributes {
            user: "u",
            groups: &[],
            verb: "get",
            resource: None,
            path: "/healthz/ready",
        };
        assert_eq!(p.level_for(&health).0, Level::None);
        assert_eq!(
            p.level_for(&res("u", "get", "", "pods", None)).0,
            Level::None,
            "resourceNames: x is not web"
        );
        assert!(AuditPolicy::parse("kind: Nope\n").is_err());
        assert!(AuditPolicy::parse("rules:\n  - level: Loud\n").is_err());
    }
}
