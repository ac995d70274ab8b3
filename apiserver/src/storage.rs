//! Object storage: the one way the server reads and writes objects ([`ObjectStorage`]: the
//! store behind a [`ValueTransformer`]), and how objects map onto store keys and back:
//! `/registry/<group|core>/<plural>/<namespace>/<name>` (namespaced) and
//! `/registry/<group|core>/<plural>/<name>` (cluster-scoped), using the storage of the kind a
//! resource shares it with (`registry::convert`). Values are the object's JSON in its stored
//! shape without `resourceVersion`; on the way out `resourceVersion` is the store revision as
//! a decimal string (DESIGN.md) and the object is converted to the served shape.

pub(crate) mod event_cache;
pub(crate) mod mirror;
mod page_work;
mod raw;

pub use page_work::{EncodedItems, encode_items, in_runs};
pub use raw::{append_raw, decode_raw};

use std::sync::Arc;

use bulwark_store::{
    Engine, Event, KeyValue, ListOptions, ListPage, Revision, Store, StoreError, Watcher,
};
use futures::future::BoxFuture;
use serde_json::Value;

pub use bulwark_encryption::{Identity, TransformError, ValueTransformer};

use crate::http::error::ApiError;
use crate::registry::ResourceDef;
use crate::registry::convert;

/// What object storage needs of a store, object-safe: the engine type stays behind it, so
/// nothing above storage is generic over engines.
trait StoreHandle: Send + Sync {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<KeyValue>, StoreError>>;
    fn get_with_revision<'a>(
        &'a self,
        key: &'a str,
        revision: Option<Revision>,
    ) -> BoxFuture<'a, Result<(Option<KeyValue>, Revision), StoreError>>;
    fn create<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
    ) -> BoxFuture<'a, Result<KeyValue, StoreError>>;
    fn update<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        expected: Option<Revision>,
    ) -> BoxFuture<'a, Result<KeyValue, StoreError>>;
    fn delete<'a>(
        &'a self,
        key: &'a str,
        expected: Option<Revision>,
    ) -> BoxFuture<'a, Result<(Revision, KeyValue), StoreError>>;
    fn list<'a>(
        &'a self,
        prefix: &'a str,
        options: ListOptions,
    ) -> BoxFuture<'a, Result<ListPage, StoreError>>;
    fn watch<'a>(
        &'a self,
        prefix: &'a str,
        after: Revision,
    ) -> BoxFuture<'a, Result<Box<dyn EventSource>, StoreError>>;
    fn revisions(&self) -> BoxFuture<'_, Result<(Revision, Revision), StoreError>>;
}

/// A store watcher, object-safe.
trait EventSource: Send {
    fn next(&mut self) -> BoxFuture<'_, Result<Arc<Event>, StoreError>>;
    fn revision(&self) -> Revision;
}

impl<E: Engine> StoreHandle for Store<E> {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<KeyValue>, StoreError>> {
        Box::pin(Store::get(self, key))
    }

    fn get_with_revision<'a>(
        &'a self,
        key: &'a str,
        revision: Option<Revision>,
    ) -> BoxFuture<'a, Result<(Option<KeyValue>, Revision), StoreError>> {
        Box::pin(Store::get_with_revision(self, key, revision))
    }

    fn create<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
    ) -> BoxFuture<'a, Result<KeyValue, StoreError>> {
        Box::pin(Store::create(self, key, value))
    }

    fn update<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        expected: Option<Revision>,
    ) -> BoxFuture<'a, Result<KeyValue, StoreError>> {
        Box::pin(Store::update(self, key, value, expected))
    }

    fn delete<'a>(
        &'a self,
        key: &'a str,
        expected: Option<Revision>,
    ) -> BoxFuture<'a, Result<(Revision, KeyValue), StoreError>> {
        Box::pin(Store::delete(self, key, expected))
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
        options: ListOptions,
    ) -> BoxFuture<'a, Result<ListPage, StoreError>> {
        Box::pin(Store::list(self, prefix, options))
    }

    fn watch<'a>(
        &'a self,
        prefix: &'a str,
        after: Revision,
    ) -> BoxFuture<'a, Result<Box<dyn EventSource>, StoreError>> {
        Box::pin(async move {
            let watcher = Store::watch(self, prefix, after).await?;
            Ok(Box::new(watcher) as Box<dyn EventSource>)
        })
    }

    fn revisions(&self) -> BoxFuture<'_, Result<(Revision, Revision), StoreError>> {
        Box::pin(async move {
            Ok((
                Store::current_revision(self).await?,
                Store::compacted_revision(self).await?,
            ))
        })
    }
}

impl<E: Engine> EventSource for Watcher<E> {
    fn next(&mut self) -> BoxFuture<'_, Result<Arc<Event>, StoreError>> {
        Box::pin(Watcher::next(self))
    }

    fn revision(&self) -> Revision {
        Watcher::revision(self)
    }
}

/// The store behind the value transformer: every value written goes through
/// [`ValueTransformer::stored_form`], every value read (get, list, watch) through
/// [`ValueTransformer::plain_form`]. Cheap to clone; not generic over the store's engine.
#[derive(Clone)]
pub struct ObjectStorage {
    store: Arc<dyn StoreHandle>,
    transformer: Arc<dyn ValueTransformer>,
}

impl std::fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStorage")
            .field("transformer", &self.transformer)
            .finish_non_exhaustive()
    }
}

/// The engine name of a value that could not be encrypted for writing (the API answers 503:
/// a key service is unavailable, nothing was written).
pub const UNWRITABLE: &str = "encryption";

/// A transformer failure as the store's error: unwritable values are a 503 at the API edge,
/// unreadable ones a 500 (logged once there). Neither message holds a value.
fn transform_error(e: TransformError) -> StoreError {
    match e {
        TransformError::Unwritable { .. } => StoreError::engine(UNWRITABLE, e),
        TransformError::Unreadable { .. } => StoreError::engine("transformer", e),
    }
}

impl ObjectStorage {
    /// `store` behind `transformer`.
    pub fn new<E: Engine>(store: Store<E>, transformer: Arc<dyn ValueTransformer>) -> Self {
        Self {
            store: Arc::new(store),
            transformer,
        }
    }

    /// The same store behind another transformer.
    pub fn with_transformer(&self, transformer: Arc<dyn ValueTransformer>) -> Self {
        Self {
            store: Arc::clone(&self.store),
            transformer,
        }
    }

    async fn open(&self, kv: KeyValue) -> Result<KeyValue, StoreError> {
        open_with(self.transformer.as_ref(), kv).await
    }

    /// The current value at `key`.
    pub async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        match self.store.get(key).await? {
            Some(kv) => self.open(kv).await.map(Some),
            None => Ok(None),
        }
    }

    /// A list of the one key `key`: its value (none if it does not exist) at the latest
    /// revision (`revision` `None`) or at `revision`, as one page read at the revision the
    /// read is consistent at, like a page of [`Self::list`].
    pub async fn list_one(
        &self,
        key: &str,
        revision: Option<Revision>,
    ) -> Result<ListPage, StoreError> {
        let (kv, at) = self.store.get_with_revision(key, revision).await?;
        let items = match kv {
            Some(kv) => vec![self.open(kv).await?],
            None => Vec::new(),
        };
        Ok(ListPage {
            items,
            revision: at,
            continue_token: None,
        })
    }

    async fn stored_form(&self, key: &str, value: &[u8]) -> Result<Vec<u8>, StoreError> {
        if self.transformer.is_identity() {
            return Ok(value.to_vec());
        }
        self.transformer
            .stored_form(key, value)
            .await
            .map_err(transform_error)
    }

    /// Creates `key` (AlreadyExists if it exists).
    pub async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue, StoreError> {
        let stored = self.stored_form(key, &value).await?;
        let mut kv = self.store.create(key, stored).await?;
        kv.value = value.into();
        Ok(kv)
    }

    /// Replaces `key`, if its revision is `expected` (when given).
    pub async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Option<Revision>,
    ) -> Result<KeyValue, StoreError> {
        let stored = self.stored_form(key, &value).await?;
        let mut kv = self.store.update(key, stored, expected).await?;
        kv.value = value.into();
        Ok(kv)
    }

    /// Deletes `key`, if its revision is `expected` (when given): the deletion revision and
    /// the last value.
    pub async fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
    ) -> Result<(Revision, KeyValue), StoreError> {
        let (revision, kv) = self.store.delete(key, expected).await?;
        Ok((revision, self.open(kv).await?))
    }

    /// One page of the keys under `prefix`.
    pub async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListPage, StoreError> {
        let mut page = self.store.list(prefix, options).await?;
        if !self.transformer.is_identity() {
            // Values stored as they are pass through unasked when every one under the prefix
            // would read back as it is (asking per value took a few percent of a long list).
            let plain_ok = self.transformer.reads_plaintext_under(prefix);
            let mut items = Vec::with_capacity(page.items.len());
            for kv in page.items {
                if plain_ok && !bulwark_encryption::is_encrypted(&kv.value) {
                    items.push(kv);
                } else {
                    items.push(self.open(kv).await?);
                }
            }
            page.items = items;
        }
        Ok(page)
    }

    /// One page of the keys under `prefix` with their values as stored (encrypted ones still
    /// encrypted): for encryption status, rotation and verification only.
    pub(crate) async fn list_stored(
        &self,
        prefix: &str,
        options: ListOptions,
    ) -> Result<ListPage, StoreError> {
        self.store.list(prefix, options).await
    }

    /// The plain form of a value as [`ObjectStorage::list_stored`] returned it.
    pub(crate) async fn plain_form(&self, kv: KeyValue) -> Result<KeyValue, StoreError> {
        self.open(kv).await
    }

    /// The current and the compacted revision: history older than the second is gone.
    pub(crate) async fn revisions(&self) -> Result<(Revision, Revision), StoreError> {
        self.store.revisions().await
    }

    /// The changes under `prefix` after revision `after`.
    pub async fn watch(&self, prefix: &str, after: Revision) -> Result<ObjectWatcher, StoreError> {
        Ok(ObjectWatcher {
            watcher: self.store.watch(prefix, after).await?,
            transformer: Arc::clone(&self.transformer),
        })
    }
}

/// A store watcher whose events carry plain values.
pub struct ObjectWatcher {
    watcher: Box<dyn EventSource>,
    transformer: Arc<dyn ValueTransformer>,
}

impl ObjectWatcher {
    /// The revision the watcher has seen up to.
    pub fn revision(&self) -> Revision {
        self.watcher.revision()
    }

    /// The next change (shared as is when values are stored as they are).
    pub async fn next(&mut self) -> Result<Arc<Event>, StoreError> {
        let event = self.watcher.next().await?;
        let encrypted = |kv: &KeyValue| bulwark_encryption::is_encrypted(&kv.value);
        // Plain values (every kind that is not encrypted) are shared as they are.
        if self.transformer.is_identity()
            || !(encrypted(&event.kv) || event.prev.as_ref().is_some_and(encrypted))
        {
            return Ok(event);
        }
        let transformer = self.transformer.as_ref();
        let prev = match &event.prev {
            Some(prev) => Some(open_with(transformer, prev.clone()).await?),
            None => None,
        };
        Ok(Arc::new(Event {
            kind: event.kind,
            kv: open_with(transformer, event.kv.clone()).await?,
            prev,
        }))
    }
}

/// `kv` with its value in plain form.
async fn open_with(
    transformer: &dyn ValueTransformer,
    mut kv: KeyValue,
) -> Result<KeyValue, StoreError> {
    if !transformer.is_identity() && !kv.value.is_empty() {
        kv.value = transformer
            .plain_form(&kv.key, kv.value)
            .await
            .map_err(transform_error)?;
    }
    Ok(kv)
}

fn group_segment(def: &ResourceDef) -> &str {
    if def.group().is_empty() {
        "core"
    } else {
        def.group()
    }
}

/// The key of one object.
pub fn object_key(def: &ResourceDef, namespace: Option<&str>, name: &str) -> String {
    let def = convert::storage_def(def);
    match namespace.filter(|_| def.namespaced()) {
        Some(ns) => format!(
            "/registry/{}/{}/{ns}/{name}",
            group_segment(def),
            def.plural()
        ),
        None => format!("/registry/{}/{}/{name}", group_segment(def), def.plural()),
    }
}

/// The one key a list of `def` in `namespace` narrowed to `name` can find, if the name pins
/// one: the resource is cluster-scoped or the namespace is given, and the name is one path
/// segment the store can hold (any other name matches no object; the caller then reads the
/// collection and answers as it always did: nothing matches).
pub fn pinned_key(def: &ResourceDef, namespace: Option<&str>, name: &str) -> Option<String> {
    let in_scope = !convert::storage_def(def).namespaced() || namespace.is_some();
    if !in_scope || name.is_empty() || name.contains('/') {
        return None;
    }
    let key = object_key(def, namespace, name);
    bulwark_store::layout::validate_key(&key)
        .is_ok()
        .then_some(key)
}

/// The prefix of a collection: one namespace, or every object of the kind.
pub fn collection_prefix(def: &ResourceDef, namespace: Option<&str>) -> String {
    let def = convert::storage_def(def);
    match namespace.filter(|_| def.namespaced()) {
        Some(ns) => format!("/registry/{}/{}/{ns}/", group_segment(def), def.plural()),
        None => format!("/registry/{}/{}/", group_segment(def), def.plural()),
    }
}

/// Serializes an object of `def` for storage (stored shape, without `resourceVersion`), its
/// members in Kubernetes' order: `apiVersion`, `kind` and `metadata` first, then the rest as
/// they came. Reads find `metadata` without parsing past it ([`raw`]), and the object reads
/// back as upstream writes it.
pub fn encode(def: &ResourceDef, obj: &Value) -> Result<Vec<u8>, ApiError> {
    let mut copy = convert::to_stored(def, obj.clone());
    if let Some(meta) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.shift_remove("resourceVersion");
    }
    serde_json::to_vec(&metadata_first(copy)).map_err(ApiError::internal)
}

/// `obj` with `apiVersion`, `kind` and `metadata` as its first members.
fn metadata_first(obj: Value) -> Value {
    let Value::Object(members) = obj else {
        return obj;
    };
    let mut head: [Option<(String, Value)>; 3] = [None, None, None];
    let mut rest = Vec::with_capacity(members.len());
    for (key, value) in members {
        let slot = match key.as_str() {
            "apiVersion" => head.get_mut(0),
            "kind" => head.get_mut(1),
            "metadata" => head.get_mut(2),
            _ => None,
        };
        match slot {
            Some(slot) => *slot = Some((key, value)),
            None => rest.push((key, value)),
        }
    }
    Value::Object(head.into_iter().flatten().chain(rest).collect())
}

/// Decodes a stored value in its stored shape, setting `resourceVersion` to `revision`.
pub fn decode_stored_at(bytes: &[u8], revision: u64) -> Result<Value, ApiError> {
    let mut obj: Value = serde_json::from_slice(bytes).map_err(ApiError::internal)?;
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert(
            "resourceVersion".into(),
            Value::String(revision.to_string()),
        );
    }
    Ok(obj)
}

/// Decodes a stored key-value in its stored shape, at its modification revision.
pub fn decode_stored(kv: &KeyValue) -> Result<Value, ApiError> {
    decode_stored_at(&kv.value, kv.mod_revision.0)
}

/// Decodes a stored key-value as `def` serves it.
pub fn decode(def: &ResourceDef, kv: &KeyValue) -> Result<Value, ApiError> {
    Ok(convert::from_stored(def, decode_stored(kv)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::lookup;

    /// Stored objects lead with `apiVersion`, `kind` and `metadata` whatever order they came
    /// in, keep the rest in theirs, and never hold a `resourceVersion`.
    #[test]
    fn stored_objects_lead_with_their_metadata() {
        let cm = lookup(&bulwark_api::GroupVersionResource::new(
            "",
            "v1",
            "configmaps",
        ))
        .unwrap();
        let obj: Value = serde_json::from_str(
            r#"{"data":{"k":"v"},"metadata":{"resourceVersion":"3","name":"x","uid":"u"},
                "immutable":true,"kind":"ConfigMap","apiVersion":"v1"}"#,
        )
        .unwrap();
        let stored = String::from_utf8(encode(&cm, &obj).unwrap()).unwrap();
        assert_eq!(
            stored,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","uid":"u"},"data":{"k":"v"},"immutable":true}"#
        );
    }

    /// What goes through the transformer: every write, every read.
    #[tokio::test(flavor = "multi_thread")]
    async fn values_pass_the_transformer_both_ways() {
        use futures::future::BoxFuture;
        /// Stores values reversed behind the encrypted prefix, bound to their key (and
        /// refuses to read what it did not write).
        #[derive(Debug)]
        struct Reversed;
        const PREFIX: &[u8] = b"k8s:enc:reversed:";
        impl ValueTransformer for Reversed {
            fn stored_form<'a>(
                &'a self,
                key: &'a str,
                plain: &'a [u8],
            ) -> BoxFuture<'a, Result<Vec<u8>, TransformError>> {
                let mut v = plain.to_vec();
                v.reverse();
                v.extend_from_slice(key.as_bytes());
                Box::pin(std::future::ready(Ok([PREFIX, &v].concat())))
            }
            fn plain_form<'a>(
                &'a self,
                key: &'a str,
                stored: bytes::Bytes,
            ) -> BoxFuture<'a, Result<bytes::Bytes, TransformError>> {
                let body = stored
                    .strip_prefix(PREFIX)
                    .and_then(|s| s.strip_suffix(key.as_bytes()))
                    .ok_or_else(|| TransformError::Unreadable {
                        key: key.into(),
                        reason: "written under another key".into(),
                    });
                Box::pin(std::future::ready(body.map(|body| {
                    let mut v = body.to_vec();
                    v.reverse();
                    v.into()
                })))
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            bulwark_store::EmbeddedEngine::open(dir.path().join("db")).unwrap(),
            bulwark_store::StoreOptions::default(),
        )
        .await
        .unwrap();
        let objects = ObjectStorage::new(store.clone(), Arc::new(Reversed));
        let mut watcher = objects.watch("/a/", Revision(0)).await.unwrap();
        let created = objects.create("/a/x", b"{\"v\":1}".to_vec()).await.unwrap();
        assert_eq!(&created.value[..], b"{\"v\":1}");
        // The store holds the transformed bytes ...
        let raw = store.get("/a/x").await.unwrap().unwrap();
        assert_eq!(&raw.value[..], b"k8s:enc:reversed:}1:\"v\"{/a/x");
        // ... and every read gives the plain ones back.
        assert_eq!(
            &objects.get("/a/x").await.unwrap().unwrap().value[..],
            b"{\"v\":1}"
        );
        let page = objects.list("/a/", ListOptions::default()).await.unwrap();
        assert_eq!(&page.items[0].value[..], b"{\"v\":1}");
        objects
            .update("/a/x", b"{\"v\":2}".to_vec(), Some(created.mod_revision))
            .await
            .unwrap();
        let put = watcher.next().await.unwrap();
        assert_eq!(&put.kv.value[..], b"{\"v\":1}");
        let update = watcher.next().await.unwrap();
        assert_eq!(&update.kv.value[..], b"{\"v\":2}");
        assert_eq!(&update.prev.as_ref().unwrap().value[..], b"{\"v\":1}");
        let (_, last) = objects.delete("/a/x", None).await.unwrap();
        assert_eq!(&last.value[..], b"{\"v\":2}");
        // A value copied under another key does not read back.
        store.create("/a/y", raw.value.clone()).await.unwrap();
        assert!(objects.get("/a/y").await.is_err());
    }

    #[test]
    fn keys_do_not_collide() {
        let cm = lookup(&bulwark_api::GroupVersionResource::new(
            "",
            "v1",
            "configmaps",
        ))
        .unwrap();
        let ns = lookup(&bulwark_api::GroupVersionResource::new(
            "",
            "v1",
            "namespaces",
        ))
        .unwrap();
        assert_eq!(
            object_key(&cm, Some("a"), "x"),
            "/registry/core/configmaps/a/x"
        );
        assert_eq!(
            collection_prefix(&cm, Some("a")),
            "/registry/core/configmaps/a/"
        );
        assert_eq!(
            object_key(&ns, Some("ignored"), "a"),
            "/registry/core/namespaces/a"
        );
        let ev = lookup(&bulwark_api::GroupVersionResource::new(
            "events.k8s.io",
            "v1",
            "events",
        ))
        .unwrap();
        assert_eq!(collection_prefix(&ev, None), "/registry/core/events/");
    }
}
