//! The one mapping from failures to `metav1.Status` responses (DESIGN.md "Errors"): store
//! errors become their upstream codes; internal causes are logged once and never echoed.

use axum::response::{IntoResponse, Response};
use bulwark_api::{Status, StatusReason};
use bulwark_store::StoreError;
use http::StatusCode;

/// A failed request: the `Status` the client receives.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} {}", .0.code, .0.message)]
pub struct ApiError(pub Box<Status>);

impl ApiError {
    /// A failure with an upstream reason and message.
    pub fn new(reason: StatusReason, message: impl Into<String>) -> Self {
        Self(Box::new(Status::failure(reason, message)))
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusReason::BadRequest, message)
    }

    /// 500 with a generic message; `cause` goes to the log only.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(
            StatusReason::InternalError,
            "Internal error occurred: the server could not complete the request",
        )
    }

    /// The HTTP code.
    pub fn code(&self) -> u16 {
        self.0.code
    }
}

impl From<Status> for ApiError {
    fn from(status: Status) -> Self {
        Self(Box::new(status))
    }
}

/// Maps a store failure on `resource`/`name` to its upstream status.
pub fn from_store(err: StoreError, group: &str, resource: &str, name: &str) -> ApiError {
    match err {
        StoreError::AlreadyExists { .. } => Status::already_exists(group, resource, name).into(),
        StoreError::NotFound { .. } => Status::not_found(group, resource, name).into(),
        StoreError::Conflict { .. } => Status::conflict(
            group,
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
        .into(),
        StoreError::Compacted { requested, compacted } => ApiError::new(
            StatusReason::Expired,
            format!(
                "The resourceVersion for the provided list is too old: {requested} (compacted to {compacted})"
            ),
        ),
        StoreError::WatchExpired { position, .. } => ApiError::new(
            StatusReason::Expired,
            format!("too old resource version: {position}"),
        ),
        StoreError::InvalidContinue(why) => ApiError::new(
            StatusReason::BadRequest,
            format!("invalid continue token: {why}"),
        ),
        StoreError::FutureRevision { requested, current } => ApiError::new(
            StatusReason::Timeout,
            format!("Too large resource version: {requested}, current resource version: {current}"),
        ),
        StoreError::ValueTooLarge { size, limit } => ApiError::new(
            StatusReason::RequestEntityTooLarge,
            format!("object is too large: {size} bytes, limit is {limit}"),
        ),
        StoreError::InvalidKey(why) => ApiError::bad_request(format!("invalid object key: {why}")),
        StoreError::Engine { engine, message } if engine == crate::storage::UNWRITABLE => {
            tracing::error!(%message, "value not stored: encryption failed");
            ApiError::new(
                StatusReason::ServiceUnavailable,
                format!("the object was not stored: {message}"),
            )
        }
        StoreError::Closed => ApiError::new(
            StatusReason::ServiceUnavailable,
            "the server is shutting down",
        ),
        other => ApiError::internal(other),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.0.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut body = serde_json::to_vec(&*self.0).unwrap_or_default();
        body.push(b'\n');
        let mut response = (
            code,
            [(http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        if let Some(seconds) = self.0.details.as_ref().and_then(|d| d.retry_after_seconds)
            && let Ok(value) = http::HeaderValue::from_str(&seconds.to_string())
        {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, value);
        }
        response
    }
}
