//! Impersonation, as upstream: `Impersonate-User`, `Impersonate-Group` and `Impersonate-Uid`
//! headers make the request act as another identity (`kubectl --as`, `--as-group`), provided
//! the caller may `impersonate` each part: `users` (or `serviceaccounts` in the account's
//! namespace), `groups`, and `authentication.k8s.io/uids`. Requests that ask for what this
//! server cannot represent (`Impersonate-Extra-*`) are refused, never silently run as the
//! caller.

use std::net::IpAddr;

use bulwark_api::StatusReason;
use bulwark_policies::Target;
use http::HeaderMap;

use crate::authn::UserInfo;
use crate::authz::{self, Authorizer, RequestAttributes};
use crate::http::error::ApiError;

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA_PREFIX: &str = "impersonate-extra-";

fn header_values(headers: &HeaderMap, name: &str) -> Result<Vec<String>, ApiError> {
    headers
        .get_all(name)
        .iter()
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| ApiError::bad_request(format!("header {name} is not valid text")))
        })
        .collect()
}

/// The identity the request acts as: `user` itself, or the impersonated identity when the
/// headers ask for one and every part of it is allowed. Impersonating a service account is
/// authorized with its namespace's labels (from `namespace_labels`), as every request in a
/// namespace is, so guardrails on those labels apply to it too.
pub fn apply(
    authorizer: &dyn Authorizer,
    user: UserInfo,
    headers: &HeaderMap,
    source: IpAddr,
    namespace_labels: &crate::authz::namespace_labels::NamespaceLabels,
) -> Result<UserInfo, ApiError> {
    let names = header_values(headers, USER)?;
    let groups = header_values(headers, GROUP)?;
    let uids = header_values(headers, UID)?;
    let has_extra = headers.keys().any(|k| k.as_str().starts_with(EXTRA_PREFIX));
    if names.is_empty() {
        if !groups.is_empty() || !uids.is_empty() || has_extra {
            return Err(ApiError::bad_request(
                "impersonating groups, a uid or extras requires impersonating a user",
            ));
        }
        return Ok(user);
    }
    if has_extra {
        return Err(ApiError::bad_request(
            "Impersonate-Extra-* headers are not supported by this server",
        ));
    }
    let [name] = names.as_slice() else {
        return Err(ApiError::bad_request(
            "only one Impersonate-User may be given",
        ));
    };
    let mut checks: Vec<(&str, &str, Option<&str>, &str)> = Vec::new();
    let service_account = name
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'));
    match service_account {
        Some((ns, sa)) => checks.push(("", "serviceaccounts", Some(ns), sa)),
        None => checks.push(("", "users", None, name)),
    }
    for group in &groups {
        checks.push(("", "groups", None, group));
    }
    for uid in &uids {
        checks.push(("authentication.k8s.io", "uids", None, uid));
    }
    for (api_group, resource, namespace, object) in checks {
        let labels = namespace.map(|ns| namespace_labels.get(ns));
        let attributes = RequestAttributes {
            verb: "impersonate",
            target: Target::Resource {
                api_group,
                resource,
                subresource: None,
                namespace,
                name: Some(object),
                namespace_labels: labels.as_deref().unwrap_or_default(),
            },
        };
        let decision = authorizer.authorize(&user, &attributes, source);
        if !decision.allowed {
            return Err(ApiError::new(
                StatusReason::Forbidden,
                authz::forbidden_message(&user, &attributes, &decision),
            ));
        }
    }
    let mut impersonated_groups = groups;
    if let Some((ns, _)) = service_account {
        impersonated_groups.push("system:serviceaccounts".into());
        impersonated_groups.push(format!("system:serviceaccounts:{ns}"));
    }
    if !impersonated_groups
        .iter()
        .any(|g| g == "system:authenticated")
    {
        impersonated_groups.push("system:authenticated".into());
    }
    Ok(UserInfo {
        name: name.clone(),
        groups: impersonated_groups,
        method: user.method,
        cert_fingerprint: None,
        bound_account: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::AuthMethod;
    use crate::authz::BootstrapAuthorizer;

    fn user(groups: &[&str]) -> UserInfo {
        UserInfo {
            name: "caller".into(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            method: AuthMethod::X509,
            cert_fingerprint: Some("ab".into()),
            bound_account: None,
        }
    }

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    static NO_LABELS: std::sync::LazyLock<crate::authz::namespace_labels::NamespaceLabels> =
        std::sync::LazyLock::new(Default::default);

    /// A guardrail on the labels of a service account's namespace stops impersonating it
    /// (the labels used to be left out, so such a guardrail never fired).
    #[test]
    fn impersonating_a_service_account_sees_its_namespace_labels() {
        use bulwark_policies::{CompiledPolicies, PolicyEngine};
        use std::sync::Arc;
        let guard = Arc::new(
            CompiledPolicies::compile(
                "guard",
                None,
                r#"@id("guard.no-system-sa") forbid (principal, action == k8s::Action::"impersonate", resource is k8s::Resource)
                   when { resource.resource == "serviceaccounts" && resource.hasTag("tier") && resource.getTag("tier") == "system" };"#,
            )
            .unwrap(),
        );
        let grant = Arc::new(
            CompiledPolicies::compile(
                "grant",
                None,
                r#"@id("grant.ops-impersonate") permit (principal in k8s::Group::"ops", action == k8s::Action::"impersonate", resource);"#,
            )
            .unwrap(),
        );
        let (engine, _) = PolicyEngine::new(&[guard, grant]).unwrap();
        let authz = crate::authz::CedarAuthorizer::new(Arc::new(engine));
        let labels = crate::authz::namespace_labels::NamespaceLabels::default();
        let mut objects = crate::storage::mirror::Objects::default();
        objects.insert(
            "/registry/namespaces/infra".into(),
            Arc::new(
                serde_json::json!({"metadata": {"name": "infra", "labels": {"tier": "system"}}}),
            ),
        );
        objects.insert(
            "/registry/namespaces/apps".into(),
            Arc::new(serde_json::json!({"metadata": {"name": "apps"}})),
        );
        labels.update(&objects);
        let as_sa = |ns: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                USER,
                format!("system:serviceaccount:{ns}:robot").parse().unwrap(),
            );
            h
        };
        let err = apply(&authz, user(&["ops"]), &as_sa("infra"), LOCAL, &labels).unwrap_err();
        assert_eq!(err.code(), 403);
        assert!(
            err.0.message.contains("guard.no-system-sa"),
            "{}",
            err.0.message
        );
        let ok = apply(&authz, user(&["ops"]), &as_sa("apps"), LOCAL, &labels).unwrap();
        assert_eq!(ok.name, "system:serviceaccount:apps:robot");
    }

    #[test]
    fn impersonation_needs_permission_and_never_falls_back_to_the_caller() {
        let authz = BootstrapAuthorizer::new("system:masters");
        let mut headers = HeaderMap::new();
        headers.insert(USER, "alice".parse().unwrap());
        headers.append(GROUP, "dev".parse().unwrap());
        let admin = apply(
            &authz,
            user(&["system:masters"]),
            &headers,
            LOCAL,
            &NO_LABELS,
        )
        .unwrap();
        assert_eq!(admin.name, "alice");
        assert_eq!(admin.groups, ["dev", "system:authenticated"]);
        assert_eq!(admin.cert_fingerprint, None);

        let err = apply(&authz, user(&["dev"]), &headers, LOCAL, &NO_LABELS).unwrap_err();
        assert_eq!(err.code(), 403);
        assert!(
            err.0
                .message
                .contains("cannot impersonate resource \"users\""),
            "{}",
            err.0.message
        );

        let mut groups_only = HeaderMap::new();
        groups_only.insert(GROUP, "dev".parse().unwrap());
        assert_eq!(
            apply(
                &authz,
                user(&["system:masters"]),
                &groups_only,
                LOCAL,
                &NO_LABELS
            )
            .unwrap_err()
            .code(),
            400
        );
        headers.insert("impersonate-extra-scopes", "x".parse().unwrap());
        assert_eq!(
            apply(
                &authz,
                user(&["system:masters"]),
                &headers,
                LOCAL,
                &NO_LABELS
            )
            .unwrap_err()
            .code(),
            400
        );
        let none = apply(&authz, user(&["dev"]), &HeaderMap::new(), LOCAL, &NO_LABELS).unwrap();
        assert_eq!(none.name, "caller");
    }
}
