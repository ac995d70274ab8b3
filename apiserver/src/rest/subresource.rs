//! The scale, approval and binding subresources.
//!
//! - `scale` (deployments, replicasets, statefulsets): an `autoscaling/v1 Scale` view whose
//!   writes change only `spec.replicas`.
//! - `approval` (certificatesigningrequests): writes only `status.conditions`.
//! - `binding` (pods): assigns an unbound pod to a node, once.
//! - `token` (serviceaccounts): TokenRequest, a bound token for an existing account.

use axum::response::Response;
use bulwark_api::{Status, StatusCause};
use http::StatusCode;
use serde_json::{Value, json};

use crate::http::error::ApiError;
use crate::http::request_info::Verb;
use crate::http::respond;
use crate::rest::object::meta_str;
use crate::rest::resource::{Ctx, read_modify_write};

fn condition_types(conditions: &[Value]) -> Vec<&str> {
    conditions
        .iter()
        .filter_map(|c| c.get("type").and_then(Value::as_str))
        .collect()
}

/// Upstream's rules for changing a CSR's conditions: an `Approved` or `Denied` condition, once
/// there, stays (a denied request can never become approved, nor an approved one denied), and
/// no condition type appears twice.
fn check_approval_transition(ctx: &Ctx<'_>, old: &Value, new: &[Value]) -> Result<(), ApiError> {
    let old_conditions = old
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let before = condition_types(old_conditions);
    let after = condition_types(new);
    let mut causes = Vec::new();
    for kept in ["Approved", "Denied"] {
        if before.contains(&kept) && !after.contains(&kept) {
            causes.push(StatusCause::invalid(
                "status.conditions",
                format!("updates may not remove a condition of type {kept:?}"),
            ));
        }
    }
    for (i, ty) in after.iter().enumerate() {
        if after.iter().take(i).any(|earlier| earlier == ty) {
            causes.push(StatusCause::invalid(
                format!("status.conditions[{i}].type"),
                format!("Duplicate value: {ty:?}"),
            ));
        }
    }
    if causes.is_empty() {
        return Ok(());
    }
    Err(Status::invalid(
        "certificates.k8s.io",
        "CertificateSigningRequest",
        ctx.req.name.as_deref().unwrap_or_default(),
        causes,
    )
    .into())
}

/// Upstream's approval admission: approving or denying a CSR needs `approve` on its signer
/// (`certificates.k8s.io/signers`, named by the signer or by `<domain>/*`), besides update on
/// the approval subresource; otherwise anyone allowed to update approvals could approve a
/// request for any signer, including the cluster's client signer.
fn check_signer_approval(ctx: &Ctx<'_>, csr: &Value) -> Result<(), ApiError> {
    let signer = csr
        .pointer("/spec/signerName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let wildcard = signer
        .split_once('/')
        .map(|(domain, _)| format!("{domain}/*"));
    let names = std::iter::once(signer).chain(wildcard.as_deref());
    for name in names {
        let attributes = crate::authz::RequestAttributes {
            verb: "approve",
            target: bulwark_policies::Target::Resource {
                api_group: "certificates.k8s.io",
                resource: "signers",
                subresource: None,
                namespace: None,
                name: Some(name),
                namespace_labels: &[],
            },
        };
        if ctx
            .state
            .authorizer
            .authorize(ctx.user, &attributes, ctx.source)
            .allowed
        {
            return Ok(());
        }
    }
    Err(ApiError::new(
        bulwark_api::StatusReason::Forbidden,
        format!(
            "certificatesigningrequests.certificates.k8s.io \"{}\" is forbidden: user not permitted to approve requests with signerName \"{signer}\"",
            ctx.req.name.as_deref().unwrap_or_default()
        ),
    ))
}
/// The `Scale` view of a scalable object.
pub fn scale_of(obj: &Value) -> Value {
    let meta = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let selector = crate::rest::object::selector_string(obj.pointer("/spec/selector/matchLabels"));
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta.get("name"), "namespace": meta.get("namespace"), "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"), "creationTimestamp": meta.get("creationTimestamp"),
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0)},
        "status": {"replicas": obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0), "selector": selector},
    })
}

/// Writes `spec.replicas` from a new Scale computed by `change` from the current one.
pub async fn write_scale<F>(ctx: &Ctx<'_>, change: F) -> Result<Response, ApiError>
where
    F: Fn(&Value) -> Result<Value, ApiError>,
{
    let written = read_modify_write(ctx, Verb::Update, |old| {
        let scale = change(&scale_of(old))?;
        let replicas = match scale.pointer("/spec/replicas") {
            Some(Value::Number(n)) => n.as_i64().filter(|r| *r >= 0 && *r <= i64::from(i32::MAX)),
            None => Some(0),
            _ => None,
        };
        let Some(replicas) = replicas else {
            return Err(Status::invalid(
                "autoscaling",
                "Scale",
                meta_str(old, "name").unwrap_or_default(),
                vec![StatusCause::invalid(
                    "spec.replicas",
                    "must be a non-negative 32-bit integer",
                )],
            )
            .into());
        };
        let mut new = old.clone();
        // A Scale may carry the resourceVersion precondition.
        if let Some(rv) = meta_str(&scale, "resourceVersion").filter(|rv| !rv.is_empty())
            && let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut)
        {
            meta.insert("resourceVersion".into(), json!(rv));
        }
        if old.pointer("/spec/replicas").and_then(Value::as_i64) != Some(replicas) {
            if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("replicas".into(), json!(replicas));
            }
            if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
                crate::rest::object::bump_generation(meta);
            }
        }
        Ok((new, Vec::new()))
    })
    .await?;
    Ok(respond::json(
        StatusCode::OK,
        &scale_of(&written.object),
        &written.warnings,
    ))
}

/// Writes a CSR's approval conditions from `submitted`, nothing else.
pub async fn write_approval(ctx: &Ctx<'_>, submitted: &Value) -> Result<Response, ApiError> {
    let conditions = submitted
        .pointer("/status/conditions")
        .cloned()
        .unwrap_or_else(|| json!([]));
    let Some(list) = conditions.as_array() else {
        return Err(ApiError::bad_request("status.conditions must be a list"));
    };
    let mut causes = Vec::new();
    for (i, c) in list.iter().enumerate() {
        let ty = c.get("type").and_then(Value::as_str).unwrap_or_default();
        if !matches!(ty, "Approved" | "Denied" | "Failed") {
            causes.push(StatusCause::invalid(
                format!("status.conditions[{i}].type"),
                format!("Unsupported value: {ty:?}"),
            ));
        }
    }
    let approved = list
        .iter()
        .any(|c| c.get("type").and_then(Value::as_str) == Some("Approved"));
    let denied = list
        .iter()
        .any(|c| c.get("type").and_then(Value::as_str) == Some("Denied"));
    if approved && denied {
        causes.push(StatusCause::invalid(
            "status.conditions",
            "Approved and Denied conditions are mutually exclusive",
        ));
    }
    if !causes.is_empty() {
        return Err(Status::invalid(
            "certificates.k8s.io",
            "CertificateSigningRequest",
            ctx.req.name.as_deref().unwrap_or_default(),
            causes,
        )
        .into());
    }
    let rv = meta_str(submitted, "resourceVersion").map(str::to_owned);
    let written = read_modify_write(ctx, Verb::Update, |old| {
        check_approval_transition(ctx, old, list)?;
        check_signer_approval(ctx, old)?;
        let mut new = old.clone();
        if let Some(root) = new.as_object_mut() {
            let status = root.entry("status").or_insert_with(|| json!({}));
            if let Some(status) = status.as_object_mut() {
                status.insert("conditions".into(), conditions.clone());
            }
        }
        if let (Some(rv), Some(meta)) =
            (&rv, new.get_mut("metadata").and_then(Value::as_object_mut))
        {
            meta.insert("resourceVersion".into(), json!(rv));
        }
        Ok((new, Vec::new()))
    })
    .await?;
    Ok(respond::json(
        StatusCode::OK,
        &written.object,
        &written.warnings,
    ))
}

/// POST `pods/<name>/binding`: sets `spec.nodeName` of an unbound pod.
pub async fn bind(ctx: &Ctx<'_>, binding: &Value) -> Result<Response, ApiError> {
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let pod_name = ctx.req.name.clone().unwrap_or_default();
    if node.is_empty() {
        return Err(Status::invalid(
            "",
            "Binding",
            &pod_name,
            vec![StatusCause::required("target.name")],
        )
        .into());
    }
    if let Some(kind) = binding.pointer("/target/kind").and_then(Value::as_str)
        && !kind.is_empty()
        && kind != "Node"
    {
        return Err(Status::invalid(
            "",
            "Binding",
            &pod_name,
            vec![StatusCause::invalid("target.kind", "must be empty or Node")],
        )
        .into());
    }
    read_modify_write(ctx, Verb::Create, |old| {
        if old.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty()) {
            return Err(Status::conflict("", "pods", &pod_name, "pod is already assigned to a node").into());
        }
        if old.pointer("/metadata/deletionTimestamp").is_some() {
            return Err(Status::conflict("", "pods", &pod_name, "pod is being deleted, cannot be assigned to a node").into());
        }
        let mut new = old.clone();
        if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("nodeName".into(), json!(node));
        }
        if let Some(root) = new.as_object_mut() {
            let status = root.entry("status").or_insert_with(|| json!({}));
            if let Some(status) = status.as_object_mut() {
                let mut conditions: Vec<Value> = status.get("conditions").and_then(Value::as_array).cloned().unwrap_or_default();
                conditions.retain(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled"));
                conditions.push(json!({"type": "PodScheduled", "status": "True", "lastTransitionTime": crate::rest::object::now_rfc3339()}));
                status.insert("conditions".into(), json!(conditions));
            }
        }
        Ok((new, Vec::new()))
    })
    .await?;
    Ok(respond::json(
        StatusCode::CREATED,
        &serde_json::to_value(Status::success(None)).unwrap_or_default(),
        &[],
    ))
}

/// POST `serviceaccounts/<name>/token`: issues a bound token (TokenRequest).
pub async fn token_request(ctx: &Ctx<'_>, request: &Value) -> Result<Response, ApiError> {
    use crate::authn::sa_token::{DEFAULT_EXPIRATION, ISSUER, MAX_EXPIRATION, MIN_EXPIRATION};
    let name = ctx.req.name.clone().unwrap_or_default();
    let Some(keys) = &ctx.state.tokens else {
        return Err(ApiError::new(
            bulwark_api::StatusReason::ServiceUnavailable,
            "service-account token issuance is not configured",
        ));
    };
    let lifetime = match request.pointer("/spec/expirationSeconds") {
        None | Some(Value::Null) => DEFAULT_EXPIRATION,
        Some(v) => v
            .as_i64()
            .filter(|s| (MIN_EXPIRATION..=MAX_EXPIRATION).contains(s))
            .ok_or_else(|| {
                ApiError::from(Status::invalid(
                    "authentication.k8s.io",
                    "TokenRequest",
                    &name,
                    vec![StatusCause::invalid(
                        "spec.expirationSeconds",
                        format!("must be between {MIN_EXPIRATION} and {MAX_EXPIRATION} seconds"),
                    )],
                ))
            })?,
    };
    let audiences: Vec<String> = match request.pointer("/spec/audiences").and_then(Value::as_array)
    {
        Some(list) if !list.is_empty() => list
            .iter()
            .map(|a| a.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| ApiError::bad_request("spec.audiences must be a list of strings"))?,
        _ => vec![ISSUER.to_owned()],
    };
    if request
        .pointer("/spec/boundObjectRef")
        .is_some_and(|v| !v.is_null())
    {
        return Err(Status::invalid(
            "authentication.k8s.io",
            "TokenRequest",
            &name,
            vec![StatusCause::invalid(
                "spec.boundObjectRef",
                "binding tokens to objects is not supported yet; omit boundObjectRef",
            )],
        )
        .into());
    }
    let (_, account) = ctx.current().await?;
    let uid = meta_str(&account, "uid").unwrap_or_default().to_owned();
    let namespace = ctx.namespace().unwrap_or_default().to_owned();
    let (token, expires) = keys
        .issue(&namespace, &name, &uid, audiences.clone(), lifetime)
        .map_err(ApiError::internal)?;
    let expiration = time::OffsetDateTime::from_unix_timestamp(expires)
        .map(crate::rest::object::rfc3339)
        .unwrap_or_default();
    let body = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": crate::rest::object::now_rfc3339()},
        "spec": {"audiences": audiences, "expirationSeconds": lifetime, "boundObjectRef": null},
        "status": {"token": token, "expirationTimestamp": expiration},
    });
    Ok(respond::json(StatusCode::CREATED, &body, &[]))
}
