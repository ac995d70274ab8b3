//! `metav1.Status`: the error (and some success) body of every Kubernetes API response.
//!
//! Clients branch on `reason` and `code` (`kubectl` prints `message`, client-go's
//! `IsNotFound`/`IsConflict` read `reason`), so each [`StatusReason`] carries the exact upstream
//! string and HTTP code.

use serde::{Deserialize, Serialize};

/// Why a request failed, with the upstream `reason` string and HTTP code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusReason {
    /// 400: the request itself is malformed (bad JSON, bad selector, bad query parameter).
    BadRequest,
    /// 401: no valid credentials were presented.
    Unauthorized,
    /// 403: the authenticated user may not do this.
    Forbidden,
    /// 404: the object or the path does not exist.
    NotFound,
    /// 405: the resource does not support this verb.
    MethodNotAllowed,
    /// 406: no representation matches the `Accept` header.
    NotAcceptable,
    /// 409: the object already exists.
    AlreadyExists,
    /// 409: a precondition (resourceVersion, uid) did not hold.
    Conflict,
    /// 410: the requested resourceVersion or continue token was compacted away.
    Expired,
    /// 410: a watch's starting point was compacted away.
    Gone,
    /// 408: the client did not send its request body in time.
    RequestTimeout,
    /// 413: the body is larger than the server accepts.
    RequestEntityTooLarge,
    /// 414: the request target (path and query) is longer than the server accepts.
    UriTooLong,
    /// 415: the `Content-Type` is not one the endpoint accepts.
    UnsupportedMediaType,
    /// 422: the object fails validation; `details.causes` names the fields.
    Invalid,
    /// 429: the server is shedding load.
    TooManyRequests,
    /// 431: the request headers are larger than the server accepts.
    RequestHeaderFieldsTooLarge,
    /// 500: an internal failure; the cause is logged, never echoed.
    InternalError,
    /// 503: the server cannot serve the request right now (e.g. shutting down).
    ServiceUnavailable,
    /// 504: the server could not complete the request in time.
    Timeout,
}

impl StatusReason {
    /// The HTTP status code upstream uses for this reason.
    pub fn code(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::NotAcceptable => 406,
            Self::AlreadyExists | Self::Conflict => 409,
            Self::Expired | Self::Gone => 410,
            Self::RequestTimeout => 408,
            Self::RequestEntityTooLarge => 413,
            Self::UriTooLong => 414,
            Self::UnsupportedMediaType => 415,
            Self::Invalid => 422,
            Self::TooManyRequests => 429,
            Self::RequestHeaderFieldsTooLarge => 431,
            Self::InternalError => 500,
            Self::ServiceUnavailable => 503,
            Self::Timeout => 504,
        }
    }

    /// The `reason` string clients match on.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "BadRequest",
            Self::Unauthorized => "Unauthorized",
            Self::Forbidden => "Forbidden",
            Self::NotFound => "NotFound",
            Self::MethodNotAllowed => "MethodNotAllowed",
            Self::NotAcceptable => "NotAcceptable",
            Self::AlreadyExists => "AlreadyExists",
            Self::Conflict => "Conflict",
            Self::Expired => "Expired",
            Self::Gone => "Gone",
            Self::RequestTimeout => "Timeout",
            Self::RequestEntityTooLarge => "RequestEntityTooLarge",
            Self::UriTooLong => "RequestURITooLong",
            Self::UnsupportedMediaType => "UnsupportedMediaType",
            Self::Invalid => "Invalid",
            Self::TooManyRequests => "TooManyRequests",
            Self::RequestHeaderFieldsTooLarge => "RequestHeaderFieldsTooLarge",
            Self::InternalError => "InternalError",
            Self::ServiceUnavailable => "ServiceUnavailable",
            Self::Timeout => "Timeout",
        }
    }
}

/// One field-level cause of a failure (`details.causes[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCause {
    /// Machine-readable cause type, e.g. `FieldValueInvalid`, `FieldValueRequired`.
    #[serde(rename = "reason")]
    pub kind: String,
    /// Human-readable description.
    pub message: String,
    /// The JSON path of the offending field, e.g. `metadata.name`.
    pub field: String,
}

impl StatusCause {
    /// A cause for an invalid field value.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind: "FieldValueInvalid".into(),
            message: message.into(),
            field: field.into(),
        }
    }

    /// A cause for a missing required field.
    pub fn required(field: impl Into<String>) -> Self {
        Self {
            kind: "FieldValueRequired".into(),
            message: "Required value".into(),
            field: field.into(),
        }
    }

    /// A cause for a field the schema does not know (strict field validation).
    pub fn unknown_field(field: impl Into<String>) -> Self {
        let field = field.into();
        Self {
            kind: "FieldValueInvalid".into(),
            message: format!("unknown field \"{field}\""),
            field,
        }
    }
}

/// `details` of a [`Status`]: which object the failure is about, and field causes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusDetails {
    /// The object's name, when the failure concerns one object.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The API group of the object.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// The resource (plural) or kind of the object.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// The object's uid, when known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// Field-level causes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
    /// Seconds after which the client may retry (429, 503).
    #[serde(
        default,
        rename = "retryAfterSeconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_after_seconds: Option<u32>,
}

fn is_zero(code: &u16) -> bool {
    *code == 0
}

/// A `metav1.Status` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Always `Status`.
    pub kind: String,
    /// Always `v1`.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// Always empty; present because clients expect the field.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// `Failure` or `Success`.
    pub status: String,
    /// Human-readable explanation, printed by kubectl.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The upstream reason string.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Object and field details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
    /// The HTTP status code of a failure (a success `Status` has none, as upstream's).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub code: u16,
}

impl Status {
    /// A failure with `reason` and `message`.
    pub fn failure(reason: StatusReason, message: impl Into<String>) -> Self {
        Self {
            kind: "Status".into(),
            api_version: "v1".into(),
            metadata: serde_json::Map::new(),
            status: "Failure".into(),
            message: message.into(),
            reason: reason.as_str().into(),
            details: None,
            code: reason.code(),
        }
    }

    /// A `Success` status (e.g. the body of a collection delete).
    pub fn success(details: Option<StatusDetails>) -> Self {
        Self {
            kind: "Status".into(),
            api_version: "v1".into(),
            metadata: serde_json::Map::new(),
            status: "Success".into(),
            message: String::new(),
            reason: String::new(),
            details,
            code: 0,
        }
    }

    /// 404 for one object, in upstream's words: `configmaps "x" not found`.
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        Self::failure(
            StatusReason::NotFound,
            format!("{} \"{name}\" not found", qualified(group, resource)),
        )
        .with_details(group, resource, name)
    }

    /// 409 AlreadyExists for one object.
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        Self::failure(
            StatusReason::AlreadyExists,
            format!("{} \"{name}\" already exists", qualified(group, resource)),
        )
        .with_details(group, resource, name)
    }

    /// 409 Conflict for one object, with upstream's retry hint.
    pub fn conflict(group: &str, resource: &str, name: &str, why: &str) -> Self {
        Self::failure(
            StatusReason::Conflict,
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                qualified(group, resource)
            ),
        )
        .with_details(group, resource, name)
    }

    /// 422 Invalid with field causes, in upstream's message format.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<StatusCause>) -> Self {
        let summary = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect::<Vec<_>>();
        let summary = match summary.len() {
            0 => String::from("invalid object"),
            1 => summary.concat(),
            _ => format!("[{}]", summary.join(", ")),
        };
        let mut status = Self::failure(
            StatusReason::Invalid,
            format!("{kind} \"{name}\" is invalid: {summary}"),
        )
        .with_details(group, kind, name);
        if let Some(details) = status.details.as_mut() {
            details.causes = causes;
        }
        status
    }

    /// Sets `details` naming one object.
    pub fn with_details(mut self, group: &str, kind: &str, name: &str) -> Self {
        let details = self.details.get_or_insert_with(StatusDetails::default);
        details.group = group.into();
        details.kind = kind.into();
        details.name = name.into();
        self
    }
}

/// `resource.group` as upstream prints it (`deployments.apps`, or `configmaps` for core).
fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_matches_upstream_shape() {
        let s = Status::not_found("apps", "deployments", "web");
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["kind"], "Status");
        assert_eq!(v["status"], "Failure");
        assert_eq!(v["reason"], "NotFound");
        assert_eq!(v["code"], 404);
        assert_eq!(v["message"], "deployments.apps \"web\" not found");
        assert_eq!(v["details"]["name"], "web");
        assert_eq!(v["details"]["group"], "apps");
    }

    #[test]
    fn invalid_lists_causes() {
        let s = Status::invalid(
            "",
            "ConfigMap",
            "Bad_Name",
            vec![StatusCause::invalid("metadata.name", "must be lowercase")],
        );
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["code"], 422);
        assert_eq!(v["details"]["causes"][0]["field"], "metadata.name");
        assert_eq!(v["details"]["causes"][0]["reason"], "FieldValueInvalid");
        assert_eq!(
            v["message"],
            "ConfigMap \"Bad_Name\" is invalid: metadata.name: must be lowercase"
        );
    }
}
