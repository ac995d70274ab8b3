//! Audit events in the upstream `audit.k8s.io/v1` `Event` shape, so existing tooling reads
//! them. Bulwark adds annotations:
//!
//! - `authorization.k8s.io/decision` (`allow` | `forbid`) and `authorization.k8s.io/reason`,
//!   as upstream, with the deciding Cedar policy ids in `authorization.bulwark.dev/policies`;
//! - `admission.bulwark.dev/denied`, `…/warnings`, `…/audit` for admission policy hits.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How much of a request is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Level {
    /// Not recorded.
    None,
    /// Who, what, when, the outcome; no bodies.
    Metadata,
    /// Metadata and the request body.
    Request,
    /// Metadata, the request and the response body.
    RequestResponse,
}

/// Where in its life a request was when the event was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    /// As soon as the request arrives.
    RequestReceived,
    /// Headers sent, body still streaming (watches).
    ResponseStarted,
    /// The response is complete.
    ResponseComplete,
    /// The handler failed unexpectedly.
    Panic,
}

/// The requesting identity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// User name.
    pub username: String,
    /// Groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// What the request addressed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// Plural resource.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource: String,
    /// Namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Object name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// API group ("" for core).
    #[serde(default)]
    pub api_group: String,
    /// API version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// Subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subresource: Option<String>,
}

/// The response's status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseStatus {
    /// HTTP code.
    pub code: u16,
    /// `Success` or `Failure`, for errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The upstream reason (`Forbidden`, `NotFound`, …), for errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The message, for errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One audit event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Always `Event`.
    pub kind: Cow<'static, str>,
    /// Always `audit.k8s.io/v1`.
    pub api_version: Cow<'static, str>,
    /// The level it was recorded at.
    pub level: Level,
    /// Unique per request (shared by its stages).
    #[serde(rename = "auditID")]
    pub audit_id: String,
    /// The stage.
    pub stage: Stage,
    /// Path and query.
    #[serde(rename = "requestURI")]
    pub request_uri: String,
    /// The Kubernetes verb (or `get`/`post` for non-resource paths).
    pub verb: String,
    /// The authenticated identity.
    pub user: UserInfo,
    /// The identity acted as, when impersonating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impersonated_user: Option<UserInfo>,
    /// Client addresses.
    #[serde(rename = "sourceIPs", default)]
    pub source_ips: Vec<String>,
    /// The client's User-Agent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_agent: String,
    /// What was addressed (resource requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_ref: Option<ObjectRef>,
    /// The outcome (ResponseComplete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_status: Option<ResponseStatus>,
    /// The request body (level Request and up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_object: Option<Value>,
    /// The response body (level RequestResponse).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_object: Option<Value>,
    /// When the request arrived (RFC 3339, microseconds).
    pub request_received_timestamp: String,
    /// When this stage was reached.
    pub stage_timestamp: String,
    /// Decisions and other notes (keys are mostly constants: not allocated per event).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<Cow<'static, str>, String>,
}

/// Now as an RFC 3339 timestamp with microseconds (upstream's MicroTime), e.g.
/// `2026-11-21T05:12:25.123456Z`. Formatted by hand: it runs twice for every request, and
/// `format!` with padding cost more than the rest of the timestamp.
pub fn now_micro() -> String {
    micro_time(time::OffsetDateTime::now_utc())
}

/// `t` (UTC) as [`now_micro`] formats it.
fn micro_time(t: time::OffsetDateTime) -> String {
    fn digits(out: &mut String, value: u32, width: u32) {
        for place in (0..width).rev() {
            let digit = (value / 10u32.pow(place)) % 10;
            out.push(char::from(b'0' + digit as u8));
        }
    }
    let (year, month, day) = t.to_calendar_date();
    let (hour, minute, second, micros) = t.to_hms_micro();
    let mut out = String::with_capacity(27);
    digits(&mut out, u32::try_from(year).unwrap_or(0).min(9999), 4);
    out.push('-');
    digits(&mut out, u32::from(u8::from(month)), 2);
    out.push('-');
    digits(&mut out, u32::from(day), 2);
    out.push('T');
    digits(&mut out, u32::from(hour), 2);
    out.push(':');
    digits(&mut out, u32::from(minute), 2);
    out.push(':');
    digits(&mut out, u32::from(second), 2);
    out.push('.');
    digits(&mut out, micros, 6);
    out.push('Z');
    out
}

impl Event {
    /// An event with the fixed fields set and timestamps now.
    pub fn new(
        audit_id: String,
        stage: Stage,
        level: Level,
        verb: &str,
        request_uri: impl Into<String>,
        user: UserInfo,
    ) -> Self {
        let now = now_micro();
        Self {
            kind: Cow::Borrowed("Event"),
            api_version: Cow::Borrowed("audit.k8s.io/v1"),
            level,
            audit_id,
            stage,
            request_uri: request_uri.into(),
            verb: verb.to_owned(),
            user,
            impersonated_user: None,
            source_ips: Vec::new(),
            user_agent: String::new(),
            object_ref: None,
            response_status: None,
            request_object: None,
            response_object: None,
            request_received_timestamp: now.clone(),
            stage_timestamp: now,
            annotations: BTreeMap::new(),
        }
    }
}

/// The group of every component identity in component events.
pub const COMPONENTS_GROUP: &str = "system:bulwark:components";

impl Event {
    /// An event a component records about its own action, not an API request: a certificate
    /// renewed, a key rotated, a posture finding, the server starting. It reads like a
    /// request event, so the same queries find it: the user is `system:bulwark:<component>`,
    /// `verb` says what was done (`rotate`, `start`, `finding`, …), `object` what it was done
    /// to, and the outcome is a 200 or, with [`Event::failed`], a 500 with the reason. Details
    /// go in annotations ([`Event::note`]). Record it through an [`crate::AuditSink`].
    pub fn component(component: &str, verb: &str, object: ObjectRef) -> Self {
        let mut event = Self::new(
            uuid::Uuid::new_v4().to_string(),
            Stage::ResponseComplete,
            Level::Metadata,
            verb,
            format!("bulwark:{component}"),
            UserInfo {
                username: format!("system:bulwark:{component}"),
                groups: vec![COMPONENTS_GROUP.to_owned()],
            },
        );
        event.object_ref = Some(object);
        event.response_status = Some(ResponseStatus {
            code: 200,
            ..ResponseStatus::default()
        });
        event
    }

    /// Adds an annotation.
    #[must_use]
    pub fn note(mut self, key: &str, value: impl Into<String>) -> Self {
        self.annotations
            .insert(Cow::Owned(key.to_owned()), value.into());
        self
    }

    /// Marks the action as failed, with why.
    #[must_use]
    pub fn failed(mut self, message: impl Into<String>) -> Self {
        self.response_status = Some(ResponseStatus {
            code: 500,
            status: Some("Failure".into()),
            reason: Some("InternalError".into()),
            message: Some(message.into()),
        });
        self
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]
    use super::*;

    #[test]
    fn serializes_in_the_upstream_shape() {
        let mut e = Event::new(
            "id-1".into(),
            Stage::ResponseComplete,
            Level::Metadata,
            "get",
            "/api/v1/pods",
            UserInfo {
                username: "alice".into(),
                groups: vec!["dev".into()],
            },
        );
        e.object_ref = Some(ObjectRef {
            resource: "pods".into(),
            api_version: "v1".into(),
            ..ObjectRef::default()
        });
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["apiVersion"], "audit.k8s.io/v1");
        assert_eq!(v["auditID"], "id-1");
        assert_eq!(v["requestURI"], "/api/v1/pods");
        assert_eq!(v["stage"], "ResponseComplete");
        assert_eq!(v["objectRef"]["apiGroup"], "");
        assert!(v["stageTimestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(
            v["stageTimestamp"].as_str().unwrap().len(),
            "2026-11-21T05:12:25.123456Z".len()
        );
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn timestamps_are_rfc3339_with_microseconds() {
        let t = time::macros::datetime!(2026-01-02 03:04:05.000067 UTC);
        assert_eq!(micro_time(t), "2026-01-02T03:04:05.000067Z");
        let t = time::macros::datetime!(0999-12-31 23:59:59.999999 UTC);
        assert_eq!(micro_time(t), "0999-12-31T23:59:59.999999Z");
        let now = now_micro();
        assert_eq!(crate::index::parse_time(&now).map(|_| now.len()), Some(27));
    }

    #[test]
    fn component_events_read_like_requests() {
        let e = Event::component(
            "pki",
            "rotate",
            ObjectRef {
                resource: "certificates".into(),
                name: Some("apiserver-serving".into()),
                ..ObjectRef::default()
            },
        )
        .note("pki.bulwark.dev/not-after", "2026-12-01T00:00:00Z");
        assert_eq!(e.user.username, "system:bulwark:pki");
        assert_eq!(e.response_status.as_ref().unwrap().code, 200);
        assert_eq!(e.audit_id.len(), 36);
        assert_eq!(&e.audit_id[14..15], "4");
        assert_ne!(
            e.audit_id,
            Event::component("pki", "rotate", ObjectRef::default()).audit_id
        );
        let failed = e.failed("disk full");
        assert_eq!(failed.response_status.as_ref().unwrap().code, 500);
        let fields =
            crate::index::Fields::of_event_json(&serde_json::to_vec(&failed).unwrap()).unwrap();
        assert_eq!(
            (fields.verb.as_str(), fields.resource.as_str()),
            ("rotate", "certificates")
        );
    }
}
