//! The tiered decision over an atomically swapped snapshot of policy sets.
//!
//! 1. **Bootstrap** (compiled in): a permit here allows. The control plane's own identities
//!    can therefore never be locked out by later tiers.
//! 2. **Guardrails** (forbids, written by the security team): a matching forbid denies, and so
//!    does a forbid that fails to evaluate — Cedar itself skips erroring policies, which must
//!    never fail open.
//! 3. **Grants** (permits): a matching permit allows. Grants from a source confined to a
//!    namespace are evaluated only for requests in that namespace, so a namespaced grant can
//!    never reach outside it, whatever its conditions say.
//! 4. Otherwise: deny (no policy means deny).
//!
//! The guardrail and grant tiers are assembled from sources ([`CompiledPolicies`], one per
//! `CedarPolicy` object): forbids become guardrails, permits grants.
//!
//! Every decision names the policies that determined it and their `@reason` annotations.
//!
//! Cedar scans every policy of a set, so each tier is indexed: policies are bucketed by the
//! entity their principal scope names (`principal in k8s::Group::"dev"`, `principal ==
//! k8s::User::"alice"`, or any principal), by the action their scope names (or any action)
//! and by the resource type their scope names (or any). A request evaluates only the buckets
//! of its principal, its groups, its action and its resource type.
//! Within a tier the outcome is the same as evaluating the whole set: permits allow if any
//! matches, forbids deny if any matches or errors.

use std::sync::Arc;

use std::collections::HashMap;

use arc_swap::ArcSwap;
use cedar_policy::{
    ActionConstraint, Authorizer, Decision as CedarDecision, Effect, EntityTypeName, EntityUid,
    PolicySet, PrincipalConstraint, ResourceConstraint,
};

use crate::compiled::CompiledPolicies;
use crate::request::{AccessRequest, CedarRequest};
use crate::{PolicyError, policy_text};

/// The compiled-in bootstrap tier.
pub const BOOTSTRAP_POLICIES: &str = include_str!("../cedar/bootstrap.cedar");
/// The default grants, installed as a `CedarPolicy` object on first start.
pub const DEFAULT_GRANTS: &str = include_str!("../cedar/grants.cedar");
/// The shipped sources installed on first start: (object name, policy text).
pub const DEFAULT_SOURCES: &[(&str, &str)] = &[("bulwark-default-grants", DEFAULT_GRANTS)];
/// The Pod Security Standards (baseline and restricted) as admission policies.
pub const POD_SECURITY: &str = include_str!("../cedar/pod-security.cedar");
/// Upstream's NodeRestriction as admission policies: nodes write only what is bound to them.
pub const NODE_RESTRICTION: &str = include_str!("../cedar/node-restriction.cedar");
/// Upstream's DenyServiceExternalIPs as an admission policy (CVE-2020-8554).
pub const SERVICE_EXTERNAL_IPS: &str = include_str!("../cedar/service-external-ips.cedar");
/// The shipped admission sources installed on first start (mode Enforce).
pub const DEFAULT_ADMISSION_SOURCES: &[(&str, &str)] = &[
    ("bulwark-pod-security", POD_SECURITY),
    ("bulwark-node-restriction", NODE_RESTRICTION),
    ("bulwark-service-external-ips", SERVICE_EXTERNAL_IPS),
];

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

/// Values by an optional key (`any`: the scope names nothing), looked up by reference.
#[derive(Debug)]
struct ByKey<K, V> {
    any: Option<V>,
    by: HashMap<K, V>,
}

impl<K, V> Default for ByKey<K, V> {
    fn default() -> Self {
        Self {
            any: None,
            by: HashMap::new(),
        }
    }
}

impl<K: std::hash::Hash + Eq, V: Default> ByKey<K, V> {
    fn get(&self, key: Option<&K>) -> Option<&V> {
        match key {
            None => self.any.as_ref(),
            Some(k) => self.by.get(k),
        }
    }

    fn entry(&mut self, key: Option<K>) -> &mut V {
        match key {
            None => self.any.get_or_insert_with(V::default),
            Some(k) => self.by.entry(k).or_default(),
        }
    }
}

/// Principal → action → resource type → policies.
type Buckets = ByKey<EntityUid, ByKey<EntityUid, ByKey<EntityTypeName, PolicySet>>>;

/// One tier's policies, bucketed by principal, action and resource-type scope.
#[derive(Debug)]
struct IndexedTier {
    all: PolicySet,
    buckets: Buckets,
    /// Each policy's `@reason`, read once (cedar parses the annotation key on every lookup).
    reasons: HashMap<String, String>,
}

/// What one tier says about a request.
struct TierOutcome {
    allowed: bool,
    matched: Vec<String>,
    errors: Vec<(String, String)>,
}

impl IndexedTier {
    fn new(all: PolicySet) -> Result<Self, PolicyError> {
        let mut buckets = Buckets::default();
        let mut reasons = HashMap::new();
        for policy in all.policies() {
            if let Some(reason) = policy.annotation("reason") {
                reasons.insert(policy.id().to_string(), reason.to_owned());
            }
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
            // Resources have no parents, so `resource in X` holds only for X itself: its type
            // is the only one the policy can match.
            let resource_type = match policy.resource_constraint() {
                ResourceConstraint::Any => None,
                ResourceConstraint::Is(t) | ResourceConstraint::IsIn(t, _) => Some(t),
                ResourceConstraint::Eq(uid) | ResourceConstraint::In(uid) => {
                    Some(uid.type_name().clone())
                }
            };
            for action in actions {
                buckets
                    .entry(principal.clone())
                    .entry(action)
                    .entry(resource_type.clone())
                    .add(policy.clone())
                    .map_err(|e| PolicyError::Request(e.to_string()))?;
            }
        }
        Ok(Self {
            all,
            buckets,
            reasons,
        })
    }

    /// The `@reason` of each policy in `ids`.
    fn reasons(&self, ids: &[String]) -> Vec<String> {
        ids.iter()
            .map(|id| {
                self.reasons
                    .get(id)
                    .map_or("(no @reason given)", String::as_str)
                    .to_owned()
            })
            .collect()
    }

    fn evaluate(&self, authorizer: &Authorizer, cedar: &CedarRequest) -> TierOutcome {
        let mut outcome = TierOutcome {
            allowed: false,
            matched: Vec::new(),
            errors: Vec::new(),
        };
        let principals = std::iter::once(None).chain(cedar.principal_and_groups.iter().map(Some));
        for principal in principals {
            let Some(by_action) = self.buckets.get(principal) else {
                continue;
            };
            let sets = [None, Some(&cedar.action)]
                .into_iter()
                .filter_map(|action| by_action.get(action))
                .flat_map(|by_type| {
                    [None, Some(&cedar.resource_type)]
                        .into_iter()
                        .filter_map(|t| by_type.get(t))
                });
            for set in sets {
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

/// Why a source was left out of a snapshot (it stays out until it is fixed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The source's name.
    pub name: String,
    /// Why.
    pub reason: String,
}

/// The policy sets in force: immutable, built whole, swapped atomically.
pub struct Snapshot {
    bootstrap: IndexedTier,
    guardrails: IndexedTier,
    grants: IndexedTier,
    /// Grants confined to one namespace, evaluated only for requests in it.
    namespaced: HashMap<String, IndexedTier>,
    /// The sources in force, by name.
    sources: HashMap<String, Arc<CompiledPolicies>>,
    authorizer: Authorizer,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("sources", &self.sources.len())
            .finish_non_exhaustive()
    }
}

fn set_of(policies: Vec<cedar_policy::Policy>) -> Result<PolicySet, PolicyError> {
    PolicySet::from_policies(policies).map_err(|e| PolicyError::Request(e.to_string()))
}

impl Snapshot {
    /// Builds a snapshot from the bootstrap tier and `sources`, in order. A source whose
    /// `@id`s collide with the bootstrap tier or an earlier source is skipped as a whole and
    /// reported, so one bad object never takes the others down.
    pub fn build(sources: &[Arc<CompiledPolicies>]) -> Result<(Self, Vec<Skipped>), PolicyError> {
        let bootstrap = policy_text::parse("bootstrap.cedar", BOOTSTRAP_POLICIES)?;
        require_effect("bootstrap.cedar", &bootstrap, Effect::Permit)?;
        let mut used: HashMap<String, String> = bootstrap
            .policies()
            .map(|p| {
                (
                    p.id().to_string(),
                    "the compiled-in bootstrap tier".to_owned(),
                )
            })
            .collect();
        let mut skipped = Vec::new();
        let mut guardrails = Vec::new();
        let mut grants = Vec::new();
        let mut namespaced: HashMap<String, Vec<cedar_policy::Policy>> = HashMap::new();
        let mut in_force = HashMap::new();
        for source in sources {
            if in_force.contains_key(&source.name) {
                skipped.push(Skipped {
                    name: source.name.clone(),
                    reason: "another source has the same name".into(),
                });
                continue;
            }
            if source.kind != crate::PolicyKind::Authorization {
                skipped.push(Skipped {
                    name: source.name.clone(),
                    reason: "admission policies do not decide requests".into(),
                });
                continue;
            }
            let ids = source.ids();
            if let Some((id, owner)) = ids
                .iter()
                .find_map(|id| used.get(id).map(|owner| (id, owner)))
            {
                skipped.push(Skipped {
                    name: source.name.clone(),
                    reason: format!("@id(\"{id}\") is already used by {owner}"),
                });
                continue;
            }
            for id in ids {
                used.insert(id, format!("CedarPolicy {}", source.name));
            }
            for policy in source.policies.policies() {
                match (policy.effect(), &source.namespace) {
                    (Effect::Forbid, _) => guardrails.push(policy.clone()),
                    (Effect::Permit, None) => grants.push(policy.clone()),
                    (Effect::Permit, Some(ns)) => namespaced
                        .entry(ns.clone())
                        .or_default()
                        .push(policy.clone()),
                }
            }
            in_force.insert(source.name.clone(), Arc::clone(source));
        }
        let namespaced = namespaced
            .into_iter()
            .map(|(ns, policies)| Ok((ns, IndexedTier::new(set_of(policies)?)?)))
            .collect::<Result<_, PolicyError>>()?;
        Ok((
            Self {
                bootstrap: IndexedTier::new(bootstrap)?,
                guardrails: IndexedTier::new(set_of(guardrails)?)?,
                grants: IndexedTier::new(set_of(grants)?)?,
                namespaced,
                sources: in_force,
                authorizer: Authorizer::new(),
            },
            skipped,
        ))
    }

    /// The sources in force, by name.
    pub fn sources(&self) -> &HashMap<String, Arc<CompiledPolicies>> {
        &self.sources
    }

    /// Every policy in force (bootstrap, guardrails, grants, namespaced grants).
    pub fn policies(&self) -> impl Iterator<Item = &cedar_policy::Policy> {
        self.bootstrap
            .all
            .policies()
            .chain(self.guardrails.all.policies())
            .chain(self.grants.all.policies())
            .chain(self.namespaced.values().flat_map(|t| t.all.policies()))
    }

    /// Ids of the grants whose scope may cover `user` (with `groups`) and whose conditions
    /// read the object: its name or its namespace's labels (tags). What such a grant allows
    /// cannot be listed without the object.
    pub fn object_dependent_grants(&self, user: &str, groups: &[String]) -> Vec<String> {
        let grants = self
            .grants
            .all
            .policies()
            .chain(self.namespaced.values().flat_map(|t| t.all.policies()));
        let mut ids: Vec<String> = grants
            .filter(|p| match p.principal_constraint() {
                PrincipalConstraint::Any | PrincipalConstraint::Is(_) => true,
                PrincipalConstraint::Eq(uid) => {
                    let id = uid.id().unescaped();
                    id == user || user.strip_prefix("system:node:") == Some(id)
                }
                PrincipalConstraint::In(uid) | PrincipalConstraint::IsIn(_, uid) => {
                    groups.iter().any(|g| g == uid.id().unescaped())
                }
            })
            .filter(|p| crate::compiled::reads_object(p))
            .map(|p| p.id().to_string())
            .collect();
        ids.sort();
        ids
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
        let boot = self.bootstrap.evaluate(&self.authorizer, &cedar);
        if boot.allowed {
            let reasons = self.bootstrap.reasons(&boot.matched);
            return Decision {
                allowed: true,
                tier: Tier::Bootstrap,
                policies: boot.matched,
                reasons,
            };
        }

        let guard = self.guardrails.evaluate(&self.authorizer, &cedar);
        if !guard.matched.is_empty() || !guard.errors.is_empty() {
            let mut reasons = self.guardrails.reasons(&guard.matched);
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

        let mut policies = Vec::new();
        let mut reasons_out = Vec::new();
        let confined = request
            .target
            .containing_namespace()
            .and_then(|ns| self.namespaced.get(ns));
        for tier in std::iter::once(&self.grants).chain(confined) {
            let grant = tier.evaluate(&self.authorizer, &cedar);
            if grant.allowed {
                reasons_out.extend(tier.reasons(&grant.matched));
                policies.extend(grant.matched);
            }
        }
        if !policies.is_empty() {
            return Decision {
                allowed: true,
                tier: Tier::Grant,
                policies,
                reasons: reasons_out,
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

/// Decides requests with tiered Cedar policies, from a snapshot replaced atomically.
pub struct PolicyEngine {
    snapshot: ArcSwap<Snapshot>,
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

/// The shipped default sources, compiled.
pub fn default_sources() -> Result<Vec<Arc<CompiledPolicies>>, PolicyError> {
    DEFAULT_SOURCES
        .iter()
        .map(|(name, text)| CompiledPolicies::compile(name, None, text).map(Arc::new))
        .collect()
}

impl PolicyEngine {
    /// An engine deciding with the bootstrap tier and `sources` (see [`Snapshot::build`]).
    pub fn new(sources: &[Arc<CompiledPolicies>]) -> Result<(Self, Vec<Skipped>), PolicyError> {
        let (snapshot, skipped) = Snapshot::build(sources)?;
        Ok((
            Self {
                snapshot: ArcSwap::from_pointee(snapshot),
            },
            skipped,
        ))
    }

    /// The engine with the shipped default sources.
    pub fn with_defaults() -> Result<Self, PolicyError> {
        Ok(Self::new(&default_sources()?)?.0)
    }

    /// Puts `snapshot` in force for every later decision.
    pub fn install(&self, snapshot: Snapshot) {
        self.snapshot.store(Arc::new(snapshot));
    }

    /// The snapshot in force (to build a candidate from, or to decide several requests
    /// against one consistent set).
    pub fn current(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Decides one request with the snapshot in force.
    pub fn decide(&self, request: &AccessRequest<'_>) -> Decision {
        self.snapshot.load().decide(request)
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

    fn engine(guard: &str, grants: &str) -> PolicyEngine {
        let sources = [("guard", guard), ("grants", grants)]
            .into_iter()
            .map(|(name, text)| Arc::new(CompiledPolicies::compile(name, None, text).unwrap()))
            .collect::<Vec<_>>();
        let (engine, skipped) = PolicyEngine::new(&sources).unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        engine
    }

    #[test]
    fn tiers_decide_in_order() {
        let guard = r#"@id("guard.no-secrets-in-prod") @reason("nobody reads secrets in prod")
            forbid (principal, action, resource is k8s::Resource) when { resource.resource == "configmaps" && resource.hasTag("env") && resource.getTag("env") == "prod" };"#;
        let grants = r#"@id("grant.dev-cm") @reason("developers read configmaps")
            permit (principal in k8s::Group::"dev", action in [k8s::Action::"get", k8s::Action::"list"], resource is k8s::Resource) when { resource.resource == "configmaps" };"#;
        let engine = engine(guard, grants);
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
        let engine = engine(guard, grants);
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
    }

    #[test]
    fn namespaced_grants_stay_in_their_namespace() {
        let grant = r#"@id("team.all") @reason("team-a owns its namespace") permit (principal in k8s::Group::"team-a", action, resource);"#;
        let confined =
            Arc::new(CompiledPolicies::compile("team-a", Some("team-a"), grant).unwrap());
        let (engine, _) = PolicyEngine::new(&[confined]).unwrap();
        let team = vec!["team-a".to_owned()];
        let d = engine.decide(&ask("bob", &team, "delete", cm("team-a", &[])));
        assert_eq!((d.allowed, d.policies), (true, vec!["team.all".to_owned()]));
        assert_eq!(d.reasons, ["team-a owns its namespace"]);
        assert!(
            !engine
                .decide(&ask("bob", &team, "delete", cm("team-b", &[])))
                .allowed
        );
        let cluster = Target::Resource {
            api_group: "",
            resource: "namespaces",
            subresource: None,
            namespace: None,
            name: None,
            namespace_labels: &[],
        };
        assert!(!engine.decide(&ask("bob", &team, "list", cluster)).allowed);
        // The namespace object itself is addressed "in" its own name (as upstream), but it
        // does not live in it: the confined grant must not reach it, whatever the verb or
        // subresource (the hostile-client review relabelled team-a out of Pod Security).
        for (verb, subresource) in [
            ("get", None),
            ("update", None),
            ("patch", None),
            ("delete", None),
            ("update", Some("status")),
            ("update", Some("finalize")),
        ] {
            let own = Target::Resource {
                api_group: "",
                resource: "namespaces",
                subresource,
                namespace: Some("team-a"),
                name: Some("team-a"),
                namespace_labels: &[],
            };
            let d = engine.decide(&ask("bob", &team, verb, own));
            assert_eq!(
                (d.allowed, d.tier),
                (false, Tier::DefaultDeny),
                "{verb} {subresource:?}"
            );
        }
    }

    #[test]
    fn colliding_sources_are_skipped_not_fatal() {
        let a = Arc::new(
            CompiledPolicies::compile(
                "a",
                None,
                r#"@id("same") permit (principal in k8s::Group::"a", action, resource);"#,
            )
            .unwrap(),
        );
        let b = Arc::new(
            CompiledPolicies::compile(
                "b",
                None,
                r#"@id("same") permit (principal in k8s::Group::"b", action, resource);"#,
            )
            .unwrap(),
        );
        let boot = Arc::new(CompiledPolicies::compile("c", None, r#"@id("bootstrap.system-masters") permit (principal in k8s::Group::"c", action, resource);"#).unwrap());
        let (engine, skipped) = PolicyEngine::new(&[a, b, boot]).unwrap();
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert!(skipped[0].reason.contains("CedarPolicy a"), "{skipped:?}");
        assert!(skipped[1].reason.contains("bootstrap"), "{skipped:?}");
        let a_group = vec!["a".to_owned()];
        assert!(
            engine
                .decide(&ask("x", &a_group, "get", cm("n", &[])))
                .allowed
        );
        let b_group = vec!["b".to_owned()];
        assert!(
            !engine
                .decide(&ask("x", &b_group, "get", cm("n", &[])))
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
        let resources = [
            "resource",
            "resource is k8s::Resource",
            "resource is k8s::NonResourceURL",
            "resource == k8s::NonResourceURL::\"/version\"",
        ];
        let conditions = [
            "",
            "when { resource is k8s::Resource && resource.resource == \"pods\" }",
        ];
        let mut text = String::new();
        let mut n = 0;
        for p in principals {
            for a in actions {
                for r in resources {
                    for c in conditions {
                        if r.contains("NonResourceURL") && (a.contains("list") || !c.is_empty()) {
                            continue; // impossible combinations do not validate
                        }
                        text.push_str(&format!("@id(\"p{n}\") permit ({p}, {a}, {r}) {c};\n"));
                        n += 1;
                    }
                }
            }
        }
        let engine = engine("", &text);
        let plain = crate::policy_text::parse("plain", &text).unwrap();
        let authorizer = Authorizer::new();
        let group_sets: [&[&str]; 4] = [&[], &["g1"], &["g2", "g3"], &["g1", "g3"]];
        for user in ["alice", "bob"] {
            for groups in group_sets {
                let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
                for verb in ["get", "list", "watch", "delete"] {
                    for resource in ["pods", "secrets", "/version", "/api"] {
                        let target = if resource.starts_with('/') {
                            if verb != "get" {
                                continue;
                            }
                            Target::NonResource { path: resource }
                        } else {
                            Target::Resource {
                                api_group: "",
                                resource,
                                subresource: None,
                                namespace: Some("a"),
                                name: None,
                                namespace_labels: &[],
                            }
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
