//! The request pipeline, in order (DESIGN.md "Request pipeline"):
//!
//! 1. authenticate (client certificate or bearer token; anonymous gets 401), refuse a request
//!    head over the limits (414, 431), then apply impersonation headers if the caller may
//!    impersonate,
//! 2. work out what is asked (non-resource path, discovery, or a resource request),
//! 3. authorize (403 with the reason),
//! 4. negotiate the response encoding, decode the request body ([`crate::codec`]: JSON, YAML
//!    or protobuf, so handlers see objects) and dispatch to the handler (typed decoding, the
//!    kind's strategy, admission, the field manager and the object storage happen there, per
//!    verb: [`crate::rest`]),
//! 5. record the audit event (see [`crate::audit::record`]),
//! 6. encode the response as negotiated (JSON or protobuf, watch streams included),
//! 7. log one line and record metrics.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bulwark_api::StatusReason;
use bulwark_policies::Target;
use http::{Method, Request, StatusCode};
use serde_json::json;

use crate::audit::record::RequestNotes;
use crate::authn::{self, ConnInfo};
use crate::authz::{self, RequestAttributes};
use crate::codec::request::{self, RequestBody};
use crate::codec::response::Wire;
use crate::discovery::{self, openapi};
use crate::http::error::ApiError;
use crate::http::negotiate::{self, Query};
use crate::http::request_info::{self, PathError, ResourceRequest, Verb};
use crate::http::respond;
use crate::registry::ResourceTable;
use crate::rest::resource::Ctx;
use crate::rest::{collection, resource, subresource, watch};
use crate::state::ApiState;

/// The Kubernetes version this server's API corresponds to (the k8s-openapi types it uses).
pub const KUBE_MINOR: &str = "33";

/// Handles one HTTP request end to end.
pub async fn handle(state: Arc<ApiState>, request: Request<Body>) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let mut log = LogFields::default();
    log.audit.received = bulwark_audit::event::now_micro();
    log.audit.id = uuid::Uuid::new_v4().to_string();
    let notes = Arc::new(std::sync::Mutex::new(RequestNotes::default()));
    let outcome = crate::audit::record::REQUEST_NOTES
        .scope(Arc::clone(&notes), run(&state, &parts, body, &mut log))
        .await;
    if let Ok(mut notes) = notes.lock() {
        log.audit.admission_audit = std::mem::take(&mut notes.admission);
        log.audit.admission_denied_by = std::mem::take(&mut notes.denied_by);
        log.audit.refused_by = notes.limit;
        if let (Some(name), Some(object)) = (notes.created_name.take(), &mut log.audit.object_ref)
            && object.name.is_none()
        {
            object.name = Some(name);
        }
    }
    if let Some(limit) = log.audit.refused_by {
        state.metrics.limit_refused(limit);
    }
    let (mut response, error) = match outcome {
        Ok(response) => (response, None),
        Err(err) => {
            let status = (*err.0).clone();
            (err.into_response(), Some(status))
        }
    };
    if let Ok(value) = http::HeaderValue::from_str(&log.audit.id) {
        response.headers_mut().insert("audit-id", value);
    }
    let watch = log.audit.watch;
    if let Some(auditing) = &state.auditing {
        let audit = std::mem::take(&mut log.audit);
        response =
            crate::audit::record::finish(auditing, audit, &parts, response, error.as_ref()).await;
    }
    // 6. Encode the response as negotiated (the audit event above records it as JSON).
    response = crate::codec::response::encode(log.wire, watch, response).await;
    let code = response.status().as_u16();
    let elapsed = started.elapsed();
    state
        .metrics
        .observe(&log.verb, &log.resource, code, elapsed.as_secs_f64());
    tracing::info!(
        target: "bulwark::request",
        user = %log.user,
        verb = %log.verb,
        resource = %log.resource,
        path = %parts.uri.path(),
        code,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    response
}

#[derive(Default)]
struct LogFields {
    /// The encoding the response goes out in.
    wire: Wire,
    user: String,
    verb: String,
    resource: String,
    audit: crate::audit::record::RequestAudit,
}

/// The verb of a request that failed authentication, for its audit event.
fn unauthenticated_verb(resources: &ResourceTable, parts: &http::request::Parts) -> String {
    let query = Query::parse(parts.uri.query());
    match request_info::parse(resources, &parts.method, parts.uri.path(), &query.0) {
        Ok(Some(r)) => r.verb.as_str().to_owned(),
        _ if parts.method == Method::GET || parts.method == Method::HEAD => "get".to_owned(),
        _ => "post".to_owned(),
    }
}

fn audit_user(user: &authn::UserInfo) -> bulwark_audit::UserInfo {
    bulwark_audit::UserInfo {
        username: user.name.clone(),
        groups: user.groups.clone(),
    }
}

fn not_found() -> ApiError {
    ApiError::new(
        StatusReason::NotFound,
        "the server could not find the requested resource",
    )
}

async fn run(
    state: &ApiState,
    parts: &http::request::Parts,
    body: Body,
    log: &mut LogFields,
) -> Result<Response, ApiError> {
    // The resources served, as of now: one snapshot for the whole request.
    let resources = state.registry.snapshot();
    // 1. Authenticate.
    let conn = parts
        .extensions
        .get::<ConnInfo>()
        .cloned()
        .ok_or_else(|| ApiError::internal("request without connection info"))?;
    let user = match authn::authenticate(&state.authenticators, parts, &conn) {
        Ok(user) => user,
        Err(why) => {
            tracing::debug!(peer = %conn.peer, %why, "authentication failed");
            log.audit.auth_failure = Some(why.to_string());
            log.audit.verb = unauthenticated_verb(&resources, parts);
            return Err(ApiError::new(StatusReason::Unauthorized, "Unauthorized"));
        }
    };
    log.audit.user = Some(audit_user(&user));
    if let Err(refused) = crate::http::limits::check_head(&state.limits.request, parts) {
        log.audit.verb = unauthenticated_verb(&resources, parts);
        return Err(refused);
    }
    if let Some(bound) = &user.bound_account
        && !service_account_exists(state, bound).await?
    {
        tracing::debug!(user = %user.name, "token for a deleted or replaced service account");
        return Err(ApiError::new(StatusReason::Unauthorized, "Unauthorized"));
    }
    let authenticated = (user.name.clone(), user.groups.clone());
    let user = crate::authn::impersonation::apply(
        state.authorizer.as_ref(),
        user,
        &parts.headers,
        conn.peer.ip(),
        &state.namespace_labels,
    )?;
    if (&user.name, &user.groups) != (&authenticated.0, &authenticated.1) {
        log.audit.impersonated = Some(audit_user(&user));
    }
    log.user.clone_from(&user.name);

    // 2. What is asked.
    let path = parts.uri.path();
    let query = Query::parse(parts.uri.query());
    let is_api_path = path == "/api"
        || path.starts_with("/api/")
        || path == "/apis"
        || path.starts_with("/apis/");
    let resource_request = if is_api_path {
        match request_info::parse(&resources, &parts.method, path, &query.0) {
            Ok(r) => r,
            Err(PathError::NotFound) => return Err(not_found()),
            Err(PathError::MethodNotAllowed) => {
                return Err(ApiError::new(
                    StatusReason::MethodNotAllowed,
                    format!(
                        "the server does not allow this method on the requested resource: {}",
                        parts.method
                    ),
                ));
            }
        }
    } else {
        None
    };

    // 3. Authorize.
    let verb_text = match &resource_request {
        Some(r) => r.verb.as_str(),
        None if parts.method == Method::GET || parts.method == Method::HEAD => "get",
        None => "post",
    };
    let namespace = resource_request.as_ref().and_then(|r| {
        authz::request_namespace(
            r.def.group(),
            r.def.plural(),
            r.namespace.as_deref(),
            r.name.as_deref(),
        )
    });
    let labels = namespace.map(|ns| state.namespace_labels.get(ns));
    let attributes = match &resource_request {
        Some(r) => RequestAttributes {
            verb: r.verb.as_str(),
            target: Target::Resource {
                api_group: r.def.group(),
                resource: r.def.plural(),
                subresource: r.subresource.map(|s| s.name()),
                namespace,
                name: r.name.as_deref(),
                namespace_labels: labels.as_deref().unwrap_or_default(),
            },
        },
        None => RequestAttributes::non_resource(verb_text, path),
    };
    log.verb = verb_text.to_owned();
    log.audit.verb = verb_text.to_owned();
    log.audit.watch = resource_request
        .as_ref()
        .is_some_and(|r| r.verb == Verb::Watch);
    log.audit.object_ref = resource_request.as_ref().map(|r| bulwark_audit::ObjectRef {
        resource: r.def.plural().to_owned(),
        namespace: r.namespace.clone(),
        name: r.name.clone(),
        api_group: r.def.group().to_owned(),
        api_version: r.def.version().to_owned(),
        subresource: r.subresource.map(|s| s.name().to_owned()),
    });
    if let Some(auditing) = &state.auditing {
        log.audit.decide_level(&auditing.policy, path);
        crate::audit::record::request_received(auditing, &log.audit, parts).await;
    }
    log.resource = match &resource_request {
        Some(r) => match r.subresource {
            Some(s) => format!("{}/{}", r.def.plural(), s.name()),
            None => r.def.plural().to_owned(),
        },
        None => String::new(),
    };
    let decision = state
        .authorizer
        .authorize(&user, &attributes, conn.peer.ip());
    if state.auditing.is_some() {
        log.audit.decision = Some((
            decision.allowed,
            decision.reason.clone(),
            decision.policies.clone(),
        ));
        log.audit.auth_method = Some(user.method.as_str());
        log.audit.namespace_labels = labels.as_deref().map(<[_]>::to_vec).unwrap_or_default();
    }
    if !decision.allowed {
        tracing::debug!(user = %user.name, policies = ?decision.policies, reason = %decision.reason, "denied");
        return Err(ApiError::new(
            StatusReason::Forbidden,
            authz::forbidden_message(&user, &attributes, &decision),
        ));
    }

    // 4. Dispatch (watches are long-lived and exempt from the in-flight limit).
    let permit = match &resource_request {
        Some(r) if r.verb == Verb::Watch => None,
        _ => Some(state.inflight.acquire()?),
    };
    let response = match resource_request {
        Some(req) => {
            let protobuf_ok =
                crate::codec::protobuf::supports(&req.def.api_version(), req.def.kind());
            let negotiated = negotiate::negotiate(&parts.headers, protobuf_ok)?;
            log.wire = negotiated.wire;
            let raw = if request::has_body(req.verb) {
                negotiate::read_body(&parts.headers, body, &state.limits.request).await?
            } else {
                bytes::Bytes::new()
            };
            // Request bodies are kept for the audit event only at level Request and up.
            let wants_body = log.audit.wants_request_body();
            if wants_body {
                log.audit.request_body = Some(raw.clone());
            }
            let body = request::decode(&parts.headers, req.verb, raw.clone())?;
            if wants_body {
                log.audit.request_body = Some(request::audit_bytes(&raw, &body, &parts.headers));
            }
            let ctx = Ctx {
                state,
                resources: &resources,
                req: &req,
                query: &query,
                headers: &parts.headers,
                user: &user,
                source: conn.peer.ip(),
                format: negotiated.format,
            };
            crate::authz::node_reads::check_request(&user, &req, query.get("fieldSelector"))?;
            crate::authz::node_reads::check_get(state, &user, &req).await?;
            dispatch_resource(&ctx, &req, &body).await
        }
        None => non_resource(state, &resources, &parts.method, path, &parts.headers),
    }?;
    Ok(crate::http::inflight::held_until_sent(response, permit))
}

/// Whether the service account a token is bound to still exists with the same uid.
async fn service_account_exists(
    state: &ApiState,
    bound: &crate::authn::sa_token::BoundAccount,
) -> Result<bool, ApiError> {
    let def = crate::registry::lookup(&bulwark_api::GroupVersionResource::new(
        "",
        "v1",
        "serviceaccounts",
    ))
    .ok_or_else(|| ApiError::internal("serviceaccounts are not registered"))?;
    let key = crate::storage::object_key(&def, Some(&bound.namespace), &bound.name);
    let Some(kv) = state.objects.get(&key).await.map_err(ApiError::internal)? else {
        return Ok(false);
    };
    let obj = crate::storage::decode(&def, &kv)?;
    Ok(crate::rest::object::meta_str(&obj, "uid") == Some(bound.uid.as_str()))
}

async fn dispatch_resource(
    ctx: &Ctx<'_>,
    req: &ResourceRequest,
    body: &RequestBody,
) -> Result<Response, ApiError> {
    use crate::registry::{Serving, Subresource};
    match req.def.serving() {
        Serving::Stored => {}
        Serving::Handler(handler) => return handler.handle(ctx, body).await,
    }
    match (req.verb, req.subresource) {
        (Verb::Get, _) => resource::get(ctx).await,
        (Verb::List, _) => collection::list(ctx).await,
        (Verb::Watch, _) => watch::watch(ctx).await,
        (Verb::Create, Some(Subresource::Binding)) => subresource::bind(ctx, body.object()?).await,
        (Verb::Create, Some(Subresource::Token)) => {
            subresource::token_request(ctx, body.object()?).await
        }
        (Verb::Create, _) => resource::create(ctx, body.object()?.clone()).await,
        (Verb::Update, _) => resource::update(ctx, body.object()?.clone()).await,
        (Verb::Patch, _) => resource::patch(ctx, body.patch()).await,
        (Verb::Delete, _) => resource::delete(ctx, body.optional_object()).await,
        (Verb::DeleteCollection, _) => {
            collection::delete_collection(ctx, body.optional_object()).await
        }
    }
}

fn text(code: StatusCode, body: &'static str) -> Response {
    (
        code,
        [(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

fn non_resource(
    state: &ApiState,
    resources: &ResourceTable,
    method: &Method,
    path: &str,
    headers: &http::HeaderMap,
) -> Result<Response, ApiError> {
    if method != Method::GET && method != Method::HEAD {
        return Err(ApiError::new(
            StatusReason::MethodNotAllowed,
            format!("the server does not allow this method on {path}"),
        ));
    }
    let ok = |v: serde_json::Value| Ok(respond::json(StatusCode::OK, &v, &[]));
    match path {
        "/version" => ok(json!({
            "major": "1", "minor": KUBE_MINOR,
            "gitVersion": format!("v1.{KUBE_MINOR}.0+bulwark-{}", env!("CARGO_PKG_VERSION")),
            "gitCommit": "", "gitTreeState": "clean", "buildDate": "",
            "goVersion": "", "compiler": "rustc", "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
        })),
        "/healthz" | "/livez" => Ok(text(StatusCode::OK, "ok")),
        "/readyz" => Ok(if state.ready.load(Ordering::Acquire) {
            text(StatusCode::OK, "ok")
        } else {
            text(StatusCode::SERVICE_UNAVAILABLE, "not ready: bootstrapping")
        }),
        "/metrics" => Ok((
            StatusCode::OK,
            [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            state.metrics.render(),
        )
            .into_response()),
        "/api" => ok(discovery::core_versions()),
        "/apis" => ok(discovery::groups(resources)),
        "/openapi/v2" => {
            let accept = headers
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if accept.contains("protobuf") {
                Ok((
                    StatusCode::OK,
                    [(
                        http::header::CONTENT_TYPE,
                        "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                    )],
                    openapi::v2_protobuf(resources),
                )
                    .into_response())
            } else {
                Ok((
                    StatusCode::OK,
                    [(http::header::CONTENT_TYPE, "application/json")],
                    openapi::v2_json(resources),
                )
                    .into_response())
            }
        }
        "/openapi/v3" => ok(openapi::v3_root(resources)),
        _ => {
            if let Some(gv) = path.strip_prefix("/openapi/v3/") {
                let doc = openapi::v3_group_version(resources, gv).ok_or_else(not_found)?;
                return Ok((
                    StatusCode::OK,
                    [(http::header::CONTENT_TYPE, "application/json")],
                    doc,
                )
                    .into_response());
            }
            let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
            let doc = match parts.as_slice() {
                ["api", version] => discovery::resources(resources, "", version),
                ["apis", group] => discovery::group(resources, group),
                ["apis", group, version] => discovery::resources(resources, group, version),
                _ => None,
            };
            doc.map_or_else(|| Err(not_found()), ok)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]
    use super::*;
    use crate::registry::{ResourceDef, ResourceTable, ServedResources, builtin};
    use bulwark_api::GroupVersionKind;
    use bulwark_store::{EmbeddedEngine, Store, StoreOptions};
    use serde_json::Value;

    async fn send(state: &Arc<ApiState>, method: Method, path: &str, body: &str) -> (u16, Value) {
        let (code, bytes) = send_raw(state, method, path, body).await;
        (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn send_raw(
        state: &Arc<ApiState>,
        method: Method,
        path: &str,
        body: &str,
    ) -> (u16, bytes::Bytes) {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        request.extensions_mut().insert(ConnInfo {
            peer: "127.0.0.1:1".parse().unwrap(),
            client_cert: Some(bulwark_pki::identity::CertIdentity {
                user: "admin".into(),
                groups: vec!["system:masters".into()],
                fingerprint: "00".into(),
            }),
        });
        let response = handle(Arc::clone(state), request).await;
        let code = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 64 << 20)
            .await
            .unwrap();
        (code, bytes)
    }

    /// A store on the embedded engine in a fresh directory (kept alive by the first value).
    async fn embedded_store() -> (tempfile::TempDir, Store<EmbeddedEngine>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            EmbeddedEngine::open(dir.path().join("db")).unwrap(),
            StoreOptions::default(),
        )
        .await
        .unwrap();
        (dir, store)
    }

    fn names(list: &Value) -> Vec<&str> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap())
            .collect()
    }

    /// A list of a whole collection larger than a store page is sent while it is read
    /// (`rest::list_stream`); it holds exactly what a list read in `limit` pages holds, in
    /// key order, with a label selector applied on every page, and parses as one list.
    #[tokio::test]
    async fn a_streamed_list_holds_what_a_paged_list_holds() {
        let (_dir, store) = embedded_store().await;
        let state = ApiState::builder(store, "system:masters").build();
        crate::bootstrap(&state).await.unwrap();
        let path = "/api/v1/namespaces/default/configmaps";
        let total = 2_345usize;
        for batch in (0..total).collect::<Vec<_>>().chunks(100) {
            let creates = batch.iter().map(|i| {
                let cm = json!({"metadata": {"name": format!("cm-{i:05}"),
                    "labels": {"odd": (i % 2).to_string()}}, "data": {"k": "v".repeat(300)}});
                let state = &state;
                async move { send(state, Method::POST, path, &cm.to_string()).await.0 }
            });
            for code in futures::future::join_all(creates).await {
                assert_eq!(code, 201);
            }
        }
        let (code, streamed) = send(&state, Method::GET, path, "").await;
        assert_eq!(code, 200);
        let expected: Vec<String> = (0..total).map(|i| format!("cm-{i:05}")).collect();
        assert_eq!(names(&streamed), expected);
        assert_eq!(streamed["kind"], "ConfigMapList");
        assert!(streamed["metadata"].get("continue").is_none());

        let mut paged = Vec::new();
        let mut next = String::new();
        loop {
            let (code, page) = send(
                &state,
                Method::GET,
                &format!("{path}?limit=700&continue={next}"),
                "",
            )
            .await;
            assert_eq!(code, 200);
            assert_eq!(
                page["metadata"]["resourceVersion"],
                streamed["metadata"]["resourceVersion"]
            );
            paged.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["metadata"]["continue"].as_str() {
                Some(token) => next = token.to_owned(),
                None => break,
            }
        }
        assert_eq!(&paged, streamed["items"].as_array().unwrap());

        let (code, odd) = send(
            &state,
            Method::GET,
            &format!("{path}?labelSelector=odd%3D1"),
            "",
        )
        .await;
        assert_eq!(code, 200);
        let expected: Vec<String> = (0..total)
            .filter(|i| i % 2 == 1)
            .map(|i| format!("cm-{i:05}"))
            .collect();
        assert_eq!(names(&odd), expected);
        let (code, none) = send(
            &state,
            Method::GET,
            &format!("{path}?labelSelector=odd%3D2"),
            "",
        )
        .await;
        assert_eq!((code, names(&none).len()), (200, 0));
    }

    /// A list or watch narrowed to one name reads that key alone: exactly that object (not
    /// the names it is a prefix of), at the current revision, with the other terms still
    /// applied; across namespaces, and for names that cannot be a key, the collection is read.
    #[tokio::test]
    async fn one_name_selections_answer_like_the_full_list() {
        let (_dir, store) = embedded_store().await;
        let state = ApiState::builder(store, "system:masters").build();
        crate::bootstrap(&state).await.unwrap();
        let path = "/api/v1/namespaces/default/configmaps";
        for name in ["a", "ab", "b"] {
            let cm = json!({"metadata": {"name": name, "labels": {"n": name}}, "data": {"k": "v"}});
            let (code, _) = send(&state, Method::POST, path, &cm.to_string()).await;
            assert_eq!(code, 201);
        }
        let (_, all) = send(&state, Method::GET, path, "").await;
        let (code, one) = send(
            &state,
            Method::GET,
            &format!("{path}?fieldSelector=metadata.name%3Da"),
            "",
        )
        .await;
        assert_eq!((code, names(&one)), (200, vec!["a"]));
        assert_eq!(
            one["metadata"]["resourceVersion"],
            all["metadata"]["resourceVersion"]
        );
        assert_eq!(
            one["items"][0], all["items"][0],
            "the same object as the full list"
        );
        for (query, want) in [
            ("metadata.name%3Da,metadata.namespace%3Dother", vec![]),
            ("metadata.name%3Da,metadata.namespace%3Ddefault", vec!["a"]),
            ("metadata.name%3Dzzz", vec![]),
            ("metadata.name%3Da%2Fb", vec![]),
            ("metadata.name%3Da%00", vec![]),
            ("metadata.name%3Da&labelSelector=n%3Db", vec![]),
        ] {
            let (code, list) = send(
                &state,
                Method::GET,
                &format!("{path}?fieldSelector={query}"),
                "",
            )
            .await;
            assert_eq!((code, names(&list)), (200, want), "{query}");
        }
        let (code, across) = send(
            &state,
            Method::GET,
            "/api/v1/configmaps?fieldSelector=metadata.name%3Dab",
            "",
        )
        .await;
        assert_eq!((code, names(&across)), (200, vec!["ab"]));

        let (code, stream) = send_raw(
            &state,
            Method::GET,
            &format!("{path}?watch=1&fieldSelector=metadata.name%3Da&timeoutSeconds=1"),
            "",
        )
        .await;
        let events: Vec<Value> = stream
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(code, 200);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["type"], "ADDED");
        assert_eq!(events[0]["object"]["metadata"]["name"], "a");
    }

    /// The request path reaches resources only through the state's registry: a kind this
    /// binary was not built with, served by an installed table, is discovered, created,
    /// read and listed like a built-in one, and disappears when the table is replaced.
    #[tokio::test]
    async fn handlers_serve_whatever_the_registry_serves() {
        let (_dir, store) = embedded_store().await;
        let served = Arc::new(ServedResources::builtin());
        let mut defs: Vec<_> = builtin().iter().cloned().collect();
        defs.push(Arc::new(ResourceDef::new_stored(
            GroupVersionKind::new("example.com", "v1", "Widget"),
            "widgets",
            true,
            Arc::new(crate::registry::strategy::Untyped),
        )));
        served.install(ResourceTable::new(defs).unwrap());
        let state = ApiState::builder(store, "system:masters")
            .registry(Arc::clone(&served) as Arc<dyn crate::registry::ResourceRegistry>)
            .build();
        crate::bootstrap(&state).await.unwrap();

        let (code, group) = send(&state, Method::GET, "/apis/example.com/v1", "").await;
        assert_eq!(code, 200);
        assert_eq!(group["resources"][0]["kind"], "Widget");
        let widget = r#"{"apiVersion": "example.com/v1", "kind": "Widget",
                         "metadata": {"name": "w"}, "spec": {"size": 3}}"#;
        let path = "/apis/example.com/v1/namespaces/default/widgets";
        let (code, created) = send(&state, Method::POST, path, widget).await;
        assert_eq!(code, 201, "{created}");
        assert_eq!(created["spec"]["size"], 3);
        let (code, got) = send(&state, Method::GET, &format!("{path}/w"), "").await;
        assert_eq!((code, &got["metadata"]["name"]), (200, &json!("w")));
        let (code, list) = send(&state, Method::GET, path, "").await;
        assert_eq!(
            (code, list["items"].as_array().map(Vec::len)),
            (200, Some(1))
        );

        served.install(ResourceTable::new(builtin().iter().cloned().collect()).unwrap());
        let (code, _) = send(&state, Method::GET, &format!("{path}/w"), "").await;
        assert_eq!(code, 404);
    }
}
