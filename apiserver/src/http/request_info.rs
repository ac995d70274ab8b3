//! Turns a method and path into what the request is about (upstream's `RequestInfo`): the
//! resource, namespace, name, subresource and verb that authorization and handlers need.

use std::sync::Arc;

use bulwark_api::GroupVersionResource;

use crate::registry::{ResourceDef, ResourceTable, Subresource};

/// The Kubernetes verb of a resource request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// GET one object.
    Get,
    /// GET a collection.
    List,
    /// GET a collection with `watch=true` (or under `/watch/`).
    Watch,
    /// POST.
    Create,
    /// PUT.
    Update,
    /// PATCH.
    Patch,
    /// DELETE one object.
    Delete,
    /// DELETE a collection.
    DeleteCollection,
}

impl Verb {
    /// The lowercase verb name used in logs, metrics and authorization.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::List => "list",
            Self::Watch => "watch",
            Self::Create => "create",
            Self::Update => "update",
            Self::Patch => "patch",
            Self::Delete => "delete",
            Self::DeleteCollection => "deletecollection",
        }
    }
}

/// A request for a resource.
#[derive(Debug, Clone)]
pub struct ResourceRequest {
    /// What is addressed.
    pub def: Arc<ResourceDef>,
    /// The namespace from the path, for namespaced kinds (None = all namespaces).
    pub namespace: Option<String>,
    /// The object name, when one is addressed.
    pub name: Option<String>,
    /// The subresource, when one is addressed.
    pub subresource: Option<Subresource>,
    /// The verb.
    pub verb: Verb,
}

/// Why a path is not a valid resource path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// Nothing is served there (404).
    NotFound,
    /// The resource exists but not with this method (405).
    MethodNotAllowed,
}

/// Whether the query string asks for a watch (`watch=true` or `watch=1`).
pub fn wants_watch(query: &[(String, String)]) -> bool {
    query
        .iter()
        .any(|(k, v)| k == "watch" && (v == "true" || v == "1"))
}

/// Parses an `/api/...` or `/apis/...` path against the resources `table` serves. `Ok(None)`
/// means the path is a discovery path (group or version document), not a resource.
pub fn parse(
    table: &ResourceTable,
    method: &http::Method,
    path: &str,
    query: &[(String, String)],
) -> Result<Option<ResourceRequest>, PathError> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api"] | ["api", _] | ["apis"] | ["apis", _] | ["apis", _, _] => return Ok(None),
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(PathError::NotFound),
    };
    let (watch_prefix, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    if rest.iter().any(|p| p.is_empty()) {
        return Err(PathError::NotFound);
    }
    // namespaces/{ns}/{resource}/... addresses a namespaced resource; namespaces,
    // namespaces/{name} and namespaces/{name}/status address the namespace itself.
    let (namespace, resource, name, sub) = match rest {
        ["namespaces", ns, sub @ ("status" | "finalize")] => {
            (None, "namespaces", Some(*ns), Some(*sub))
        }
        ["namespaces", ns, resource, tail @ ..] => {
            let (name, sub) = match tail {
                [] => (None, None),
                [name] => (Some(*name), None),
                [name, sub] => (Some(*name), Some(*sub)),
                _ => return Err(PathError::NotFound),
            };
            (Some(*ns), *resource, name, sub)
        }
        [resource] => (None, *resource, None, None),
        [resource, name] => (None, *resource, Some(*name), None),
        [resource, name, sub] => (None, *resource, Some(*name), Some(*sub)),
        _ => return Err(PathError::NotFound),
    };
    let def = table
        .get(&GroupVersionResource::new(group, version, resource))
        .cloned()
        .ok_or(PathError::NotFound)?;
    if namespace.is_some() && !def.namespaced() {
        return Err(PathError::NotFound);
    }
    let subresource = match sub {
        None => None,
        Some(s) => Some(
            def.subresources()
                .iter()
                .copied()
                .find(|r| r.name() == s)
                .ok_or(PathError::NotFound)?,
        ),
    };
    let watch = watch_prefix || wants_watch(query);
    let verb = match (method.as_str(), name.is_some(), subresource) {
        ("GET", _, _) if watch_prefix => Verb::Watch,
        ("GET", true, _) => Verb::Get,
        ("GET", false, _) if watch => Verb::Watch,
        ("GET", false, _) => Verb::List,
        ("POST", false, None) => Verb::Create,
        // Subresources created by POST: pods/binding, serviceaccounts/token.
        ("POST", true, Some(Subresource::Binding | Subresource::Token)) => Verb::Create,
        ("PUT", true, _) => Verb::Update,
        ("PATCH", true, _) => Verb::Patch,
        ("DELETE", true, None) => Verb::Delete,
        ("DELETE", false, None) => Verb::DeleteCollection,
        _ => return Err(PathError::MethodNotAllowed),
    };
    // Unstored kinds name an object only to get or delete it (the encryption status and
    // keys); a review is created and the audit log listed as collections.
    let served = def.serving().verbs().contains(&verb.as_str())
        && (def.stored() || name.is_none() || matches!(verb, Verb::Get | Verb::Delete));
    if !served {
        return Err(PathError::MethodNotAllowed);
    }
    Ok(Some(ResourceRequest {
        def,
        namespace: namespace.map(str::to_owned),
        name: name.map(str::to_owned),
        subresource,
        verb,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn p(m: Method, path: &str) -> ResourceRequest {
        parse(crate::registry::builtin(), &m, path, &[])
            .unwrap()
            .unwrap()
    }

    #[test]
    fn paths() {
        let r = p(Method::GET, "/api/v1/namespaces/default/pods/web");
        assert_eq!(
            (
                r.def.plural(),
                r.namespace.as_deref(),
                r.name.as_deref(),
                r.verb
            ),
            ("pods", Some("default"), Some("web"), Verb::Get)
        );
        let r = p(Method::GET, "/api/v1/namespaces/kube-system");
        assert_eq!(
            (r.def.plural(), r.name.as_deref()),
            ("namespaces", Some("kube-system"))
        );
        let r = p(Method::PUT, "/api/v1/namespaces/x/status");
        assert_eq!(
            (r.def.plural(), r.subresource, r.verb),
            ("namespaces", Some(Subresource::Status), Verb::Update)
        );
        let r = p(Method::GET, "/apis/apps/v1/deployments");
        assert_eq!((r.namespace, r.verb), (None, Verb::List));
        let r = parse(
            crate::registry::builtin(),
            &Method::GET,
            "/apis/apps/v1/namespaces/a/deployments",
            &[("watch".into(), "1".into())],
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.verb, Verb::Watch);
        let r = p(Method::GET, "/api/v1/watch/namespaces/a/configmaps");
        assert_eq!(r.verb, Verb::Watch);
        let r = p(Method::POST, "/api/v1/namespaces/a/pods/p/binding");
        assert_eq!(
            (r.verb, r.subresource),
            (Verb::Create, Some(Subresource::Binding))
        );
        let r = p(Method::DELETE, "/api/v1/namespaces/a/configmaps");
        assert_eq!(r.verb, Verb::DeleteCollection);
        assert!(
            parse(crate::registry::builtin(), &Method::GET, "/api/v1", &[])
                .unwrap()
                .is_none()
        );
        assert!(
            parse(crate::registry::builtin(), &Method::GET, "/apis/apps", &[])
                .unwrap()
                .is_none()
        );
        assert_eq!(
            parse(
                crate::registry::builtin(),
                &Method::GET,
                "/api/v1/nope",
                &[]
            )
            .unwrap_err(),
            PathError::NotFound
        );
        assert_eq!(
            parse(
                crate::registry::builtin(),
                &Method::GET,
                "/api/v1/namespaces/a/nodes",
                &[]
            )
            .unwrap_err(),
            PathError::NotFound
        );
        assert_eq!(
            parse(
                crate::registry::builtin(),
                &Method::GET,
                "/api/v1/namespaces/a/pods/p/exec",
                &[]
            )
            .unwrap_err(),
            PathError::NotFound
        );
        assert_eq!(
            parse(
                crate::registry::builtin(),
                &Method::POST,
                "/api/v1/namespaces/a/pods/p",
                &[]
            )
            .unwrap_err(),
            PathError::MethodNotAllowed
        );
        let r = p(
            Method::GET,
            "/apis/audit.bulwark.dev/v1/namespaces/a/events",
        );
        assert_eq!((r.verb, r.namespace.as_deref()), (Verb::List, Some("a")));
        for (m, path) in [
            (Method::GET, "/apis/audit.bulwark.dev/v1/events/x"),
            (Method::POST, "/apis/audit.bulwark.dev/v1/events"),
            (
                Method::GET,
                "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            ),
        ] {
            assert_eq!(
                parse(crate::registry::builtin(), &m, path, &[]).unwrap_err(),
                PathError::MethodNotAllowed,
                "{m} {path}"
            );
        }
        assert!(
            parse(
                crate::registry::builtin(),
                &Method::GET,
                "/apis/audit.bulwark.dev/v1/events",
                &[("watch".into(), "1".into())]
            )
            .is_err()
        );
        assert_eq!(
            parse(
                crate::registry::builtin(),
                &Method::GET,
                "/api/v1//pods",
                &[]
            )
            .unwrap_err(),
            PathError::NotFound
        );
    }

    proptest::proptest! {
        #[test]
        fn paths_never_panic(path in "(/[a-z0-9.%-]{0,12}){0,9}/?", method in 0..5usize) {
            let m = [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE][method].clone();
            let _ = parse(crate::registry::builtin(), &m, &path, &[]);
        }
    }
}
