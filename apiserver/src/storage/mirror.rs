//! An in-memory mirror of every object of one resource, kept current by list-then-watch
//! (upstream's reflector), for the server's own consumers: policy objects feed the Cedar
//! engine, namespace labels feed authorization. Every API server runs its own mirrors from
//! the shared store, so a change written through any server takes effect on all of them.
//!
//! After a watch error (history compacted past the mirror, store hiccup) the mirror lists
//! again, with a capped backoff, and hands its consumer the fresh state: a consumer always
//! sees a complete, consistent set of objects, never a partial one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bulwark_store::{EventKind, ListOptions, Revision};
use futures::FutureExt;
use serde_json::Value;

use crate::http::error::ApiError;
use crate::registry::ResourceDef;
use crate::storage;

/// Objects by storage key.
pub type Objects = BTreeMap<String, Arc<Value>>;

/// Longest wait between attempts after errors.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Adds (or replaces) one stored object. An object that does not decode is left out and
/// logged: one bad object must not stop the mirror for all the others.
fn insert(objects: &mut Objects, def: &ResourceDef, kv: &bulwark_store::KeyValue) {
    match storage::decode(def, kv) {
        Ok(obj) => {
            objects.insert(kv.key.clone(), Arc::new(obj));
        }
        Err(e) => {
            objects.remove(&kv.key);
            tracing::error!(key = %kv.key, error = %e.0.message, "mirror: skipping an object that does not decode");
        }
    }
}

/// Lists every object of `def` at one revision.
async fn list_all(
    store: &crate::storage::ObjectStorage,
    def: &ResourceDef,
) -> Result<(Objects, Revision), ApiError> {
    let prefix = storage::collection_prefix(def, None);
    let mut objects = Objects::new();
    let mut options = ListOptions::default();
    loop {
        let page = store
            .list(&prefix, options)
            .await
            .map_err(ApiError::internal)?;
        for kv in &page.items {
            insert(&mut objects, def, kv);
        }
        match page.continue_token {
            Some(token) => {
                options = ListOptions {
                    revision: Some(page.revision),
                    limit: 0,
                    continue_token: Some(token),
                    max_bytes: 0,
                }
            }
            None => return Ok((objects, page.revision)),
        }
    }
}

/// Mirrors `def` forever, calling `on_change` with the whole set after the initial list and
/// after every batch of changes (changes that arrive together are applied together).
pub async fn run<F>(store: crate::storage::ObjectStorage, def: Arc<ResourceDef>, mut on_change: F)
where
    F: FnMut(&Objects) + Send,
{
    let mut backoff = Duration::from_millis(100);
    loop {
        match follow(&store, &def, &mut on_change).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(resource = def.plural(), error = %e.0.message, "mirror: listing again");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// One list and the watch after it; returns only on error (or when the store closes).
async fn follow<F>(
    store: &crate::storage::ObjectStorage,
    def: &ResourceDef,
    on_change: &mut F,
) -> Result<(), ApiError>
where
    F: FnMut(&Objects) + Send,
{
    let (mut objects, revision) = list_all(store, def).await?;
    on_change(&objects);
    let prefix = storage::collection_prefix(def, None);
    let mut watcher = match store.watch(&prefix, revision).await {
        Ok(watcher) => watcher,
        // The store is closing (shutdown): stop, releasing the store.
        Err(bulwark_store::StoreError::Closed) => return Ok(()),
        Err(e) => return Err(ApiError::internal(e)),
    };
    loop {
        let first = watcher.next().await;
        let mut event = Some(first);
        while let Some(next) = event {
            let next = match next {
                Ok(e) => e,
                Err(bulwark_store::StoreError::Closed) => return Ok(()),
                Err(e) => return Err(ApiError::internal(e)),
            };
            match next.kind {
                EventKind::Put => insert(&mut objects, def, &next.kv),
                EventKind::Delete => {
                    objects.remove(&next.kv.key);
                }
            }
            // Take whatever else is already there before telling the consumer.
            event = watcher.next().now_or_never();
        }
        on_change(&objects);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulwark_store::EmbeddedEngine;
    use bulwark_store::StoreOptions;
    use serde_json::json;
    use tokio::sync::mpsc;

    #[tokio::test]
    async fn follows_creates_updates_and_deletes() {
        let tmp = tempfile::tempdir().unwrap();
        let engine = EmbeddedEngine::open(tmp.path().join("db")).unwrap();
        let store = bulwark_store::Store::open(engine, StoreOptions::default())
            .await
            .unwrap();
        let store = storage::ObjectStorage::new(store, std::sync::Arc::new(storage::Identity));
        let def = crate::registry::lookup(&bulwark_api::GroupVersionResource::new(
            "",
            "v1",
            "namespaces",
        ))
        .unwrap();
        let put = |name: &str, label: &str| {
            let store = store.clone();
            let def = std::sync::Arc::clone(&def);
            let key = storage::object_key(&def, None, name);
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"l": label}}});
            async move {
                let bytes = storage::encode(&def, &obj).unwrap();
                match store.get(&key).await.unwrap() {
                    Some(kv) => store
                        .update(&key, bytes, Some(kv.mod_revision))
                        .await
                        .unwrap(),
                    None => store.create(&key, bytes).await.unwrap(),
                };
            }
        };
        put("a", "1").await;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(
            store.clone(),
            std::sync::Arc::clone(&def),
            move |objects: &Objects| {
                let seen: Vec<(String, String)> = objects
                    .values()
                    .map(|o| {
                        (
                            o["metadata"]["name"].as_str().unwrap().to_owned(),
                            o["metadata"]["labels"]["l"].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect();
                tx.send(seen).unwrap();
            },
        ));
        assert_eq!(rx.recv().await.unwrap(), [("a".into(), "1".into())]);
        put("b", "2").await;
        assert_eq!(
            rx.recv().await.unwrap(),
            [("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        put("a", "3").await;
        let key = storage::object_key(&def, None, "b");
        store.delete(&key, None).await.unwrap();
        // The last state seen is complete and current, however the changes were batched.
        let mut last = rx.recv().await.unwrap();
        while last != [("a".to_owned(), "3".to_owned())] {
            last = rx.recv().await.unwrap();
        }
        task.abort();
    }
}
