//! Admission for CedarPolicy objects: a policy is accepted only if it is valid, confined
//! where it says, written by someone entitled to write it, and leaves the cluster manageable.
//!
//! On create and update (of the spec) and on delete:
//! 1. **Validation**: the text parses, every policy has a unique `@id`, and strict validation
//!    against the schema gives no error and no warning. A rejection is a 422 whose causes are
//!    Cedar's diagnostics, one per line.
//! 2. **Tier**: forbids form the guardrail tier, which only the security team writes: an
//!    author of guardrails (or of a change removing them) must be allowed the same verb on
//!    `cedarpolicies/guardrails`. Objects confined to a namespace hold only permits.
//! 3. **No escalation**: a permit may grant only what its author holds. Its scope is what
//!    counts — every action it names (or all) on every resource type it covers, in its
//!    namespace when confined, cluster-wide otherwise — because conditions only ever narrow a
//!    permit. Authors allowed `escalate` on `cedarpolicies` skip this check (as upstream's
//!    RBAC `escalate` verb).
//! 4. **Canaries**: critical requests (admins managing policies and namespaces, everyone
//!    reading discovery) are decided with the candidate policy set; a change that breaks a
//!    canary that holds today is refused, so no policy change can lock every admin out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use bulwark_admission::{AdmissionEngine, AdmissionSnapshot, Mode};
use bulwark_api::StatusCause;
use bulwark_api::cedar_policy::{CedarPolicy, CedarPolicyKind, GROUP};
use bulwark_api::status::Status;
use bulwark_policies::engine::Snapshot;
use bulwark_policies::{
    AccessRequest, CompiledPolicies, PolicyEngine, PolicyError, PolicyKind, Target,
};
use serde_json::Value;

use crate::admission::{AdmissionPlugin, AdmissionRequest};
use crate::authz::{self, RequestAttributes};
use crate::http::error::ApiError;
use crate::http::request_info::Verb;

use bulwark_policies::request::RESOURCE_VERBS as RESOURCE_ACTIONS;

/// The non-resource paths the server serves.
pub const NON_RESOURCE_PATHS: &[&str] = &[
    "/api",
    "/apis",
    "/version",
    "/healthz",
    "/livez",
    "/readyz",
    "/metrics",
    "/openapi/v2",
    "/openapi/v3",
];

/// Largest `spec.policies` of one object (as upstream bounds objects at about 1.5 MiB); split
/// bigger policy sets across objects.
pub const MAX_OBJECT_POLICY_TEXT: usize = 1024 * 1024;

/// The group whose members are cluster administrators by the shipped defaults.
pub const CLUSTER_ADMINS: &str = "bulwark:cluster-admins";

/// Admission for `policy.bulwark.dev/v1 CedarPolicy`.
#[derive(Debug)]
pub struct CedarPolicyAdmission {
    engine: Arc<PolicyEngine>,
    admission: Arc<AdmissionEngine>,
}

impl CedarPolicyAdmission {
    /// Checks policy objects against what `engine` (authorization) and `admission` have in
    /// force.
    pub fn new(engine: Arc<PolicyEngine>, admission: Arc<AdmissionEngine>) -> Self {
        Self { engine, admission }
    }
}

fn invalid(name: &str, causes: Vec<StatusCause>) -> ApiError {
    Status::invalid(GROUP, "CedarPolicy", name, causes).into()
}

fn cause(field: &str, message: impl Into<String>) -> StatusCause {
    StatusCause::invalid(field, message)
}

/// Cedar's diagnostics as one cause each.
fn diagnostics(err: &PolicyError) -> Vec<StatusCause> {
    let lines: Vec<String> = match err {
        PolicyError::Invalid { diagnostics, .. } => diagnostics.clone(),
        PolicyError::Syntax { message, .. }
        | PolicyError::Ids { message, .. }
        | PolicyError::Tier { message, .. } => message.lines().map(str::to_owned).collect(),
        other => vec![other.to_string()],
    };
    lines
        .into_iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| cause("spec.policies", l))
        .collect()
}

fn decode(obj: Option<&Value>) -> Result<Option<CedarPolicy>, ApiError> {
    obj.map(|o| {
        serde_json::from_value(o.clone())
            .map_err(|e| ApiError::bad_request(format!("CedarPolicy cannot be decoded: {e}")))
    })
    .transpose()
}

/// A resource request's attributes for a decision about the author.
fn attrs<'a>(
    verb: &'a str,
    api_group: &'a str,
    resource: &'a str,
    subresource: Option<&'a str>,
    namespace: Option<&'a str>,
    name: Option<&'a str>,
) -> RequestAttributes<'a> {
    RequestAttributes {
        verb,
        target: Target::Resource {
            api_group,
            resource,
            subresource,
            namespace,
            name,
            namespace_labels: &[],
        },
    }
}

impl CedarPolicyAdmission {
    /// The scope-derived permissions of `compiled`'s permits that the author lacks.
    fn escalations(
        &self,
        snapshot: &Snapshot,
        req: &AdmissionRequest<'_>,
        compiled: &CompiledPolicies,
    ) -> Vec<StatusCause> {
        let namespace = compiled.namespace.as_deref();
        let mut checked: HashMap<(String, String, Option<String>), bool> = HashMap::new();
        let mut causes = Vec::new();
        for scope in compiled.permit_scopes() {
            let actions: Vec<String> = scope.actions.clone().unwrap_or_else(|| {
                RESOURCE_ACTIONS
                    .iter()
                    .chain(&["post"])
                    .map(|a| (*a).to_owned())
                    .collect()
            });
            let (covers_resources, covers_paths) = (scope.resources, scope.paths);
            let mut missing = Vec::new();
            for action in &actions {
                if covers_resources && RESOURCE_ACTIONS.contains(&action.as_str()) {
                    for def in req.resources.iter() {
                        // Confined grants reach only namespaced objects in their namespace.
                        if namespace.is_some() && !def.namespaced() {
                            continue;
                        }
                        let subs = std::iter::once(None)
                            .chain(def.subresources().iter().map(|s| Some(s.name())));
                        for sub in subs {
                            let label = match sub {
                                Some(s) => format!("{}/{s}", def.plural()),
                                None => def.plural().to_owned(),
                            };
                            let key = (
                                action.clone(),
                                format!("{}:{label}", def.group()),
                                namespace.map(str::to_owned),
                            );
                            let held = *checked.entry(key).or_insert_with(|| {
                                authz::snapshot_allows(
                                    snapshot,
                                    req.user,
                                    &attrs(action, def.group(), def.plural(), sub, namespace, None),
                                    req.source,
                                )
                            });
                            if !held {
                                missing.push(format!("{action} {label}"));
                            }
                        }
                    }
                }
                if covers_paths && matches!(action.as_str(), "get" | "post") && namespace.is_none()
                {
                    for path in NON_RESOURCE_PATHS {
                        let key = (action.clone(), (*path).to_owned(), None);
                        let held = *checked.entry(key).or_insert_with(|| {
                            authz::snapshot_allows(
                                snapshot,
                                req.user,
                                &RequestAttributes::non_resource(action, path),
                                req.source,
                            )
                        });
                        if !held {
                            missing.push(format!("{action} {path}"));
                        }
                    }
                }
            }
            if !missing.is_empty() {
                let shown: Vec<&str> = missing.iter().take(8).map(String::as_str).collect();
                let more = missing.len().saturating_sub(shown.len());
                causes.push(cause(
                    "spec.policies",
                    format!(
                        "policy {} grants what its author ({}) does not hold{}: {}{}",
                        scope.id,
                        req.user.name,
                        namespace
                            .map(|ns| format!(" in namespace {ns}"))
                            .unwrap_or_default(),
                        shown.join(", "),
                        if more > 0 {
                            format!(" and {more} more")
                        } else {
                            String::new()
                        }
                    ),
                ));
            }
        }
        causes
    }

    fn admit_change(
        &self,
        req: &AdmissionRequest<'_>,
        new: Option<&CedarPolicy>,
        old: Option<&CedarPolicy>,
    ) -> Result<(), ApiError> {
        let name = req.name;
        let snapshot = self.engine.current();
        // 1. Validation.
        let compiled = match new {
            None => None,
            Some(policy) => {
                let admission = policy.spec.kind == CedarPolicyKind::Admission;
                if admission && policy.spec.namespace.is_some() {
                    return Err(invalid(
                        name,
                        vec![cause(
                            "spec.namespace",
                            "admission policies are cluster-wide; narrow them with a condition on resource.metadata.namespace (or resource.namespace for pod security views)",
                        )],
                    ));
                }
                if policy.spec.policies.len() > MAX_OBJECT_POLICY_TEXT {
                    return Err(invalid(
                        name,
                        vec![cause(
                            "spec.policies",
                            format!(
                                "must be at most {MAX_OBJECT_POLICY_TEXT} bytes (got {}); split the policies across objects",
                                policy.spec.policies.len()
                            ),
                        )],
                    ));
                }
                if !admission && policy.spec.mode.is_some() {
                    return Err(invalid(
                        name,
                        vec![cause(
                            "spec.mode",
                            "mode applies to Admission policies only",
                        )],
                    ));
                }
                if let Some(problem) = policy
                    .spec
                    .namespace
                    .as_deref()
                    .and_then(bulwark_api::names::dns1123_label)
                {
                    return Err(invalid(name, vec![cause("spec.namespace", problem)]));
                }
                let compiled = crate::authz::policy_sync::compile(policy)
                    .map_err(|e| invalid(name, diagnostics(&e)))?;
                Some(Arc::new(compiled))
            }
        };

        // 2. Tier: guardrails need the guardrail permission.
        // The old object is compiled from what is stored, not taken from the snapshot in
        // force: the snapshot may lag a moment behind the object's latest generation.
        let old_compiled = old.and_then(|p| crate::authz::policy_sync::compile(p).ok());
        let touches_guardrails = compiled.as_ref().is_some_and(|c| c.has_guardrails())
            || old_compiled.as_ref().is_some_and(|c| c.has_guardrails());
        let verb = req.verb.as_str();
        if touches_guardrails
            && !authz::snapshot_allows(
                &snapshot,
                req.user,
                &attrs(
                    verb,
                    GROUP,
                    "cedarpolicies",
                    Some("guardrails"),
                    None,
                    Some(name),
                ),
                req.source,
            )
        {
            return Err(ApiError::new(
                bulwark_api::StatusReason::Forbidden,
                format!(
                    "cedarpolicies \"{name}\" is forbidden: User \"{}\" cannot {verb} guardrails (forbid policies): that needs {verb} on cedarpolicies/guardrails",
                    req.user.name
                ),
            ));
        }

        // 3. No escalation.
        if let Some(compiled) = &compiled {
            let may_escalate = authz::snapshot_allows(
                &snapshot,
                req.user,
                &attrs("escalate", GROUP, "cedarpolicies", None, None, Some(name)),
                req.source,
            );
            if !may_escalate {
                let causes = self.escalations(&snapshot, req, compiled);
                if !causes.is_empty() {
                    return Err(ApiError::new(
                        bulwark_api::StatusReason::Forbidden,
                        format!(
                            "cedarpolicies \"{name}\" is forbidden: {} (a policy may grant only what its author holds)",
                            causes
                                .iter()
                                .map(|c| c.message.as_str())
                                .collect::<Vec<_>>()
                                .join("; ")
                        ),
                    ));
                }
            }
        }

        // 4. The candidate sets: this object replaced (or removed), everything else as in force.
        let is_authorization = |c: &&Arc<CompiledPolicies>| c.kind == PolicyKind::Authorization;
        let admission_snapshot = self.admission.current();
        let mut admission_sources: Vec<(Arc<CompiledPolicies>, Mode)> = admission_snapshot
            .sources()
            .values()
            .filter(|(s, _)| s.name != name)
            .cloned()
            .collect();
        admission_sources.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        if let (Some(compiled), Some(policy)) = (&compiled, new)
            && compiled.kind == PolicyKind::Admission
        {
            admission_sources.push((
                Arc::clone(compiled),
                crate::authz::policy_sync::mode_of(policy),
            ));
            let (_, skipped) = AdmissionSnapshot::build(self.admission.model(), &admission_sources)
                .map_err(|e| invalid(name, vec![cause("spec.policies", e.to_string())]))?;
            if let Some(s) = skipped.iter().find(|s| s.name == name) {
                return Err(invalid(
                    name,
                    vec![cause("spec.policies", s.reason.clone())],
                ));
            }
        }
        let mut sources: Vec<Arc<CompiledPolicies>> = snapshot
            .sources()
            .values()
            .filter(|s| s.name != name)
            .cloned()
            .collect();
        sources.sort_by(|a, b| a.name.cmp(&b.name));
        sources.extend(compiled.iter().filter(is_authorization).cloned());
        let (candidate, skipped) =
            Snapshot::build(&sources).map_err(|e| invalid(name, diagnostics(&e)))?;
        if let Some(s) = skipped.iter().find(|s| s.name == name) {
            return Err(invalid(
                name,
                vec![cause("spec.policies", s.reason.clone())],
            ));
        }
        let broken = crate::admission::policy::canaries::broken(&snapshot, &candidate);
        if !broken.is_empty() {
            return Err(invalid(
                name,
                broken
                    .into_iter()
                    .map(|b| {
                        cause(
                            "spec.policies",
                            format!("this change would lock out {b}; refused (canary)"),
                        )
                    })
                    .collect(),
            ));
        }
        Ok(())
    }
}

impl AdmissionPlugin for CedarPolicyAdmission {
    fn name(&self) -> &'static str {
        "CedarPolicyValidation"
    }

    fn admit(&self, req: &AdmissionRequest<'_>) -> Result<Vec<String>, ApiError> {
        if req.def.group() != GROUP || req.def.plural() != "cedarpolicies" {
            return Ok(Vec::new());
        }
        let new = decode(req.object)?;
        let old = decode(req.old_object)?;
        let deleting = req.verb == Verb::Delete
            || req
                .object
                .is_some_and(|o| o.pointer("/metadata/deletionTimestamp").is_some());
        match (&new, &old) {
            // Status and metadata writes leave the policies as they are.
            (Some(n), Some(o)) if n.spec == o.spec && !deleting => Ok(Vec::new()),
            _ if deleting => self
                .admit_change(req, None, old.as_ref().or(new.as_ref()))
                .map(|()| Vec::new()),
            _ => self
                .admit_change(req, new.as_ref(), old.as_ref())
                .map(|()| Vec::new()),
        }
    }
}

/// The critical requests no policy change may break.
pub mod canaries {
    use super::*;

    /// A canary: who, what, on what.
    struct Canary {
        what: &'static str,
        user: &'static str,
        groups: &'static [&'static str],
        verb: &'static str,
        target: Target<'static>,
    }

    fn resource(
        api_group: &'static str,
        resource: &'static str,
        namespace: Option<&'static str>,
    ) -> Target<'static> {
        Target::Resource {
            api_group,
            resource,
            subresource: None,
            namespace,
            name: None,
            namespace_labels: &[],
        }
    }

    fn all() -> Vec<Canary> {
        let admin = |verb, target| Canary {
            what: "the cluster admins (bulwark:cluster-admins)",
            user: "canary-admin",
            groups: &[CLUSTER_ADMINS, "system:authenticated"],
            verb,
            target,
        };
        let mut canaries: Vec<Canary> = [
            "get", "list", "watch", "create", "update", "patch", "delete",
        ]
        .into_iter()
        .map(|verb| admin(verb, resource(GROUP, "cedarpolicies", None)))
        .collect();
        canaries.push(admin("escalate", resource(GROUP, "cedarpolicies", None)));
        for verb in ["get", "list", "create", "update", "delete"] {
            canaries.push(admin(verb, resource("", "namespaces", None)));
        }
        canaries.push(Canary {
            what: "every authenticated user from API discovery",
            user: "canary-user",
            groups: &["system:authenticated"],
            verb: "get",
            target: Target::NonResource { path: "/api" },
        });
        canaries.push(Canary {
            what: "every authenticated user from API discovery",
            user: "canary-user",
            groups: &["system:authenticated"],
            verb: "get",
            target: Target::NonResource { path: "/apis" },
        });
        canaries
    }

    /// What the candidate breaks: for each kind of identity, the canary requests that are
    /// allowed by `current` but not by `candidate`.
    pub fn broken(current: &Snapshot, candidate: &Snapshot) -> Vec<String> {
        let mut out: Vec<(&str, Vec<String>)> = Vec::new();
        for c in all() {
            let groups: Vec<String> = c.groups.iter().map(|g| (*g).to_owned()).collect();
            let request = AccessRequest {
                user: c.user,
                groups: &groups,
                auth_method: "x509",
                cert_fingerprint: None,
                source_ip: IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
                verb: c.verb,
                target: c.target.clone(),
            };
            if current.decide(&request).allowed && !candidate.decide(&request).allowed {
                let request = format!(
                    "{} {}",
                    c.verb,
                    match &c.target {
                        Target::Resource { resource, .. } => resource,
                        Target::NonResource { path } => path,
                    }
                );
                match out.iter_mut().find(|(what, _)| *what == c.what) {
                    Some((_, requests)) => requests.push(request),
                    None => out.push((c.what, vec![request])),
                }
            }
        }
        out.into_iter()
            .map(|(what, requests)| format!("{what} ({})", requests.join(", ")))
            .collect()
    }
}
