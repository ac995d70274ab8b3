//! One API request as Cedar entities: the principal (a `k8s::User`, `k8s::ServiceAccount` or
//! `k8s::Node` that is a member of its `k8s::Group`s), the action `k8s::Action::"<verb>"`,
//! the resource (`k8s::Resource` or `k8s::NonResourceURL`) and the request context.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::OnceLock;

use cedar_policy::{
    Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, Request, RestrictedExpression,
};

use crate::{PolicyError, schema};

/// Every action on `k8s::Resource` in the schema (the Kubernetes verbs policies can name).
pub const RESOURCE_VERBS: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "impersonate",
    "approve",
    "bind",
    "escalate",
];

/// What a request addresses.
#[derive(Debug, Clone)]
pub enum Target<'a> {
    /// A resource request.
    Resource {
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
        /// Labels of the namespace (the resource's tags).
        namespace_labels: &'a [(String, String)],
    },
    /// A non-resource path.
    NonResource {
        /// The URL path.
        path: &'a str,
    },
}

impl Target<'_> {
    /// The namespace addressed, if any.
    pub fn namespace(&self) -> Option<&str> {
        match self {
            Self::Resource { namespace, .. } => *namespace,
            Self::NonResource { .. } => None,
        }
    }

    /// The namespace the addressed object lives *in*, whose confined grants may decide the
    /// request. A Namespace object (and its subresources) lives in none: it is cluster-scoped,
    /// even though its request is authorized with its own name as the namespace (upstream's
    /// RequestInfo, which policies see as `resource.namespace`). So a grant confined to a
    /// namespace never reaches the namespace object itself, and a team cannot relabel or
    /// delete its namespace to get out from under a guardrail on its labels.
    pub fn containing_namespace(&self) -> Option<&str> {
        match self {
            Self::Resource {
                api_group: "",
                resource: "namespaces",
                ..
            } => None,
            other => other.namespace(),
        }
    }
}

/// Everything a decision needs to know about a request.
#[derive(Debug, Clone)]
pub struct AccessRequest<'a> {
    /// The authenticated user name.
    pub user: &'a str,
    /// Its groups.
    pub groups: &'a [String],
    /// `x509` or `serviceaccount-token`.
    pub auth_method: &'a str,
    /// SHA-256 of the client certificate, for x509 users.
    pub cert_fingerprint: Option<&'a str>,
    /// The client's address.
    pub source_ip: IpAddr,
    /// The Kubernetes verb.
    pub verb: &'a str,
    /// What is addressed.
    pub target: Target<'a>,
}

/// The schema's entity type names, parsed once (parsing one costs more than a decision).
const TYPE_NAMES: [&str; 7] = [
    "k8s::Group",
    "k8s::User",
    "k8s::ServiceAccount",
    "k8s::Node",
    "k8s::Resource",
    "k8s::NonResourceURL",
    "k8s::Action",
];

fn type_name(name: &str) -> Result<EntityTypeName, PolicyError> {
    static PARSED: OnceLock<Result<Vec<EntityTypeName>, String>> = OnceLock::new();
    let parsed = PARSED
        .get_or_init(|| {
            TYPE_NAMES
                .iter()
                .map(|n| EntityTypeName::from_str(n).map_err(|e| e.to_string()))
                .collect()
        })
        .as_ref()
        .map_err(|e| PolicyError::Request(e.clone()))?;
    TYPE_NAMES
        .iter()
        .zip(parsed)
        .find(|(n, _)| **n == name)
        .map(|(_, t)| t.clone())
        .ok_or_else(|| PolicyError::Request(format!("unknown entity type {name}")))
}

fn uid(ty: &str, id: &str) -> Result<EntityUid, PolicyError> {
    Ok(EntityUid::from_type_name_and_id(
        type_name(ty)?,
        EntityId::new(id),
    ))
}

/// Most source addresses whose `ip(…)` expression is kept; past it the cache starts over.
const IP_CACHE_MAX: usize = 4096;

/// `ip("<address>")`, built once per source address: cedar parses the extension's name on
/// every [`RestrictedExpression::new_ip`], which cost more than the rest of a decision.
fn ip_expression(address: IpAddr) -> RestrictedExpression {
    static CACHE: OnceLock<std::sync::Mutex<HashMap<IpAddr, RestrictedExpression>>> =
        OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(expr) = cache.get(&address) {
        return expr.clone();
    }
    if cache.len() >= IP_CACHE_MAX {
        cache.clear();
    }
    let expr = RestrictedExpression::new_ip(address.to_string());
    cache.insert(address, expr.clone());
    expr
}

fn string(value: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(value.to_owned())
}

fn entity(
    uid: EntityUid,
    attrs: Vec<(&str, RestrictedExpression)>,
    parents: HashSet<EntityUid>,
    tags: Vec<(String, RestrictedExpression)>,
) -> Result<Entity, PolicyError> {
    Entity::new_with_tags(
        uid,
        attrs.into_iter().map(|(k, v)| (k.to_owned(), v)),
        parents,
        tags,
    )
    .map_err(|e| PolicyError::Request(e.to_string()))
}

/// A request's principal as Cedar entities: authorization and admission build it alike.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The principal's uid.
    pub uid: EntityUid,
    /// The principal and its groups.
    pub entities: Vec<Entity>,
    /// Every group the principal is in (the principal itself is not included).
    pub principal_and_groups: Vec<EntityUid>,
}

impl Principal {
    /// `user` in `groups`: a `k8s::ServiceAccount` for `system:serviceaccount:<ns>:<name>`, a
    /// `k8s::Node` for `system:node:<name>` in `system:nodes`, else a `k8s::User`.
    pub fn of(user: &str, groups: &[String]) -> Result<Self, PolicyError> {
        let mut entities = Vec::with_capacity(groups.len() + 1);
        let mut parents = HashSet::new();
        let mut principal_and_groups = Vec::with_capacity(groups.len() + 1);
        for group in groups {
            let g = uid("k8s::Group", group)?;
            principal_and_groups.push(g.clone());
            entities.push(entity(
                g.clone(),
                vec![("name", string(group))],
                HashSet::new(),
                vec![],
            )?);
            parents.insert(g);
        }
        let service_account = user
            .strip_prefix("system:serviceaccount:")
            .and_then(|rest| rest.split_once(':'));
        let node = user
            .strip_prefix("system:node:")
            .filter(|_| groups.iter().any(|g| g == "system:nodes"));
        let (principal, attrs) = match (service_account, node) {
            (Some((namespace, name)), _) => (
                uid("k8s::ServiceAccount", user)?,
                vec![("name", string(name)), ("namespace", string(namespace))],
            ),
            (None, Some(name)) => (uid("k8s::Node", name)?, vec![("name", string(name))]),
            (None, None) => (uid("k8s::User", user)?, vec![("name", string(user))]),
        };
        entities.push(entity(principal.clone(), attrs, parents, vec![])?);
        Ok(Self {
            uid: principal,
            entities,
            principal_and_groups,
        })
    }
}

/// The request context every action declares: `authMethod`, `sourceIp` and, for
/// certificate users, `certFingerprint`.
pub fn context_pairs(
    auth_method: &str,
    cert_fingerprint: Option<&str>,
    source_ip: IpAddr,
) -> Vec<(String, RestrictedExpression)> {
    let mut context = vec![
        ("authMethod".to_owned(), string(auth_method)),
        ("sourceIp".to_owned(), ip_expression(source_ip)),
    ];
    if let Some(fp) = cert_fingerprint {
        context.push(("certFingerprint".to_owned(), string(fp)));
    }
    context
}

/// A request and the entities it refers to.
pub struct CedarRequest {
    /// The Cedar request.
    pub request: Request,
    /// The principal, its groups, and the resource.
    pub entities: Entities,
    /// The principal and every group it is in (what `principal in …` can name).
    pub principal_and_groups: Vec<EntityUid>,
    /// The action.
    pub action: EntityUid,
    /// The resource's entity type (`k8s::Resource` or `k8s::NonResourceURL`).
    pub resource_type: EntityTypeName,
}

impl AccessRequest<'_> {
    /// Builds the Cedar request and entities without checking them against the schema (their
    /// shape is fixed by this code, and [`Self::to_cedar_checked`] verifies it in tests); the
    /// check costs more than a decision with the default policies.
    pub fn to_cedar(&self) -> Result<CedarRequest, PolicyError> {
        self.build(None)
    }

    /// Like [`Self::to_cedar`], checked against the schema.
    pub fn to_cedar_checked(&self) -> Result<CedarRequest, PolicyError> {
        self.build(Some(schema::schema()?))
    }

    fn build(&self, schema: Option<&cedar_policy::Schema>) -> Result<CedarRequest, PolicyError> {
        let Principal {
            uid: principal,
            mut entities,
            mut principal_and_groups,
        } = Principal::of(self.user, self.groups)?;
        let resource = match &self.target {
            Target::Resource {
                api_group,
                resource,
                subresource,
                namespace,
                name,
                namespace_labels,
            } => {
                let id = format!(
                    "{api_group}/{resource}{}/{}/{}",
                    subresource.map(|s| format!("/{s}")).unwrap_or_default(),
                    namespace.unwrap_or_default(),
                    name.unwrap_or_default()
                );
                let r = uid("k8s::Resource", &id)?;
                let mut attrs = vec![
                    ("apiGroup", string(api_group)),
                    ("resource", string(resource)),
                ];
                for (key, value) in [
                    ("subresource", subresource),
                    ("namespace", namespace),
                    ("name", name),
                ] {
                    if let Some(v) = value {
                        attrs.push((key, string(v)));
                    }
                }
                let tags = namespace_labels
                    .iter()
                    .map(|(k, v)| (k.clone(), string(v)))
                    .collect();
                entities.push(entity(r.clone(), attrs, HashSet::new(), tags)?);
                r
            }
            Target::NonResource { path } => {
                let r = uid("k8s::NonResourceURL", path)?;
                entities.push(entity(
                    r.clone(),
                    vec![("path", string(path))],
                    HashSet::new(),
                    vec![],
                )?);
                r
            }
        };
        principal_and_groups.push(principal.clone());
        let action = uid("k8s::Action", self.verb)?;
        let context = Context::from_pairs(context_pairs(
            self.auth_method,
            self.cert_fingerprint,
            self.source_ip,
        ))
        .map_err(|e| PolicyError::Request(e.to_string()))?;
        let resource_type = resource.type_name().clone();
        let request = Request::new(principal, action.clone(), resource, context, schema)
            .map_err(|e| PolicyError::Request(e.to_string()))?;
        let entities = Entities::from_entities(entities, schema)
            .map_err(|e| PolicyError::Request(e.to_string()))?;
        Ok(CedarRequest {
            request,
            entities,
            principal_and_groups,
            action,
            resource_type,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shape of request this module builds conforms to the schema.
    #[test]
    fn built_entities_conform_to_the_schema() {
        let groups = vec!["dev".to_owned(), "system:nodes".to_owned()];
        let labels = vec![("env".to_owned(), "prod".to_owned())];
        let targets = [
            Target::Resource {
                api_group: "apps",
                resource: "deployments",
                subresource: Some("scale"),
                namespace: Some("a"),
                name: Some("web"),
                namespace_labels: &labels,
            },
            Target::Resource {
                api_group: "",
                resource: "namespaces",
                subresource: None,
                namespace: None,
                name: None,
                namespace_labels: &[],
            },
            Target::NonResource { path: "/version" },
        ];
        for user in ["alice", "system:serviceaccount:a:robot", "system:node:n1"] {
            for (target, verb) in targets.iter().zip(["patch", "list", "get"]) {
                let request = AccessRequest {
                    user,
                    groups: &groups,
                    auth_method: "x509",
                    cert_fingerprint: None,
                    source_ip: "::1".parse().unwrap(),
                    verb,
                    target: target.clone(),
                };
                if let Err(e) = request.to_cedar_checked() {
                    panic!("{user} {verb} {target:?}: {e}");
                }
            }
        }
    }
}
