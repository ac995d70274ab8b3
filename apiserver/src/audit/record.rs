//! Turns one request into audit events (DESIGN.md pipeline: "audit ResponseComplete with the
//! decision and the policies that determined it"). The pipeline fills a [`RequestAudit`] as it
//! goes; [`finish`] builds the event at the level the audit policy gives, with the
//! authorization decision, admission denials and warnings as annotations, and hands it to the
//! audit sink.
//!
//! - Watches are recorded at `ResponseStarted` (when the stream begins) and again at
//!   `ResponseComplete` (when it ends or the client goes away); everything else at
//!   `ResponseComplete`.
//! - Request bodies are kept only for requests at level Request and up, response bodies only
//!   at RequestResponse (never for watches); secrets and token requests are never above
//!   Metadata (the audit crate enforces it whatever the policy says).
//! - Failed authentications are always recorded, as `system:anonymous` with the reason.
//! - The authentication method and the namespace labels authorization saw are kept as
//!   annotations, so `bulwark policy replay` can decide the request again exactly.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use bulwark_audit::AuditSink;
use bulwark_audit::event::{Event, Level, ObjectRef, ResponseStatus, Stage, UserInfo};
use bulwark_audit::policy::{AuditPolicy, RequestAttributes, Stages};
use bytes::Bytes;

/// What handlers learn about a request that its audit event needs.
#[derive(Debug, Default)]
pub struct RequestNotes {
    /// Audit-mode admission policy hits.
    pub admission: Vec<String>,
    /// The name of the object a create made (not in the path; maybe generated).
    pub created_name: Option<String>,
    /// The ids of the admission policies that denied the write.
    pub denied_by: Vec<String>,
    /// The limit that refused the request, if one did.
    pub limit: Option<crate::http::limits::Limit>,
}

tokio::task_local! {
    /// Notes about the request being handled, for its audit event.
    pub static REQUEST_NOTES: Arc<std::sync::Mutex<RequestNotes>>;
}

fn with_notes(f: impl FnOnce(&mut RequestNotes)) {
    let _ = REQUEST_NOTES.try_with(|notes| {
        if let Ok(mut notes) = notes.lock() {
            f(&mut notes);
        }
    });
}

/// Records an audit-mode admission policy hit on the current request's audit event (a no-op
/// outside a request).
pub fn note_admission(note: String) {
    with_notes(|notes| notes.admission.push(note));
}

/// Records which admission policies denied the write
/// (`admission.bulwark.dev/policies`).
pub fn note_admission_denied(policies: Vec<String>) {
    with_notes(|notes| notes.denied_by = policies);
}

/// Records the name of the object being created (`objectRef.name`, as upstream).
pub fn note_created_name(name: &str) {
    with_notes(|notes| notes.created_name = Some(name.to_owned()));
}

/// Records that `limit` refused the current request (`limits.bulwark.dev/refused`; the
/// pipeline also counts it in `/metrics`).
pub fn note_limit(limit: crate::http::limits::Limit) {
    with_notes(|notes| notes.limit = Some(limit));
}

/// How much of a request target refused as too long its audit event keeps.
const KEPT_URI_BYTES: usize = 1024;

/// Largest response body kept in an event (bigger ones are noted, not recorded).
const MAX_RECORDED_BODY: usize = 3 * 1024 * 1024;

/// The audit sink and policy of a server.
pub struct Auditing {
    /// Where events go.
    pub sink: Arc<dyn AuditSink>,
    /// Which level each request gets.
    pub policy: AuditPolicy,
    /// Answers `audit.bulwark.dev/v1` queries (None when the sink is not a searchable log).
    pub reader: Option<Arc<bulwark_audit::AuditReader>>,
}

impl std::fmt::Debug for Auditing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditing").finish_non_exhaustive()
    }
}

/// What the pipeline learned about a request, for its audit event.
#[derive(Debug, Default)]
pub struct RequestAudit {
    /// The request's audit ID (the `Audit-Id` response header; shared by its stages).
    pub id: String,
    /// When the request arrived (RFC 3339, microseconds).
    pub received: String,
    /// The authenticated identity.
    pub user: Option<UserInfo>,
    /// The identity acted as, when impersonating.
    pub impersonated: Option<UserInfo>,
    /// Why authentication failed.
    pub auth_failure: Option<String>,
    /// The verb.
    pub verb: String,
    /// What a resource request addressed.
    pub object_ref: Option<ObjectRef>,
    /// (allowed, reason, determining policies).
    pub decision: Option<(bool, String, Vec<String>)>,
    /// How the user authenticated (`x509`, `serviceaccount-token`).
    pub auth_method: Option<&'static str>,
    /// The labels of the namespace addressed, as authorization saw them (for replays).
    pub namespace_labels: Vec<(String, String)>,
    /// Audit-mode admission policy hits.
    pub admission_audit: Vec<String>,
    /// The admission policies that denied the write.
    pub admission_denied_by: Vec<String>,
    /// The level (None until the policy was asked).
    pub level: Option<Level>,
    /// Stages the policy omits.
    pub omit: Stages,
    /// The request body, kept at level Request and up.
    pub request_body: Option<Bytes>,
    /// Whether this is a watch.
    pub watch: bool,
    /// The limit that refused the request, if one did.
    pub refused_by: Option<crate::http::limits::Limit>,
}

impl RequestAudit {
    /// Asks `policy` for this request's level (call once the user and what is asked are known).
    pub fn decide_level(&mut self, policy: &AuditPolicy, path: &str) {
        let nobody = UserInfo::default();
        let acting = self
            .impersonated
            .as_ref()
            .or(self.user.as_ref())
            .unwrap_or(&nobody);
        let resource = self.object_ref.as_ref().map(|r| {
            (
                r.api_group.as_str(),
                r.resource.as_str(),
                r.subresource.as_deref(),
                r.namespace.as_deref(),
                r.name.as_deref(),
            )
        });
        let (level, omit) = policy.level_for(&RequestAttributes {
            user: &acting.username,
            groups: &acting.groups,
            verb: &self.verb,
            resource,
            path,
        });
        self.level = Some(level);
        self.omit = omit;
    }

    /// Whether the request body should be kept.
    pub fn wants_request_body(&self) -> bool {
        self.level.is_some_and(|l| l >= Level::Request)
    }
}

fn json_body(bytes: &[u8]) -> Option<serde_json::Value> {
    serde_json::from_slice(bytes).ok()
}

/// An event with what every stage of a request carries: ID, stage, level, verb, URI, users,
/// what was addressed, user agent and client address.
fn request_event(
    audit: &mut RequestAudit,
    parts: &http::request::Parts,
    stage: Stage,
    level: Level,
    user: UserInfo,
) -> Event {
    let uri = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    let mut event = Event::new(
        std::mem::take(&mut audit.id),
        stage,
        level,
        &audit.verb,
        uri,
        user,
    );
    event.request_received_timestamp = std::mem::take(&mut audit.received);
    event.impersonated_user = audit.impersonated.take();
    event.object_ref = audit.object_ref.take();
    event.user_agent = parts
        .headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if let Some(conn) = parts.extensions.get::<crate::authn::ConnInfo>() {
        event.source_ips = vec![conn.peer.ip().to_string()];
    }
    event
}

/// Records the `RequestReceived` stage when the policy keeps it (the hardened default omits
/// it: `ResponseComplete` carries everything it would). As upstream, it is recorded once the
/// user and what is asked are known, before authorization, without a decision or bodies.
pub async fn request_received(
    auditing: &Auditing,
    audit: &RequestAudit,
    parts: &http::request::Parts,
) {
    let Some(level) = audit.level else {
        return;
    };
    let Some(user) = audit.user.clone() else {
        return;
    };
    if level == Level::None || audit.omit.contains(Stage::RequestReceived) {
        return;
    }
    let mut stage_view = RequestAudit {
        id: audit.id.clone(),
        received: audit.received.clone(),
        verb: audit.verb.clone(),
        impersonated: audit.impersonated.clone(),
        object_ref: audit.object_ref.clone(),
        ..RequestAudit::default()
    };
    let event = request_event(&mut stage_view, parts, Stage::RequestReceived, level, user);
    auditing.sink.record(event).await;
}

/// Builds and records the request's event; returns the response (rebuilt if its body was
/// read for the event).
pub async fn finish(
    auditing: &Auditing,
    mut audit: RequestAudit,
    parts: &http::request::Parts,
    response: Response,
    error: Option<&bulwark_api::Status>,
) -> Response {
    let level = match (&audit.user, audit.level) {
        (None, _) => auditing.policy.level_for_unauthenticated(),
        (Some(_), Some(level)) => level,
        // Authenticated but the policy was never asked (a malformed path): Metadata.
        (Some(_), None) => Level::Metadata,
    };
    if level == Level::None {
        return response;
    }
    // A watch is recorded when its stream starts and again when it ends.
    let streaming = audit.watch && response.status().is_success();
    let stage = if streaming {
        Stage::ResponseStarted
    } else {
        Stage::ResponseComplete
    };
    let record_now = !audit.omit.contains(stage);
    let record_end = streaming && !audit.omit.contains(Stage::ResponseComplete);
    if !record_now && !record_end {
        return response;
    }
    let user = audit.user.take().unwrap_or_else(|| UserInfo {
        username: "system:anonymous".into(),
        groups: vec!["system:unauthenticated".into()],
    });
    let mut event = request_event(&mut audit, parts, stage, level, user);
    let code = response.status().as_u16();
    event.response_status = Some(match error {
        Some(status) => ResponseStatus {
            code,
            status: Some(status.status.clone()),
            reason: Some(status.reason.clone()),
            message: Some(status.message.clone()),
        },
        None => ResponseStatus {
            code,
            ..ResponseStatus::default()
        },
    });
    if audit.refused_by == Some(crate::http::limits::Limit::UriBytes) {
        // The refused target is kept short: a flood of long ones must not fill the log.
        let full = event.request_uri.len();
        let mut cut = KEPT_URI_BYTES.min(full);
        while !event.request_uri.is_char_boundary(cut) {
            cut -= 1;
        }
        event.request_uri.truncate(cut);
        event.annotations.insert(
            "limits.bulwark.dev/request-uri-bytes".into(),
            full.to_string(),
        );
    }
    let notes = &mut event.annotations;
    if let Some(why) = audit.auth_failure.take() {
        notes.insert("authentication.bulwark.dev/failure".into(), why);
    }
    if let Some(method) = audit.auth_method {
        notes.insert("authentication.bulwark.dev/method".into(), method.into());
    }
    if !audit.namespace_labels.is_empty() {
        // A JSON object of the labels, serialized straight from the pairs.
        let labels: std::collections::BTreeMap<&str, &str> = audit
            .namespace_labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if let Ok(text) = serde_json::to_string(&labels) {
            notes.insert("authorization.bulwark.dev/namespace-labels".into(), text);
        }
    }
    if let Some((allowed, reason, policies)) = audit.decision.take() {
        notes.insert(
            "authorization.k8s.io/decision".into(),
            if allowed { "allow" } else { "forbid" }.into(),
        );
        notes.insert("authorization.k8s.io/reason".into(), reason);
        if !policies.is_empty() {
            notes.insert(
                "authorization.bulwark.dev/policies".into(),
                policies.join(","),
            );
        }
    }
    if let Some(status) = error
        && status.message.contains("denied by admission policy")
    {
        notes.insert(
            "admission.bulwark.dev/denied".into(),
            status.message.clone(),
        );
    }
    if let Some(limit) = audit.refused_by {
        notes.insert("limits.bulwark.dev/refused".into(), limit.as_str().into());
    }
    if !audit.admission_denied_by.is_empty() {
        notes.insert(
            "admission.bulwark.dev/policies".into(),
            audit.admission_denied_by.join(","),
        );
    }
    if !audit.admission_audit.is_empty() {
        notes.insert(
            "admission.bulwark.dev/audit".into(),
            audit.admission_audit.join("\n"),
        );
    }
    let warnings: Vec<&str> = response
        .headers()
        .get_all("warning")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if !warnings.is_empty() {
        notes.insert("bulwark.dev/warnings".into(), warnings.join("\n"));
    }
    if level >= Level::Request
        && let Some(body) = audit.request_body.take()
    {
        event.request_object = json_body(&body);
    }
    let response = if level == Level::RequestResponse && stage == Stage::ResponseComplete {
        // Only a body whose whole length is known and small is read (never a stream), so the
        // client always gets its response intact.
        let exact = axum::body::HttpBody::size_hint(response.body()).exact();
        match exact {
            Some(len) if len <= MAX_RECORDED_BODY as u64 => {
                let (head, body) = response.into_parts();
                let bytes = axum::body::to_bytes(body, MAX_RECORDED_BODY)
                    .await
                    .unwrap_or_default();
                event.response_object = json_body(&bytes);
                Response::from_parts(head, Body::from(bytes))
            }
            _ => {
                event.annotations.insert(
                    "bulwark.dev/response-not-recorded".into(),
                    "the response body is streamed or too large to record".into(),
                );
                response
            }
        }
    } else {
        response
    };
    let response = if record_end {
        let mut end = event.clone();
        end.stage = Stage::ResponseComplete;
        on_stream_end(response, Arc::clone(&auditing.sink), end)
    } else {
        response
    };
    if record_now {
        auditing.sink.record(event).await;
    }
    response
}

/// Records `event` (a watch's ResponseComplete) when the response body ends: the stream
/// finished, or the client went away.
fn on_stream_end(response: Response, sink: Arc<dyn AuditSink>, event: Event) -> Response {
    struct EndGuard {
        sink: Arc<dyn AuditSink>,
        event: Option<Event>,
    }
    impl Drop for EndGuard {
        fn drop(&mut self) {
            let Some(mut event) = self.event.take() else {
                return;
            };
            event.stage_timestamp = bulwark_audit::event::now_micro();
            let sink = Arc::clone(&self.sink);
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move { sink.record(event).await });
            } else {
                tracing::warn!(audit_id = %event.audit_id, "watch ended outside the runtime; its end is not recorded");
            }
        }
    }
    let guard = EndGuard {
        sink,
        event: Some(event),
    };
    let (head, body) = response.into_parts();
    let stream = futures::StreamExt::map(body.into_data_stream(), move |chunk| {
        let _keep = &guard;
        chunk
    });
    Response::from_parts(head, Body::from_stream(stream))
}
