//! Watch: a stream of `{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": …}` lines.
//!
//! Upstream semantics: without `resourceVersion` (or with "0") the stream starts with the
//! current objects as ADDED, then changes after that list; with a revision it replays every
//! change after it (410 Expired as an ERROR event if compacted away). Selectors apply to both
//! sides of a change, so an object leaving the selection is DELETED and one entering it is
//! ADDED. `timeoutSeconds` ends the stream; `allowWatchBookmarks` adds periodic BOOKMARKs.
//!
//! Bounded work per watcher ([`crate::http::limits::WatchLimits`]): a watch takes one of the
//! server's watch slots (429 beyond the caps per user and in total); its initial state is
//! streamed from the list snapshot one byte-bounded store page at a time, as the client reads
//! it, never built in memory whole; and live events are taken from the store's shared ring
//! only as fast as the client reads them (a watcher that falls behind catches up from the
//! store's log, and one that stops reading is closed by the connection's write stall
//! timeout).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use crate::storage::event_cache::encode_line;
use axum::body::Body;
use axum::response::Response;
use bulwark_store::{Event, Revision, StoreError};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::codec::table::{self, IncludeObject};
use crate::http::error::{ApiError, from_store};
use crate::http::negotiate::Format;
use crate::registry::ResourceDef;
use crate::registry::convert;
use crate::rest::collection::Selectors;
use crate::rest::object::meta_str;
use crate::rest::resource::{self, Ctx};
use crate::storage;

/// Longest watch a client may ask for, and the default.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
/// How often a bookmark is sent when the client allows them.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(10);

struct Encoder {
    def: Arc<ResourceDef>,
    format: Format,
    include: IncludeObject,
}

impl Encoder {
    fn line(&self, kind: &str, obj: &Value) -> Bytes {
        let object = match self.format {
            Format::Json => obj.clone(),
            Format::Table if kind == "BOOKMARK" || kind == "ERROR" => obj.clone(),
            Format::Table => {
                let rv = obj
                    .pointer("/metadata/resourceVersion")
                    .cloned()
                    .unwrap_or(Value::Null);
                table::table(
                    &self.def,
                    std::slice::from_ref(obj),
                    json!({"resourceVersion": rv}),
                    self.include,
                )
            }
        };
        encode_line(kind, &object)
    }

    fn bookmark(&self, revision: Revision) -> Bytes {
        self.line(
            "BOOKMARK",
            &json!({"kind": self.def.kind(), "apiVersion": self.def.api_version(), "metadata": {"resourceVersion": revision.to_string()}}),
        )
    }

    fn error(&self, err: &ApiError) -> Bytes {
        self.line("ERROR", &serde_json::to_value(&*err.0).unwrap_or_default())
    }
}

/// Which watch event a store event is for this selection, and its object.
fn translate<'a>(
    (current, prev, deleted): (Option<&'a Value>, Option<&Value>, Option<&'a Value>),
    selectors: &Selectors,
    name: Option<&str>,
) -> Option<(&'static str, &'a Value)> {
    let wanted = |obj: &Value| {
        selectors.matches(obj) && name.is_none_or(|n| meta_str(obj, "name") == Some(n))
    };
    let prev_matched = prev.is_some_and(wanted);
    match (current, deleted) {
        (Some(current), _) => match (prev_matched, wanted(current)) {
            (true, true) => Some(("MODIFIED", current)),
            (false, true) => Some(("ADDED", current)),
            (true, false) => Some(("DELETED", current)),
            (false, false) => None,
        },
        (None, Some(deleted)) if prev_matched => Some(("DELETED", deleted)),
        _ => None,
    }
}

/// One byte-bounded page of the initial state (the first one at the latest revision).
async fn initial_page(
    store: &crate::storage::ObjectStorage,
    prefix: &str,
    continue_token: Option<String>,
    max_bytes: usize,
) -> Result<bulwark_store::ListPage, StoreError> {
    store
        .list(
            prefix,
            bulwark_store::ListOptions {
                continue_token,
                max_bytes,
                ..Default::default()
            },
        )
        .await
}

/// The ADDED line of one object of the initial state, if the watch selects it.
fn initial_line(
    encoder: &Encoder,
    kv: &bulwark_store::KeyValue,
    selectors: &Selectors,
    name: Option<&str>,
    raw: bool,
) -> Result<Option<Bytes>, ApiError> {
    if raw {
        let object = storage::decode_raw(kv, !selectors.labels.is_empty())?;
        if !selectors.labels.matches(object.labels()) {
            return Ok(None);
        }
        let mut line = Vec::with_capacity(object.bytes.len() + 32);
        line.extend_from_slice(br#"{"type":"ADDED","object":"#);
        line.extend_from_slice(&object.bytes);
        line.extend_from_slice(b"}\n");
        return Ok(Some(Bytes::from(line)));
    }
    let object = storage::decode(&encoder.def, kv)?;
    let wanted =
        selectors.matches(&object) && name.is_none_or(|n| meta_str(&object, "name") == Some(n));
    Ok(wanted.then(|| encoder.line("ADDED", &object)))
}

/// GET with `watch=true`.
pub async fn watch(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    // The stream outlives the request's borrow: it holds the definition itself.
    let shared = ctx.shared_def();
    let def = ctx.def();
    let selectors = Selectors::parse(def, ctx.query)?;
    let name = ctx.req.name.clone();
    let timeout = ctx
        .query
        .uint("timeoutSeconds")?
        .map_or(DEFAULT_TIMEOUT, |s| Duration::from_secs(s).min(MAX_TIMEOUT));
    let bookmarks = ctx.query.flag("allowWatchBookmarks");
    let encoder = Encoder {
        def: Arc::clone(&shared),
        format: ctx.format,
        include: IncludeObject::parse(ctx.query.get("includeObject")),
    };
    let slot = ctx.state.watch_slots.acquire(&ctx.user.name)?;
    let prefix = storage::collection_prefix(def, ctx.namespace());
    let store = ctx.state.objects.clone();
    let page_bytes = ctx.state.limits.watches.initial_page_bytes;
    // The first page of the initial state is read before the response starts, so that a
    // failure is a plain error response and the watch starts at the page's revision.
    // A watch of one object (by path or `metadata.name`) starts from that key alone.
    let pinned = name
        .as_deref()
        .or_else(|| selectors.fields.required("metadata.name"))
        .and_then(|n| storage::pinned_key(def, ctx.namespace(), n));
    let (start, mut initial) = match ctx.query.get("resourceVersion") {
        None | Some("") | Some("0") => {
            let page = match pinned {
                Some(key) => store.list_one(&key, None).await,
                None => initial_page(&store, &prefix, None, page_bytes).await,
            }
            .map_err(|e| from_store(e, def.group(), def.plural(), ""))?;
            (page.revision, Some(page))
        }
        Some(rv) => (resource::parse_rv(rv)?, None),
    };
    // Raw lines are assembled from the stored bytes when nothing needs the parsed object.
    let raw_initial = encoder.format == Format::Json
        && convert::is_identity(def)
        && selectors.fields.is_empty()
        && name.is_none();
    let watcher = store.watch(&prefix, start).await;
    let events = Arc::clone(&ctx.state.events);
    let def = shared;
    let stream = async_stream::stream! {
        let _slot = slot;
        // The initial state, one store page at a time, each line made as the client reads.
        while let Some(page) = initial.take() {
            for kv in page.items {
                match initial_line(&encoder, &kv, &selectors, name.as_deref(), raw_initial) {
                    Ok(Some(line)) => yield Ok::<Bytes, Infallible>(line),
                    Ok(None) => {}
                    Err(e) => {
                        yield Ok(encoder.error(&e));
                        return;
                    }
                }
            }
            if let Some(token) = page.continue_token {
                match initial_page(&store, &prefix, Some(token), page_bytes).await {
                    Ok(next) => initial = Some(next),
                    Err(e) => {
                        yield Ok(encoder.error(&from_store(e, def.group(), def.plural(), "")));
                        return;
                    }
                }
            }
        }
        let mut watcher = match watcher {
            Ok(w) => w,
            Err(e) => {
                yield Ok(encoder.error(&from_store(e, def.group(), def.plural(), "")));
                return;
            }
        };
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(BOOKMARK_INTERVAL);
        ticker.tick().await;
        loop {
            tokio::select! {
                next = watcher.next() => {
                    let event: Arc<Event> = match next {
                        Ok(e) => e,
                        Err(StoreError::Closed) => return,
                        Err(e) => {
                            yield Ok(encoder.error(&from_store(e, def.group(), def.plural(), "")));
                            return;
                        }
                    };
                    let shared = match events.get(&event) {
                        Ok(shared) => shared,
                        Err(e) => {
                            yield Ok(encoder.error(&e));
                            return;
                        }
                    };
                    if convert::is_identity(&def) {
                        let parts = (shared.current.as_ref(), shared.prev.as_ref(), shared.deleted.as_ref());
                        if let Some((kind, obj)) = translate(parts, &selectors, name.as_deref()) {
                            yield Ok(match encoder.format {
                                Format::Json => shared.json_line(kind, obj),
                                Format::Table => encoder.line(kind, obj),
                            });
                        }
                    } else {
                        // Served in another shape: convert, then select on the served fields.
                        let served = |v: &Option<Value>| v.clone().map(|o| convert::from_stored(&def, o));
                        let (current, prev, deleted) = (served(&shared.current), served(&shared.prev), served(&shared.deleted));
                        if let Some((kind, obj)) = translate((current.as_ref(), prev.as_ref(), deleted.as_ref()), &selectors, name.as_deref()) {
                            yield Ok(encoder.line(kind, obj));
                        }
                    }
                }
                _ = ticker.tick(), if bookmarks => {
                    yield Ok(encoder.bookmark(watcher.revision()));
                }
                () = &mut deadline => return,
            }
        }
    };
    Response::builder()
        .status(http::StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::CACHE_CONTROL, "no-cache, private")
        .extension(crate::http::connections::StreamDeadline(
            std::time::Instant::now() + timeout,
        ))
        .body(Body::from_stream(stream))
        .map_err(ApiError::internal)
}
