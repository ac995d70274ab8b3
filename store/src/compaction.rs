//! Compaction: drops history older than a revision so the store does not grow without bound.
//!
//! After compacting to `C`, reads at revisions `>= C` still see exactly what they saw before;
//! reads, list continue tokens and watches older than `C` fail with a distinct "compacted"
//! error (the API's 410 Gone). The compaction point is recorded first, in its own transaction,
//! and every read checks it in the same snapshot it reads data from, so no reader ever sees a
//! half-compacted past. Deletions then proceed in short batches (FoundationDB's 5 s / 10 MB
//! transaction limits). A background compactor samples the current revision and compacts to
//! the revision that was current one window ago (default 5 minutes), like etcd's periodic
//! compactor.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::engine::{Engine, Mutation, Snapshot, WriteProgram};
use crate::error::{Result, StoreError};
use crate::layout::{self, HistoryHeader, Kind, Meta, compacted_key, meta_key};
use crate::mvcc::{Inner, Store, read_compacted, successor};
use crate::revision::Revision;

/// History rows examined per compaction batch.
const COMPACT_BATCH: usize = 4096;

/// Settings of the background compactor.
#[derive(Clone, Debug)]
pub struct CompactionOptions {
    /// How much history to keep (default 5 minutes).
    pub window: Duration,
    /// How often to sample the revision and compact (default: a tenth of the window).
    pub interval: Duration,
}

impl Default for CompactionOptions {
    fn default() -> Self {
        Self::with_window(Duration::from_secs(300))
    }
}

impl CompactionOptions {
    /// A window with the default sampling interval (a tenth of it, at least 10 ms).
    pub fn with_window(window: Duration) -> Self {
        Self {
            window,
            interval: (window / 10).max(Duration::from_millis(10)),
        }
    }
}

/// What one compaction did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactionStats {
    /// The compaction point after the call.
    pub compacted: Revision,
    /// Old versions (values and tombstones) removed.
    pub versions_removed: u64,
    /// Keys whose deletion was final and whose meta record was removed.
    pub keys_removed: u64,
}

impl<E: Engine> Store<E> {
    /// Compacts history to `target`: afterwards reads at revisions below `target` fail with
    /// [`StoreError::Compacted`]. Compacting to a revision at or below the current compaction
    /// point does nothing.
    pub async fn compact(&self, target: Revision) -> Result<CompactionStats> {
        compact(&self.inner, target).await
    }
}

pub(crate) async fn compact<E: Engine>(
    inner: &Inner<E>,
    target: Revision,
) -> Result<CompactionStats> {
    let snap = inner.engine.snapshot().await?;
    if target > snap.revision() {
        return Err(StoreError::FutureRevision {
            requested: target,
            current: snap.revision(),
        });
    }
    let marker = inner
        .engine
        .write(WriteProgram {
            reads: vec![compacted_key()],
            plan: Box::new(move |reads| {
                let key = compacted_key();
                let current = match reads.first() {
                    Some(Some(raw)) => Revision::decode(raw)
                        .ok_or_else(|| StoreError::corrupt(&key, "bad compaction point"))?,
                    _ => Revision::ZERO,
                };
                if target <= current {
                    return Ok((Vec::new(), (false, current)));
                }
                let put = Mutation::Put {
                    key,
                    value: target.encode().to_vec(),
                };
                Ok((vec![put], (true, target)))
            }),
        })
        .await?;
    let (advanced, compacted) = marker.output;
    let mut stats = CompactionStats {
        compacted,
        ..Default::default()
    };
    if !advanced {
        return Ok(stats);
    }
    remove_history(inner, compacted, &mut stats).await?;
    let (start, end) = layout::log_range_upto(compacted);
    inner
        .engine
        .write(WriteProgram {
            reads: Vec::new(),
            plan: Box::new(move |_| {
                let clear = Mutation::ClearRange {
                    start: start.clone(),
                    end: end.clone(),
                };
                Ok((vec![clear], ()))
            }),
        })
        .await?;
    tracing::debug!(?stats, "compacted");
    Ok(stats)
}

/// The newest version at or below the compaction point seen so far for the current key.
struct Candidate {
    key: String,
    revision: Revision,
    kind: Kind,
}

/// Deletes every version at or below `upto` that is shadowed by a newer version at or below
/// `upto`, and tombstones at or below `upto` (with their meta record once the deletion is the
/// key's latest state).
async fn remove_history<E: Engine>(
    inner: &Inner<E>,
    upto: Revision,
    stats: &mut CompactionStats,
) -> Result<()> {
    let (mut start, end) = layout::history_prefix_range("");
    let mut candidate: Option<Candidate> = None;
    loop {
        let snap = inner.engine.snapshot().await?;
        let rows = snap.scan(&start, &end, COMPACT_BATCH).await?;
        let more = rows.len() == COMPACT_BATCH;
        let mut clears: Vec<(String, Revision)> = Vec::new();
        let mut tombstones: Vec<(String, Revision)> = Vec::new();
        for (k, v) in &rows {
            let hk = layout::parse_history_key(k)?;
            if hk.chunk != 0 {
                continue;
            }
            let same_key = candidate.as_ref().is_some_and(|c| c.key == hk.key);
            if !same_key
                && let Some(c) = candidate.take()
                && c.kind == Kind::Delete
            {
                tombstones.push((c.key, c.revision));
            }
            if hk.revision > upto {
                continue;
            }
            let (header, _) = HistoryHeader::decode(k, v)?;
            if let Some(c) = candidate.take() {
                clears.push((c.key, c.revision));
            }
            candidate = Some(Candidate {
                key: hk.key.to_string(),
                revision: hk.revision,
                kind: header.kind,
            });
        }
        if !more
            && let Some(c) = candidate.take()
            && c.kind == Kind::Delete
        {
            tombstones.push((c.key, c.revision));
        }
        if !clears.is_empty() || !tombstones.is_empty() {
            apply_removals(inner, clears, tombstones, stats).await?;
        }
        match rows.last() {
            Some((k, _)) if more => start = successor(k),
            _ => return Ok(()),
        }
    }
}

async fn apply_removals<E: Engine>(
    inner: &Inner<E>,
    clears: Vec<(String, Revision)>,
    tombstones: Vec<(String, Revision)>,
    stats: &mut CompactionStats,
) -> Result<()> {
    let versions = (clears.len() + tombstones.len()) as u64;
    let reads = tombstones.iter().map(|(k, _)| meta_key(k)).collect();
    let committed = inner
        .engine
        .write(WriteProgram {
            reads,
            plan: Box::new(move |metas| {
                let mut mutations = Vec::with_capacity(clears.len() + 2 * tombstones.len());
                for (key, revision) in clears.iter().chain(tombstones.iter()) {
                    let (start, end) = layout::history_version_range(key, *revision);
                    mutations.push(Mutation::ClearRange { start, end });
                }
                let mut keys_removed = 0u64;
                for ((key, revision), raw) in tombstones.iter().zip(metas) {
                    let mk = meta_key(key);
                    let Some(raw) = raw else { continue };
                    let meta = Meta::decode(&mk, raw)?;
                    // Only if the deletion is still the key's latest state (not re-created).
                    if meta.kind == Kind::Delete && meta.mod_revision == *revision {
                        mutations.push(Mutation::Clear { key: mk });
                        keys_removed += 1;
                    }
                }
                Ok((mutations, keys_removed))
            }),
        })
        .await?;
    stats.versions_removed += versions;
    stats.keys_removed += committed.output;
    Ok(())
}

/// Starts the periodic compactor; it ends with the store.
pub(crate) fn spawn_compactor<E: Engine>(
    inner: &Arc<Inner<E>>,
    options: CompactionOptions,
) -> tokio::task::JoinHandle<()> {
    let shutdown = inner.shutdown.subscribe();
    tokio::spawn(compactor(Arc::downgrade(inner), options, shutdown))
}

async fn compactor<E: Engine>(
    weak: Weak<Inner<E>>,
    options: CompactionOptions,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut samples: VecDeque<(Instant, Revision)> = VecDeque::new();
    let mut ticker = tokio::time::interval(options.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = ticker.tick() => {}
        }
        let Some(inner) = weak.upgrade() else { return };
        let now = Instant::now();
        match inner.engine.snapshot().await {
            Ok(snap) => samples.push_back((now, snap.revision())),
            Err(e) => tracing::warn!(error = %e, "compactor could not read the revision"),
        }
        // The newest sample at least one window old is the compaction target.
        let mut target = None;
        while let Some((at, rev)) = samples.front().copied() {
            if now.duration_since(at) < options.window {
                break;
            }
            target = Some(rev);
            samples.pop_front();
        }
        let Some(target) = target else { continue };
        let current = match inner.engine.snapshot().await {
            Ok(snap) => read_compacted(&snap).await.unwrap_or(Revision::ZERO),
            Err(_) => continue,
        };
        if target <= current {
            continue;
        }
        if let Err(e) = compact(&inner, target).await {
            tracing::warn!(error = %e, %target, "compaction failed; will retry");
        }
    }
}
