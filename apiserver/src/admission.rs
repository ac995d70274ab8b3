//! Admission: may this object be written? Plugins run after authorization and decoding, in
//! order; any rejection stops the write. Built in: [`NamespaceLifecycle`] (objects go only
//! into namespaces that exist and are not terminating; the system namespaces cannot be
//! deleted). Cedar admission policies plug in as [`crate::admission::cedar::CedarAdmission`].

pub(crate) mod cedar;
pub(crate) mod gate;
pub(crate) mod policy;
pub(crate) mod rbac;

use bulwark_api::{Status, StatusReason};
use serde_json::Value;

use crate::authn::UserInfo;
use crate::http::error::ApiError;
use crate::http::request_info::Verb;
use crate::registry::ResourceDef;

/// Namespaces that may never be deleted.
pub const PROTECTED_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// What an admission plugin sees.
#[derive(Debug)]
pub struct AdmissionRequest<'a> {
    /// The resources served (what a policy grant can reach).
    pub resources: &'a crate::registry::ResourceTable,
    /// The resource written.
    pub def: &'a ResourceDef,
    /// create, update, patch or delete.
    pub verb: Verb,
    /// The user writing.
    pub user: &'a UserInfo,
    /// The user's address.
    pub source: std::net::IpAddr,
    /// The subresource written, if any (`status`, `scale` …).
    pub subresource: Option<crate::registry::Subresource>,
    /// The namespace from the path.
    pub namespace: Option<&'a str>,
    /// The namespace object, looked up for namespaced creates (None: it does not exist).
    pub namespace_object: Option<&'a Value>,
    /// The object name.
    pub name: &'a str,
    /// The object after the write (None for delete).
    pub object: Option<&'a Value>,
    /// The object before the write (update, patch, delete).
    pub old_object: Option<&'a Value>,
    /// Whether the write is a dry run.
    pub dry_run: bool,
}

/// One admission check. Returns warnings to send back, or the rejection.
pub trait AdmissionPlugin: Send + Sync {
    /// The plugin's name, for logs.
    fn name(&self) -> &'static str;
    /// Admits or rejects a write.
    fn admit(&self, request: &AdmissionRequest<'_>) -> Result<Vec<String>, ApiError>;
}

/// Upstream's NamespaceLifecycle plugin.
#[derive(Debug, Default)]
pub struct NamespaceLifecycle;

impl AdmissionPlugin for NamespaceLifecycle {
    fn name(&self) -> &'static str {
        "NamespaceLifecycle"
    }

    fn admit(&self, request: &AdmissionRequest<'_>) -> Result<Vec<String>, ApiError> {
        if request.def.is("", "Namespace") {
            if request.verb == Verb::Delete && PROTECTED_NAMESPACES.contains(&request.name) {
                return Err(ApiError::new(
                    StatusReason::Forbidden,
                    format!(
                        "namespaces \"{}\" is forbidden: this namespace may not be deleted",
                        request.name
                    ),
                ));
            }
            return Ok(Vec::new());
        }
        if !request.def.namespaced() || request.verb != Verb::Create {
            return Ok(Vec::new());
        }
        let ns = request.namespace.unwrap_or_default();
        let Some(namespace) = request.namespace_object else {
            return Err(Status::not_found("", "namespaces", ns).into());
        };
        let terminating = namespace.pointer("/status/phase").and_then(Value::as_str)
            == Some("Terminating")
            || namespace.pointer("/metadata/deletionTimestamp").is_some();
        if terminating {
            return Err(ApiError::new(
                StatusReason::Forbidden,
                format!(
                    "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    request.def.plural(),
                    request.name
                ),
            ));
        }
        Ok(Vec::new())
    }
}
