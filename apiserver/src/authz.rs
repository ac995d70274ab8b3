//! Authorization: may this user do this? One [`Authorizer`] decides every request:
//! [`CedarAuthorizer`] in the server (tiered Cedar policies, `bulwark-policies`), or
//! [`BootstrapAuthorizer`] (only the bootstrap admin group; everyone else denied).

use std::net::IpAddr;
use std::sync::Arc;

use bulwark_policies::{AccessRequest, PolicyEngine, Target};

use crate::auth::{AuthMethod, UserInfo};

/// What is being asked, in the terms policies use.
#[derive(Debug, Clone)]
pub enum RequestAttributes<'a> {
    /// A resource request.
    Resource {
        /// The verb (`get`, `list`, …).
        verb: &'a str,
        /// API group ("" for core).
        api_group: &'a str,
        /// Plural resource.
        resource: &'a str,
        /// Subresource, if any.
        subresource: Option<&'a str>,
        /// Namespace, if any.
        namespace: Option<&'a str>,
        /// Object name, if any.
        name: Option<&'a str>,
        /// Labels of the namespace (the Cedar resource's tags).
        namespace_labels: &'a [(String, String)],
    },
    /// A non-resource request (`/version`, `/openapi/v3`, discovery …).
    NonResource {
        /// `get` or `post`.
        verb: &'a str,
        /// The URL path.
        path: &'a str,
    },
}

/// An authorization decision with the reason given to the user on denial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Why; shown in 403 messages and logs.
    pub reason: String,
    /// Ids of the policies that determined the decision.
    pub policies: Vec<String>,
    /// Denied explicitly (a guardrail forbade), not merely not allowed.
    pub denied: bool,
}

/// Decides requests.
pub trait Authorizer: Send + Sync {
    /// Decides one request from `source`.
    fn authorize(
        &self,
        user: &UserInfo,
        attributes: &RequestAttributes<'_>,
        source: IpAddr,
    ) -> Decision;

    /// Ids of the grants that may apply to `user` but whose conditions depend on the object
    /// (its name or its namespace's labels): a rules review listing only what is definitely
    /// allowed is incomplete while any exist.
    fn object_dependent_policies(&self, _user: &UserInfo) -> Vec<String> {
        Vec::new()
    }
}

/// Tiered Cedar policies decide (see `bulwark_policies::engine`).
#[derive(Debug)]
pub struct CedarAuthorizer {
    engine: Arc<PolicyEngine>,
}

impl CedarAuthorizer {
    /// Decides with `engine` (shared so policies can be reloaded elsewhere).
    pub fn new(engine: Arc<PolicyEngine>) -> Self {
        Self { engine }
    }
}

/// The Cedar view of a request: who asks, from where, for what.
pub fn access_request<'a>(
    user: &'a UserInfo,
    attributes: &RequestAttributes<'a>,
    source: IpAddr,
) -> AccessRequest<'a> {
    let (verb, target) = match *attributes {
        RequestAttributes::Resource {
            verb,
            api_group,
            resource,
            subresource,
            namespace,
            name,
            namespace_labels,
        } => (
            verb,
            Target::Resource {
                api_group,
                resource,
                subresource,
                namespace,
                name,
                namespace_labels,
            },
        ),
        RequestAttributes::NonResource { verb, path } => (verb, Target::NonResource { path }),
    };
    AccessRequest {
        user: &user.name,
        groups: &user.groups,
        auth_method: match user.method {
            AuthMethod::X509 => "x509",
            AuthMethod::ServiceAccountToken => "serviceaccount-token",
        },
        cert_fingerprint: user.cert_fingerprint.as_deref(),
        source_ip: source,
        verb,
        target,
    }
}

impl Authorizer for CedarAuthorizer {
    fn authorize(
        &self,
        user: &UserInfo,
        attributes: &RequestAttributes<'_>,
        source: IpAddr,
    ) -> Decision {
        let decision = self
            .engine
            .decide(&access_request(user, attributes, source));
        Decision {
            allowed: decision.allowed,
            reason: decision.reasons.join("; "),
            policies: decision.policies,
            denied: decision.tier == bulwark_policies::Tier::Guardrail,
        }
    }

    fn object_dependent_policies(&self, user: &UserInfo) -> Vec<String> {
        self.engine
            .current()
            .object_dependent_grants(&user.name, &user.groups)
    }
}

/// Allows members of one group (the bootstrap admins), denies everyone else.
#[derive(Debug)]
pub struct BootstrapAuthorizer {
    admin_group: String,
}

impl BootstrapAuthorizer {
    /// Allows `admin_group`.
    pub fn new(admin_group: impl Into<String>) -> Self {
        Self {
            admin_group: admin_group.into(),
        }
    }
}

impl Authorizer for BootstrapAuthorizer {
    fn authorize(
        &self,
        user: &UserInfo,
        _attributes: &RequestAttributes<'_>,
        _source: IpAddr,
    ) -> Decision {
        if user.groups.contains(&self.admin_group) {
            Decision {
                allowed: true,
                reason: format!("member of the bootstrap admin group {}", self.admin_group),
                policies: Vec::new(),
                denied: false,
            }
        } else {
            Decision {
                allowed: false,
                reason: "no policy allows this request (default deny)".into(),
                policies: Vec::new(),
                denied: false,
            }
        }
    }
}

/// Upstream's 403 message for a denied request, naming the determining policies.
pub fn forbidden_message(
    user: &UserInfo,
    attributes: &RequestAttributes<'_>,
    decision: &Decision,
) -> String {
    let reason = if decision.policies.is_empty() {
        decision.reason.clone()
    } else {
        format!(
            "{} (policies: {})",
            decision.reason,
            decision.policies.join(", ")
        )
    };
    match attributes {
        RequestAttributes::Resource {
            verb,
            api_group,
            resource,
            subresource,
            namespace,
            name,
            ..
        } => {
            let what = match (name, subresource) {
                (Some(n), _) => format!("{resource} \"{n}\" is forbidden"),
                _ => format!("{resource} is forbidden"),
            };
            let res = match subresource {
                Some(s) => format!("{resource}/{s}"),
                None => (*resource).to_owned(),
            };
            let scope = match namespace {
                Some(ns) => format!("in the namespace \"{ns}\""),
                None => "at the cluster scope".to_owned(),
            };
            format!(
                "{what}: User \"{}\" cannot {verb} resource \"{res}\" in API group \"{api_group}\" {scope}: {reason}",
                user.name
            )
        }
        RequestAttributes::NonResource { verb, path } => format!(
            "forbidden: User \"{}\" cannot {verb} path \"{path}\": {reason}",
            user.name
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthMethod;

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn user(groups: &[&str]) -> UserInfo {
        UserInfo {
            name: "u".into(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            method: AuthMethod::X509,
            cert_fingerprint: None,
            bound_account: None,
        }
    }

    #[test]
    fn default_deny() {
        let authz = BootstrapAuthorizer::new("system:masters");
        let attrs = RequestAttributes::NonResource {
            verb: "get",
            path: "/version",
        };
        assert!(
            authz
                .authorize(&user(&["system:masters"]), &attrs, LOCAL)
                .allowed
        );
        assert!(
            !authz
                .authorize(&user(&["system:authenticated", "dev"]), &attrs, LOCAL)
                .allowed
        );
        assert!(!authz.authorize(&user(&[]), &attrs, LOCAL).allowed);
    }
}
