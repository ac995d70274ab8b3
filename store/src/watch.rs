//! Watch: every committed change delivered exactly once, in revision order, to every watcher
//! of a matching prefix.
//!
//! One *tail* task per store reads the change log after each commit hint and publishes
//! resolved events into a broadcast ring; watchers filter the shared events by prefix, so
//! delivery costs no store read per watcher. A watcher that starts in the past, or falls
//! behind the ring, catches up from the log in the store and then rejoins the ring; because it
//! subscribes to the ring *before* reading the store and skips revisions it already delivered,
//! there is no gap and no duplicate. A watcher whose position was compacted away gets
//! [`StoreError::WatchExpired`].

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::broadcast;

use crate::engine::{Engine, Snapshot};
use crate::error::{Result, StoreError};
use crate::layout::{self, Kind, LogEntry};
use crate::mvcc::{Inner, KeyValue, Store, read_compacted, read_version, read_version_raw};
use crate::revision::Revision;

/// Kind of change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// Created or updated.
    Put,
    /// Deleted.
    Delete,
}

/// One committed change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The new version; for deletes the key with the deletion revision and an empty value.
    pub kv: KeyValue,
    /// The version this change replaced, if any (always present for deletes).
    pub prev: Option<KeyValue>,
}

impl Event {
    /// Revision of the change.
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// Events in the shared ring by default. Sized so that 1,000 watchers and bursts of writes
/// rarely lag.
pub const DEFAULT_RING_CAPACITY: usize = 16 * 1024;
/// Log rows per read, for the tail and for catch-up.
const LOG_BATCH: usize = 512;
/// How often the tail looks for changes without a hint (other processes on engines that
/// cannot notify, lost hints).
const TAIL_POLL: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
enum RingMsg {
    Event(Arc<Event>),
    /// The tail itself fell behind compaction; watchers at or before this point are expired.
    Expired(Revision),
    /// The store is closing: every watcher ends with [`StoreError::Closed`].
    Closed,
}

struct HubState {
    sender: broadcast::Sender<RingMsg>,
    published: Revision,
    /// The last `capacity` published events: every event after `floor` up to `published`.
    /// A watcher starting at or after `floor` replays from here instead of the store's log.
    recent: VecDeque<Arc<Event>>,
    floor: Revision,
    capacity: usize,
    /// Set by [`WatchHub::close`]: no new watchers.
    closed: bool,
}

/// The shared tail's output.
pub(crate) struct WatchHub {
    state: Mutex<HubState>,
}

impl WatchHub {
    pub(crate) fn new(start: Revision, capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self {
            state: Mutex::new(HubState {
                sender,
                published: start,
                recent: VecDeque::new(),
                floor: start,
                capacity: capacity.max(1),
                closed: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        // A poisoned lock only means a panic elsewhere; the state is a revision and a sender,
        // both always valid.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn published(&self) -> Revision {
        self.lock().published
    }

    /// Publishes under the lock so that subscribe-and-read-position is atomic with it.
    fn publish(&self, msg: RingMsg, revision: Revision) {
        let mut state = self.lock();
        state.published = state.published.max(revision);
        match &msg {
            RingMsg::Event(event) => {
                state.recent.push_back(Arc::clone(event));
                while state.recent.len() > state.capacity {
                    if let Some(old) = state.recent.pop_front() {
                        state.floor = old.revision();
                    }
                }
            }
            // The tail skipped ahead: nothing before this point can be replayed from memory.
            RingMsg::Expired(_) => {
                state.recent.clear();
                state.floor = state.published;
            }
            RingMsg::Closed => state.closed = true,
        }
        // No receivers is fine.
        let _ = state.sender.send(msg);
    }

    /// Subscribes, and returns the published position and, when memory still holds every
    /// event after `after`, those events (so the new watcher need not read the log).
    fn subscribe(&self, after: Revision) -> Result<Subscription> {
        let state = self.lock();
        if state.closed {
            return Err(StoreError::Closed);
        }
        let replay = (after >= state.floor).then(|| {
            state
                .recent
                .iter()
                .filter(|e| e.revision() > after)
                .cloned()
                .collect()
        });
        Ok(Subscription {
            rx: state.sender.subscribe(),
            published: state.published,
            replay,
        })
    }

    /// Ends every watcher (they get [`StoreError::Closed`] and drop their store handles)
    /// and refuses new ones: what lets [`Store::close`] find itself the last handle.
    pub(crate) fn close(&self) {
        let published = self.published();
        self.publish(RingMsg::Closed, published);
    }
}

/// What a new watcher starts from.
struct Subscription {
    rx: broadcast::Receiver<RingMsg>,
    published: Revision,
    replay: Option<Vec<Arc<Event>>>,
}

/// Resolves a log row into an event.
async fn resolve<S: Snapshot>(snap: &S, raw_key: &[u8], raw_value: &[u8]) -> Result<Event> {
    let revision = layout::parse_log_key(raw_key)?;
    let entry = LogEntry::decode(raw_key, raw_value)?;
    let prev = if entry.prev_revision == Revision::ZERO {
        None
    } else {
        read_version(snap, &entry.key, entry.prev_revision).await?
    };
    match entry.kind {
        Kind::Put => {
            let kv = read_version(snap, &entry.key, revision)
                .await?
                .ok_or_else(|| StoreError::corrupt(raw_key, "logged version is missing"))?;
            Ok(Event {
                kind: EventKind::Put,
                kv,
                prev,
            })
        }
        Kind::Delete => {
            let tomb = read_version_raw(snap, &entry.key, revision)
                .await?
                .ok_or_else(|| StoreError::corrupt(raw_key, "logged tombstone is missing"))?;
            let header = tomb.header();
            Ok(Event {
                kind: EventKind::Delete,
                kv: KeyValue {
                    key: entry.key,
                    value: Bytes::new(),
                    create_revision: header.create_revision,
                    mod_revision: revision,
                    version: 0,
                },
                prev,
            })
        }
    }
}

/// Reads up to one batch of log events after `after`. Returns the events and whether the
/// snapshot held no more.
async fn read_log_after<S: Snapshot>(snap: &S, after: Revision) -> Result<(Vec<Event>, bool)> {
    let compacted = read_compacted(snap).await?;
    if after < compacted {
        return Err(StoreError::WatchExpired {
            position: after,
            compacted,
        });
    }
    let (start, end) = layout::log_range_after(after);
    let rows = snap.scan(&start, &end, LOG_BATCH).await?;
    let done = rows.len() < LOG_BATCH;
    let mut events = Vec::with_capacity(rows.len());
    for (k, v) in &rows {
        events.push(resolve(snap, k, v).await?);
    }
    Ok((events, done))
}

/// Starts the store's tail task. It holds only a weak reference and ends with the store.
pub(crate) fn spawn_tail<E: Engine>(inner: &Arc<Inner<E>>) -> tokio::task::JoinHandle<()> {
    let weak = Arc::downgrade(inner);
    let hint = inner.engine.change_hint();
    let shutdown = inner.shutdown.subscribe();
    tokio::spawn(tail(weak, hint, shutdown))
}

async fn tail<E: Engine>(
    weak: Weak<Inner<E>>,
    mut hint: tokio::sync::watch::Receiver<u64>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let Some(inner) = weak.upgrade() else { return };
        if let Err(e) = drain(&inner).await {
            tracing::warn!(error = %e, "watch tail read failed; retrying");
            drop(inner);
            tokio::select! {
                _ = shutdown.changed() => return,
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            continue;
        }
        drop(inner);
        tokio::select! {
            _ = shutdown.changed() => return,
            changed = hint.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(TAIL_POLL) => {}
        }
    }
}

async fn drain<E: Engine>(inner: &Inner<E>) -> Result<()> {
    loop {
        let from = inner.hub.published();
        let snap = inner.engine.snapshot().await?;
        let (events, done) = match read_log_after(&snap, from).await {
            Ok(r) => r,
            Err(StoreError::WatchExpired { compacted, .. }) => {
                tracing::warn!(%from, %compacted, "watch tail fell behind compaction");
                inner.hub.publish(RingMsg::Expired(compacted), compacted);
                continue;
            }
            Err(e) => return Err(e),
        };
        for event in events {
            let revision = event.revision();
            inner.hub.publish(RingMsg::Event(Arc::new(event)), revision);
        }
        if done {
            return Ok(());
        }
    }
}

enum Mode {
    CatchUp,
    Live,
    /// The store closed: every further call ends with [`StoreError::Closed`].
    Closed,
}

/// A stream of changes under one prefix, after a starting revision.
pub struct Watcher<E: Engine> {
    inner: Arc<Inner<E>>,
    prefix: String,
    position: Revision,
    rx: broadcast::Receiver<RingMsg>,
    buffer: VecDeque<Arc<Event>>,
    mode: Mode,
}

impl<E: Engine> Store<E> {
    /// Watches every key starting with `prefix` for changes with a revision strictly after
    /// `after`. Fails with [`StoreError::Compacted`] if `after` is older than the compaction
    /// point.
    pub async fn watch(&self, prefix: &str, after: Revision) -> Result<Watcher<E>> {
        layout::validate_prefix(prefix)?;
        let Subscription {
            rx,
            published,
            replay,
        } = self.inner.hub.subscribe(after)?;
        let snap = self.inner.engine.snapshot().await?;
        let compacted = read_compacted(&snap).await?;
        if after < compacted {
            return Err(StoreError::Compacted {
                requested: after,
                compacted,
            });
        }
        let (position, buffer, mode) = match replay {
            _ if after >= published => (after, VecDeque::new(), Mode::Live),
            // Everything after `after` is still in memory: replay it, then go live.
            Some(events) => (
                published,
                events
                    .into_iter()
                    .filter(|e| e.kv.key.starts_with(prefix))
                    .collect(),
                Mode::Live,
            ),
            None => (after, VecDeque::new(), Mode::CatchUp),
        };
        Ok(Watcher {
            inner: Arc::clone(&self.inner),
            prefix: prefix.to_string(),
            position,
            rx,
            buffer,
            mode,
        })
    }
}

impl<E: Engine> Watcher<E> {
    /// The revision up to which this watcher has delivered every change (matching or not);
    /// the API's bookmarks report it. Events read but not yet returned by [`Self::next`] are
    /// not covered, so a bookmark never runs ahead of an event.
    pub fn revision(&self) -> Revision {
        match self.buffer.front() {
            Some(next) => Revision(next.revision().0.saturating_sub(1)),
            None => self.position,
        }
    }

    /// Waits for the next matching change.
    pub async fn next(&mut self) -> Result<Arc<Event>> {
        loop {
            if let Some(e) = self.buffer.pop_front() {
                return Ok(e);
            }
            match self.mode {
                Mode::CatchUp => self.catch_up().await?,
                Mode::Closed => return Err(StoreError::Closed),
                Mode::Live => match self.rx.recv().await {
                    Ok(RingMsg::Event(e)) => {
                        if e.revision() <= self.position {
                            continue;
                        }
                        self.position = e.revision();
                        if e.kv.key.starts_with(&self.prefix) {
                            return Ok(e);
                        }
                    }
                    Ok(RingMsg::Expired(compacted)) => {
                        if self.position < compacted {
                            return Err(StoreError::WatchExpired {
                                position: self.position,
                                compacted,
                            });
                        }
                    }
                    Ok(RingMsg::Closed) => {
                        self.mode = Mode::Closed;
                        return Err(StoreError::Closed);
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => self.mode = Mode::CatchUp,
                    Err(broadcast::error::RecvError::Closed) => return Err(StoreError::Closed),
                },
            }
        }
    }

    /// Reads one batch of the log from the store; switches to live when caught up.
    async fn catch_up(&mut self) -> Result<()> {
        let snap = self.inner.engine.snapshot().await?;
        let (events, done) = read_log_after(&snap, self.position).await?;
        for e in events {
            self.position = e.revision();
            if e.kv.key.starts_with(&self.prefix) {
                self.buffer.push_back(Arc::new(e));
            }
        }
        if done {
            // The snapshot held nothing more: every change up to its revision is delivered.
            self.position = self.position.max(snap.revision());
            self.mode = Mode::Live;
        }
        Ok(())
    }

    /// The watcher as a `Stream` of events (ends after the first error).
    pub fn into_stream(self) -> impl futures::Stream<Item = Result<Arc<Event>>> {
        futures::stream::unfold(Some(self), |state| async move {
            let mut w = state?;
            match w.next().await {
                Ok(e) => Some((Ok(e), Some(w))),
                Err(e) => Some((Err(e), None)),
            }
        })
    }
}
