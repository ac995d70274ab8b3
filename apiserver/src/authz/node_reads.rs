//! Node read restriction: a node may only read the pods bound to it. Authorization lets nodes
//! read pods (`bootstrap.nodes.read`), but Cedar sees neither a list's field selector nor the
//! object a GET returns, so this stage, after authorization, confines nodes as upstream's node
//! authorizer does:
//!
//! - a node's list or watch of pods must select `spec.nodeName=<its name>`;
//! - a node's GET of a pod bound elsewhere is a 403 (the stored pod is checked first).
//!
//! Secrets and configmaps are not readable by nodes at all until the node agent's object
//! graph exists (the bootstrap grants do not cover them).

use bulwark_api::{FieldSelector, StatusReason};
use serde_json::Value;

use crate::authn::UserInfo;
use crate::http::error::ApiError;
use crate::http::request_info::{ResourceRequest, Verb};

/// The node a user is, if it is one (`system:node:<name>` in `system:nodes`).
pub fn node_name(user: &UserInfo) -> Option<&str> {
    user.name
        .strip_prefix("system:node:")
        .filter(|_| user.groups.iter().any(|g| g == "system:nodes"))
}

fn is_pods(req: &ResourceRequest) -> bool {
    req.def.group().is_empty() && req.def.plural() == "pods" && req.subresource.is_none()
}

fn forbidden(node: &str, what: &str) -> ApiError {
    ApiError::new(
        StatusReason::Forbidden,
        format!(
            "pods is forbidden: node \"{node}\" {what} (a node may only read the pods bound to it)"
        ),
    )
}

/// Before the handler: a node's list or watch of pods must select its own pods.
pub fn check_request(
    user: &UserInfo,
    req: &ResourceRequest,
    field_selector: Option<&str>,
) -> Result<(), ApiError> {
    let Some(node) = node_name(user) else {
        return Ok(());
    };
    if !is_pods(req) || !matches!(req.verb, Verb::List | Verb::Watch) {
        return Ok(());
    }
    let selects_own = field_selector
        .and_then(|s| FieldSelector::parse(s).ok())
        .is_some_and(|s| {
            s.requirements
                .iter()
                .any(|r| r.field == "spec.nodeName" && r.equals && r.value == node)
        });
    if selects_own {
        Ok(())
    } else {
        Err(forbidden(
            node,
            &format!("may only list and watch pods with fieldSelector spec.nodeName={node}"),
        ))
    }
}

/// Before a node's GET of a pod: the stored pod must be bound to it (whatever format the
/// response would be in).
pub async fn check_get(
    state: &crate::state::ApiState,
    user: &UserInfo,
    req: &ResourceRequest,
) -> Result<(), ApiError> {
    let Some(node) = node_name(user) else {
        return Ok(());
    };
    if !is_pods(req) || req.verb != Verb::Get {
        return Ok(());
    }
    let (Some(namespace), Some(name)) = (req.namespace.as_deref(), req.name.as_deref()) else {
        return Ok(());
    };
    let key = crate::storage::object_key(&req.def, Some(namespace), name);
    let Some(kv) = state.objects.get(&key).await.map_err(ApiError::internal)? else {
        // Not found is answered by the handler (a 404 tells a node nothing it may not know).
        return Ok(());
    };
    let pod = crate::storage::decode(&req.def, &kv)?;
    if pod.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node) {
        Ok(())
    } else {
        Err(forbidden(node, "may not read a pod bound elsewhere"))
    }
}
