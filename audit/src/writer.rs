//! The append-only writer. Events go through a bounded queue (a full queue makes callers wait:
//! nothing is dropped) to one writer thread that appends them to the current segment, fsyncs
//! once per batch (group commit: at most one fsync per [`SYNC_WINDOW`]), and appends a signed checkpoint every `checkpoint_every` records or
//! `checkpoint_interval`, exporting the latest one to `checkpoint.json`. Segments
//! (`audit-<first seq>.jsonl`, 0600 in a 0700 directory) rotate by size and age; the oldest
//! beyond `max_segments` are removed.
//!
//! On start the writer continues the chain from the last complete line. If the last segment
//! ends in a torn line (a crash mid-write), it is left as it is and a new segment starts with a
//! recovery record naming it, so the tear is reported by `audit verify`, never hidden.
//!
//! Other components (the posture scanner, rotation, controllers) record through
//! [`AuditSink`]. With a webhook configured, each fsynced batch's events (and the newest
//! checkpoint line) are handed to its bounded buffer ([`crate::webhook`]).

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::chain::{GENESIS, Record, Recovery, SigningKey, line_hash};
use crate::event::{Event, now_micro};
use crate::index::{Fields, SegmentIndex};
use crate::query::{AuditReader, DEFAULT_CACHE_ROWS, LiveIndex};
use crate::webhook::{Outbox, Webhook, WebhookOptions, WebhookStats};
use crate::{AuditError, io};

/// Where and how the log is written.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// The log directory (`<data-dir>/audit`).
    pub dir: PathBuf,
    /// A checkpoint after this many records.
    pub checkpoint_every: u64,
    /// …or after this long with unsigned records.
    pub checkpoint_interval: Duration,
    /// Rotate a segment beyond this size.
    pub max_segment_bytes: u64,
    /// Rotate a segment older than this.
    pub max_segment_age: Duration,
    /// Keep at most this many segments (the oldest are removed).
    pub max_segments: usize,
    /// Queue length before callers wait.
    pub queue: usize,
    /// Where the log's events are also sent (see [`crate::webhook`]); None: nowhere.
    pub webhook: Option<WebhookOptions>,
}

impl AuditOptions {
    /// Defaults for `dir`: a checkpoint every 1,000 records or 10 s, 64 MiB or 24 h segments,
    /// 128 segments kept.
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            checkpoint_every: 1_000,
            checkpoint_interval: Duration::from_secs(10),
            max_segment_bytes: 64 * 1024 * 1024,
            max_segment_age: Duration::from_secs(24 * 3600),
            max_segments: 128,
            queue: 10_000,
            webhook: None,
        }
    }
}

/// Anything that records audit events: the API server, and every component that writes its
/// own events (posture findings, key and certificate rotation, controllers).
pub trait AuditSink: Send + Sync {
    /// Records one event. Waits while the writer is behind; never drops.
    fn record<'a>(&'a self, event: Event) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}

/// Most events written between two fsyncs (everything queued, up to this).
const MAX_BATCH: usize = 16_384;

/// The shortest time between two fsyncs: a request's event is durable within about this long
/// of its response, and a busy server pays one fsync per window, not one per request.
pub const SYNC_WINDOW: Duration = Duration::from_millis(10);

enum Message {
    /// A serialized event and its searchable fields (both made by the caller, in parallel;
    /// the writer only chains and indexes).
    Event(Vec<u8>, Fields),
    Tick,
    Flush(oneshot::Sender<()>),
}

/// The audit log: a handle to the writer thread.
#[derive(Debug, Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Message>,
    dir: PathBuf,
    live: Arc<Mutex<LiveIndex>>,
    webhook: Option<Arc<Webhook>>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Message")
    }
}

impl AuditSink for AuditLog {
    fn record<'a>(&'a self, event: Event) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            // Sized for a Metadata event, so serializing does not grow the buffer.
            let mut bytes = Vec::with_capacity(1024);
            if let Err(e) = serde_json::to_writer(&mut bytes, &event) {
                tracing::error!(error = %e, "audit event does not serialize; not recorded");
                return;
            }
            let fields = Fields::of_event(&event);
            if self.tx.send(Message::Event(bytes, fields)).await.is_err() {
                tracing::error!("the audit writer has stopped; event not recorded");
            }
        })
    }
}

/// The segment file name for a segment starting at `seq`.
pub fn segment_name(seq: u64) -> String {
    format!("audit-{seq:020}.jsonl")
}

/// The log's segments, oldest first.
pub fn segments(dir: &Path) -> Result<Vec<PathBuf>, AuditError> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("audit-") && n.ends_with(".jsonl"))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// The exported latest checkpoint.
pub fn checkpoint_path(dir: &Path) -> PathBuf {
    dir.join("checkpoint.json")
}

struct Writer {
    options: AuditOptions,
    key: SigningKey,
    file: File,
    path: PathBuf,
    bytes: u64,
    opened: Instant,
    next_seq: u64,
    prev: String,
    unsigned: u64,
    last_checkpoint: Instant,
    /// The last checkpoint line written (what is exported).
    last_line: Vec<u8>,
    /// Whether `last_line` is newer than the export.
    export_pending: bool,
    /// Lines of the current batch, not yet written.
    pending: Vec<u8>,
    /// Index rows of the current batch (offset, length, fields), published after its fsync.
    pending_rows: Vec<(u64, u32, Fields)>,
    /// The open segment's index, shared with readers.
    live: Arc<Mutex<LiveIndex>>,
    last_export: Instant,
    /// Where fsynced events go next (the webhook), if anywhere.
    outbox: Option<Arc<Outbox>>,
    /// Events of the current batch for the outbox: (seq, event JSON).
    pending_out: Vec<(u64, bytes::Bytes)>,
    /// A checkpoint line written in the current batch, for the outbox.
    pending_checkpoint: Option<bytes::Bytes>,
}

fn open_segment(dir: &Path, seq: u64) -> Result<(File, PathBuf), AuditError> {
    let path = dir.join(segment_name(seq));
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&path)
        .map_err(io(&path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok((file, path))
}

impl Writer {
    fn open(
        options: AuditOptions,
        key: SigningKey,
        outbox: Option<Arc<Outbox>>,
    ) -> Result<Self, AuditError> {
        bulwark_pki::files::ensure_private_dir(&options.dir)
            .map_err(|e| AuditError::Log(e.to_string()))?;
        let existing = segments(&options.dir)?;
        let mut torn = None;
        let (mut next_seq, mut prev) = (1, GENESIS.to_owned());
        if let Some(last) = existing.last() {
            let bytes = std::fs::read(last).map_err(io(last))?;
            let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            if complete < bytes.len() {
                torn = Some(Recovery {
                    file: last
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    offset: complete as u64,
                    bytes: (bytes.len() - complete) as u64,
                });
            }
            let body = bytes.get(..complete).unwrap_or_default();
            if let Some(line) = body.split(|b| *b == b'\n').rfind(|l| !l.is_empty()) {
                let record: Record = serde_json::from_slice(line).map_err(|e| {
                    AuditError::Log(format!(
                        "{}: the last complete line does not parse: {e}",
                        last.display()
                    ))
                })?;
                next_seq = record.seq + 1;
                prev = line_hash(line);
            } else if let Some(earlier) =
                existing.len().checked_sub(2).and_then(|i| existing.get(i))
            {
                return Err(AuditError::Log(format!(
                    "{} holds no complete record; continue from {} by hand",
                    last.display(),
                    earlier.display()
                )));
            }
        }
        let (file, path) = match (existing.last(), &torn) {
            (Some(last), None) => {
                let file = OpenOptions::new()
                    .append(true)
                    .open(last)
                    .map_err(io(last))?;
                (file, last.clone())
            }
            _ => open_segment(&options.dir, next_seq)?,
        };
        let bytes = file.metadata().map_err(io(&path))?.len();
        let index = if bytes == 0 {
            SegmentIndex::default()
        } else {
            SegmentIndex::open(&path)?.0
        };
        let live = Arc::new(Mutex::new(LiveIndex {
            segment: path.clone(),
            index,
        }));
        let mut writer = Self {
            options,
            key,
            file,
            path,
            bytes,
            opened: Instant::now(),
            next_seq,
            prev,
            unsigned: 0,
            last_checkpoint: Instant::now(),
            last_line: Vec::new(),
            export_pending: false,
            pending: Vec::with_capacity(1 << 20),
            pending_rows: Vec::new(),
            live,
            last_export: Instant::now(),
            outbox,
            pending_out: Vec::new(),
            pending_checkpoint: None,
        };
        if let Some(recovery) = torn {
            tracing::warn!(file = %recovery.file, offset = recovery.offset, bytes = recovery.bytes, "audit log: torn last record from a crash; recorded and continued in a new segment");
            writer.append(Record {
                seq: 0,
                prev: String::new(),
                event: None,
                checkpoint: None,
                recovery: Some(recovery),
            })?;
            writer.sync()?;
        }
        Ok(writer)
    }

    /// Appends one record (its seq and prev are filled in here).
    fn append(&mut self, mut record: Record) -> Result<(), AuditError> {
        record.seq = self.next_seq;
        record.prev = std::mem::take(&mut self.prev);
        let line = serde_json::to_vec(&record).map_err(|e| AuditError::Log(e.to_string()))?;
        if record.checkpoint.is_some() {
            self.last_line.clone_from(&line);
            if self.outbox.is_some() {
                self.pending_checkpoint = Some(bytes::Bytes::copy_from_slice(&line));
            }
        }
        // Written with the batch: one write and one fsync per batch, not per record.
        let start = self.pending.len();
        self.pending.extend_from_slice(&line);
        self.account(start, record.checkpoint.is_none());
        Ok(())
    }

    /// Appends one serialized event.
    fn append_event(&mut self, event: Vec<u8>, fields: Fields) -> Result<(), AuditError> {
        let seq = self.next_seq;
        // Built in place in the batch buffer: no line of its own to allocate and copy.
        let start = self.pending.len();
        crate::chain::push_event_line(&mut self.pending, seq, &self.prev, &event);
        let offset = self.bytes;
        let len = self.account(start, true);
        self.pending_rows.push((offset, len, fields));
        if self.outbox.is_some() {
            self.pending_out.push((seq, bytes::Bytes::from(event)));
        }
        Ok(())
    }

    /// Chains the line that `pending` holds from `start` and ends it; returns its length.
    fn account(&mut self, start: usize, unsigned: bool) -> u32 {
        let line = self.pending.get(start..).unwrap_or_default();
        let len = line.len();
        self.prev = line_hash(line);
        self.pending.push(b'\n');
        self.bytes += len as u64 + 1;
        self.next_seq += 1;
        if unsigned {
            self.unsigned += 1;
        }
        u32::try_from(len).unwrap_or(u32::MAX)
    }

    /// Appends a signed checkpoint (written to disk with the batch's fsync).
    fn checkpoint(&mut self) -> Result<(), AuditError> {
        let checkpoint = self.key.checkpoint(self.next_seq, &self.prev, now_micro());
        self.append(Record {
            seq: 0,
            prev: String::new(),
            event: None,
            checkpoint: Some(checkpoint),
            recovery: None,
        })?;
        self.unsigned = 0;
        self.last_checkpoint = Instant::now();
        self.export_pending = true;
        Ok(())
    }

    /// After an fsync: exports the latest checkpoint line for auditors and the webhook, at
    /// most once a second (an atomic file replace costs three fsyncs).
    fn export_if_due(&mut self, force: bool) -> Result<(), AuditError> {
        if !self.export_pending || (!force && self.last_export.elapsed() < Duration::from_secs(1)) {
            return Ok(());
        }
        bulwark_pki::files::write_public(&checkpoint_path(&self.options.dir), &self.last_line)
            .map_err(|e| AuditError::Log(e.to_string()))?;
        self.export_pending = false;
        self.last_export = Instant::now();
        Ok(())
    }

    /// Writes the batch and fsyncs it; then its records become searchable.
    fn sync(&mut self) -> Result<(), AuditError> {
        if !self.pending.is_empty() {
            self.file.write_all(&self.pending).map_err(io(&self.path))?;
            self.pending.clear();
        }
        self.file.sync_data().map_err(io(&self.path))?;
        let mut live = self
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (offset, len, fields) in self.pending_rows.drain(..) {
            live.index.push(offset, len, fields);
        }
        live.index.covered = self.bytes;
        drop(live);
        if let Some(outbox) = &self.outbox {
            outbox.publish(
                std::mem::take(&mut self.pending_out),
                self.pending_checkpoint.take(),
            );
        }
        Ok(())
    }

    /// Saves the open segment's index (at rotation and shutdown), so it is not rebuilt.
    fn save_index(&self) {
        let live = self
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(e) = live.index.save(&live.segment) {
            tracing::warn!(segment = %live.segment.display(), error = %e, "audit index not saved; it is rebuilt when needed");
        }
    }

    fn checkpoint_due(&self) -> bool {
        self.unsigned > 0
            && (self.unsigned >= self.options.checkpoint_every
                || self.last_checkpoint.elapsed() >= self.options.checkpoint_interval)
    }

    fn rotate_if_due(&mut self) -> Result<(), AuditError> {
        if self.bytes < self.options.max_segment_bytes
            && self.opened.elapsed() < self.options.max_segment_age
        {
            return Ok(());
        }
        if self.bytes == 0 {
            return Ok(());
        }
        if self.unsigned > 0 {
            self.checkpoint()?;
        }
        self.sync()?;
        // The closed segment's index is saved before the next segment exists, so a reader
        // that sees the new segment finds the old one's index on disk.
        self.save_index();
        let (file, path) = open_segment(&self.options.dir, self.next_seq)?;
        *self
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = LiveIndex {
            segment: path.clone(),
            index: SegmentIndex::default(),
        };
        self.file = file;
        self.path = path;
        self.bytes = 0;
        self.opened = Instant::now();
        let all = segments(&self.options.dir)?;
        let excess = all.len().saturating_sub(self.options.max_segments);
        for old in all.iter().take(excess) {
            std::fs::remove_file(old).map_err(io(old))?;
            let _ = std::fs::remove_file(crate::index::index_path(old));
            tracing::info!(segment = %old.display(), "audit segment removed by retention");
        }
        Ok(())
    }

    fn run(mut self, mut rx: mpsc::Receiver<Message>) {
        let mut last_sync = Instant::now();
        while let Some(first) = rx.blocking_recv() {
            // Group commit: at most one fsync per `SYNC_WINDOW`; events arriving meanwhile
            // join the batch (a flush request does not wait).
            let window = SYNC_WINDOW.saturating_sub(last_sync.elapsed());
            if !window.is_zero() && !matches!(first, Message::Flush(_)) {
                std::thread::sleep(window);
            }
            let mut flushes = Vec::new();
            let mut wrote = false;
            let mut message = Some(first);
            let mut batch = 0;
            while let Some(m) = message.take() {
                match m {
                    Message::Event(event, fields) => {
                        let result = self.append_event(event, fields).and_then(|()| {
                            // Checkpoints and rotation happen mid-batch too, so a burst is
                            // signed every `checkpoint_every` records and segments keep
                            // their size.
                            if self.unsigned >= self.options.checkpoint_every {
                                self.checkpoint()?;
                            }
                            self.rotate_if_due()
                        });
                        if let Err(e) = result {
                            tracing::error!(error = %e, "audit record not written");
                        }
                        wrote = true;
                        batch += 1;
                    }
                    Message::Tick => {}
                    Message::Flush(done) => flushes.push(done),
                }
                if batch < MAX_BATCH {
                    message = rx.try_recv().ok();
                }
            }
            let flushing = !flushes.is_empty();
            let result = (|| {
                if self.checkpoint_due() || (flushing && self.unsigned > 0) {
                    self.checkpoint()?;
                }
                if wrote || self.export_pending {
                    self.sync()?;
                }
                self.export_if_due(flushing)?;
                self.rotate_if_due()
            })();
            if let Err(e) = result {
                tracing::error!(error = %e, "audit log write failed");
            }
            if flushing {
                self.save_index();
            }
            last_sync = Instant::now();
            for done in flushes {
                let _ = done.send(());
            }
        }
        let last = (|| {
            if self.unsigned > 0 {
                self.checkpoint()?;
            }
            self.sync()?;
            self.export_if_due(true)
        })();
        if let Err(e) = last {
            tracing::error!(error = %e, "final audit checkpoint failed");
        }
        self.save_index();
    }
}

impl AuditLog {
    /// Opens (or creates) the log in `options.dir`, signing with `key`, and starts the writer.
    pub fn open(options: AuditOptions, key: SigningKey) -> Result<Self, AuditError> {
        let interval = options.checkpoint_interval;
        let (tx, rx) = mpsc::channel(options.queue.max(1));
        let dir = options.dir.clone();
        let webhook_options = options.webhook.clone();
        let webhook = webhook_options
            .as_ref()
            .map(|options| Arc::new(Webhook::new(options)));
        let outbox = webhook.as_ref().map(|w| Arc::clone(&w.outbox));
        let writer = Writer::open(options, key, outbox)?;
        let live = Arc::clone(&writer.live);
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| AuditError::Log(format!("cannot start the writer: {e}")))?;
        let ticker = tx.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let mut tick = tokio::time::interval(interval);
                loop {
                    tick.tick().await;
                    if ticker.send(Message::Tick).await.is_err() {
                        break;
                    }
                }
            });
        }
        let log = Self {
            tx,
            dir,
            live,
            webhook,
        };
        if let (Some(webhook), Some(options)) = (&log.webhook, webhook_options) {
            webhook.start(options, Arc::new(log.clone()))?;
        }
        Ok(log)
    }

    /// What the webhook sent and dropped (None without a webhook).
    pub fn webhook_stats(&self) -> Option<Arc<WebhookStats>> {
        self.webhook.as_ref().map(|w| Arc::clone(&w.stats))
    }

    /// Waits, at most `within`, until the webhook sent (or gave up on) every event the log
    /// has written; true when nothing is left (or there is no webhook). Call after
    /// [`AuditLog::flush`] at shutdown.
    pub async fn drain_webhook(&self, within: Duration) -> bool {
        match &self.webhook {
            Some(webhook) => webhook.drain(within).await,
            None => true,
        }
    }

    /// A reader answering queries over this log, seeing every record as soon as it is
    /// fsynced.
    pub fn reader(&self) -> AuditReader {
        AuditReader::new(
            self.dir.clone(),
            Some(Arc::clone(&self.live)),
            DEFAULT_CACHE_ROWS,
        )
    }

    /// Waits until everything recorded so far is written, fsynced and signed, and the open
    /// segment's index is saved (the server flushes at shutdown).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}
