//! Resources served by code rather than from storage: the access reviews, the audit events
//! API, and (next) connect/proxy subresources and posture reports. Each is a [`RestHandler`]
//! named in its registry row, so a new one is a row and an implementation, never a new arm
//! in the dispatcher.

use axum::response::Response;
use futures::future::BoxFuture;

use crate::codec::request::RequestBody;
use crate::http::error::ApiError;
use crate::rest::resource::Ctx;

/// Serves every request to one non-stored resource.
pub trait RestHandler: std::fmt::Debug + Send + Sync {
    /// The verbs served: what discovery lists and what request parsing admits.
    fn verbs(&self) -> &'static [&'static str];

    /// Answers one (authenticated, authorized) request.
    fn handle<'a>(
        &'a self,
        ctx: &'a Ctx<'a>,
        body: &'a RequestBody,
    ) -> BoxFuture<'a, Result<Response, ApiError>>;
}
