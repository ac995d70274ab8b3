//! Authorization: may this user do this? One [`Authorizer`] decides every request. Until the
//! Cedar engine lands, [`BootstrapAuthorizer`] allows only the bootstrap admin group and denies
//! everyone else (default deny).

use crate::auth::UserInfo;

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
}

/// Decides requests.
pub trait Authorizer: Send + Sync {
    /// Decides one request.
    fn authorize(&self, user: &UserInfo, attributes: &RequestAttributes<'_>) -> Decision;
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
    fn authorize(&self, user: &UserInfo, _attributes: &RequestAttributes<'_>) -> Decision {
        if user.groups.contains(&self.admin_group) {
            Decision {
                allowed: true,
                reason: format!("member of the bootstrap admin group {}", self.admin_group),
            }
        } else {
            Decision {
                allowed: false,
                reason: "no policy allows this request (default deny)".into(),
            }
        }
    }
}

/// Upstream's 403 message for a denied request.
pub fn forbidden_message(
    user: &UserInfo,
    attributes: &RequestAttributes<'_>,
    reason: &str,
) -> String {
    match attributes {
        RequestAttributes::Resource {
            verb,
            api_group,
            resource,
            subresource,
            namespace,
            name,
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
        assert!(authz.authorize(&user(&["system:masters"]), &attrs).allowed);
        assert!(
            !authz
                .authorize(&user(&["system:authenticated", "dev"]), &attrs)
                .allowed
        );
        assert!(!authz.authorize(&user(&[]), &attrs).allowed);
    }
}
