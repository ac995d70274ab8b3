//! The MVCC store: create / update / delete with compare-and-swap on revisions, reads at the
//! latest or an older revision, snapshot-stable paginated lists. Written once over
//! [`Engine`]; watch and compaction live in sibling modules.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::compaction::CompactionOptions;
use crate::continue_token::ContinueToken;
use crate::engine::{Engine, Mutation, Snapshot, WriteProgram};
use crate::error::{Result, StoreError};
use crate::layout::{
    self, HistoryHeader, Kind, LogEntry, Meta, compacted_key, history_key_stamped,
    history_version_range, log_key_stamped, log_range_after, meta_key, parse_log_key,
};
use crate::revision::Revision;
use crate::watch::WatchHub;

/// One version of one key, as returned by reads, lists and watch events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The user key.
    pub key: String,
    /// The value (empty for deletion events).
    pub value: Bytes,
    /// Revision that created this incarnation of the key.
    pub create_revision: Revision,
    /// Revision of this version.
    pub mod_revision: Revision,
    /// Writes since creation (1 after create).
    pub version: u64,
}

/// Options of [`Store::list`].
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    /// Read at this revision instead of the latest.
    pub revision: Option<Revision>,
    /// Maximum items per page (0: no limit).
    pub limit: usize,
    /// Stop the page once its values hold this many bytes (0: no limit). A page always holds
    /// at least one item, so a value larger than the budget is still listed, alone. Readers
    /// that stream a list (a watch's initial state) use it to bound what one page holds.
    pub max_bytes: usize,
    /// Continue token from the previous page.
    pub continue_token: Option<String>,
}

/// One page of a list.
#[derive(Clone, Debug)]
pub struct ListPage {
    /// Items in key order.
    pub items: Vec<KeyValue>,
    /// The revision the whole list is read at.
    pub revision: Revision,
    /// Token for the next page, if there are more items.
    pub continue_token: Option<String>,
}

/// Tunables of a store.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Automatic compaction (`None` disables it; the default keeps 5 minutes of history).
    pub compaction: Option<CompactionOptions>,
    /// Events kept in the shared watch ring; a watcher further behind catches up from the
    /// store instead.
    pub watch_ring: usize,
}

impl Default for StoreOptions {
    /// The production defaults: compaction with a 5 minute window, a 16Ki-event watch ring.
    fn default() -> Self {
        Self {
            compaction: Some(CompactionOptions::default()),
            watch_ring: crate::watch::DEFAULT_RING_CAPACITY,
        }
    }
}

impl StoreOptions {
    /// Defaults without automatic compaction (tests and tools that compact explicitly).
    pub fn without_compaction() -> Self {
        Self {
            compaction: None,
            ..Self::default()
        }
    }
}

pub(crate) struct Inner<E: Engine> {
    pub(crate) engine: E,
    pub(crate) hub: WatchHub,
    pub(crate) shutdown: tokio::sync::watch::Sender<bool>,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// The MVCC store over an engine. Cheap to clone; background tasks (watch tail, compactor)
/// stop when the last clone is dropped.
pub struct Store<E: Engine> {
    pub(crate) inner: Arc<Inner<E>>,
}

impl<E: Engine> Clone for Store<E> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

/// How long [`Store::close`] waits for other clones and watchers to be dropped.
pub const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Rows read per engine scan call.
const SCAN_BATCH: usize = 1024;

impl<E: Engine> Store<E> {
    /// Opens the store over `engine` and starts its watch tail (and compactor, if enabled).
    /// Must be called inside a tokio runtime.
    pub async fn open(engine: E, options: StoreOptions) -> Result<Self> {
        let snapshot = engine.snapshot().await?;
        let start = snapshot.revision();
        refuse_data_ahead(&snapshot, start).await?;
        drop(snapshot);
        let inner = Arc::new(Inner {
            engine,
            hub: WatchHub::new(start, options.watch_ring),
            shutdown: tokio::sync::watch::channel(false).0,
            tasks: std::sync::Mutex::new(Vec::new()),
        });
        let mut tasks = vec![crate::watch::spawn_tail(&inner)];
        if let Some(c) = options.compaction {
            tasks.push(crate::compaction::spawn_compactor(&inner, c));
        }
        *inner.tasks.lock().unwrap_or_else(|p| p.into_inner()) = tasks;
        Ok(Self { inner })
    }

    /// Stops the background tasks and closes the engine (for the embedded engine: after the
    /// last queued write is committed, the file is released). Watches end with
    /// [`StoreError::Closed`], so consumers that stop on it release their clones; close waits
    /// up to [`CLOSE_WAIT`] for every other clone and watcher to go, then fails with
    /// [`StoreError::InUse`].
    pub async fn close(self) -> Result<()> {
        self.inner.shutdown.send_replace(true);
        let tasks =
            std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks {
            let _ = task.await;
        }
        self.inner.hub.close();
        let deadline = tokio::time::Instant::now() + CLOSE_WAIT;
        while Arc::strong_count(&self.inner) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let inner = Arc::try_unwrap(self.inner).map_err(|_| StoreError::InUse)?;
        // Dropping an engine may wait for its writer thread.
        tokio::task::spawn_blocking(move || drop(inner))
            .await
            .map_err(|e| StoreError::engine("store", e))
    }

    /// The engine underneath.
    pub fn engine(&self) -> &E {
        &self.inner.engine
    }

    /// The newest committed revision.
    pub async fn current_revision(&self) -> Result<Revision> {
        Ok(self.inner.engine.snapshot().await?.revision())
    }

    /// The compaction point: reads and watches older than it fail with
    /// [`StoreError::Compacted`].
    pub async fn compacted_revision(&self) -> Result<Revision> {
        let snap = self.inner.engine.snapshot().await?;
        read_compacted(&snap).await
    }

    /// Creates `key`; fails with [`StoreError::AlreadyExists`] if it exists.
    pub async fn create(&self, key: &str, value: impl Into<Bytes>) -> Result<KeyValue> {
        self.put(key, value.into(), None, true).await
    }

    /// Replaces the value of an existing key. With `expected`, the write only happens if the
    /// key's current revision equals it ([`StoreError::Conflict`] otherwise).
    pub async fn update(
        &self,
        key: &str,
        value: impl Into<Bytes>,
        expected: Option<Revision>,
    ) -> Result<KeyValue> {
        self.put(key, value.into(), expected, false).await
    }

    async fn put(
        &self,
        key: &str,
        value: Bytes,
        expected: Option<Revision>,
        create: bool,
    ) -> Result<KeyValue> {
        layout::validate_key(key)?;
        layout::validate_value(&value)?;
        let owned_key = key.to_string();
        let plan_value = value.clone();
        let program = WriteProgram {
            reads: vec![meta_key(key)],
            plan: Box::new(move |reads| {
                let current = decode_meta(&owned_key, reads.first())?;
                let (create_revision, version, prev) = match (create, current) {
                    (true, Some(m)) if m.kind == Kind::Put => {
                        return Err(StoreError::AlreadyExists {
                            key: owned_key.clone(),
                        });
                    }
                    (true, _) => (Revision::ZERO, 1, Revision::ZERO),
                    (false, Some(m)) if m.kind == Kind::Put => {
                        check_expected(&owned_key, expected, m.mod_revision)?;
                        (m.create_revision, m.version + 1, m.mod_revision)
                    }
                    (false, _) => {
                        return Err(StoreError::NotFound {
                            key: owned_key.clone(),
                        });
                    }
                };
                let mutations = version_mutations(
                    &owned_key,
                    Kind::Put,
                    create_revision,
                    version,
                    &plan_value,
                    prev,
                )?;
                Ok((mutations, (create_revision, version)))
            }),
        };
        let committed = self.inner.engine.write(program).await?;
        let revision = committed.revision.ok_or(StoreError::Closed)?;
        let (create_revision, version) = committed.output;
        Ok(KeyValue {
            key: key.to_string(),
            value,
            create_revision: if create_revision == Revision::ZERO {
                revision
            } else {
                create_revision
            },
            mod_revision: revision,
            version,
        })
    }

    /// Deletes `key` (optionally only at revision `expected`) and returns the deletion
    /// revision with the deleted version.
    pub async fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
    ) -> Result<(Revision, KeyValue)> {
        layout::validate_key(key)?;
        loop {
            let current = self.get(key).await?.ok_or_else(|| StoreError::NotFound {
                key: key.to_string(),
            })?;
            check_expected(key, expected, current.mod_revision)?;
            let at = current.mod_revision;
            let owned_key = key.to_string();
            let program = WriteProgram {
                reads: vec![meta_key(key)],
                plan: Box::new(move |reads| {
                    let m = decode_meta(&owned_key, reads.first())?
                        .filter(|m| m.kind == Kind::Put)
                        .ok_or_else(|| StoreError::NotFound {
                            key: owned_key.clone(),
                        })?;
                    check_expected(&owned_key, Some(at), m.mod_revision)?;
                    let mutations = version_mutations(
                        &owned_key,
                        Kind::Delete,
                        m.create_revision,
                        m.version + 1,
                        &[],
                        m.mod_revision,
                    )?;
                    Ok((mutations, ()))
                }),
            };
            match self.inner.engine.write(program).await {
                Ok(c) => return Ok((c.revision.ok_or(StoreError::Closed)?, current)),
                // Changed between our read and the write: re-read unless the caller pinned
                // a revision.
                Err(StoreError::Conflict { .. }) if expected.is_none() => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads the latest version of `key`.
    pub async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        layout::validate_key(key)?;
        let snap = self.inner.engine.snapshot().await?;
        read_latest(&snap, key).await
    }

    /// Reads `key` together with the revision the read is consistent at: the latest state
    /// (`revision` `None`), or the state at `revision`. A list narrowed to one name (a
    /// `metadata.name` field selector, a watch of one object) reads one key instead of the
    /// whole collection and still answers at a revision, as the full list would.
    pub async fn get_with_revision(
        &self,
        key: &str,
        revision: Option<Revision>,
    ) -> Result<(Option<KeyValue>, Revision)> {
        match revision {
            Some(revision) => Ok((self.get_at(key, revision).await?, revision)),
            None => {
                layout::validate_key(key)?;
                let snap = self.inner.engine.snapshot().await?;
                Ok((read_latest(&snap, key).await?, snap.revision()))
            }
        }
    }

    /// Reads `key` as it was at `revision`.
    pub async fn get_at(&self, key: &str, revision: Revision) -> Result<Option<KeyValue>> {
        layout::validate_key(key)?;
        let snap = self.inner.engine.snapshot().await?;
        check_readable(&snap, revision).await?;
        let (mut start, end) = layout::history_prefix_range_of_key(key);
        let mut best: Option<VersionBuilder> = None;
        loop {
            let rows = snap.scan(&start, &end, SCAN_BATCH).await?;
            let next = next_batch_start(&rows);
            for (k, v) in rows {
                let hk = layout::parse_history_key(&k)?;
                if hk.revision > revision {
                    return finish_version(best);
                }
                push_chunk(&mut best, &k, &hk, v)?;
            }
            match next {
                Some(next) => start = next,
                None => return finish_version(best),
            }
        }
    }

    /// Lists keys starting with `prefix` (see [`ListOptions`]).
    pub async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListPage> {
        layout::validate_prefix(prefix)?;
        let token = options
            .continue_token
            .as_deref()
            .map(|t| ContinueToken::decode(t, prefix))
            .transpose()?;
        let first = self.inner.engine.snapshot().await?;
        let revision = match (&token, options.revision) {
            (Some(t), Some(r)) if Revision(t.revision) != r => {
                return Err(StoreError::InvalidContinue(
                    "a continue token cannot be combined with another revision".into(),
                ));
            }
            (Some(t), _) => Revision(t.revision),
            (None, Some(r)) => r,
            (None, None) => first.revision(),
        };
        check_readable(&first, revision).await?;
        let (mut start, end) = match &token {
            Some(t) => layout::history_range_from(prefix, &t.start),
            None => layout::history_prefix_range(prefix),
        };
        let mut items = Vec::new();
        let mut bytes = 0usize;
        let full = |items: &Vec<KeyValue>, bytes: usize| {
            (options.limit > 0 && items.len() == options.limit)
                || (options.max_bytes > 0 && !items.is_empty() && bytes >= options.max_bytes)
        };
        let mut current: Option<(String, Option<VersionBuilder>)> = None;
        let mut snap = first;
        loop {
            let rows = snap.scan(&start, &end, SCAN_BATCH).await?;
            let next = next_batch_start(&rows);
            for (k, v) in rows {
                let hk = layout::parse_history_key(&k)?;
                if current.as_ref().is_none_or(|(key, _)| key != hk.key) {
                    if let Some((key, builder)) = current.take()
                        && let Some(kv) = finish_version(builder)?
                    {
                        if full(&items, bytes) {
                            return Ok(page(items, revision, Some(key)));
                        }
                        bytes = bytes.saturating_add(kv.value.len());
                        items.push(kv);
                    }
                    current = Some((hk.key.to_string(), None));
                }
                if hk.revision <= revision
                    && let Some((_, builder)) = current.as_mut()
                {
                    push_chunk(builder, &k, &hk, v)?;
                }
            }
            match next {
                Some(next) => start = next,
                None => break,
            }
            // A fresh snapshot per batch keeps every engine transaction short (FoundationDB's
            // 5 s limit); the revision filter keeps the result identical to one snapshot.
            snap = self.inner.engine.snapshot().await?;
            check_readable(&snap, revision).await?;
        }
        if let Some((key, builder)) = current.take()
            && let Some(kv) = finish_version(builder)?
        {
            if full(&items, bytes) {
                return Ok(page(items, revision, Some(key)));
            }
            items.push(kv);
        }
        Ok(page(items, revision, None))
    }
}

/// The latest version of `key` in `snap` (`None` if it does not exist or was deleted).
async fn read_latest<S: Snapshot>(snap: &S, key: &str) -> Result<Option<KeyValue>> {
    let mk = meta_key(key);
    let Some(raw) = snap.get(&mk).await? else {
        return Ok(None);
    };
    let meta = Meta::decode(&mk, &raw)?;
    if meta.kind == Kind::Delete {
        return Ok(None);
    }
    let kv = read_version(snap, key, meta.mod_revision)
        .await?
        .ok_or_else(|| StoreError::corrupt(&mk, "latest version is missing"))?;
    Ok(Some(kv))
}

fn page(items: Vec<KeyValue>, revision: Revision, next: Option<String>) -> ListPage {
    ListPage {
        items,
        revision,
        continue_token: next.map(|k| ContinueToken::new(revision, k).encode()),
    }
}

/// Where the scan after a full batch of [`SCAN_BATCH`] rows starts (`None`: it was the last).
fn next_batch_start(rows: &[(Vec<u8>, Vec<u8>)]) -> Option<Vec<u8>> {
    match rows.last() {
        Some((k, _)) if rows.len() == SCAN_BATCH => Some(successor(k)),
        _ => None,
    }
}

/// The smallest engine key after `key`.
pub(crate) fn successor(key: &[u8]) -> Vec<u8> {
    let mut s = Vec::with_capacity(key.len() + 1);
    s.extend_from_slice(key);
    s.push(0);
    s
}

fn check_expected(key: &str, expected: Option<Revision>, current: Revision) -> Result<()> {
    match expected {
        Some(e) if e != current => Err(StoreError::Conflict {
            key: key.to_string(),
            expected: e,
            current,
        }),
        _ => Ok(()),
    }
}

fn decode_meta(key: &str, raw: Option<&Option<Vec<u8>>>) -> Result<Option<Meta>> {
    match raw {
        Some(Some(bytes)) => Meta::decode(&meta_key(key), bytes).map(Some),
        _ => Ok(None),
    }
}

/// The mutations that write one version: history chunks, the meta record and the log entry.
fn version_mutations(
    key: &str,
    kind: Kind,
    create_revision: Revision,
    version: u64,
    value: &[u8],
    prev_revision: Revision,
) -> Result<Vec<Mutation>> {
    let header = HistoryHeader {
        kind,
        create_revision,
        version,
        value_len: u32::try_from(value.len()).map_err(|_| StoreError::ValueTooLarge {
            size: value.len(),
            limit: layout::MAX_VALUE_LEN,
        })?,
    };
    let chunks = header.encode_chunks(value);
    let mut mutations = Vec::with_capacity(chunks.len() + 2);
    for (i, chunk) in chunks.into_iter().enumerate() {
        let index = u16::try_from(i).map_err(|_| StoreError::ValueTooLarge {
            size: value.len(),
            limit: layout::MAX_VALUE_LEN,
        })?;
        mutations.push(Mutation::PutStampedKey {
            key: history_key_stamped(key, index),
            value: chunk,
        });
    }
    mutations.push(Mutation::PutStampedValue {
        key: meta_key(key),
        value: Meta::encode_stamped(kind, create_revision, version),
    });
    mutations.push(Mutation::PutStampedKey {
        key: log_key_stamped(),
        value: LogEntry {
            kind,
            prev_revision,
            key: key.to_string(),
        }
        .encode(),
    });
    Ok(mutations)
}

/// Fails with [`StoreError::DataAheadOfEngine`] when the log or the compaction point holds a
/// revision beyond `current`, the snapshot's: writes from then on would get revisions below
/// existing ones and break every ordering the store promises (watch, resourceVersion).
async fn refuse_data_ahead<S: Snapshot>(snap: &S, current: Revision) -> Result<()> {
    let (start, end) = log_range_after(current);
    if let Some((key, _)) = snap.scan(&start, &end, 1).await?.first() {
        return Err(StoreError::DataAheadOfEngine {
            stored: parse_log_key(key)?,
            current,
        });
    }
    let compacted = read_compacted(snap).await?;
    if compacted > current {
        return Err(StoreError::DataAheadOfEngine {
            stored: compacted,
            current,
        });
    }
    Ok(())
}

/// Reads the compaction point in a snapshot.
pub(crate) async fn read_compacted<S: Snapshot>(snap: &S) -> Result<Revision> {
    let key = compacted_key();
    match snap.get(&key).await? {
        None => Ok(Revision::ZERO),
        Some(raw) => {
            Revision::decode(&raw).ok_or_else(|| StoreError::corrupt(&key, "bad compaction point"))
        }
    }
}

/// Fails unless `revision` can be read in `snap` (not compacted, not in the future).
pub(crate) async fn check_readable<S: Snapshot>(snap: &S, revision: Revision) -> Result<()> {
    let compacted = read_compacted(snap).await?;
    if revision < compacted {
        return Err(StoreError::Compacted {
            requested: revision,
            compacted,
        });
    }
    if revision > snap.revision() {
        return Err(StoreError::FutureRevision {
            requested: revision,
            current: snap.revision(),
        });
    }
    Ok(())
}

/// Reassembles one version from its chunks.
pub(crate) struct VersionBuilder {
    key: String,
    revision: Revision,
    header: HistoryHeader,
    /// The first chunk's row as read, header included, with every later chunk appended: a
    /// value of one chunk (most objects) is handed out without being copied.
    data: Vec<u8>,
    /// Where the value starts in `data` (after the first chunk's header).
    offset: usize,
    engine_key: Vec<u8>,
}

/// Feeds one history row into the builder of the latest version seen so far.
pub(crate) fn push_chunk(
    builder: &mut Option<VersionBuilder>,
    raw_key: &[u8],
    hk: &layout::HistoryKey<'_>,
    mut value: Vec<u8>,
) -> Result<()> {
    if hk.chunk == 0 {
        let (header, data) = HistoryHeader::decode(raw_key, &value)?;
        let offset = value.len() - data.len();
        value.reserve((header.value_len as usize).saturating_sub(data.len()));
        *builder = Some(VersionBuilder {
            key: hk.key.to_string(),
            revision: hk.revision,
            header,
            data: value,
            offset,
            engine_key: raw_key.to_vec(),
        });
        return Ok(());
    }
    match builder {
        Some(b) if b.revision == hk.revision => {
            b.data.extend_from_slice(&value);
            Ok(())
        }
        _ => Err(StoreError::corrupt(
            raw_key,
            "chunk without its first chunk",
        )),
    }
}

impl VersionBuilder {
    /// Whether every chunk of the value is there.
    fn complete(&self) -> bool {
        self.data.len() - self.offset == self.header.value_len as usize
    }
}

/// Turns a finished builder into a value (`None` for tombstones or no version).
pub(crate) fn finish_version(builder: Option<VersionBuilder>) -> Result<Option<KeyValue>> {
    let Some(b) = builder else { return Ok(None) };
    if !b.complete() {
        return Err(StoreError::corrupt(&b.engine_key, "value is incomplete"));
    }
    if b.header.kind == Kind::Delete {
        return Ok(None);
    }
    Ok(Some(KeyValue {
        key: b.key,
        value: Bytes::from(b.data).slice(b.offset..),
        create_revision: if b.header.create_revision == Revision::ZERO {
            b.revision
        } else {
            b.header.create_revision
        },
        mod_revision: b.revision,
        version: b.header.version,
    }))
}

/// Reads exactly the version of `key` at `revision` (put or tombstone), if present.
pub(crate) async fn read_version_raw<S: Snapshot>(
    snap: &S,
    key: &str,
    revision: Revision,
) -> Result<Option<VersionBuilder>> {
    let (start, end) = history_version_range(key, revision);
    let rows = snap.scan(&start, &end, layout::MAX_CHUNKS).await?;
    let mut builder = None;
    for (k, v) in rows {
        let hk = layout::parse_history_key(&k)?;
        push_chunk(&mut builder, &k, &hk, v)?;
    }
    if let Some(b) = &builder
        && !b.complete()
    {
        return Err(StoreError::corrupt(&b.engine_key, "value is incomplete"));
    }
    Ok(builder)
}

/// Reads the value version of `key` at `revision` (`None` if absent or a tombstone).
pub(crate) async fn read_version<S: Snapshot>(
    snap: &S,
    key: &str,
    revision: Revision,
) -> Result<Option<KeyValue>> {
    finish_version(read_version_raw(snap, key, revision).await?)
}

impl VersionBuilder {
    /// The version's header.
    pub(crate) fn header(&self) -> HistoryHeader {
        self.header
    }
}
