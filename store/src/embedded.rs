//! The embedded engine: one redb file, durable commits, group commit.
//!
//! redb allows one write transaction at a time and fsyncs on every durable commit. A dedicated
//! committer thread takes every write program that is waiting, runs them one after another
//! inside a single redb transaction (each program sees the effects of the ones before it and
//! gets its own revision), commits once — one fsync for the whole group — and only then
//! answers every caller. Under concurrency the group grows by itself while the previous fsync
//! is in flight, so throughput scales with writers without weakening durability: nothing is
//! acknowledged before it is on disk. Reads use redb's MVCC snapshots; range scans run on
//! tokio's blocking pool.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;

use redb::{Database, ReadOnlyTable, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{oneshot, watch};

use crate::engine::{Committed, Engine, Mutation, Snapshot, WriteProgram};
use crate::error::{Result, StoreError};
use crate::revision::Revision;

const NAME: &str = "embedded";
const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("mvcc");
const STATE: TableDefinition<&str, u64> = TableDefinition::new("engine");
const REVISION_KEY: &str = "revision";
/// Most programs in one group commit.
const MAX_GROUP: usize = 1024;
/// The page cache the server keeps of the database file by default. redb's own default is
/// 1 GiB, which a growing cluster fills: the server's memory then grows with its data.
/// Reads of pages beyond it go to the kernel's page cache, a copy away.
pub const DEFAULT_CACHE_BYTES: usize = 64 * 1024 * 1024;
/// Scans with at most this many rows run inline instead of on the blocking pool: reading one
/// version (at most [`crate::layout::MAX_CHUNKS`] rows) is a few page reads.
const INLINE_SCAN_ROWS: usize = 64;

fn engine_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::engine(NAME, e)
}

/// A write program waiting for the committer, with its type erased.
trait Job: Send {
    fn reads(&self) -> &[Vec<u8>];
    /// Plans against the values read; `None` if the program rejected the write.
    fn plan(&mut self, reads: &[Option<Vec<u8>>]) -> Option<Vec<Mutation>>;
    /// Answers the caller once the group's fate is known.
    fn finish(self: Box<Self>, group: std::result::Result<Option<Revision>, String>);
}

struct TypedJob<T> {
    program: WriteProgram<T>,
    output: Option<Result<T>>,
    reply: oneshot::Sender<Result<Committed<T>>>,
}

impl<T: Send + 'static> Job for TypedJob<T> {
    fn reads(&self) -> &[Vec<u8>] {
        &self.program.reads
    }

    fn plan(&mut self, reads: &[Option<Vec<u8>>]) -> Option<Vec<Mutation>> {
        match (self.program.plan)(reads) {
            Ok((mutations, output)) => {
                self.output = Some(Ok(output));
                Some(mutations)
            }
            Err(e) => {
                self.output = Some(Err(e));
                None
            }
        }
    }

    fn finish(self: Box<Self>, group: std::result::Result<Option<Revision>, String>) {
        let result = match (group, self.output) {
            // A failed group commits nothing, so even a rejection computed against the
            // group's uncommitted state is reported as the failure.
            (Err(message), _) => Err(StoreError::engine(NAME, message)),
            (Ok(_), Some(Err(e))) => Err(e),
            (Ok(revision), Some(Ok(output))) => Ok(Committed { output, revision }),
            (Ok(_), None) => Err(StoreError::engine(NAME, "program was not planned")),
        };
        // The caller may have gone away; the write is durable either way.
        let _ = self.reply.send(result);
    }
}

/// The embedded engine (see the module docs).
pub struct EmbeddedEngine {
    db: Arc<Database>,
    path: PathBuf,
    queue: Option<mpsc::Sender<Box<dyn Job>>>,
    committer: Option<JoinHandle<()>>,
    hint: watch::Receiver<u64>,
}

impl EmbeddedEngine {
    /// Opens (or creates, mode 0600) the database file at `path`, with a page cache of
    /// [`DEFAULT_CACHE_BYTES`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// Opens (or creates, mode 0600) the database file at `path`, caching at most
    /// `cache_bytes` of its pages in memory.
    pub fn open_with_cache(path: impl AsRef<Path>, cache_bytes: usize) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        create_private_file(&path)?;
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(&path)
            .map_err(engine_err)?;
        {
            let txn = db.begin_write().map_err(engine_err)?;
            txn.open_table(DATA).map_err(engine_err)?;
            txn.open_table(STATE).map_err(engine_err)?;
            txn.commit().map_err(engine_err)?;
        }
        let db = Arc::new(db);
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>();
        let (hint_tx, hint) = watch::channel(0u64);
        let thread_db = Arc::clone(&db);
        let committer = std::thread::Builder::new()
            .name("bulwark-store-committer".into())
            .spawn(move || committer(&thread_db, &rx, &hint_tx))
            .map_err(engine_err)?;
        Ok(Self {
            db,
            path,
            queue: Some(tx),
            committer: Some(committer),
            hint,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Creates the file 0600 if it does not exist (redb initializes an empty file), so the
/// database is never readable by others, not even briefly; an existing file is tightened.
#[cfg(unix)]
fn create_private_file(path: &Path) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(engine_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(engine_err)
}

#[cfg(not(unix))]
fn create_private_file(_path: &Path) -> Result<()> {
    Ok(())
}

impl Drop for EmbeddedEngine {
    fn drop(&mut self) {
        // Closing the queue lets the committer finish what is queued and exit.
        self.queue.take();
        if let Some(handle) = self.committer.take() {
            let _ = handle.join();
        }
    }
}

fn committer(db: &Database, rx: &mpsc::Receiver<Box<dyn Job>>, hint: &watch::Sender<u64>) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        match run_group(db, &mut group) {
            Ok(revisions) => {
                for (job, revision) in group.into_iter().zip(revisions) {
                    job.finish(Ok(revision));
                }
                hint.send_modify(|n| *n = n.wrapping_add(1));
            }
            Err(e) => {
                tracing::error!(error = %e, "embedded store commit failed");
                let message = e.to_string();
                for job in group {
                    job.finish(Err(message.clone()));
                }
            }
        }
    }
}

/// Runs a group in one transaction; returns each program's revision (or `None`).
fn run_group(db: &Database, group: &mut [Box<dyn Job>]) -> Result<Vec<Option<Revision>>> {
    let txn = db.begin_write().map_err(engine_err)?;
    let mut revisions = Vec::with_capacity(group.len());
    {
        let mut data = txn.open_table(DATA).map_err(engine_err)?;
        let mut state = txn.open_table(STATE).map_err(engine_err)?;
        let start = state
            .get(REVISION_KEY)
            .map_err(engine_err)?
            .map(|g| g.value())
            .unwrap_or(0);
        let mut revision = Revision(start);
        for job in group.iter_mut() {
            let mut reads = Vec::with_capacity(job.reads().len());
            for key in job.reads() {
                let value = data.get(key.as_slice()).map_err(engine_err)?;
                reads.push(value.map(|g| g.value().to_vec()));
            }
            let Some(mutations) = job.plan(&reads) else {
                revisions.push(None);
                continue;
            };
            let this = if mutations.iter().any(Mutation::is_stamped) {
                revision = revision.next().ok_or(StoreError::RevisionOverflow)?;
                Some(revision)
            } else {
                None
            };
            let stamp = this.unwrap_or(Revision::ZERO);
            for m in mutations {
                match m {
                    Mutation::Put { key, value } => {
                        data.insert(key.as_slice(), value.as_slice())
                            .map_err(engine_err)?;
                    }
                    Mutation::PutStampedKey { key, value } => {
                        let key = key.fill(stamp);
                        data.insert(key.as_slice(), value.as_slice())
                            .map_err(engine_err)?;
                    }
                    Mutation::PutStampedValue { key, value } => {
                        let value = value.fill(stamp);
                        data.insert(key.as_slice(), value.as_slice())
                            .map_err(engine_err)?;
                    }
                    Mutation::Clear { key } => {
                        data.remove(key.as_slice()).map_err(engine_err)?;
                    }
                    Mutation::ClearRange { start, end } => {
                        data.retain_in(start.as_slice()..end.as_slice(), |_, _| false)
                            .map_err(engine_err)?;
                    }
                }
            }
            revisions.push(this);
        }
        if revision.get() != start {
            state
                .insert(REVISION_KEY, revision.get())
                .map_err(engine_err)?;
        }
    }
    // Durability::Immediate (the default): returns after fsync.
    txn.commit().map_err(engine_err)?;
    Ok(revisions)
}

/// A redb read snapshot.
pub struct EmbeddedSnapshot {
    table: Arc<ReadOnlyTable<&'static [u8], &'static [u8]>>,
    revision: Revision,
}

fn scan_table(
    table: &ReadOnlyTable<&'static [u8], &'static [u8]>,
    start: &[u8],
    end: &[u8],
    limit: usize,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    if start >= end {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for row in table.range(start..end).map_err(engine_err)?.take(limit) {
        let (k, v) = row.map_err(engine_err)?;
        out.push((k.value().to_vec(), v.value().to_vec()));
    }
    Ok(out)
}

impl Snapshot for EmbeddedSnapshot {
    fn revision(&self) -> Revision {
        self.revision
    }

    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        // Inline reads never pend; spend tokio's cooperative budget so that loops of reads
        // still yield to other tasks (and timers) on the runtime.
        tokio::task::consume_budget().await;
        let value = self.table.get(key).map_err(engine_err)?;
        Ok(value.map(|g| g.value().to_vec()))
    }

    async fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if limit <= INLINE_SCAN_ROWS {
            tokio::task::consume_budget().await;
            return scan_table(&self.table, start, end, limit);
        }
        let table = Arc::clone(&self.table);
        let (start, end) = (start.to_vec(), end.to_vec());
        tokio::task::spawn_blocking(move || scan_table(&table, &start, &end, limit))
            .await
            .map_err(engine_err)?
    }
}

impl Engine for EmbeddedEngine {
    type Snapshot = EmbeddedSnapshot;

    fn name(&self) -> &'static str {
        NAME
    }

    async fn snapshot(&self) -> Result<EmbeddedSnapshot> {
        let txn = self.db.begin_read().map_err(engine_err)?;
        let state = txn.open_table(STATE).map_err(engine_err)?;
        let revision = Revision(
            state
                .get(REVISION_KEY)
                .map_err(engine_err)?
                .map(|g| g.value())
                .unwrap_or(0),
        );
        let table = txn.open_table(DATA).map_err(engine_err)?;
        Ok(EmbeddedSnapshot {
            table: Arc::new(table),
            revision,
        })
    }

    async fn write<T: Send + 'static>(&self, program: WriteProgram<T>) -> Result<Committed<T>> {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(TypedJob {
            program,
            output: None,
            reply,
        });
        self.queue
            .as_ref()
            .ok_or(StoreError::Closed)?
            .send(job)
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    fn change_hint(&self) -> watch::Receiver<u64> {
        self.hint.clone()
    }
}
