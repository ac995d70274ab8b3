//! Handlers for collections: list (selectors, `limit`/`continue` pagination read at one
//! revision, `resourceVersion` semantics) and deletecollection.

use axum::response::Response;
use bulwark_api::{FieldSelector, LabelSelector, Status};
use bulwark_store::{ListOptions, Revision};
use http::StatusCode;
use serde_json::{Value, json};

use crate::codec::table::{self, IncludeObject};
use crate::http::error::{ApiError, from_store};
use crate::http::negotiate::Format;
use crate::http::request_info::ResourceRequest;
use crate::http::respond;
use crate::registry::ResourceDef;
use crate::registry::convert;
use crate::rest::list_stream::{self, ListParts};
use crate::rest::object::{self, meta_str};
use crate::rest::resource::{self, Ctx, DeleteOptions};
use crate::storage;

/// Parsed `labelSelector` and `fieldSelector` (400 when malformed or unsupported).
pub struct Selectors {
    /// Labels.
    pub labels: LabelSelector,
    /// Fields.
    pub fields: FieldSelector,
}

impl Selectors {
    /// Parses the selectors of a request for `def`.
    pub fn parse(
        def: &ResourceDef,
        query: &crate::http::negotiate::Query,
    ) -> Result<Self, ApiError> {
        let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or_default())
            .map_err(|e| ApiError::bad_request(format!("unable to parse labelSelector: {e}")))?;
        let fields = FieldSelector::parse(query.get("fieldSelector").unwrap_or_default())
            .map_err(|e| ApiError::bad_request(format!("unable to parse fieldSelector: {e}")))?;
        if let Some(bad) = fields.fields().find(|f| !def.supports_field(f)) {
            return Err(ApiError::bad_request(format!(
                "field label not supported: {bad} (for {})",
                def.plural()
            )));
        }
        Ok(Self { labels, fields })
    }

    /// The storage key a `metadata.name=…` term narrows a list in `ctx`'s scope to, if any.
    pub fn pinned_key(&self, ctx: &Ctx<'_>) -> Option<String> {
        let name = self.fields.required("metadata.name")?;
        storage::pinned_key(ctx.def(), ctx.namespace(), name)
    }

    /// Whether an object matches both selectors.
    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(object::labels(obj))
            && self.fields.matches(|f| object::field_value(obj, f))
    }
}

/// `resourceVersion`/`resourceVersionMatch` of a list: `Exact` reads at that revision; anything
/// else reads the latest state.
fn list_revision(query: &crate::http::negotiate::Query) -> Result<Option<Revision>, ApiError> {
    match (
        query.get("resourceVersion"),
        query.get("resourceVersionMatch"),
    ) {
        (Some(rv), Some("Exact")) if !rv.is_empty() && rv != "0" => {
            Ok(Some(resource::parse_rv(rv)?))
        }
        (_, Some("Exact")) => Err(ApiError::bad_request(
            "resourceVersionMatch=Exact requires a non-zero resourceVersion",
        )),
        (_, Some("NotOlderThan") | None | Some("")) => Ok(None),
        (_, Some(other)) => Err(ApiError::bad_request(format!(
            "unsupported resourceVersionMatch {other:?}"
        ))),
    }
}

/// A page of matching objects.
pub struct Page {
    /// Matching objects, in key order.
    pub items: Vec<Value>,
    /// The revision the list was read at.
    pub revision: u64,
    /// Token for the next page.
    pub continue_token: Option<String>,
}

/// Reads up to `limit` matching objects (0 = all), continuing from `token`.
pub async fn read_page(
    ctx: &Ctx<'_>,
    selectors: &Selectors,
    limit: usize,
    token: Option<String>,
    revision: Option<Revision>,
) -> Result<Page, ApiError> {
    let def = ctx.def();
    let pinned = selectors.pinned_key(ctx);
    let mut items = Vec::new();
    let end = read_pages(ctx, limit, token, revision, pinned, |kvs| {
        let runs = storage::in_runs(kvs, |run| {
            let mut kept = Vec::new();
            for kv in run {
                let obj = storage::decode(def, kv)?;
                if selectors.matches(&obj) {
                    kept.push(obj);
                }
            }
            Ok(kept)
        })?;
        let before = items.len();
        items.extend(runs.into_iter().flatten());
        Ok(items.len() - before)
    })
    .await?;
    Ok(Page {
        items,
        revision: end.revision,
        continue_token: end.continue_token,
    })
}

/// Where a read of a collection stopped: the revision it was read at and the token that
/// resumes it.
struct PageEnd {
    revision: u64,
    continue_token: Option<String>,
}

/// Reads up to `limit` objects that `take` keeps (0 = all), continuing from `token`; pages
/// through the store so that a selective filter still fills the page, and returns a token
/// that resumes exactly after the last object read. `take` is handed each store page and
/// answers how many of its objects it kept. A selection `pinned` to one key (see
/// [`Selectors::pinned_key`]) reads that key alone, at a revision as the list would.
async fn read_pages(
    ctx: &Ctx<'_>,
    limit: usize,
    mut token: Option<String>,
    revision: Option<Revision>,
    pinned: Option<String>,
    mut take: impl FnMut(&[bulwark_store::KeyValue]) -> Result<usize, ApiError>,
) -> Result<PageEnd, ApiError> {
    let def = ctx.def();
    // A continue token resumes a list of the collection, never a one-key read.
    let pinned = pinned.filter(|_| token.is_none());
    let prefix = storage::collection_prefix(def, ctx.namespace());
    let mut kept = 0usize;
    let mut revision = revision;
    loop {
        let want = if limit == 0 { 0 } else { limit - kept };
        let page = match &pinned {
            Some(key) => ctx.state.objects.list_one(key, revision).await,
            None => {
                let options = ListOptions {
                    revision,
                    limit: want,
                    continue_token: token.take(),
                    max_bytes: 0,
                };
                ctx.state.objects.list(&prefix, options).await
            }
        }
        .map_err(|e| from_store(e, def.group(), def.plural(), ""))?;
        revision = Some(page.revision);
        // A page holds at most `want` objects, so `kept` never passes `limit`.
        kept = kept.saturating_add(take(&page.items)?);
        match page.continue_token {
            Some(next) if limit == 0 || kept < limit => token = Some(next),
            next => {
                return Ok(PageEnd {
                    revision: page.revision.0,
                    continue_token: next,
                });
            }
        }
    }
}

fn list_kind(def: &ResourceDef) -> String {
    format!("{}List", def.kind())
}

/// GET a collection.
pub async fn list(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let selectors = Selectors::parse(ctx.def(), ctx.query)?;
    let limit = usize::try_from(ctx.query.uint("limit")?.unwrap_or(0)).unwrap_or(usize::MAX);
    let token = ctx
        .query
        .get("continue")
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    let revision = if token.is_some() {
        None
    } else {
        list_revision(ctx.query)?
    };
    // Fast path: plain JSON lists filtered by labels only are assembled from the stored bytes
    // without parsing below the top level (10,000 objects, no deep trees to build and drop).
    if ctx.format == Format::Json && selectors.fields.is_empty() && convert::is_identity(ctx.def())
    {
        // A whole collection is sent while it is read; a page of it (`limit`) is read whole
        // first, since its continue token comes before its items. Either way each store
        // page's items are encoded in runs on every core and sent without being copied into
        // one buffer.
        if limit == 0 && token.is_none() {
            return list_stream::stream_list(ctx, &selectors.labels, revision).await;
        }
        let mut pages = Vec::new();
        let end = read_pages(ctx, limit, token, revision, None, |kvs| {
            let items = storage::encode_items(kvs, &selectors.labels)?;
            let kept = items.kept;
            pages.push(items);
            Ok(kept)
        })
        .await?;
        let head = list_head(ctx.def(), end.revision, end.continue_token.as_deref());
        let mut list = ListParts::new(head);
        for items in pages {
            list.push(items);
        }
        return Ok(respond::json_parts(StatusCode::OK, list.finish()));
    }
    let page = read_page(ctx, &selectors, limit, token, revision).await?;
    let list_meta = list_meta(page.revision, page.continue_token.as_deref());
    let body = match ctx.format {
        Format::Table => table::table(
            ctx.def(),
            &page.items,
            list_meta,
            IncludeObject::parse(ctx.query.get("includeObject")),
        ),
        Format::Json => json!({
            "kind": list_kind(ctx.def()),
            "apiVersion": ctx.def().api_version(),
            "metadata": list_meta,
            "items": page.items,
        }),
    };
    Ok(respond::json(StatusCode::OK, &body, &[]))
}

fn list_meta(revision: u64, continue_token: Option<&str>) -> Value {
    let mut meta = json!({"resourceVersion": revision.to_string()});
    if let (Some(next), Some(m)) = (continue_token, meta.as_object_mut()) {
        m.insert("continue".into(), json!(next));
    }
    meta
}

/// A JSON list up to and including `"items":[`, for items encoded from stored bytes.
pub(crate) fn list_head(def: &ResourceDef, revision: u64, continue_token: Option<&str>) -> Vec<u8> {
    let head = json!({
        "kind": list_kind(def),
        "apiVersion": def.api_version(),
        "metadata": list_meta(revision, continue_token),
    });
    let mut head = serde_json::to_vec(&head).unwrap_or_default();
    // Reopen the object to append the items array.
    head.pop();
    head.extend_from_slice(b",\"items\":[");
    head
}

/// DELETE a collection: deletes every matching object (upstream's rules per object).
pub async fn delete_collection(ctx: &Ctx<'_>, body: Option<&Value>) -> Result<Response, ApiError> {
    let selectors = Selectors::parse(ctx.def(), ctx.query)?;
    let opts = DeleteOptions::parse(body, ctx.query)?;
    let page = read_page(ctx, &selectors, 0, None, None).await?;
    let mut deleted = 0usize;
    for obj in &page.items {
        let name = meta_str(obj, "name").unwrap_or_default().to_owned();
        let namespace = meta_str(obj, "namespace").map(str::to_owned);
        let req = ResourceRequest {
            def: ctx.shared_def(),
            namespace,
            name: Some(name),
            subresource: None,
            verb: crate::http::request_info::Verb::Delete,
        };
        let one = Ctx {
            state: ctx.state,
            resources: ctx.resources,
            req: &req,
            query: ctx.query,
            headers: ctx.headers,
            user: ctx.user,
            source: ctx.source,
            format: ctx.format,
        };
        match resource::delete_one(&one, &opts).await {
            Ok(_) => deleted += 1,
            // Deleted meanwhile by someone else: that is what was asked.
            Err(e) if e.code() == 404 => {}
            Err(e) => return Err(e),
        }
    }
    tracing::debug!(deleted, resource = ctx.def().plural(), "deletecollection");
    Ok(respond::json(
        StatusCode::OK,
        &serde_json::to_value(Status::success(None)).unwrap_or_default(),
        &[],
    ))
}
