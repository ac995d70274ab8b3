//! The FoundationDB engine (cargo feature `fdb`): the distributed engine for HA and scale.
//!
//! It stays thin; the MVCC layer above does all revision, list, watch and compaction logic.
//! What is FDB-specific lives here:
//! - **Revisions from versionstamps.** Stamped keys and values are written with
//!   `SET_VERSIONSTAMPED_KEY` / `SET_VERSIONSTAMPED_VALUE`, so FDB assigns the revision at
//!   commit; no counter key is read or written, and writers never conflict on one.
//! - **Snapshots** are read-only transactions; their revision is `read_version << 16 | 0xFFFF`
//!   (every versionstamp `(version, batch)` with `version <= read_version` is visible).
//! - **Limits.** Every transaction carries a 5 s timeout (which also bounds its retries),
//!   values are chunked under 100 KB by the layout, and the MVCC layer keeps each transaction
//!   to one small program or one scan batch (well under 10 MB).
//! - **Retries.** Retryable errors go through FDB's `on_error` backoff; a commit whose result
//!   is unknown is reported as [`StoreError::CommitUnknown`] instead of being blindly retried
//!   (a retried create could otherwise report "already exists" for its own write).
//! - **Cross-process watch.** Every write also sets one of 16 notify keys (a blind
//!   versionstamped write, so it never conflicts); a background task holds FDB watches on them
//!   and turns a change into the engine's change hint, with a 1 s poll as a fallback. Two
//!   apiservers on one cluster thus see each other's writes through watch, in the same order.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use foundationdb::options::{MutationType, StreamingMode, TransactionOption};
use foundationdb::{Database, FdbError, RangeOption, Transaction};
use tokio::sync::watch;

use crate::engine::{Committed, Engine, Mutation, Snapshot, Stamped, WriteProgram};
use crate::error::{Result, StoreError};
use crate::revision::{REVISION_LEN, Revision};

const NAME: &str = "fdb";
/// Transaction timeout, which bounds the whole retry loop (FDB API >= 610).
const TIMEOUT_MS: i32 = 5_000;
const NOTIFY_SHARDS: u8 = 16;
const NOTIFY_POLL: Duration = Duration::from_secs(1);

fn fdb_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::engine(NAME, e)
}

/// The FDB client network: started once per process, kept for its lifetime.
static NETWORK: OnceLock<std::result::Result<Mutex<foundationdb::api::NetworkAutoStop>, String>> =
    OnceLock::new();

fn boot_network() -> Result<()> {
    let booted = NETWORK.get_or_init(|| {
        let builder = foundationdb::api::FdbApiBuilder::default()
            .build()
            .map_err(|e| e.to_string())?;
        #[expect(
            unsafe_code,
            reason = "starting the FDB client network thread is unsafe in the bindings; it \
                      happens exactly once per process (guarded by the OnceLock) and the \
                      handle is kept for the process lifetime, as the bindings require"
        )]
        let network = unsafe { builder.boot() }.map_err(|e| e.to_string())?;
        Ok(Mutex::new(network))
    });
    match booted {
        Ok(_) => Ok(()),
        Err(e) => Err(StoreError::engine(
            NAME,
            format!("starting the client network: {e}"),
        )),
    }
}

/// The FoundationDB engine (see the module docs).
pub struct FdbEngine {
    db: Arc<Database>,
    prefix: Arc<[u8]>,
    notify_shard: AtomicU8,
    hint_tx: Arc<watch::Sender<u64>>,
    hint: watch::Receiver<u64>,
    notifier: tokio::task::JoinHandle<()>,
}

impl FdbEngine {
    /// Connects to the cluster in `cluster_file` and keeps every key under `prefix` (a
    /// non-empty subspace that must not start with `0xFF`, FDB's system keyspace). Must be
    /// called inside a tokio runtime.
    pub fn open(cluster_file: &str, prefix: &[u8]) -> Result<Self> {
        if prefix.is_empty() || prefix.first() == Some(&0xFF) {
            return Err(StoreError::InvalidKey(
                "FoundationDB prefix must be non-empty and outside the system keyspace".into(),
            ));
        }
        boot_network()?;
        let db = Arc::new(Database::new(Some(cluster_file)).map_err(fdb_err)?);
        let prefix: Arc<[u8]> = Arc::from(prefix);
        let (hint_tx, hint) = watch::channel(0u64);
        let hint_tx = Arc::new(hint_tx);
        let notifier = tokio::spawn(notifier(
            Arc::clone(&db),
            Arc::clone(&prefix),
            Arc::clone(&hint_tx),
        ));
        Ok(Self {
            db,
            prefix,
            notify_shard: AtomicU8::new(0),
            hint_tx,
            hint,
            notifier,
        })
    }

    fn key(&self, key: &[u8]) -> Vec<u8> {
        prefixed(&self.prefix, key)
    }

    fn new_transaction(&self) -> Result<Transaction> {
        let trx = self.db.create_trx().map_err(fdb_err)?;
        trx.set_option(TransactionOption::Timeout(TIMEOUT_MS))
            .map_err(fdb_err)?;
        Ok(trx)
    }

    /// Applies the mutations of one program to `trx`.
    fn apply(&self, trx: &Transaction, mutations: &[Mutation]) -> Result<()> {
        for m in mutations {
            match m {
                Mutation::Put { key, value } => trx.set(&self.key(key), value),
                Mutation::PutStampedKey { key, value } => {
                    let param = stamped_param(&self.prefix, key)?;
                    trx.atomic_op(&param, value, MutationType::SetVersionstampedKey);
                }
                Mutation::PutStampedValue { key, value } => {
                    let param = stamped_param(&[], value)?;
                    trx.atomic_op(&self.key(key), &param, MutationType::SetVersionstampedValue);
                }
                Mutation::Clear { key } => trx.clear(&self.key(key)),
                Mutation::ClearRange { start, end } => {
                    trx.clear_range(&self.key(start), &self.key(end));
                }
            }
        }
        Ok(())
    }
}

impl Drop for FdbEngine {
    fn drop(&mut self) {
        self.notifier.abort();
    }
}

fn prefixed(prefix: &[u8], key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + key.len());
    k.extend_from_slice(prefix);
    k.extend_from_slice(key);
    k
}

fn notify_key(prefix: &[u8], shard: u8) -> Vec<u8> {
    let mut k = prefixed(prefix, b"\xFFnotify/");
    k.push(shard);
    k
}

/// Bytes with a placeholder, prefixed, plus the 4-byte little-endian placeholder offset that
/// the versionstamp mutations take (API >= 520).
fn stamped_param(prefix: &[u8], stamped: &Stamped) -> Result<Vec<u8>> {
    let offset = u32::try_from(prefix.len() + stamped.offset)
        .map_err(|_| StoreError::InvalidKey("key too long".into()))?;
    if stamped.offset + REVISION_LEN > stamped.bytes.len() {
        return Err(StoreError::engine(NAME, "placeholder outside the bytes"));
    }
    let mut p = prefixed(prefix, &stamped.bytes);
    p.extend_from_slice(&offset.to_le_bytes());
    Ok(p)
}

fn revision_of_read_version(version: i64) -> Result<Revision> {
    let v = u64::try_from(version).map_err(|_| fdb_err("negative read version"))?;
    if v >= 1 << 48 {
        return Err(StoreError::RevisionOverflow);
    }
    Ok(Revision((v << 16) | 0xFFFF))
}

fn is_retryable(e: FdbError) -> bool {
    e.is_retryable()
}

/// Watches the notify keys and turns changes into change hints.
async fn notifier(db: Arc<Database>, prefix: Arc<[u8]>, hint: Arc<watch::Sender<u64>>) {
    loop {
        let watches = async {
            let trx = db.create_trx().map_err(fdb_err)?;
            let futures: Vec<_> = (0..NOTIFY_SHARDS)
                .map(|s| trx.watch(&notify_key(&prefix, s)))
                .collect();
            // Watches become active when their transaction commits.
            trx.commit().await.map_err(|e| fdb_err(*e))?;
            Ok::<_, StoreError>(futures)
        }
        .await;
        match watches {
            Ok(futures) => {
                tokio::select! {
                    _ = futures::future::select_all(futures) => {}
                    () = tokio::time::sleep(NOTIFY_POLL) => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "fdb notify watch failed");
                tokio::time::sleep(NOTIFY_POLL).await;
            }
        }
        hint.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// A read-only FDB transaction.
pub struct FdbSnapshot {
    trx: Transaction,
    prefix: Arc<[u8]>,
    revision: Revision,
}

impl Snapshot for FdbSnapshot {
    fn revision(&self) -> Revision {
        self.revision
    }

    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let value = self
            .trx
            .get(&prefixed(&self.prefix, key), true)
            .await
            .map_err(fdb_err)?;
        Ok(value.map(|v| v.to_vec()))
    }

    async fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        if start >= end || limit == 0 {
            return Ok(out);
        }
        let mut opt =
            RangeOption::from((prefixed(&self.prefix, start), prefixed(&self.prefix, end)));
        opt.limit = Some(limit);
        opt.mode = StreamingMode::WantAll;
        let mut next = Some(opt);
        while let Some(opt) = next.take() {
            let rows = self.trx.get_range(&opt, 1, true).await.map_err(fdb_err)?;
            for kv in rows.iter() {
                let key = kv
                    .key()
                    .strip_prefix(&*self.prefix)
                    .ok_or_else(|| fdb_err("key outside the subspace"))?;
                out.push((key.to_vec(), kv.value().to_vec()));
            }
            if out.len() < limit {
                next = opt.next_range(&rows).map(|mut o| {
                    o.limit = Some(limit - out.len());
                    o
                });
            }
        }
        Ok(out)
    }
}

impl Engine for FdbEngine {
    type Snapshot = FdbSnapshot;

    fn name(&self) -> &'static str {
        NAME
    }

    async fn snapshot(&self) -> Result<FdbSnapshot> {
        let trx = self.new_transaction()?;
        let version = trx.get_read_version().await.map_err(fdb_err)?;
        Ok(FdbSnapshot {
            trx,
            prefix: Arc::clone(&self.prefix),
            revision: revision_of_read_version(version)?,
        })
    }

    async fn write<T: Send + 'static>(&self, program: WriteProgram<T>) -> Result<Committed<T>> {
        let mut trx = self.new_transaction()?;
        loop {
            let mut reads = Vec::with_capacity(program.reads.len());
            let mut read_error = None;
            for key in &program.reads {
                match trx.get(&self.key(key), false).await {
                    Ok(v) => reads.push(v.map(|s| s.to_vec())),
                    Err(e) => {
                        read_error = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = read_error {
                if !is_retryable(e) {
                    return Err(fdb_err(e));
                }
                trx = trx.on_error(e).await.map_err(fdb_err)?;
                continue;
            }
            let (mutations, output) = (program.plan)(&reads)?;
            self.apply(&trx, &mutations)?;
            let stamped = mutations.iter().any(Mutation::is_stamped);
            let versionstamp = if stamped {
                let shard = self.notify_shard.fetch_add(1, Ordering::Relaxed) % NOTIFY_SHARDS;
                let notify = Stamped {
                    bytes: vec![0; REVISION_LEN],
                    offset: 0,
                };
                trx.atomic_op(
                    &notify_key(&self.prefix, shard),
                    &stamped_param(&[], &notify)?,
                    MutationType::SetVersionstampedValue,
                );
                Some(trx.get_versionstamp())
            } else {
                None
            };
            match trx.commit().await {
                Ok(_) => {
                    let revision = match versionstamp {
                        Some(f) => {
                            let stamp = f.await.map_err(fdb_err)?;
                            Some(Revision::decode(&stamp).ok_or(StoreError::RevisionOverflow)?)
                        }
                        None => None,
                    };
                    self.hint_tx.send_modify(|n| *n = n.wrapping_add(1));
                    return Ok(Committed { output, revision });
                }
                Err(e) => {
                    if e.is_maybe_committed() {
                        return Err(StoreError::CommitUnknown(e.to_string()));
                    }
                    if !is_retryable(*e) {
                        return Err(fdb_err(*e));
                    }
                    trx = e.on_error().await.map_err(fdb_err)?;
                }
            }
        }
    }

    fn change_hint(&self) -> watch::Receiver<u64> {
        self.hint.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_param_appends_le_offset_including_prefix() {
        let s = Stamped {
            bytes: vec![b'l', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            offset: 1,
        };
        let p = stamped_param(b"pre", &s).unwrap();
        assert_eq!(&p[..3], b"pre");
        assert_eq!(&p[p.len() - 4..], &4u32.to_le_bytes());
    }

    #[test]
    fn read_version_revision_is_above_every_stamp_of_that_version() {
        let r = revision_of_read_version(5).unwrap();
        let stamp = Revision::decode(&[0, 0, 0, 0, 0, 0, 0, 5, 0xFF, 0xFF]).unwrap();
        assert_eq!(r, stamp);
        assert!(revision_of_read_version(1 << 48).is_err());
    }
}
