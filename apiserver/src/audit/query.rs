//! `GET /apis/audit.bulwark.dev/v1/[namespaces/{ns}/]events`: the read-only audit API.
//!
//! Authorized like any list (verb `list`, resource `events` of `audit.bulwark.dev`; the
//! default grants give it to `bulwark:auditors` and cluster admins); the namespaced path
//! answers only that namespace's events, so access can be granted per namespace. Query
//! parameters: `user` (authenticated or impersonated), `verb`, `resource` (`pods` or
//! `pods/exec`), `decision` (`allow` | `deny`), `since` and `until` (RFC 3339), `limit`
//! (default 500, at most 10,000) and `continue`. Items are the logged `audit.k8s.io/v1`
//! Events, oldest first; `metadata.remainingItemCount` counts the matches after the page.
//! `kubectl get events.audit.bulwark.dev` gets a Table.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use bulwark_api::StatusReason;
use bulwark_audit::index::{Decision, parse_time};
use bulwark_audit::query::{MAX_LIMIT, Page, Query};
use bulwark_audit::{AuditError, AuditReader};
use http::StatusCode;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::http::error::ApiError;
use crate::http::negotiate::Format;
use crate::rest::resource::Ctx;

/// Page size when the client gives none.
const DEFAULT_LIMIT: usize = 500;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListMeta {
    #[serde(rename = "continue", skip_serializing_if = "Option::is_none")]
    continue_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remaining_item_count: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventList {
    kind: &'static str,
    api_version: &'static str,
    metadata: ListMeta,
    items: Vec<Box<RawValue>>,
}

/// Reads the query from the request's parameters and path.
fn parse_query(ctx: &Ctx<'_>) -> Result<Query, ApiError> {
    let text = |key: &str| {
        ctx.query
            .get(key)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let time = |key: &str| -> Result<Option<i64>, ApiError> {
        text(key)
            .map(|v| {
                parse_time(&v).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "{key}: {v:?} is not an RFC 3339 time (like 2026-11-21T09:30:00Z)"
                    ))
                })
            })
            .transpose()
    };
    let decision = match text("decision").as_deref() {
        None => None,
        Some("allow") => Some(Decision::Allow),
        Some("deny") => Some(Decision::Deny),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "decision: {other:?} is neither \"allow\" nor \"deny\""
            )));
        }
    };
    let limit = match ctx.query.uint("limit")? {
        None | Some(0) => DEFAULT_LIMIT,
        Some(n) => usize::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT),
    };
    Ok(Query {
        user: text("user"),
        verb: text("verb"),
        resource: text("resource"),
        namespace: ctx.req.namespace.clone(),
        decision,
        since: time("since")?,
        until: time("until")?,
        limit,
        after: text("continue"),
    })
}

/// The audit events API's handler: list only, read from the audit log.
#[derive(Debug)]
pub struct AuditEvents;

impl crate::rest::handler::RestHandler for AuditEvents {
    fn verbs(&self) -> &'static [&'static str] {
        &["list"]
    }

    fn handle<'a>(
        &'a self,
        ctx: &'a Ctx<'a>,
        _body: &'a crate::codec::request::RequestBody,
    ) -> futures::future::BoxFuture<'a, Result<Response, ApiError>> {
        Box::pin(list(ctx))
    }
}

/// Lists audit events.
async fn list(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let reader: Arc<AuditReader> = ctx
        .state
        .auditing
        .as_ref()
        .and_then(|a| a.reader.clone())
        .ok_or_else(|| {
            ApiError::new(
                StatusReason::NotFound,
                "this server keeps no searchable audit log",
            )
        })?;
    let query = parse_query(ctx)?;
    let page = tokio::task::spawn_blocking(move || reader.query(&query))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| match e {
            AuditError::BadQuery(why) => ApiError::bad_request(why),
            other => ApiError::internal(other),
        })?;
    match ctx.format {
        Format::Table => Ok(crate::http::respond::json(
            StatusCode::OK,
            &table(&page),
            &[],
        )),
        Format::Json => {
            let remaining = page.remaining;
            let list = EventList {
                kind: "EventList",
                api_version: "audit.bulwark.dev/v1",
                metadata: ListMeta {
                    continue_token: page.next,
                    remaining_item_count: (remaining > 0).then_some(remaining),
                },
                items: page.events,
            };
            let mut body = serde_json::to_vec(&list).map_err(ApiError::internal)?;
            body.push(b'\n');
            Ok((
                StatusCode::OK,
                [(http::header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response())
        }
    }
}

/// The decision an event records, as the table shows it.
pub fn decision_of(event: &Value) -> &'static str {
    let annotations = event.get("annotations");
    match Decision::from_annotations(|k| annotations.and_then(|a| a.get(k)).and_then(Value::as_str))
    {
        Decision::Allow => "allow",
        Decision::Deny => "deny",
        Decision::None => "",
    }
}

/// One table row's cells: time, user, verb, resource, namespace, name, code, decision,
/// policies.
pub fn cells(event: &Value) -> Vec<Value> {
    let s = |p: &str| event.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let mut user = s("/user/username").to_owned();
    if let Some(as_user) = event
        .pointer("/impersonatedUser/username")
        .and_then(Value::as_str)
    {
        user = format!("{user} (as {as_user})");
    }
    let resource = match event
        .pointer("/objectRef/subresource")
        .and_then(Value::as_str)
    {
        Some(sub) => format!("{}/{sub}", s("/objectRef/resource")),
        None if event.get("objectRef").is_some() => s("/objectRef/resource").to_owned(),
        None => s("/requestURI").to_owned(),
    };
    vec![
        json!(s("/stageTimestamp")),
        json!(user),
        json!(s("/verb")),
        json!(resource),
        json!(s("/objectRef/namespace")),
        json!(s("/objectRef/name")),
        json!(
            event
                .pointer("/responseStatus/code")
                .and_then(Value::as_i64)
                .unwrap_or(0)
        ),
        json!(decision_of(event)),
        // The policies that decided: admission's when it denied the write.
        json!(match s("/annotations/admission.bulwark.dev~1policies") {
            "" => s("/annotations/authorization.bulwark.dev~1policies"),
            admission => admission,
        }),
    ]
}

/// The column names of [`cells`].
pub const COLUMNS: [&str; 9] = [
    "Time",
    "User",
    "Verb",
    "Resource",
    "Namespace",
    "Name",
    "Code",
    "Decision",
    "Policies",
];

fn table(page: &Page) -> Value {
    let columns: Vec<Value> = COLUMNS
        .iter()
        .map(|name| {
            let ty = if *name == "Code" { "integer" } else { "string" };
            let priority = i32::from(*name == "Policies");
            json!({"name": name, "type": ty, "format": "", "description": name, "priority": priority})
        })
        .collect();
    let rows: Vec<Value> = page
        .events
        .iter()
        .filter_map(|raw| serde_json::from_str::<Value>(raw.get()).ok())
        .map(|event| json!({"cells": cells(&event)}))
        .collect();
    let metadata = match &page.next {
        Some(next) => json!({"continue": next, "remainingItemCount": page.remaining}),
        None => json!({}),
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })
}
