//! The tiered decision over an atomically swapped snapshot of policy sets.
//!
//! 1. **Bootstrap** (compiled in): a permit here allows. The control plane's own identities
//!    can therefore never be locked out by later tiers.
//! 2. **Guardrails** (forbids, written by the security team): a matching forbid denies, and so
//!    does a forbid that fails to evaluate — Cedar itself skips erroring policies, which must
//!    never fail open.
//! 3. **Grants** (permits): a matching permit allows.
//! 4. Otherwise: deny (no policy means deny).
//!
//! Every decision names the policies that determined it and their `@reason` annotations.
//!
//! Cedar scans every policy of a set, so each tier is indexed: policies are bucketed by the
//! entity their principal scope names (`principal in k8s::Group::"dev"`, `principal ==
//! k8s::User::"alice"`, or any principal) and by the action their scope names (or any
//! action). A request evaluates only the buckets of its principal, its groups and its action.
//! Within a tier the outcome is the same as evaluating the whole set: permits allow if any
//! matches, forbids deny if any matches or errors.

use std::sync::Arc;

use std::collections::HashMap;

use arc_swap::ArcSwap;
use cedar_policy::{
    ActionConstraint, Authorizer, Decision as CedarDecision, Effect, EntityUid, PolicyId,
    PolicySet, PrincipalConstraint,
};

use crate::request::{AccessRequest, CedarRequest};
use crate::{PolicyError, policy_text};

/// The compiled-in bootstrap tier.
pub const BOOTSTRAP_POLICIES: &str = include_str!("../cedar/bootstrap.cedar");
/// The default grants installed on first start.
pub const DEFAULT_GRANTS: &str = include_str!("../cedar/grants.cedar");

/// Which tier decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// The compiled-in bootstrap tier allowed.
    Bootstrap,
    /// A guardrail forbade (or failed to evaluate).
    Guardrail,
    /// A grant allowed.
    Grant,
    /// Nothing allowed.
    DefaultDeny,
}

/// A decision and its explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The tier that decided.
    pub tier: Tier,
    /// Ids of the policies that determined the decision.
    pub policies: Vec<String>,
    /// Their `@reason` annotations (or a fixed text for default deny and errors).
    pub reasons: Vec<String>,
}

/// Bucket key: the principal-scope entity (None = any) and the action (None = any).
type BucketKey = (Option<EntityUid>, Option<EntityUid>);

/// One tier's policies, bucketed by principal and action scope.
#[derive(Debug)]
struct IndexedTier {
    all: PolicySet,
    buckets: HashMap<BucketKey, PolicySet>,
}

/// What one tier says about a request.
struct TierOutcome {
    allowed: bool,
    matched: Vec<String>,
    errors: Vec<(String, String)>,
}

impl IndexedTier {
    fn new(all: PolicySet) -> Result<Self, PolicyError> {
        let mut buckets: HashMap<BucketKey, PolicySet> = HashMap::new();
        for policy in all.policies() {
            let principal = match policy.principal_constraint() {
                PrincipalConstraint::In(uid)
                | PrincipalConstraint::Eq(uid)
                | PrincipalConstraint::IsIn(_, uid) => Some(uid),
                PrincipalConstraint::Any | PrincipalConstraint::Is(_) => None,
            };
            let actions = match policy.action_constraint() {
                ActionConstraint::Any => vec![None],
                ActionConstraint::Eq(uid) => vec![Some(uid)],
                ActionConstraint::In(uids) => uids.into_iter().map(Some).collect(),
            };
            for action in actions {
                buckets
                    .entry((principal.clone(), action))
                    .or_default()
                    .add(policy.clone())
                    .map_err(|e| PolicyError::Request(e.to_string()))?;
            }
        }
        Ok(Self { all, buckets })
    }

    fn evaluate(&self, authorizer: &Authorizer, cedar: &CedarRequest) -> TierOutcome {
        let mut outcome = TierOutcome {
            allowed: false,
            matched: Vec::new(),
            errors: Vec::new(),
        };
        let principals =
            std::iter::once(None).chain(cedar.principal_and_groups.iter().cloned().map(Some));
        for principal in principals {
            for action in [None, Some(cedar.action.clone())] {
                let Some(set) = self.buckets.get(&(principal.clone(), action)) else {
                    continue;
                };
                let response = authorizer.is_authorized(&cedar.request, set, &cedar.entities);
                outcome.allowed |= response.decision() == CedarDecision::Allow;
                outcome
                    .matched
                    .extend(response.diagnostics().reason().map(ToString::to_string));
                outcome
                    .errors
                    .extend(response.diagnostics().errors().map(|e| match e {
                        cedar_policy::AuthorizationError::PolicyEvaluationError(err) => {
                            (err.policy_id().to_string(), err.inner().to_string())
                        }
                    }));
            }
        }
        outcome.matched.sort();
        outcome.matched.dedup();
        outcome
    }
}

/// The policy sets in force, replaced as a whole.
#[derive(Debug)]
pub struct Snapshot {
    bootstrap: IndexedTier,
    guardrails: IndexedTier,
    grants: IndexedTier,
}

/// Decides requests with tiered Cedar policies.
pub struct PolicyEngine {
    snapshot: ArcSwap<Snapshot>,
    authorizer: Authorizer,
}

impl std::fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyEngine").finish_non_exhaustive()
    }
}

fn require_effect(source: &str, set: &PolicySet, effect: Effect) -> Result<(), PolicyError> {
    match set.policies().find(|p| p.effect() != effect) {
        Some(p) => Err(PolicyError::Tier {
            source_name: source.to_owned(),
            message: format!(
                "policy {} is a {:?}, but this tier holds only {effect:?} policies",
                p.id(),
                p.effect()
            ),
        }),
        None => Ok(()),
    }
}

fn reasons(set: &PolicySet, ids: &[String]) -> Vec<String> {
    ids.iter()
        .map(|id| {
            // A keyed lookup: scanning the set here would cost a pass over every policy.
            set.annotation(&PolicyId::new(id), "reason")
                .unwrap_or("(no @reason given)")
                .to_owned()
        })
        .collect()
}

impl PolicyEngine {
    /// An engine with the bootstrap tier and the given guardrail and grant texts.
    pub fn new(guardrails: &str, grants: &str) -> Result<Self, PolicyError> {
        Ok(Self {
            snapshot: ArcSwap::from_pointee(Self::snapshot(guardrails, grants)?),
            authorizer: Authorizer::new(),
        })
    }

    /// The engine with the shipped defaults (no guardrails, the default grants).
    pub fn with_defaults() -> Result<Self, PolicyError> {
        Self::new("", DEFAULT_GRANTS)
    }

    fn snapshot(guardrails: &str, grants: &str) -> Result<Snapshot, PolicyError> {
        let bootstrap = policy_text::parse("bootstrap.cedar", BOOTSTRAP_POLICIES)?;
        require_effect("bootstrap.cedar", &bootstrap, Effect::Permit)?;
        let guardrails = policy_text::parse("guardrails", guardrails)?;
        require_effect("guardrails", &guardrails, Effect::Forbid)?;
        let grants = policy_text::parse("grants", grants)?;
        require_effect("grants", &grants, Effect::Permit)?;
        Ok(Snapshot {
            bootstrap: IndexedTier::new(bootstrap)?,
            guardrails: IndexedTier::new(guardrails)?,
            grants: IndexedTier::new(grants)?,
        })
    }

    /// Replaces the guardrail and grant tiers at once; on error nothing changes.
    pub fn reload(&self, guardrails: &str, grants: &str) -> Result<(), PolicyError> {
        self.snapshot
            .store(Arc::new(Self::snapshot(guardrails, grants)?));
        Ok(())
    }

    /// Decides one request. A request that cannot be expressed in Cedar is denied.
    pub fn decide(&self, request: &AccessRequest<'_>) -> Decision {
        let cedar = match request.to_cedar() {
            Ok(c) => c,
            Err(e) => {
                return Decision {
                    allowed: false,
                    tier: Tier::DefaultDeny,
                    policies: Vec::new(),
                    reasons: vec![format!("the request could not be evaluated: {e}")],
                };
            }
        };
        let snapshot = self.snapshot.load();
        let boot = snapshot.bootstrap.evaluate(&self.authorizer, &cedar);
        if boot.allowed {
            let reasons = reasons(&snapshot.bootstrap.all, &boot.matched);
            return Decision {
                allowed: true,
                tier: Tier::Bootstrap,
                policies: boot.matched,
                reasons,
            };
        }

        let guard = snapshot.guardrails.evaluate(&self.authorizer, &cedar);
        if !guard.matched.is_empty() || !guard.errors.is_empty() {
            let mut reasons = reasons(&snapshot.guardrails.all, &guard.matched);
            let mut policies = guard.matched;
            for (id, error) in guard.errors {
                reasons.push(format!(
                    "guardrail {id} could not be evaluated, so the request is denied: {error}"
                ));
                policies.push(id);
            }
            return Decision {
                allowed: false,
                tier: Tier::Guardrail,
                policies,
                reasons,
            };
        }

        let grant = snapshot.grants.evaluate(&self.authorizer, &cedar);
        if grant.allowed {
            let reasons = reasons(&snapshot.grants.all, &grant.matched);
            return Decision {
                allowed: true,
                tier: Tier::Grant,
                policies: grant.matched,
                reasons,
            };
        }
        Decision {
            allowed: false,
            tier: Tier::DefaultDeny,
            policies: Vec::new(),
            reasons: vec!["no policy allows this request (default deny)".to_owned()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Target;

    fn ask<'a>(
        user: &'a str,
        groups: &'a [String],
        verb: &'a str,
        target: Target<'a>,
    ) -> AccessRequest<'a> {
        AccessRequest {
            user,
            groups,
            auth_method: "x509",
            cert_fingerprint: Some("ab"),
            source_ip: "127.0.0.1".parse().unwrap(),
            verb,
            target,
        }
    }

    fn cm<'a>(ns: &'a str, labels: &'a [(String, String)]) -> Target<'a> {
        Target::Resource {
            api_group: "",
            resource: "configmaps",
            subresource: None,
            namespace: Some(ns),
            name: None,
            namespace_labels: labels,
        }
    }

    #[test]
    fn tiers_decide_in_order() {
        let guard = r#"@id("guard.no-secrets-in-prod") @reason("nobody reads secrets in prod")
            forbid (principal, action, resource is k8s::Resource) when { resource.resource == "configmaps" && resource.hasTag("env") && resource.getTag("env") == "prod" };"#;
        let grants = r#"@id("grant.dev-cm") @reason("developers read configmaps")
            permit (principal in k8s::Group::"dev", action in [k8s::Action::"get", k8s::Action::"list"], resource is k8s::Resource) when { resource.resource == "configmaps" };"#;
        let engine = PolicyEngine::new(guard, grants).unwrap();
        let dev = vec!["dev".to_owned()];
        let masters = vec!["system:masters".to_owned()];
        let prod = vec![("env".to_owned(), "prod".to_owned())];

        let d = engine.decide(&ask("alice", &dev, "list", cm("team", &[])));
        assert!(d.allowed);
        assert_eq!(
            (d.tier, d.policies.clone(), d.reasons.clone()),
            (
                Tier::Grant,
                vec!["grant.dev-cm".to_owned()],
                vec!["developers read configmaps".to_owned()]
            )
        );

        let d = engine.decide(&ask("alice", &dev, "list", cm("prod-ns", &prod)));
        assert!(!d.allowed);
        assert_eq!(
            (d.tier, d.policies),
            (Tier::Guardrail, vec!["guard.no-secrets-in-prod".to_owned()])
        );

        let d = engine.decide(&ask("alice", &dev, "delete", cm("team", &[])));
        assert_eq!((d.allowed, d.tier), (false, Tier::DefaultDeny));

        // The bootstrap tier wins over guardrails: admins are never locked out.
        let d = engine.decide(&ask("root", &masters, "delete", cm("prod-ns", &prod)));
        assert_eq!((d.allowed, d.tier), (true, Tier::Bootstrap));
        assert_eq!(d.policies, ["bootstrap.system-masters"]);
    }

    #[test]
    fn erroring_forbid_denies() {
        // Integer overflow passes validation and errors at runtime: the forbid must not be
        // skipped silently (Cedar alone would skip it and let the permit through).
        let guard = r#"@id("guard.overflow") forbid (principal, action, resource) when { 9223372036854775807 + 1 > 0 };"#;
        let grants = r#"@id("grant.all") permit (principal, action, resource);"#;
        let engine = PolicyEngine::new(guard, grants).unwrap();
        let d = engine.decide(&ask("alice", &[], "get", cm("team", &[])));
        assert!(!d.allowed);
        assert_eq!(d.tier, Tier::Guardrail);
        assert!(
            d.reasons[0].contains("could not be evaluated"),
            "{:?}",
            d.reasons
        );
    }

    #[test]
    fn defaults_and_tier_rules() {
        let engine = PolicyEngine::with_defaults().unwrap();
        let none: Vec<String> = vec![];
        let auditors = vec!["bulwark:auditors".to_owned()];
        assert!(
            engine
                .decide(&ask(
                    "alice",
                    &none,
                    "get",
                    Target::NonResource {
                        path: "/apis/apps/v1"
                    }
                ))
                .allowed
        );
        assert!(
            !engine
                .decide(&ask(
                    "alice",
                    &none,
                    "get",
                    Target::NonResource { path: "/metrics" }
                ))
                .allowed
        );
        assert!(
            !engine
                .decide(&ask("alice", &none, "list", cm("a", &[])))
                .allowed
        );
        assert!(
            engine
                .decide(&ask("eve", &auditors, "list", cm("a", &[])))
                .allowed
        );
        let secrets = Target::Resource {
            api_group: "",
            resource: "secrets",
            subresource: None,
            namespace: Some("a"),
            name: None,
            namespace_labels: &[],
        };
        assert!(
            !engine
                .decide(&ask("eve", &auditors, "list", secrets))
                .allowed
        );
        let sa = engine.decide(&ask(
            "system:serviceaccount:a:robot",
            &none,
            "get",
            cm("a", &[]),
        ));
        assert!(!sa.allowed);
        // A permit in the guardrail tier, or a forbid among grants, is refused.
        assert!(
            PolicyEngine::new(r#"@id("x") permit (principal, action, resource);"#, "").is_err()
        );
        assert!(
            PolicyEngine::new("", r#"@id("x") forbid (principal, action, resource);"#).is_err()
        );
        // A failed reload keeps the policies in force.
        assert!(engine.reload("", "not cedar").is_err());
        assert!(
            engine
                .decide(&ask("eve", &auditors, "list", cm("a", &[])))
                .allowed
        );
    }

    /// The index decides exactly as plain Cedar over the whole tier, and names the same
    /// policies, across principal scopes, action scopes and conditions.
    #[test]
    fn index_agrees_with_plain_cedar() {
        let principals = [
            "principal",
            "principal in k8s::Group::\"g1\"",
            "principal in k8s::Group::\"g2\"",
            "principal == k8s::User::\"alice\"",
            "principal is k8s::User",
            "principal is k8s::User in k8s::Group::\"g3\"",
        ];
        let actions = [
            "action",
            "action == k8s::Action::\"get\"",
            "action in [k8s::Action::\"list\", k8s::Action::\"watch\"]",
        ];
        let conditions = [
            "",
            "when { resource is k8s::Resource && resource.resource == \"pods\" }",
        ];
        let mut text = String::new();
        let mut n = 0;
        for p in principals {
            for a in actions {
                for c in conditions {
                    text.push_str(&format!("@id(\"p{n}\") permit ({p}, {a}, resource) {c};\n"));
                    n += 1;
                }
            }
        }
        let engine = PolicyEngine::new("", &text).unwrap();
        let plain = crate::policy_text::parse("plain", &text).unwrap();
        let authorizer = Authorizer::new();
        let group_sets: [&[&str]; 4] = [&[], &["g1"], &["g2", "g3"], &["g1", "g3"]];
        for user in ["alice", "bob"] {
            for groups in group_sets {
                let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
                for verb in ["get", "list", "watch", "delete"] {
                    for resource in ["pods", "secrets"] {
                        let target = Target::Resource {
                            api_group: "",
                            resource,
                            subresource: None,
                            namespace: Some("a"),
                            name: None,
                            namespace_labels: &[],
                        };
                        let request = ask(user, &groups, verb, target);
                        let ours = engine.decide(&request);
                        let cedar = request.to_cedar().unwrap();
                        let r = authorizer.is_authorized(&cedar.request, &plain, &cedar.entities);
                        let mut theirs: Vec<String> =
                            r.diagnostics().reason().map(ToString::to_string).collect();
                        theirs.sort();
                        assert_eq!(
                            ours.allowed,
                            r.decision() == CedarDecision::Allow,
                            "{user} {groups:?} {verb} {resource}"
                        );
                        if ours.allowed {
                            assert_eq!(
                                ours.policies, theirs,
                                "{user} {groups:?} {verb} {resource}"
                            );
                        }
                    }
                }
            }
        }
    }
}
