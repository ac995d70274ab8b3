//! The Cedar admission stage: every write of a built-in kind is reviewed by the admission
//! policies in force (`CedarPolicy` objects of kind `Admission`, shipped with the Pod Security
//! Standards). It runs after defaulting and the built-in checks, so policies see the object as
//! it will be stored.
//!
//! - An enforced hit is a 403 naming each policy, what it was about (the object, the pod
//!   template, a container) and its `@reason`.
//! - A warn-mode hit is a `Warning` header, which kubectl prints.
//! - An audit-mode hit is recorded on the request's audit event
//!   (`admission.bulwark.dev/audit`) and logged on the `bulwark::admission` target.
//!
//! Status writes are reviewed with `context.subresource == "status"` (node restriction needs
//! them; pod security views are built only when the pod spec changes, which a status write never
//! does). Binding writes are not reviewed (the scheduler must always be able to bind), nor are
//! CedarPolicy objects (so no admission policy can lock policy management out; their own
//! acceptance checks apply).

use std::sync::Arc;

use bulwark_admission::{AdmissionEngine, AdmissionInput, Operation};
use bulwark_api::StatusReason;
use serde_json::Value;

use crate::admission::{AdmissionPlugin, AdmissionRequest};
use crate::authz::namespace_labels::NamespaceLabels;
use crate::http::error::ApiError;
use crate::http::request_info::Verb;
use crate::registry::Subresource;

/// Cedar admission policies as an admission plugin.
#[derive(Debug)]
pub struct CedarAdmission {
    engine: Arc<AdmissionEngine>,
    labels: Arc<NamespaceLabels>,
}

impl CedarAdmission {
    /// Reviews writes with `engine`; `labels` are the namespace labels policies see as tags.
    pub fn new(engine: Arc<AdmissionEngine>, labels: Arc<NamespaceLabels>) -> Self {
        Self { engine, labels }
    }
}

/// The labels of a namespace object itself.
fn own_labels(object: Option<&Value>) -> Vec<(String, String)> {
    object
        .and_then(|o| o.pointer("/metadata/labels"))
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

impl AdmissionPlugin for CedarAdmission {
    fn name(&self) -> &'static str {
        "CedarAdmission"
    }

    fn admit(&self, request: &AdmissionRequest<'_>) -> Result<Vec<String>, ApiError> {
        if request.subresource == Some(Subresource::Binding) {
            return Ok(Vec::new());
        }
        let operation = match request.verb {
            Verb::Create => Operation::Create,
            Verb::Update | Verb::Patch => Operation::Update,
            Verb::Delete => Operation::Delete,
            _ => return Ok(Vec::new()),
        };
        let def = request.def;
        let is_namespace = def.is("", "Namespace");
        let labels: Arc<[(String, String)]> = match request.namespace {
            _ if is_namespace => own_labels(request.object.or(request.old_object)).into(),
            Some(ns) => self.labels.get(ns),
            None => Arc::from([]),
        };
        let verdict = self.engine.review(&AdmissionInput {
            user: &request.user.name,
            groups: &request.user.groups,
            auth_method: request.user.method.as_str(),
            cert_fingerprint: request.user.cert_fingerprint.as_deref(),
            source_ip: request.source,
            operation,
            group: def.group(),
            kind: def.kind(),
            subresource: request.subresource.map(Subresource::name),
            namespace: request.namespace,
            name: request.name,
            object: request.object,
            old_object: request.old_object,
            namespace_labels: &labels,
            dry_run: request.dry_run,
        });
        for finding in &verdict.audited {
            crate::audit::record::note_admission(format!("admission policy {}", finding.message()));
            tracing::info!(
                target: "bulwark::admission",
                policy = %finding.policy,
                source = %finding.source,
                subjects = %finding.subjects.join(", "),
                user = %request.user.name,
                resource = def.plural(),
                namespace = request.namespace.unwrap_or_default(),
                name = request.name,
                "audit-mode admission policy hit"
            );
        }
        if !verdict.admitted() {
            crate::audit::record::note_admission_denied(
                verdict.denied.iter().map(|f| f.policy.clone()).collect(),
            );
            return Err(ApiError::new(
                StatusReason::Forbidden,
                format!(
                    "{} \"{}\" is forbidden: {}",
                    def.plural(),
                    request.name,
                    verdict.denial_message()
                ),
            ));
        }
        Ok(verdict.warning_messages())
    }
}
