//! Admission for RBAC objects: they are translated into Cedar grants, so writing one must not
//! grant more than its author holds (upstream's escalation prevention, decided by the Cedar
//! policies in force).
//!
//! - A Role or ClusterRole may hold only rules its author could exercise where the role
//!   applies (its namespace, or cluster-wide), unless the author may `escalate` roles
//!   (or clusterroles) of that name.
//! - A RoleBinding or ClusterRoleBinding may bind only a role whose every rule its author
//!   could exercise where the binding applies, unless the author may `bind` that role. A
//!   binding to a role that does not exist (yet) needs `bind`.
//!
//! Wildcards are checked literally: to write a rule on resource `*` the author must be allowed
//! on resource `*`, which only a policy that does not constrain the resource allows.

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bulwark_api::StatusReason;
use bulwark_policies::rbac::{PATH_VERBS, PolicyRule, RbacSet};
use bulwark_policies::request::RESOURCE_VERBS;
use bulwark_policies::{PolicyEngine, Snapshot, Target};
use serde_json::Value;

use crate::admission::{AdmissionPlugin, AdmissionRequest};
use crate::authn::UserInfo;
use crate::authz::{self, RequestAttributes};
use crate::http::error::ApiError;
use crate::http::request_info::Verb;

/// The RBAC group.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Escalation prevention for RBAC writes.
#[derive(Debug)]
pub struct RbacAdmission {
    engine: Arc<PolicyEngine>,
    roles: Arc<ArcSwap<RbacSet>>,
}

impl RbacAdmission {
    /// Decides with `engine`; `roles` are the mirrored roles bindings refer to.
    pub fn new(engine: Arc<PolicyEngine>, roles: Arc<ArcSwap<RbacSet>>) -> Self {
        Self { engine, roles }
    }
}

struct Author<'a> {
    snapshot: &'a Snapshot,
    user: &'a UserInfo,
    source: IpAddr,
}

impl Author<'_> {
    fn may(&self, verb: &str, target: Target<'_>) -> bool {
        authz::snapshot_allows(
            self.snapshot,
            self.user,
            &RequestAttributes { verb, target },
            self.source,
        )
    }

    fn may_on(&self, verb: &str, resource: &str, namespace: Option<&str>, name: &str) -> bool {
        self.may(
            verb,
            Target::Resource {
                api_group: RBAC_GROUP,
                resource,
                subresource: None,
                namespace,
                name: Some(name),
                namespace_labels: &[],
            },
        )
    }

    /// What in `rules` the author could not do in `namespace` (None: cluster-wide).
    fn missing(&self, rules: &[PolicyRule], namespace: Option<&str>) -> Vec<String> {
        let mut out = Vec::new();
        for rule in rules {
            let verbs = |known: &[&str]| -> Vec<String> {
                if rule.verbs.iter().any(|v| v == "*") {
                    known.iter().map(|v| (*v).to_owned()).collect()
                } else {
                    rule.verbs.clone()
                }
            };
            let names: Vec<Option<&str>> = if rule.resource_names.is_empty() {
                vec![None]
            } else {
                rule.resource_names
                    .iter()
                    .map(|n| Some(n.as_str()))
                    .collect()
            };
            for verb in verbs(RESOURCE_VERBS) {
                for group in &rule.api_groups {
                    for resource in &rule.resources {
                        let (resource, subresource) = match resource.split_once('/') {
                            Some((r, s)) => (r, Some(s)),
                            None => (resource.as_str(), None),
                        };
                        for name in &names {
                            let held = self.may(
                                &verb,
                                Target::Resource {
                                    api_group: group,
                                    resource,
                                    subresource,
                                    namespace,
                                    name: *name,
                                    namespace_labels: &[],
                                },
                            );
                            if !held {
                                let group = if group.is_empty() { "core" } else { group };
                                out.push(format!(
                                    "{verb} {group}/{resource}{}{}",
                                    subresource.map(|s| format!("/{s}")).unwrap_or_default(),
                                    name.map(|n| format!(" {n:?}")).unwrap_or_default()
                                ));
                            }
                        }
                    }
                }
            }
            if namespace.is_none() {
                for verb in verbs(PATH_VERBS) {
                    for path in &rule.non_resource_urls {
                        if !self.may(&verb, Target::NonResource { path }) {
                            out.push(format!("{verb} {path}"));
                        }
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

fn rules_of(object: &Value) -> Result<Vec<PolicyRule>, ApiError> {
    match object.get("rules") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(rules) => serde_json::from_value(rules.clone())
            .map_err(|e| ApiError::bad_request(format!("rules: {e}"))),
    }
}

fn forbidden(plural: &str, name: &str, message: String) -> ApiError {
    ApiError::new(
        StatusReason::Forbidden,
        format!("{plural}.{RBAC_GROUP} \"{name}\" is forbidden: {message}"),
    )
}

fn describe(missing: &[String]) -> String {
    let shown: Vec<&str> = missing.iter().take(8).map(String::as_str).collect();
    let more = missing.len().saturating_sub(shown.len());
    format!(
        "{}{}",
        shown.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    )
}

impl AdmissionPlugin for RbacAdmission {
    fn name(&self) -> &'static str {
        "RbacEscalation"
    }

    fn admit(&self, req: &AdmissionRequest<'_>) -> Result<Vec<String>, ApiError> {
        let def = req.def;
        if def.group() != RBAC_GROUP
            || !matches!(req.verb, Verb::Create | Verb::Update | Verb::Patch)
        {
            return Ok(Vec::new());
        }
        let Some(object) = req.object else {
            return Ok(Vec::new());
        };
        let snapshot = self.engine.current();
        let author = Author {
            snapshot: &snapshot,
            user: req.user,
            source: req.source,
        };
        let namespace = if def.namespaced() {
            req.namespace
        } else {
            None
        };
        match def.kind() {
            "Role" | "ClusterRole" => {
                if author.may_on("escalate", def.plural(), namespace, req.name) {
                    return Ok(Vec::new());
                }
                let missing = author.missing(&rules_of(object)?, namespace);
                if !missing.is_empty() {
                    return Err(forbidden(
                        def.plural(),
                        req.name,
                        format!(
                            "user \"{}\" is attempting to grant permissions not currently held: {} (needs those permissions, or escalate on {})",
                            req.user.name,
                            describe(&missing),
                            def.plural()
                        ),
                    ));
                }
            }
            _ => {
                let kind = object
                    .pointer("/roleRef/kind")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let role = object
                    .pointer("/roleRef/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let (role_plural, role_ns) = match kind {
                    "Role" if def.kind() == "RoleBinding" => ("roles", namespace),
                    "ClusterRole" => ("clusterroles", None),
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "roleRef.kind must be ClusterRole{} (got {kind:?})",
                            if def.kind() == "RoleBinding" {
                                " or Role"
                            } else {
                                ""
                            }
                        )));
                    }
                };
                if author.may_on("bind", role_plural, role_ns, role) {
                    return Ok(Vec::new());
                }
                let set = self.roles.load();
                let binding = bulwark_policies::rbac::Binding {
                    kind: def.kind().to_owned(),
                    namespace: namespace.map(str::to_owned),
                    name: req.name.to_owned(),
                    subjects: Vec::new(),
                    role_ref: bulwark_policies::rbac::RoleRef {
                        kind: kind.to_owned(),
                        name: role.to_owned(),
                    },
                };
                let Some(rules) = set.rules_of(&binding) else {
                    return Err(forbidden(
                        def.plural(),
                        req.name,
                        format!(
                            "{kind} {role:?} does not exist; binding to it needs bind on {role_plural}"
                        ),
                    ));
                };
                let missing = author.missing(rules, namespace);
                if !missing.is_empty() {
                    return Err(forbidden(
                        def.plural(),
                        req.name,
                        format!(
                            "user \"{}\" is attempting to grant permissions not currently held: {} (needs those permissions, or bind on {role_plural} {role:?})",
                            req.user.name,
                            describe(&missing)
                        ),
                    ));
                }
            }
        }
        Ok(Vec::new())
    }
}
