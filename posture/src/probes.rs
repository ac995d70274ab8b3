//! The fixed questions a live scan puts to the running server, so that controls judge what
//! the authorizer, the admission chain and the audit policy *do*, whatever form the policies
//! take (a Cedar `when` clause, an RBAC binding converted to Cedar, a policy added yesterday).
//! The server's evidence source answers them; the checks read the answers by probe id.

use serde_json::{Value, json};

/// Who asks: deliberately broad principals, so that an allow means "everyone" (or everyone
/// authenticated, or every workload) may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    /// An unauthenticated request (`system:anonymous`, group `system:unauthenticated`).
    Anonymous,
    /// Any authenticated user, with no group but `system:authenticated`.
    AnyUser,
    /// Any service account (`system:serviceaccounts`, of a namespace that grants nothing).
    AnyServiceAccount,
}

/// The namespace probes ask about: one no policy names, so only grants that reach every
/// namespace answer.
pub const PROBE_NAMESPACE: &str = "posture-probe";

impl Principal {
    /// The user name a probe authenticates as.
    pub fn user(self) -> String {
        match self {
            Principal::Anonymous => "system:anonymous".to_owned(),
            Principal::AnyUser => "bulwark-posture-probe".to_owned(),
            Principal::AnyServiceAccount => {
                format!("system:serviceaccount:{PROBE_NAMESPACE}:probe")
            }
        }
    }

    /// Its groups.
    pub fn groups(self) -> Vec<String> {
        match self {
            Principal::Anonymous => vec!["system:unauthenticated".to_owned()],
            Principal::AnyUser => vec!["system:authenticated".to_owned()],
            Principal::AnyServiceAccount => vec![
                "system:serviceaccounts".to_owned(),
                format!("system:serviceaccounts:{PROBE_NAMESPACE}"),
                "system:authenticated".to_owned(),
            ],
        }
    }

    /// How reports name it.
    pub fn describe(self) -> &'static str {
        match self {
            Principal::Anonymous => "an anonymous request",
            Principal::AnyUser => "any authenticated user",
            Principal::AnyServiceAccount => "any service account",
        }
    }
}

/// An authorization question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessProbe {
    /// Stable id; answers carry it.
    pub id: &'static str,
    /// The control it answers.
    pub control: &'static str,
    /// Who asks.
    pub principal: Principal,
    /// The verb.
    pub verb: &'static str,
    /// API group (`""` for the core group).
    pub group: &'static str,
    /// Resource.
    pub resource: &'static str,
    /// Subresource (`""` for none).
    pub subresource: &'static str,
    /// Namespace (`""` for a cluster-wide request).
    pub namespace: &'static str,
}

impl AccessProbe {
    /// `may any authenticated user get secrets in posture-probe?`
    pub fn describe(&self) -> String {
        let resource = match (self.group, self.subresource) {
            ("", "") => self.resource.to_owned(),
            ("", sub) => format!("{}/{sub}", self.resource),
            (group, "") => format!("{}.{group}", self.resource),
            (group, sub) => format!("{}.{group}/{sub}", self.resource),
        };
        let scope = if self.namespace.is_empty() {
            "cluster-wide".to_owned()
        } else {
            format!("in namespace {}", self.namespace)
        };
        format!(
            "may {} {} {resource} {scope}?",
            self.principal.describe(),
            self.verb
        )
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "a row of the probe table: one argument per column"
)]
const fn probe(
    id: &'static str,
    control: &'static str,
    principal: Principal,
    verb: &'static str,
    group: &'static str,
    resource: &'static str,
    subresource: &'static str,
    namespace: &'static str,
) -> AccessProbe {
    AccessProbe {
        id,
        control,
        principal,
        verb,
        group,
        resource,
        subresource,
        namespace,
    }
}

use Principal::{Anonymous, AnyServiceAccount, AnyUser};

/// Every authorization probe. Each must be denied.
pub const ACCESS_PROBES: &[AccessProbe] = &[
    // AUTH-01: nothing permits everything.
    probe(
        "everything-delete-namespaces",
        "KSPM-AUTH-01",
        AnyUser,
        "delete",
        "",
        "namespaces",
        "",
        "",
    ),
    probe(
        "everything-update-policies",
        "KSPM-AUTH-01",
        AnyUser,
        "update",
        "policy.bulwark.dev",
        "cedarpolicies",
        "",
        "",
    ),
    probe(
        "everything-sa-delete-namespaces",
        "KSPM-AUTH-01",
        AnyServiceAccount,
        "delete",
        "",
        "namespaces",
        "",
        "",
    ),
    // AUTH-05: Secrets are not readable by broad groups.
    probe(
        "secrets-get-any-user",
        "KSPM-AUTH-05",
        AnyUser,
        "get",
        "",
        "secrets",
        "",
        PROBE_NAMESPACE,
    ),
    probe(
        "secrets-list-any-user",
        "KSPM-AUTH-05",
        AnyUser,
        "list",
        "",
        "secrets",
        "",
        "",
    ),
    probe(
        "secrets-watch-any-user",
        "KSPM-AUTH-05",
        AnyUser,
        "watch",
        "",
        "secrets",
        "",
        "",
    ),
    probe(
        "secrets-get-any-sa",
        "KSPM-AUTH-05",
        AnyServiceAccount,
        "get",
        "",
        "secrets",
        "",
        PROBE_NAMESPACE,
    ),
    probe(
        "secrets-list-any-sa",
        "KSPM-AUTH-05",
        AnyServiceAccount,
        "list",
        "",
        "secrets",
        "",
        "",
    ),
    probe(
        "secrets-get-anonymous",
        "KSPM-AUTH-05",
        Anonymous,
        "get",
        "",
        "secrets",
        "",
        PROBE_NAMESPACE,
    ),
    // AUTH-06: escalation paths.
    probe(
        "impersonate-users",
        "KSPM-AUTH-06",
        AnyUser,
        "impersonate",
        "",
        "users",
        "",
        "",
    ),
    probe(
        "impersonate-groups",
        "KSPM-AUTH-06",
        AnyUser,
        "impersonate",
        "",
        "groups",
        "",
        "",
    ),
    probe(
        "impersonate-serviceaccounts",
        "KSPM-AUTH-06",
        AnyServiceAccount,
        "impersonate",
        "",
        "serviceaccounts",
        "",
        PROBE_NAMESPACE,
    ),
    probe(
        "bind-clusterroles",
        "KSPM-AUTH-06",
        AnyUser,
        "bind",
        "rbac.authorization.k8s.io",
        "clusterroles",
        "",
        "",
    ),
    probe(
        "escalate-clusterroles",
        "KSPM-AUTH-06",
        AnyUser,
        "escalate",
        "rbac.authorization.k8s.io",
        "clusterroles",
        "",
        "",
    ),
    probe(
        "create-pods",
        "KSPM-AUTH-06",
        AnyServiceAccount,
        "create",
        "",
        "pods",
        "",
        PROBE_NAMESPACE,
    ),
    probe(
        "exec-pods",
        "KSPM-AUTH-06",
        AnyUser,
        "create",
        "",
        "pods",
        "exec",
        PROBE_NAMESPACE,
    ),
    probe(
        "proxy-nodes",
        "KSPM-AUTH-06",
        AnyUser,
        "get",
        "",
        "nodes",
        "proxy",
        "",
    ),
    probe(
        "approve-csrs",
        "KSPM-AUTH-06",
        AnyUser,
        "update",
        "certificates.k8s.io",
        "certificatesigningrequests",
        "approval",
        "",
    ),
    probe(
        "create-webhooks",
        "KSPM-AUTH-06",
        AnyUser,
        "create",
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
        "",
        "",
    ),
    probe(
        "create-tokens",
        "KSPM-AUTH-06",
        AnyUser,
        "create",
        "",
        "serviceaccounts",
        "token",
        PROBE_NAMESPACE,
    ),
    probe(
        "create-persistentvolumes",
        "KSPM-AUTH-06",
        AnyUser,
        "create",
        "",
        "persistentvolumes",
        "",
        "",
    ),
    // AUTH-07: nothing beyond discovery for the broadest groups.
    probe(
        "anonymous-list-namespaces",
        "KSPM-AUTH-07",
        Anonymous,
        "list",
        "",
        "namespaces",
        "",
        "",
    ),
    probe(
        "anonymous-list-pods",
        "KSPM-AUTH-07",
        Anonymous,
        "list",
        "",
        "pods",
        "",
        "",
    ),
    probe(
        "any-user-list-pods",
        "KSPM-AUTH-07",
        AnyUser,
        "list",
        "",
        "pods",
        "",
        "",
    ),
    probe(
        "any-user-create-configmaps",
        "KSPM-AUTH-07",
        AnyUser,
        "create",
        "",
        "configmaps",
        "",
        PROBE_NAMESPACE,
    ),
    probe(
        "any-user-list-nodes",
        "KSPM-AUTH-07",
        AnyUser,
        "list",
        "",
        "nodes",
        "",
        "",
    ),
];

/// An admission question: an object the chain must refuse (dry run; nothing is stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionProbe {
    /// Stable id; answers carry it.
    pub id: &'static str,
    /// The control it answers.
    pub control: &'static str,
    /// What it tries.
    pub description: &'static str,
}

/// Every admission probe. Each object must be refused; [`admission_probe_object`] builds it.
/// They are asked in [`PROBE_NAMESPACE`], a namespace without labels, as a new namespace is.
pub const ADMISSION_PROBES: &[AdmissionProbe] = &[
    AdmissionProbe {
        id: "privileged-pod",
        control: "KSPM-ADM-01",
        description: "is a privileged pod refused in a namespace without pod security labels?",
    },
    AdmissionProbe {
        id: "service-external-ips",
        control: "KSPM-API-08",
        description: "is a Service with spec.externalIPs refused?",
    },
    AdmissionProbe {
        id: "untrusted-image",
        control: "KSPM-ADM-04",
        description: "is a pod (otherwise restricted) running an image from an unknown registry (untrusted.invalid) refused?",
    },
];

/// The object an admission probe submits (create, in [`PROBE_NAMESPACE`]).
pub fn admission_probe_object(id: &str) -> Option<Value> {
    let restricted_container = |image: &str| {
        json!({
            "name": "probe",
            "image": image,
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"]},
                "runAsNonRoot": true,
                "runAsUser": 65534,
                "seccompProfile": {"type": "RuntimeDefault"}
            }
        })
    };
    match id {
        "privileged-pod" => Some(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "posture-probe-privileged", "namespace": PROBE_NAMESPACE},
            "spec": {"containers": [{
                "name": "probe",
                "image": "registry.invalid/probe:1",
                "securityContext": {"privileged": true}
            }]}
        })),
        "service-external-ips" => Some(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "posture-probe-external-ips", "namespace": PROBE_NAMESPACE},
            "spec": {
                "ports": [{"port": 80}],
                "externalIPs": ["203.0.113.10"]
            }
        })),
        "untrusted-image" => Some(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "posture-probe-untrusted-image", "namespace": PROBE_NAMESPACE},
            "spec": {
                "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [restricted_container("untrusted.invalid/miner:latest")]
            }
        })),
        _ => None,
    }
}

/// A concern the audit policy must cover, as a representative request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditConcern {
    /// Stable id (`secrets`).
    pub id: &'static str,
    /// The request: verb.
    pub verb: &'static str,
    /// API group.
    pub group: &'static str,
    /// Resource.
    pub resource: &'static str,
    /// Subresource.
    pub subresource: &'static str,
    /// The request is unauthenticated (an authentication failure).
    pub unauthenticated: bool,
    /// The level must be at least Metadata …
    pub at_least_metadata: bool,
    /// … and at most Metadata (no bodies: they hold secrets).
    pub at_most_metadata: bool,
}

const fn concern(
    id: &'static str,
    verb: &'static str,
    group: &'static str,
    resource: &'static str,
    subresource: &'static str,
    at_most_metadata: bool,
) -> AuditConcern {
    AuditConcern {
        id,
        verb,
        group,
        resource,
        subresource,
        unauthenticated: false,
        at_least_metadata: true,
        at_most_metadata,
    }
}

/// Every audit concern (CIS 3.2.2's list, and what an investigation needs).
pub const AUDIT_CONCERNS: &[AuditConcern] = &[
    concern("secrets", "get", "", "secrets", "", true),
    concern("configmaps", "get", "", "configmaps", "", true),
    concern(
        "token-reviews",
        "create",
        "authentication.k8s.io",
        "tokenreviews",
        "",
        true,
    ),
    concern(
        "token-requests",
        "create",
        "",
        "serviceaccounts",
        "token",
        true,
    ),
    concern(
        "rbac-changes",
        "create",
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        "",
        false,
    ),
    concern(
        "policy-changes",
        "update",
        "policy.bulwark.dev",
        "cedarpolicies",
        "",
        false,
    ),
    concern("exec", "create", "", "pods", "exec", false),
    concern("attach", "create", "", "pods", "attach", false),
    concern("port-forward", "create", "", "pods", "portforward", false),
    AuditConcern {
        id: "authentication-failures",
        verb: "list",
        group: "",
        resource: "pods",
        subresource: "",
        unauthenticated: true,
        at_least_metadata: true,
        at_most_metadata: false,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_ids_are_unique_and_every_admission_probe_has_an_object() {
        let mut ids: Vec<&str> = ACCESS_PROBES.iter().map(|p| p.id).collect();
        ids.extend(ADMISSION_PROBES.iter().map(|p| p.id));
        let count = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), count);
        for probe in ADMISSION_PROBES {
            let object = admission_probe_object(probe.id).unwrap();
            assert_eq!(object["metadata"]["namespace"], PROBE_NAMESPACE);
        }
        assert!(admission_probe_object("nope").is_none());
        assert_eq!(
            ACCESS_PROBES[3].describe(),
            "may any authenticated user get secrets in namespace posture-probe?"
        );
    }
}
