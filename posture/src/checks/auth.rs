//! Authentication and authorization checks (KSPM-AUTH-*). What principals may do is judged
//! by the running authorizer's answers to [`crate::probes::ACCESS_PROBES`] (RBAC objects are
//! Cedar policies there, so one set of questions covers both), and the policies and RBAC
//! objects themselves are read for what a probe cannot ask (who else holds all power,
//! wildcards).

use std::str::FromStr;

use cedar_policy::{ActionConstraint, Effect, PrincipalConstraint, ResourceConstraint};
use serde_json::Value;

use super::{Ctx, config, is_system_namespace, list, need, not_evaluated};
use crate::evidence::PolicyInfo;
use crate::outcome::{Outcome, Source, State};
use crate::probes::ACCESS_PROBES;
use crate::workload::object_ref;

/// The groups whose members may do anything (the shipped grant and the break-glass group).
const ADMIN_GROUPS: &[&str] = &["bulwark:cluster-admins", "system:masters"];
/// The groups that reach (nearly) everyone.
const BROAD_GROUPS: &[&str] = &[
    "system:anonymous",
    "system:unauthenticated",
    "system:authenticated",
    "system:serviceaccounts",
];
/// The longest service-account token lifetime that passes.
const MAX_TOKEN_SECONDS: u64 = 48 * 3600;

/// The outcomes of the access probes of `control`: each must be denied.
fn probes_denied(ctx: &Ctx<'_>, control: &str) -> Vec<Outcome> {
    let state = match need(&ctx.snapshot.policies, "authorization.probes", "denied") {
        Ok(s) => s,
        Err(o) => return o,
    };
    ACCESS_PROBES
        .iter()
        .filter(|p| p.control == control)
        .map(|probe| {
            let request = probe.describe();
            match state.access.iter().find(|a| a.probe == probe.id) {
                None => Outcome::new(
                    State::NotEvaluated,
                    Source::Probe {
                        request,
                        policies: Vec::new(),
                    },
                    "",
                    "denied",
                    format!(
                        "not evaluated: the server did not answer probe {}",
                        probe.id
                    ),
                ),
                Some(answer) => Outcome::check(
                    !answer.allowed,
                    Source::Probe {
                        request: request.clone(),
                        policies: answer.policies.clone(),
                    },
                    if answer.allowed { "allowed" } else { "denied" },
                    "denied",
                    format!("denied: {request}"),
                    format!("allowed by {}: {request}", list(&answer.policies)),
                ),
            }
        })
        .collect()
}

/// A parsed Cedar policy's scope: (effect, principal, action, resource, has conditions).
struct Scope {
    effect: Effect,
    principal: PrincipalConstraint,
    action: ActionConstraint,
    resource: ResourceConstraint,
    conditional: bool,
}

/// The scopes of the policies in `info` (a policy that does not parse is skipped: the server
/// refuses such policies, so none is in force).
fn scopes(info: &PolicyInfo) -> Vec<(String, Scope)> {
    let Ok(set) = cedar_policy::PolicySet::from_str(&info.text) else {
        return Vec::new();
    };
    set.policies()
        .map(|p| {
            let conditional = p
                .to_json()
                .ok()
                .and_then(|j| j.get("conditions").and_then(Value::as_array).map(Vec::len))
                .unwrap_or(0)
                > 0;
            let id = p
                .annotation("id")
                .map_or_else(|| info.id.clone(), str::to_owned);
            (
                id,
                Scope {
                    effect: p.effect(),
                    principal: p.principal_constraint(),
                    action: p.action_constraint(),
                    resource: p.resource_constraint(),
                    conditional,
                },
            )
        })
        .collect()
}

/// Whether a principal constraint names only an admin group.
fn is_admin(principal: &PrincipalConstraint) -> bool {
    let uid = match principal {
        PrincipalConstraint::In(uid) | PrincipalConstraint::Eq(uid) => uid,
        PrincipalConstraint::IsIn(_, uid) => uid,
        _ => return false,
    };
    uid.type_name().basename() == "Group" && ADMIN_GROUPS.contains(&uid.id().unescaped())
}

fn policy_source(id: &str, info: &PolicyInfo) -> Source {
    Source::Policy {
        id: id.to_owned(),
        object: info.object.clone(),
    }
}

fn subjects(binding: &Value) -> Vec<(String, String)> {
    binding
        .get("subjects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|s| {
            let text = |k: &str| {
                s.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            (text("kind"), text("name"))
        })
        .collect()
}

fn obj_source(object: &Value, path: &str) -> Source {
    Source::Object {
        object: object_ref(object),
        path: path.to_owned(),
    }
}

fn is_system_object(object: &Value) -> bool {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .is_some_and(|n| n.starts_with("system:"))
}

pub(super) fn allow_all(ctx: &Ctx<'_>) -> Vec<Outcome> {
    let mut out = match need(
        &ctx.snapshot.server,
        "authorization.modes",
        "Node and Cedar; never AlwaysAllow",
    ) {
        Ok(server) => {
            let modes = &server.authorization.modes;
            let always = modes.iter().any(|m| m == "AlwaysAllow");
            let node = modes.iter().any(|m| m == "Node");
            let policy = modes.iter().any(|m| m == "Cedar" || m == "RBAC");
            vec![Outcome::check(
                !always && node && policy,
                config("authorization.modes"),
                list(modes),
                "Node, Cedar; never AlwaysAllow",
                "the chain is node restriction then Cedar, denying by default",
                "the authorization chain allows everything or lacks node restriction or policy",
            )]
        }
        Err(o) => o,
    };
    if let Ok(state) = ctx.snapshot.policies.get() {
        for info in state.policies.iter().filter(|p| p.kind == "authorization") {
            for (id, scope) in scopes(info) {
                let everything = scope.effect == Effect::Permit
                    && matches!(scope.principal, PrincipalConstraint::Any)
                    && matches!(scope.action, ActionConstraint::Any)
                    && matches!(scope.resource, ResourceConstraint::Any)
                    && !scope.conditional;
                if everything {
                    out.push(Outcome::fail(
                        policy_source(&id, info),
                        "permit (principal, action, resource)",
                        "no permit-all policy",
                        format!("policy {id} permits every action on everything to everyone"),
                    ));
                }
            }
        }
    }
    out.extend(probes_denied(ctx, "KSPM-AUTH-01"));
    out
}

pub(super) fn people_authenticators(ctx: &Ctx<'_>) -> Vec<Outcome> {
    let expected = "an external identity provider (oidc)";
    let server = match need(
        &ctx.snapshot.server,
        "authentication.authenticators",
        expected,
    ) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let authenticators = &server.authentication.authenticators;
    vec![Outcome::check(
        authenticators.iter().any(|a| a == "oidc"),
        config("authentication.authenticators"),
        list(authenticators),
        expected,
        "people authenticate through the identity provider",
        "no external identity provider is configured: people authenticate with client certificates",
    )]
}

pub(super) fn cluster_admins(ctx: &Ctx<'_>) -> Vec<Outcome> {
    let expected = "all-powerful grants only to bulwark:cluster-admins / system:masters";
    let mut out = Vec::new();
    match ctx.snapshot.policies.get() {
        Ok(state) => {
            for info in state.policies.iter().filter(|p| p.kind == "authorization") {
                for (id, scope) in scopes(info) {
                    let all_powerful = scope.effect == Effect::Permit
                        && matches!(scope.action, ActionConstraint::Any)
                        && matches!(scope.resource, ResourceConstraint::Any)
                        && !scope.conditional;
                    if all_powerful && !is_admin(&scope.principal) {
                        out.push(Outcome::fail(
                            policy_source(&id, info),
                            format!("permit ({}, action, resource)", principal_text(&scope.principal)),
                            expected,
                            format!("policy {id} grants every action on everything beyond the administrators' group"),
                        ));
                    }
                }
            }
        }
        Err(reason) => out.extend(not_evaluated(config("policies"), expected, reason)),
    }
    if ctx.snapshot.objects.get().is_ok() {
        for binding in ctx.of_kind("rbac.authorization.k8s.io", "ClusterRoleBinding") {
            if binding.pointer("/roleRef/name").and_then(Value::as_str) != Some("cluster-admin") {
                continue;
            }
            let others: Vec<String> = subjects(binding)
                .into_iter()
                .filter(|(kind, name)| !(kind == "Group" && ADMIN_GROUPS.contains(&name.as_str())))
                .map(|(kind, name)| format!("{kind} {name}"))
                .collect();
            out.push(Outcome::check(
                others.is_empty(),
                obj_source(binding, "subjects"),
                list(&others),
                expected,
                "this cluster-admin binding names only the administrators' groups",
                format!("cluster-admin is bound to {}", list(&others)),
            ));
        }
    }
    if out
        .iter()
        .all(|o| o.state != State::Fail && o.state != State::NotEvaluated)
    {
        out.push(Outcome::pass(
            config("policies"),
            "bulwark:cluster-admins, system:masters",
            expected,
            "only the administrators' groups hold all-powerful grants",
        ));
    }
    out
}

fn principal_text(p: &PrincipalConstraint) -> String {
    match p {
        PrincipalConstraint::Any => "principal".to_owned(),
        PrincipalConstraint::In(uid) => format!("principal in {uid}"),
        PrincipalConstraint::Eq(uid) => format!("principal == {uid}"),
        PrincipalConstraint::Is(t) => format!("principal is {t}"),
        PrincipalConstraint::IsIn(t, uid) => format!("principal is {t} in {uid}"),
    }
}

pub(super) fn wildcards(ctx: &Ctx<'_>) -> Vec<Outcome> {
    let expected = "explicit verbs and resources";
    let mut out = Vec::new();
    if let Ok(state) = ctx.snapshot.policies.get() {
        for info in state.policies.iter().filter(|p| p.kind == "authorization") {
            for (id, scope) in scopes(info) {
                if scope.effect == Effect::Permit
                    && matches!(scope.action, ActionConstraint::Any)
                    && !is_admin(&scope.principal)
                {
                    out.push(Outcome::fail(
                        policy_source(&id, info),
                        "action unconstrained",
                        expected,
                        format!("policy {id} permits every action (including ones added later)"),
                    ));
                }
            }
        }
    }
    if ctx.snapshot.objects.get().is_ok() {
        let roles = ctx
            .of_kind("rbac.authorization.k8s.io", "ClusterRole")
            .chain(ctx.of_kind("rbac.authorization.k8s.io", "Role"))
            .filter(|r| !is_system_object(r))
            .filter(|r| {
                r.pointer("/metadata/name").and_then(Value::as_str) != Some("cluster-admin")
            });
        for role in roles {
            let mut wild = Vec::new();
            for (i, rule) in role
                .get("rules")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                for field in ["verbs", "resources", "apiGroups"] {
                    let has = rule
                        .get(field)
                        .and_then(Value::as_array)
                        .is_some_and(|v| v.iter().any(|x| x.as_str() == Some("*")));
                    if has {
                        wild.push(format!("rules[{i}].{field}"));
                    }
                }
            }
            out.push(Outcome::check(
                wild.is_empty(),
                obj_source(role, "rules"),
                if wild.is_empty() {
                    "no wildcard".to_owned()
                } else {
                    format!("* in {}", wild.join(", "))
                },
                expected,
                "no wildcard verbs or resources",
                format!("wildcards in {}", wild.join(", ")),
            ));
        }
    }
    if out.is_empty() {
        return match (ctx.snapshot.policies.get(), ctx.snapshot.objects.get()) {
            (Err(reason), _) | (_, Err(reason)) => {
                not_evaluated(config("policies"), expected, reason)
            }
            _ => vec![Outcome::pass(
                config("policies"),
                "no wildcard grants",
                expected,
                "no policy or role grants wildcard verbs or resources beyond the administrators",
            )],
        };
    }
    out
}

pub(super) fn secret_reads(ctx: &Ctx<'_>) -> Vec<Outcome> {
    probes_denied(ctx, "KSPM-AUTH-05")
}

pub(super) fn escalation(ctx: &Ctx<'_>) -> Vec<Outcome> {
    let mut out = probes_denied(ctx, "KSPM-AUTH-06");
    if let Ok(state) = ctx.snapshot.policies.get() {
        for info in state.policies.iter().filter(|p| p.kind == "authorization") {
            for (id, scope) in scopes(info) {
                if scope.effect != Effect::Permit || is_admin(&scope.principal) {
                    continue;
                }
                let impersonates = match &scope.action {
                    ActionConstraint::Eq(uid) => uid.id().unescaped() == "impersonate",
                    ActionConstraint::In(uids) => {
                        uids.iter().any(|u| u.id().unescaped() == "impersonate")
                    }
                    _ => false,
                };
                if impersonates {
                    out.push(Outcome::new(
                        State::Manual,
                        policy_source(&id, info),
                        principal_text(&scope.principal),
                        "impersonation granted only to reviewed identities",
                        format!("policy {id} grants impersonation: confirm who holds it and why"),
                    ));
                }
            }
        }
    }
    out
}

pub(super) fn broad_groups(ctx: &Ctx<'_>) -> Vec<Outcome> {
    let mut out = probes_denied(ctx, "KSPM-AUTH-07");
    if ctx.snapshot.objects.get().is_ok() {
        let bindings = ctx
            .of_kind("rbac.authorization.k8s.io", "ClusterRoleBinding")
            .chain(ctx.of_kind("rbac.authorization.k8s.io", "RoleBinding"))
            .filter(|b| !is_system_object(b));
        for binding in bindings {
            let broad: Vec<String> = subjects(binding)
                .into_iter()
                .filter(|(kind, name)| {
                    BROAD_GROUPS.contains(&name.as_str()) && (kind == "Group" || kind == "User")
                })
                .map(|(_, name)| name)
                .collect();
            if !broad.is_empty() {
                out.push(Outcome::fail(
                    obj_source(binding, "subjects"),
                    list(&broad),
                    "no broad group",
                    format!("the binding grants to {}", list(&broad)),
                ));
            }
        }
    }
    out
}

pub(super) fn sa_tokens(ctx: &Ctx<'_>) -> Vec<Outcome> {
    let expected = "bound, looked up at use, at most 48 h, no legacy tokens";
    let server = match need(&ctx.snapshot.server, "serviceAccounts", expected) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let sa = &server.service_accounts;
    let short = sa
        .max_lifetime_seconds
        .is_some_and(|s| s <= MAX_TOKEN_SECONDS);
    let ok = sa.bound && sa.lookup && short && !sa.legacy_secret_tokens;
    vec![Outcome::check(
        ok,
        config("serviceAccounts"),
        format!(
            "bound {}, lookup {}, max lifetime {}, legacy tokens {}",
            sa.bound,
            sa.lookup,
            sa.max_lifetime_seconds
                .map_or_else(|| "unbounded".to_owned(), |s| format!("{}h", s / 3600)),
            sa.legacy_secret_tokens
        ),
        expected,
        "service-account tokens are bound, expiring and revocable",
        "service-account tokens are not all bound, expiring and revocable",
    )]
}

pub(super) fn default_service_accounts(ctx: &Ctx<'_>) -> Vec<Outcome> {
    let expected = "automountServiceAccountToken: false (pod or its service account), and not the default account";
    let mut out = Vec::new();
    // Whether each service account mounts tokens by default (live scans hold them).
    let accounts: Vec<&Value> = ctx.of_kind("", "ServiceAccount").collect();
    // Indexed once: a cluster has thousands of accounts and of workloads.
    let by_name: std::collections::HashMap<(&str, &str), Option<bool>> = accounts
        .iter()
        .map(|sa| {
            let meta = |f: &str| {
                sa.get("metadata")
                    .and_then(|m| m.get(f))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            };
            (
                (meta("namespace"), meta("name")),
                sa.get("automountServiceAccountToken")
                    .and_then(Value::as_bool),
            )
        })
        .collect();
    let account_automount = |ns: &str, name: &str| by_name.get(&(ns, name)).copied().flatten();
    for sa in accounts
        .iter()
        .filter(|sa| sa.pointer("/metadata/name").and_then(Value::as_str) == Some("default"))
    {
        let ns = sa
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if is_system_namespace(ns) {
            continue;
        }
        let automount = sa
            .get("automountServiceAccountToken")
            .and_then(Value::as_bool);
        out.push(Outcome::check(
            automount == Some(false),
            obj_source(sa, "automountServiceAccountToken"),
            automount.map_or_else(|| "unset".to_owned(), |v| v.to_string()),
            "false",
            format!("the default service account of {ns} mounts no token"),
            format!("the default service account of {ns} mounts its token into every pod that names no other"),
        ));
    }
    for w in &ctx.workloads {
        if is_system_namespace(w.namespace()) {
            continue;
        }
        let account = w
            .spec
            .get("serviceAccountName")
            .or_else(|| w.spec.get("serviceAccount"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("default");
        // The pod's setting wins over its account's (as the kubelet decides).
        let automount = w
            .spec
            .get("automountServiceAccountToken")
            .and_then(Value::as_bool)
            .or_else(|| account_automount(w.namespace(), account));
        let mounted = automount != Some(false);
        let observed = format!(
            "serviceAccountName {account}, automount {}",
            automount.map_or_else(|| "unset".to_owned(), |v| v.to_string())
        );
        let source = Source::Object {
            object: w.reference.clone(),
            path: w.path(if mounted {
                "automountServiceAccountToken"
            } else {
                "serviceAccountName"
            }),
        };
        out.push(match (mounted, account == "default") {
            (false, _) => Outcome::pass(source, observed, expected, format!("runs as {account} without a token")),
            (true, true) => Outcome::fail(source, observed, expected, "runs as the default service account with its token mounted"),
            (true, false) => Outcome::fail(
                source,
                observed,
                expected,
                format!("mounts the token of {account}: set automountServiceAccountToken: false unless it calls the API (then record an exception)"),
            ),
        });
    }
    if out.is_empty() {
        return match ctx.snapshot.objects.get() {
            Ok(_) => super::not_applicable(
                config("objects"),
                "no workload and no default service account exists",
            ),
            Err(reason) => not_evaluated(config("objects"), expected, reason),
        };
    }
    out
}
