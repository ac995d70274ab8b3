//! Watch: a stream of `{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": …}` lines.
//!
//! Upstream semantics: without `resourceVersion` (or with "0") the stream starts with the
//! current objects as ADDED, then changes after that list; with a revision it replays every
//! change after it (410 Expired as an ERROR event if compacted away). Selectors apply to both
//! sides of a change, so an object leaving the selection is DELETED and one entering it is
//! ADDED. `timeoutSeconds` ends the stream; `allowWatchBookmarks` adds periodic BOOKMARKs.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use crate::event_cache::encode_line;
use axum::body::Body;
use axum::response::Response;
use bulwark_store::{Engine, Event, Revision, StoreError};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::collection::{self, Selectors};
use crate::convert;
use crate::error::{ApiError, from_store};
use crate::negotiate::Format;
use crate::object::meta_str;
use crate::registry::ResourceDef;
use crate::resource::{self, Ctx};
use crate::storage;
use crate::table::{self, IncludeObject};

/// Longest watch a client may ask for, and the default.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
/// How often a bookmark is sent when the client allows them.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(10);

struct Encoder {
    def: &'static ResourceDef,
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
                    self.def,
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
            &json!({"kind": self.def.kind, "apiVersion": self.def.api_version(), "metadata": {"resourceVersion": revision.to_string()}}),
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

/// GET with `watch=true`.
pub async fn watch<E: Engine>(ctx: &Ctx<'_, E>) -> Result<Response, ApiError> {
    let def = ctx.def();
    let selectors = Selectors::parse(def, ctx.query)?;
    let name = ctx.req.name.clone();
    let timeout = ctx
        .query
        .uint("timeoutSeconds")?
        .map_or(DEFAULT_TIMEOUT, |s| Duration::from_secs(s).min(MAX_TIMEOUT));
    let bookmarks = ctx.query.flag("allowWatchBookmarks");
    let encoder = Encoder {
        def,
        format: ctx.format,
        include: IncludeObject::parse(ctx.query.get("includeObject")),
    };
    let mut initial = Vec::new();
    let start = match ctx.query.get("resourceVersion") {
        None | Some("") | Some("0") => {
            let page = collection::read_page(ctx, &selectors, 0, None, None).await?;
            for obj in page.items.iter().filter(|o| {
                name.as_deref()
                    .is_none_or(|n| meta_str(o, "name") == Some(n))
            }) {
                initial.push(encoder.line("ADDED", obj));
            }
            Revision(page.revision)
        }
        Some(rv) => resource::parse_rv(rv)?,
    };
    let prefix = storage::collection_prefix(def, ctx.namespace());
    let watcher = ctx.state.store.watch(&prefix, start).await;
    let events = Arc::clone(&ctx.state.events);
    let stream = async_stream::stream! {
        for line in initial {
            yield Ok::<Bytes, Infallible>(line);
        }
        let mut watcher = match watcher {
            Ok(w) => w,
            Err(e) => {
                yield Ok(encoder.error(&from_store(e, def.group, def.plural, "")));
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
                            yield Ok(encoder.error(&from_store(e, def.group, def.plural, "")));
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
                    if convert::is_identity(def) {
                        let parts = (shared.current.as_ref(), shared.prev.as_ref(), shared.deleted.as_ref());
                        if let Some((kind, obj)) = translate(parts, &selectors, name.as_deref()) {
                            yield Ok(match encoder.format {
                                Format::Json => shared.json_line(kind, obj),
                                Format::Table => encoder.line(kind, obj),
                            });
                        }
                    } else {
                        // Served in another shape: convert, then select on the served fields.
                        let served = |v: &Option<Value>| v.clone().map(|o| convert::from_stored(def, o));
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
        .body(Body::from_stream(stream))
        .map_err(ApiError::internal)
}
