//! Watch events decoded and serialized once and shared by every watcher that sends them
//! (upstream's "caching object"): with 1,000 watchers on one object, a change is parsed and
//! encoded once, not 1,000 times.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bulwark_store::{Event, EventKind};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::http::error::ApiError;
use crate::storage;

/// How many recent events stay cached.
const CAPACITY: usize = 4096;

/// One store event, decoded.
#[derive(Debug)]
pub struct SharedEvent {
    /// The new object (puts), at the event's revision.
    pub current: Option<Value>,
    /// The replaced object, at its own revision (for selector checks).
    pub prev: Option<Value>,
    /// The deleted object at the deletion revision (deletes).
    pub deleted: Option<Value>,
    lines: Mutex<Vec<(&'static str, Bytes)>>,
}

impl SharedEvent {
    fn decode(event: &Event) -> Result<Self, ApiError> {
        let revision = event.revision().0;
        let prev = event
            .prev
            .as_ref()
            .map(storage::decode_stored)
            .transpose()?;
        let (current, deleted) = match event.kind {
            EventKind::Put => (
                Some(storage::decode_stored_at(&event.kv.value, revision)?),
                None,
            ),
            EventKind::Delete => (
                None,
                event
                    .prev
                    .as_ref()
                    .map(|kv| storage::decode_stored_at(&kv.value, revision))
                    .transpose()?,
            ),
        };
        Ok(Self {
            current,
            prev,
            deleted,
            lines: Mutex::new(Vec::new()),
        })
    }

    /// The JSON watch line `{"type": kind, "object": obj}` for this event, encoded once per
    /// kind (an event's object for a given kind is always the same).
    pub fn json_line(&self, kind: &'static str, obj: &Value) -> Bytes {
        if let Ok(lines) = self.lines.lock()
            && let Some((_, line)) = lines.iter().find(|(k, _)| *k == kind)
        {
            return line.clone();
        }
        let line = encode_line(kind, obj);
        if let Ok(mut lines) = self.lines.lock() {
            lines.push((kind, line.clone()));
        }
        line
    }
}

/// Encodes one watch line.
pub fn encode_line(kind: &str, obj: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(&json!({"type": kind, "object": obj})).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

/// Decoded events by revision, and their insertion order for eviction.
#[derive(Debug, Default)]
struct Entries {
    by_revision: HashMap<u64, Arc<SharedEvent>>,
    order: VecDeque<u64>,
}

/// Recently decoded events, by revision.
#[derive(Debug, Default)]
pub struct EventCache {
    inner: Mutex<Entries>,
}

impl EventCache {
    /// The decoded form of `event`, from the cache or decoded now.
    pub fn get(&self, event: &Event) -> Result<Arc<SharedEvent>, ApiError> {
        let revision = event.revision().0;
        if let Ok(inner) = self.inner.lock()
            && let Some(shared) = inner.by_revision.get(&revision)
        {
            return Ok(Arc::clone(shared));
        }
        let shared = Arc::new(SharedEvent::decode(event)?);
        if let Ok(mut inner) = self.inner.lock() {
            if let Some(existing) = inner.by_revision.get(&revision) {
                return Ok(Arc::clone(existing));
            }
            inner.by_revision.insert(revision, Arc::clone(&shared));
            inner.order.push_back(revision);
            while inner.order.len() > CAPACITY {
                if let Some(old) = inner.order.pop_front() {
                    inner.by_revision.remove(&old);
                }
            }
        }
        Ok(shared)
    }
}
