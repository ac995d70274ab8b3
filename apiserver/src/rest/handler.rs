//! Resources served by code rather than from storage: the access reviews, the audit events
//! API, the encryption and posture APIs, and (next) connect/proxy subresources. Each is a [`RestHandler`]
//! named in its registry row, so a new one is a row and an implementation, never a new arm
//! in the dispatcher.

use axum::response::Response;
use futures::future::BoxFuture;
use http::StatusCode;
use serde_json::{Value, json};

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

/// A 200 with `body` as JSON.
pub(crate) fn ok(body: &Value) -> Response {
    crate::http::respond::json(StatusCode::OK, body, &[])
}

/// A `<kind>List` of `items` in `api_version`.
pub(crate) fn list_of(api_version: &str, kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": api_version, "kind": format!("{kind}List"), "metadata": {}, "items": items})
}

/// `body` (an object or a list) as the client asked: JSON, or a Table with the kind's
/// columns.
pub(crate) fn answer(ctx: &Ctx<'_>, body: &Value) -> Response {
    if ctx.format != crate::http::negotiate::Format::Table {
        return ok(body);
    }
    let items = match body.get("items").and_then(Value::as_array) {
        Some(items) => items.clone(),
        None => vec![body.clone()],
    };
    let include = crate::codec::table::IncludeObject::parse(ctx.query.get("includeObject"));
    ok(&crate::codec::table::table(
        ctx.def(),
        &items,
        json!({}),
        include,
    ))
}
