//! The access review APIs (`authorization.k8s.io/v1`): SelfSubjectAccessReview ("may I?"),
//! SubjectAccessReview and LocalSubjectAccessReview ("may they?") and SelfSubjectRulesReview
//! ("what may I do here?"), so `kubectl auth can-i` (and `--list`) work. Each review is
//! decided by the same authorizer that decides requests, and its `reason` names the
//! determining policy ids. Nothing is stored: the answer is the response.
//!
//! A rules review lists what is definitely allowed, found by asking the authorizer about
//! every served resource and the verbs discovery lists for it; grants whose conditions read
//! the object (its name or its namespace's labels) cannot be listed, so the result is then
//! marked `incomplete` and names them in `evaluationError`.

use std::collections::BTreeMap;

use axum::response::Response;
use bulwark_api::StatusCause;
use bulwark_api::status::Status;
use bulwark_policies::Target;
use http::StatusCode;
use serde_json::{Value, json};

use crate::admission::policy::NON_RESOURCE_PATHS;
use crate::authn::{AuthMethod, UserInfo};
use crate::authz::{Decision, RequestAttributes};
use crate::http::error::ApiError;
use crate::http::respond;
use crate::rest::resource::{Ctx, validate_fields};

fn string(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn invalid(kind: &str, field: &str, message: &str) -> ApiError {
    Status::invalid(
        "authorization.k8s.io",
        kind,
        "",
        vec![StatusCause::invalid(field, message)],
    )
    .into()
}

/// Decides `attributes` for `subject`, with the namespace's labels.
fn decide(
    ctx: &Ctx<'_>,
    subject: &UserInfo,
    spec: &Value,
    namespace_override: Option<&str>,
) -> Result<Decision, ApiError> {
    let kind = ctx.def().kind();
    if let Some(attrs) = spec.get("resourceAttributes") {
        let namespace = namespace_override
            .map(str::to_owned)
            .or_else(|| string(attrs, "/namespace"));
        let verb = string(attrs, "/verb").unwrap_or_else(|| "*".into());
        let group = string(attrs, "/group").unwrap_or_default();
        let resource = string(attrs, "/resource").unwrap_or_default();
        let subresource = string(attrs, "/subresource");
        let name = string(attrs, "/name");
        // As in the request pipeline.
        let namespace = crate::authz::request_namespace(
            &group,
            &resource,
            namespace.as_deref(),
            name.as_deref(),
        );
        let labels = namespace.map(|ns| ctx.state.namespace_labels.get(ns));
        let attributes = RequestAttributes {
            verb: &verb,
            target: Target::Resource {
                api_group: &group,
                resource: &resource,
                subresource: subresource.as_deref(),
                namespace,
                name: name.as_deref(),
                namespace_labels: labels.as_deref().unwrap_or_default(),
            },
        };
        Ok(ctx
            .state
            .authorizer
            .authorize(subject, &attributes, ctx.source))
    } else if let Some(attrs) = spec.get("nonResourceAttributes") {
        let path = string(attrs, "/path").unwrap_or_default();
        let verb = string(attrs, "/verb").unwrap_or_default();
        let attributes = RequestAttributes::non_resource(&verb, &path);
        Ok(ctx
            .state
            .authorizer
            .authorize(subject, &attributes, ctx.source))
    } else {
        Err(invalid(
            kind,
            "spec.resourceAttributes",
            "exactly one of resourceAttributes and nonResourceAttributes must be specified",
        ))
    }
}

/// The subject a SubjectAccessReview asks about.
fn subject_of(kind: &str, spec: &Value) -> Result<UserInfo, ApiError> {
    let name = string(spec, "/user").unwrap_or_default();
    let groups: Vec<String> = spec
        .get("groups")
        .and_then(Value::as_array)
        .map(|g| {
            g.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if name.is_empty() && groups.is_empty() {
        return Err(invalid(
            kind,
            "spec.user",
            "at least one of user or group must be specified",
        ));
    }
    Ok(UserInfo {
        name,
        groups,
        method: AuthMethod::X509,
        cert_fingerprint: None,
        bound_account: None,
    })
}

fn rules_review(ctx: &Ctx<'_>, spec: &Value) -> Value {
    let namespace = string(spec, "/namespace");
    // (group, verbs) → resources, so rules with the same verbs share a line.
    let mut rules: BTreeMap<(String, Vec<&str>), Vec<String>> = BTreeMap::new();
    for def in ctx.resources.iter().filter(|d| d.stored()) {
        let ns = if def.namespaced() {
            namespace.as_deref()
        } else {
            None
        };
        let labels = ns.map(|n| ctx.state.namespace_labels.get(n));
        let subs = std::iter::once(None).chain(def.subresources().iter().map(|s| Some(s.name())));
        for sub in subs {
            let verbs: Vec<&str> = crate::discovery::VERBS
                .iter()
                .copied()
                .filter(|verb| {
                    let attributes = RequestAttributes {
                        verb,
                        target: Target::Resource {
                            api_group: def.group(),
                            resource: def.plural(),
                            subresource: sub,
                            namespace: ns,
                            name: None,
                            namespace_labels: labels.as_deref().unwrap_or_default(),
                        },
                    };
                    ctx.state
                        .authorizer
                        .authorize(ctx.user, &attributes, ctx.source)
                        .allowed
                })
                .collect();
            if verbs.is_empty() {
                continue;
            }
            let resource = match sub {
                Some(s) => format!("{}/{s}", def.plural()),
                None => def.plural().to_owned(),
            };
            rules
                .entry((def.group().to_owned(), verbs))
                .or_default()
                .push(resource);
        }
    }
    let resource_rules: Vec<Value> = rules
        .into_iter()
        .map(|((group, verbs), resources)| {
            json!({"verbs": verbs, "apiGroups": [group], "resources": resources})
        })
        .collect();
    let mut paths_by_verb: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for path in NON_RESOURCE_PATHS {
        for verb in ["get", "post"] {
            let attributes = RequestAttributes::non_resource(verb, path);
            if ctx
                .state
                .authorizer
                .authorize(ctx.user, &attributes, ctx.source)
                .allowed
            {
                paths_by_verb.entry(verb).or_default().push(path);
            }
        }
    }
    let non_resource_rules: Vec<Value> = paths_by_verb
        .into_iter()
        .map(|(verb, paths)| json!({"verbs": [verb], "nonResourceURLs": paths}))
        .collect();
    let conditional = ctx.state.authorizer.object_dependent_policies(ctx.user);
    let mut status = json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": !conditional.is_empty(),
    });
    if !conditional.is_empty()
        && let Some(map) = status.as_object_mut()
    {
        map.insert(
            "evaluationError".into(),
            json!(format!(
                "rules depending on the object's name or its namespace's labels are not listed (policies: {})",
                conditional.join(", ")
            )),
        );
    }
    status
}

/// The access review kinds' handler: create only, answered and never stored.
#[derive(Debug)]
pub struct Reviews;

impl crate::rest::handler::RestHandler for Reviews {
    fn verbs(&self) -> &'static [&'static str] {
        &["create"]
    }

    fn handle<'a>(
        &'a self,
        ctx: &'a Ctx<'a>,
        body: &'a crate::codec::request::RequestBody,
    ) -> futures::future::BoxFuture<'a, Result<Response, ApiError>> {
        Box::pin(async move { create(ctx, body.object()?).await })
    }
}

/// POST of an access review: decide and answer, storing nothing.
async fn create(ctx: &Ctx<'_>, body: &Value) -> Result<Response, ApiError> {
    let kind = ctx.def().kind();
    let mut review = body.clone();
    crate::rest::object::check_kind(ctx.def(), &mut review)?;
    let (mut review, warnings) =
        validate_fields(ctx.def(), &review, ctx.query.field_validation()?)?;
    let spec = review.get("spec").cloned().unwrap_or_else(|| json!({}));
    let status = match kind {
        "SelfSubjectRulesReview" => {
            if string(&spec, "/namespace").is_none() {
                return Err(invalid(kind, "spec.namespace", "Required value"));
            }
            rules_review(ctx, &spec)
        }
        _ => {
            let (subject, namespace) = match kind {
                "SelfSubjectAccessReview" => (ctx.user.clone(), None),
                "LocalSubjectAccessReview" => {
                    let ns = ctx.namespace().unwrap_or_default();
                    let asked = spec
                        .pointer("/resourceAttributes/namespace")
                        .and_then(Value::as_str)
                        .unwrap_or(ns);
                    if asked != ns {
                        return Err(invalid(
                            kind,
                            "spec.resourceAttributes.namespace",
                            "must match the namespace of the request",
                        ));
                    }
                    if spec.get("nonResourceAttributes").is_some() {
                        return Err(invalid(
                            kind,
                            "spec.nonResourceAttributes",
                            "disallowed on a local review",
                        ));
                    }
                    (subject_of(kind, &spec)?, Some(ns.to_owned()))
                }
                _ => (subject_of(kind, &spec)?, None),
            };
            let decision = decide(ctx, &subject, &spec, namespace.as_deref())?;
            json!({
                "allowed": decision.allowed,
                "denied": decision.denied,
                "reason": decision.explanation(),
            })
        }
    };
    if let Some(map) = review.as_object_mut() {
        map.insert("status".into(), status);
        map.entry("metadata").or_insert_with(|| json!({}));
    }
    Ok(respond::json(StatusCode::CREATED, &review, &warnings))
}
