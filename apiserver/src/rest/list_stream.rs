//! A JSON list of a whole collection sent while it is read. A list of 10,000 objects was read
//! from the store, encoded, and only then written out and encrypted, one stage after the
//! other on a 2-core machine, holding the whole list (twice) in memory meanwhile. Here the
//! store is read a page at a time by a task of its own that encodes each page and hands it to
//! the connection through a short queue: reading, encoding and TLS overlap, and a list holds
//! a few pages in memory at any time, whatever its length (upstream streams its JSON lists
//! for the same reason).
//!
//! The first page is read before the response starts, so that what fails up front (a
//! revision too old, a store that is down) is a `Status` as for any list. What fails after
//! that (the store failing mid-way) cannot change the response code that was sent: the
//! response is cut off (HTTP/2 resets the stream), so the client sees a broken list, never a
//! short one that parses.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bulwark_api::LabelSelector;
use bulwark_store::{ListOptions, ListPage, Revision};
use bytes::Bytes;
use futures::StreamExt;
use http::StatusCode;
use tokio::sync::mpsc;

use crate::http::error::{ApiError, from_store};
use crate::rest::resource::Ctx;
use crate::storage::{self, EncodedItems, ObjectStorage};

/// Objects read from the store per page: one page is encoded while the next is read.
const PAGE_OBJECTS: usize = 1_000;

/// Bytes a page stops at (it ends with the object that crosses this), so that a page of large
/// objects is as bounded in memory as one of small ones.
const PAGE_BYTES: usize = 4 << 20;

/// Encoded runs of items waiting for the connection (each page is cut into a few runs):
/// bounds what a list holds in memory beyond the page being read and the one being encoded.
const QUEUE_RUNS: usize = 8;

/// The response to a JSON list of the whole collection in `ctx`'s scope, at `revision` (the
/// latest when `None`), of the objects `labels` selects.
pub async fn stream_list(
    ctx: &Ctx<'_>,
    labels: &LabelSelector,
    revision: Option<Revision>,
) -> Result<Response, ApiError> {
    let def = ctx.def();
    let prefix = storage::collection_prefix(def, ctx.namespace());
    let objects = ctx.state.objects.clone();
    let (group, plural) = (def.group().to_owned(), def.plural().to_owned());
    let store_err = move |e| from_store(e, &group, &plural, "");
    let first = read(&objects, &prefix, revision, None)
        .await
        .map_err(&store_err)?;
    let items = storage::encode_items(&first.items, labels)?;
    let mut list = ListParts::new(super::collection::list_head(def, first.revision.0, None));
    list.push(items);
    let Some(token) = first.continue_token else {
        return Ok(crate::http::respond::json_parts(
            StatusCode::OK,
            list.finish(),
        ));
    };
    let ListParts {
        parts: sent,
        mut separated,
    } = list;
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(QUEUE_RUNS);
    let labels = labels.clone();
    tokio::spawn(async move {
        let mut token = Some(token);
        while let Some(next) = token.take() {
            let page = match read(&objects, &prefix, None, Some(next)).await {
                Ok(page) => page,
                Err(e) => return cut_off(&tx, &store_err(e)).await,
            };
            let items = match storage::encode_items(&page.items, &labels) {
                Ok(items) => items,
                Err(e) => return cut_off(&tx, &e).await,
            };
            for part in separated.parts(items) {
                // The client is gone when the body is dropped: stop reading.
                if tx.send(Ok(part)).await.is_err() {
                    return;
                }
            }
            token = page.continue_token;
        }
        let _ = tx.send(Ok(Bytes::from_static(LIST_TAIL))).await;
    });
    let rest = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|part| (part, rx))
    });
    let body = futures::stream::iter(sent.into_iter().map(Ok)).chain(rest);
    Ok((
        StatusCode::OK,
        [(http::header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}

/// What closes a JSON list after its items.
pub const LIST_TAIL: &[u8] = b"]}\n";

/// One page of the collection under `prefix`.
async fn read(
    objects: &ObjectStorage,
    prefix: &str,
    revision: Option<Revision>,
    continue_token: Option<String>,
) -> Result<ListPage, bulwark_store::StoreError> {
    let options = ListOptions {
        revision,
        limit: PAGE_OBJECTS,
        continue_token,
        max_bytes: PAGE_BYTES,
    };
    objects.list(prefix, options).await
}

/// Ends a streamed list that failed after its response started: the error goes to the log
/// and to the body, which makes the connection cut the response off.
async fn cut_off(tx: &mpsc::Sender<Result<Bytes, std::io::Error>>, error: &ApiError) {
    tracing::warn!(error = %error, "a streamed list failed after its response started");
    let _ = tx.send(Err(std::io::Error::other(error.to_string()))).await;
}

/// The parts of a JSON list: its head, runs of items with commas between them, its tail.
pub struct ListParts {
    parts: Vec<Bytes>,
    separated: Separated,
}

impl ListParts {
    /// A list that starts with `head` (everything up to and including `"items":[`).
    pub fn new(head: Vec<u8>) -> Self {
        Self {
            parts: vec![Bytes::from(head)],
            separated: Separated::default(),
        }
    }

    /// Appends encoded items.
    pub fn push(&mut self, items: EncodedItems) {
        self.parts.extend(self.separated.parts(items));
    }

    /// The whole list's parts, tail included.
    pub fn finish(mut self) -> Vec<Bytes> {
        self.parts.push(Bytes::from_static(LIST_TAIL));
        self.parts
    }
}

/// Puts a comma between runs of items, wherever they are sent.
#[derive(Default)]
struct Separated {
    any: bool,
}

impl Separated {
    /// The runs of `items`, each after the first run ever preceded by a comma.
    fn parts(&mut self, items: EncodedItems) -> impl Iterator<Item = Bytes> + '_ {
        items.runs.into_iter().flat_map(move |run| {
            let comma = std::mem::replace(&mut self.any, true).then(|| Bytes::from_static(b","));
            comma.into_iter().chain(std::iter::once(run))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    fn items(runs: &[&'static str]) -> EncodedItems {
        EncodedItems {
            runs: runs
                .iter()
                .map(|r| Bytes::from_static(r.as_bytes()))
                .collect(),
            kept: runs.len(),
        }
    }

    /// Commas stand between runs however the runs arrive: across pages, after pages that
    /// kept nothing, and not before the first run.
    #[test]
    fn runs_are_joined_by_commas_across_pages() {
        let mut list = ListParts::new(b"{\"items\":[".to_vec());
        for page in [&[][..], &["{\"a\":1}", "{\"b\":2}"], &[], &["{\"c\":3}"]] {
            list.push(items(page));
        }
        let body: Vec<u8> = list.finish().concat();
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({"items": [{"a": 1}, {"b": 2}, {"c": 3}]})
        );
        let empty: Vec<u8> = ListParts::new(b"{\"items\":[".to_vec()).finish().concat();
        assert_eq!(empty, b"{\"items\":[]}\n");
    }
}
