//! `posture.bulwark.dev/v1`: the posture scanner through the API, authorized by Cedar (the
//! auditors group reads it by the default grants) and audited like every request.
//!
//! - `PostureReport` `cluster` (get, list): the latest scan — per framework score, coverage
//!   and counts by state and severity; per control its state and findings with evidence.
//!   `?framework=cis` restricts it.
//! - `PostureFinding` (list): every finding, filtered by `?control=`, `framework=`,
//!   `severity=` (that or above), `state=`, `namespace=` and `resource=` (`Kind/name`).
//! - `PostureExport` (get `<format>` or `<format>.<framework>`, e.g. `sarif.cis`): the latest
//!   report rendered as json, sarif, csv, html or oscal, with its Ed25519 signature.
//! - `PostureHistory` `cluster` (get): the score after each scan, `?since=`/`?until=`
//!   (RFC 3339) bounding it.
//! - `PostureScan` (create): runs a full scan now and answers with its summary.

use std::sync::Arc;

use axum::response::Response;
use bulwark_api::StatusReason;
use bulwark_posture::export::Format;
use bulwark_posture::{Framework, Severity, State};
use futures::future::BoxFuture;
use http::StatusCode;
use serde_json::{Value, json};

use super::Posture;
use crate::codec::request::RequestBody;
use crate::http::error::ApiError;
use crate::http::request_info::Verb;
use crate::http::respond;
use crate::rest::handler::{RestHandler, answer, ok};

fn list_of(kind: &str, items: Vec<Value>) -> Value {
    crate::rest::handler::list_of(API_VERSION, kind, items)
}
use crate::rest::resource::Ctx;

const API_VERSION: &str = bulwark_api::posture::API_VERSION;
const GROUP: &str = bulwark_api::posture::GROUP;
/// The one report's name.
const CLUSTER: &str = "cluster";

fn posture(ctx: &Ctx<'_>) -> Result<Arc<Posture>, ApiError> {
    ctx.state.posture.clone().ok_or_else(|| {
        ApiError::new(
            StatusReason::NotFound,
            "this server runs no posture scanner",
        )
    })
}

fn not_found(resource: &str, name: &str) -> ApiError {
    bulwark_api::Status::not_found(GROUP, resource, name).into()
}

fn bad(message: String) -> ApiError {
    ApiError::new(StatusReason::BadRequest, message)
}

fn framework(ctx: &Ctx<'_>) -> Result<Option<Framework>, ApiError> {
    match ctx.query.get("framework") {
        None | Some("all" | "") => Ok(None),
        Some(name) => Framework::parse(name).map(Some).ok_or_else(|| {
            bad(format!(
                "unknown framework {name:?}: cis, nsa, pss, mitre, soc2, nist, pci or all"
            ))
        }),
    }
}

/// The latest report, scanning first when there is none yet.
async fn latest(ctx: &Ctx<'_>, posture: &Posture) -> Arc<bulwark_posture::Report> {
    match posture.latest() {
        Some(r) => r,
        None => posture.scan(ctx.state).await,
    }
}

fn report_object(report: &bulwark_posture::Report) -> Value {
    serde_json::to_value(report).unwrap_or_default()
}

/// `posturereports`.
#[derive(Debug)]
pub struct ReportsApi;

impl RestHandler for ReportsApi {
    fn verbs(&self) -> &'static [&'static str] {
        &["get", "list"]
    }

    fn handle<'a>(
        &'a self,
        ctx: &'a Ctx<'a>,
        _body: &'a RequestBody,
    ) -> BoxFuture<'a, Result<Response, ApiError>> {
        Box::pin(async move {
            let posture = posture(ctx)?;
            let framework = framework(ctx)?;
            match (ctx.req.verb, ctx.req.name.as_deref()) {
                (Verb::Get, Some(CLUSTER)) => {
                    let report = latest(ctx, &posture).await.restrict(framework);
                    Ok(answer(ctx, &report_object(&report)))
                }
                (Verb::Get, name) => Err(not_found("posturereports", name.unwrap_or_default())),
                _ => {
                    let report = latest(ctx, &posture).await.restrict(framework);
                    Ok(answer(
                        ctx,
                        &list_of("PostureReport", vec![report_object(&report)]),
                    ))
                }
            }
        })
    }
}

/// `posturefindings`.
#[derive(Debug)]
pub struct FindingsApi;

impl RestHandler for FindingsApi {
    fn verbs(&self) -> &'static [&'static str] {
        &["list"]
    }

    fn handle<'a>(
        &'a self,
        ctx: &'a Ctx<'a>,
        _body: &'a RequestBody,
    ) -> BoxFuture<'a, Result<Response, ApiError>> {
        Box::pin(async move {
            let posture = posture(ctx)?;
            let report = latest(ctx, &posture).await.restrict(framework(ctx)?);
            let q = |name: &str| ctx.query.get(name).filter(|v| !v.is_empty());
            let severity = match q("severity") {
                None => None,
                Some(s) => Some(Severity::parse(s).ok_or_else(|| {
                    bad(format!(
                        "unknown severity {s:?}: low, medium, high or critical"
                    ))
                })?),
            };
            let state = match q("state") {
                None => None,
                Some(s) => Some(State::parse(s).ok_or_else(|| bad(format!("unknown state {s:?}: pass, fail, manual, not-applicable, not-evaluated or excepted")))?),
            };
            let namespace = ctx.req.namespace.as_deref().or(q("namespace"));
            let items: Vec<Value> = report
                .findings()
                .filter(|f| q("control").is_none_or(|c| f.control == c))
                .filter(|f| severity.is_none_or(|s| f.severity >= s))
                .filter(|f| state.is_none_or(|s| f.outcome.state == s))
                .filter(|f| {
                    namespace.is_none_or(|ns| f.object().is_some_and(|o| o.namespace == ns))
                })
                .filter(|f| {
                    q("resource").is_none_or(|r| {
                        f.object()
                            .is_some_and(|o| format!("{}/{}", o.kind, o.name) == r)
                    })
                })
                .map(|f| {
                    let mut v = serde_json::to_value(f).unwrap_or_default();
                    let name = bulwark_posture::export::finding_name(f);
                    if let Some(map) = v.as_object_mut() {
                        map.insert("apiVersion".into(), json!(API_VERSION));
                        map.insert("kind".into(), json!("PostureFinding"));
                        let mut meta = json!({"name": name, "creationTimestamp": f.time});
                        if let (Some(o), Some(m)) = (f.object(), meta.as_object_mut())
                            && !o.namespace.is_empty()
                        {
                            m.insert("namespace".into(), json!(o.namespace));
                        }
                        map.insert("metadata".into(), meta);
                    }
                    v
                })
                .collect();
            Ok(answer(ctx, &list_of("PostureFinding", items)))
        })
    }
}

/// `postureexports`.
#[derive(Debug)]
pub struct ExportsApi;

impl RestHandler for ExportsApi {
    fn verbs(&self) -> &'static [&'static str] {
        &["get"]
    }

    fn handle<'a>(
        &'a self,
        ctx: &'a Ctx<'a>,
        _body: &'a RequestBody,
    ) -> BoxFuture<'a, Result<Response, ApiError>> {
        Box::pin(async move {
            let posture = posture(ctx)?;
            let name = ctx.req.name.as_deref().unwrap_or_default();
            let (format_name, framework_name) = name.split_once('.').unwrap_or((name, "all"));
            let format =
                Format::parse(format_name).ok_or_else(|| not_found("postureexports", name))?;
            let framework = match framework_name {
                "all" => None,
                f => Some(Framework::parse(f).ok_or_else(|| not_found("postureexports", name))?),
            };
            let report = latest(ctx, &posture).await;
            let export = posture.export(&report, format, framework);
            let content = String::from_utf8_lossy(&export.content).into_owned();
            Ok(ok(&json!({
                "apiVersion": API_VERSION,
                "kind": "PostureExport",
                "metadata": {"name": name, "creationTimestamp": report.generated},
                "format": format.as_str(),
                "framework": framework.map_or("all", Framework::as_str),
                "mediaType": format.media_type(),
                "content": content,
                "signature": export.signature,
            })))
        })
    }
}

/// `posturehistories`.
#[derive(Debug)]
pub struct HistoryApi;

impl RestHandler for HistoryApi {
    fn verbs(&self) -> &'static [&'static str] {
        &["get"]
    }

    fn handle<'a>(
        &'a self,
        ctx: &'a Ctx<'a>,
        _body: &'a RequestBody,
    ) -> BoxFuture<'a, Result<Response, ApiError>> {
        Box::pin(async move {
            let posture = posture(ctx)?;
            if ctx.req.name.as_deref() != Some(CLUSTER) {
                return Err(not_found(
                    "posturehistories",
                    ctx.req.name.as_deref().unwrap_or_default(),
                ));
            }
            let parse = |name: &str| -> Result<Option<i64>, ApiError> {
                ctx.query
                    .get(name)
                    .filter(|v| !v.is_empty())
                    .map(|v| {
                        time::OffsetDateTime::parse(
                            v,
                            &time::format_description::well_known::Rfc3339,
                        )
                        .map(time::OffsetDateTime::unix_timestamp)
                        .map_err(|_| bad(format!("{name}={v:?} is not an RFC 3339 time")))
                    })
                    .transpose()
            };
            let (since, until) = (parse("since")?, parse("until")?);
            let at = |t: &str| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                    .map(time::OffsetDateTime::unix_timestamp)
                    .unwrap_or(0)
            };
            let points: Vec<_> = posture
                .trend()
                .into_iter()
                .filter(|p| {
                    since.is_none_or(|s| at(&p.time) >= s) && until.is_none_or(|u| at(&p.time) <= u)
                })
                .collect();
            Ok(answer(
                ctx,
                &json!({
                    "apiVersion": API_VERSION,
                    "kind": "PostureHistory",
                    "metadata": {"name": CLUSTER},
                    "points": points,
                }),
            ))
        })
    }
}

/// `posturescans`.
#[derive(Debug)]
pub struct ScansApi;

impl RestHandler for ScansApi {
    fn verbs(&self) -> &'static [&'static str] {
        &["create"]
    }

    fn handle<'a>(
        &'a self,
        ctx: &'a Ctx<'a>,
        _body: &'a RequestBody,
    ) -> BoxFuture<'a, Result<Response, ApiError>> {
        Box::pin(async move {
            let posture = posture(ctx)?;
            let report = posture.scan(ctx.state).await;
            Ok(respond::json(
                StatusCode::CREATED,
                &json!({
                    "apiVersion": API_VERSION,
                    "kind": "PostureScan",
                    "metadata": {"name": format!("scan-{}", posture.scans()), "creationTimestamp": report.generated},
                    "status": {"generated": report.generated, "summaries": report.summaries, "catalogueVersion": report.catalogue_version},
                }),
                &[],
            ))
        })
    }
}
