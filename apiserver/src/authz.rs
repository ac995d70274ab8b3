//! Authorization: may this user do this? One [`Authorizer`] decides every request:
//! [`CedarAuthorizer`] in the server (tiered Cedar policies, `bulwark-policies`), or
//! [`BootstrapAuthorizer`] (only the bootstrap admin group; everyone else denied).

pub(crate) mod access_review;
pub(crate) mod namespace_labels;
pub(crate) mod node_reads;
pub(crate) mod policy_sync;

use std::net::IpAddr;
use std::sync::Arc;

use bulwark_policies::{AccessRequest, PolicyEngine, Target};

use crate::authn::UserInfo;

/// What is being asked, in the terms policies use: a verb on a resource or a non-resource
/// path (the policy engine's [`Target`], so requests reach Cedar without a copy).
#[derive(Debug, Clone)]
pub struct RequestAttributes<'a> {
    /// The verb (`get`, `list`, …; `get` or `post` for non-resource paths).
    pub verb: &'a str,
    /// What is addressed.
    pub target: Target<'a>,
}

impl<'a> RequestAttributes<'a> {
    /// A non-resource request (`/version`, `/openapi/v3`, discovery …).
    pub fn non_resource(verb: &'a str, path: &'a str) -> Self {
        Self {
            verb,
            target: Target::NonResource { path },
        }
    }
}

/// The namespace a request is "in" for authorization: a namespace object is addressed in
/// itself, as upstream's RequestInfo has it; anything else in the namespace of its path.
pub fn request_namespace<'a>(
    api_group: &str,
    resource: &str,
    namespace: Option<&'a str>,
    name: Option<&'a str>,
) -> Option<&'a str> {
    match (api_group, resource, name) {
        ("", "namespaces", Some(name)) => Some(name),
        _ => namespace,
    }
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

impl Decision {
    /// The reason with the determining policies, as denials and access reviews show it.
    pub fn explanation(&self) -> String {
        if self.policies.is_empty() {
            self.reason.clone()
        } else {
            format!("{} (policies: {})", self.reason, self.policies.join(", "))
        }
    }
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

/// Whether `snapshot` allows `user` the request `attributes` from `source`: the question the
/// acceptance checks for policy and RBAC objects ask about their author, against one
/// consistent snapshot.
pub fn snapshot_allows(
    snapshot: &bulwark_policies::Snapshot,
    user: &UserInfo,
    attributes: &RequestAttributes<'_>,
    source: IpAddr,
) -> bool {
    snapshot
        .decide(&access_request(user, attributes, source))
        .allowed
}

/// The Cedar view of a request: who asks, from where, for what.
pub fn access_request<'a>(
    user: &'a UserInfo,
    attributes: &RequestAttributes<'a>,
    source: IpAddr,
) -> AccessRequest<'a> {
    AccessRequest {
        user: &user.name,
        groups: &user.groups,
        auth_method: user.method.as_str(),
        cert_fingerprint: user.cert_fingerprint.as_deref(),
        source_ip: source,
        verb: attributes.verb,
        target: attributes.target.clone(),
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
    let reason = decision.explanation();
    let verb = attributes.verb;
    match &attributes.target {
        Target::Resource {
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
        Target::NonResource { path } => format!(
            "forbidden: User \"{}\" cannot {verb} path \"{path}\": {reason}",
            user.name
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::AuthMethod;

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
        let attrs = RequestAttributes::non_resource("get", "/version");
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
