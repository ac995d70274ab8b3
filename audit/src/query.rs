//! Searching the log for auditors: "who did what, when, and was it allowed?".
//!
//! A [`Query`] filters on user (authenticated or impersonated), verb, resource (`pods`, or
//! `pods/exec` for one subresource), namespace, decision and a time range, and returns one
//! page of matching events in log order with a continue token and the number of matches
//! after the page. Matching runs over each segment's [`index`](crate::index) rows; only the
//! matching lines of the page are read from the log.
//!
//! [`AuditReader`] answers queries over a log directory: on a running server it shares the
//! writer's index of the open segment (so a query sees every record already fsynced); offline
//! (a copy of the log) it indexes the open segment itself. Indexes of closed segments are
//! cached in memory up to a row budget; a segment entirely outside the time range is skipped
//! without being read.

use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::index::{Decision, Row, SegmentIndex};
use crate::writer::segments;
use crate::{AuditError, io};

/// Most events in one page.
pub const MAX_LIMIT: usize = 10_000;

/// Rows of closed-segment indexes kept in memory (about 56 bytes each).
pub const DEFAULT_CACHE_ROWS: usize = 4_000_000;

/// What to look for. Every filter that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// The authenticated or the impersonated user.
    pub user: Option<String>,
    /// The verb.
    pub verb: Option<String>,
    /// `pods` (with any subresource) or `pods/exec` (that subresource only).
    pub resource: Option<String>,
    /// The namespace.
    pub namespace: Option<String>,
    /// The decision.
    pub decision: Option<Decision>,
    /// From this time on (µs since the epoch, inclusive).
    pub since: Option<i64>,
    /// Before this time (µs since the epoch, exclusive).
    pub until: Option<i64>,
    /// Page size (1..=[`MAX_LIMIT`]).
    pub limit: usize,
    /// Continue after this position (a token from an earlier page).
    pub after: Option<String>,
}

/// One page of results.
#[derive(Debug)]
pub struct Page {
    /// The matching events (upstream `audit.k8s.io/v1` Events, exactly as logged).
    pub events: Vec<Box<RawValue>>,
    /// Token for the next page, when there are more matches.
    pub next: Option<String>,
    /// Matches after this page.
    pub remaining: u64,
}

/// A position in the log: segment (by its first sequence number) and row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Position {
    segment: u64,
    row: usize,
}

impl Position {
    fn token(self) -> String {
        format!("{}.{}", self.segment, self.row)
    }

    fn parse(token: &str) -> Result<Self, AuditError> {
        let bad = || AuditError::BadQuery(format!("invalid continue token {token:?}"));
        let (segment, row) = token.split_once('.').ok_or_else(bad)?;
        Ok(Self {
            segment: segment.parse().map_err(|_| bad())?,
            row: row.parse().map_err(|_| bad())?,
        })
    }
}

/// The first sequence number of a segment, from its name.
fn segment_seq(path: &Path) -> Option<u64> {
    path.file_name()?
        .to_str()?
        .strip_prefix("audit-")?
        .strip_suffix(".jsonl")?
        .parse()
        .ok()
}

/// A query resolved against one segment's string table.
struct Matcher {
    user: Option<u32>,
    verb: Option<u32>,
    resource: Option<u32>,
    subresource: Option<u32>,
    namespace: Option<u32>,
    decision: Option<Decision>,
    since: i64,
    until: i64,
}

impl Matcher {
    /// `None` when a wanted string does not occur in the segment (nothing can match).
    fn new(query: &Query, index: &SegmentIndex) -> Option<Self> {
        let id = |s: &Option<String>| -> Option<Option<u32>> {
            match s {
                None => Some(None),
                Some(s) => index.id(s).map(Some),
            }
        };
        let (resource, subresource) = match query.resource.as_deref().map(|r| r.split_once('/')) {
            Some(Some((r, sub))) => (Some(r.to_owned()), Some(sub.to_owned())),
            Some(None) => (query.resource.clone(), None),
            None => (None, None),
        };
        Some(Self {
            user: id(&query.user)?,
            verb: id(&query.verb)?,
            resource: id(&resource)?,
            subresource: id(&subresource)?,
            namespace: id(&query.namespace)?,
            decision: query.decision,
            since: query.since.unwrap_or(i64::MIN),
            until: query.until.unwrap_or(i64::MAX),
        })
    }

    fn matches(&self, row: &Row) -> bool {
        let is = |want: Option<u32>, got: u32| want.is_none_or(|w| w == got);
        row.time >= self.since
            && row.time < self.until
            && self
                .user
                .is_none_or(|u| row.user == u || row.impersonated == u)
            && is(self.verb, row.verb)
            && is(self.resource, row.resource)
            && is(self.subresource, row.subresource)
            && is(self.namespace, row.namespace)
            && self.decision.is_none_or(|d| d == row.decision)
    }
}

/// The open segment's index, shared by the writer (who appends after each fsync) and the
/// reader.
#[derive(Debug, Default)]
pub struct LiveIndex {
    /// The open segment.
    pub segment: PathBuf,
    /// Its index.
    pub index: SegmentIndex,
}

#[derive(Default)]
struct Cache {
    indexes: HashMap<PathBuf, Arc<SegmentIndex>>,
    order: VecDeque<PathBuf>,
    rows: usize,
    /// Time spans of segments seen, kept after their index is evicted.
    spans: HashMap<PathBuf, Option<(i64, i64)>>,
}

/// Answers queries over one log directory.
pub struct AuditReader {
    dir: PathBuf,
    live: Option<Arc<Mutex<LiveIndex>>>,
    cache: Mutex<Cache>,
    cache_rows: usize,
}

impl std::fmt::Debug for AuditReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditReader")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// A segment's index, either the live one (locked) or a closed one.
enum Held<'a> {
    Live(MutexGuard<'a, LiveIndex>),
    Closed(Arc<SegmentIndex>),
}

impl Held<'_> {
    fn index(&self) -> &SegmentIndex {
        match self {
            Self::Live(guard) => &guard.index,
            Self::Closed(index) => index,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl AuditReader {
    /// A reader of a log directory that no writer of this process has open (a copy, or
    /// the log of a stopped server).
    pub fn offline(dir: PathBuf) -> Self {
        Self::new(dir, None, DEFAULT_CACHE_ROWS)
    }

    /// A reader sharing `live` with the writer.
    pub(crate) fn new(
        dir: PathBuf,
        live: Option<Arc<Mutex<LiveIndex>>>,
        cache_rows: usize,
    ) -> Self {
        Self {
            dir,
            live,
            cache: Mutex::new(Cache::default()),
            cache_rows,
        }
    }

    /// The index of `segment` (the last one when `last`).
    fn held(&self, segment: &Path, last: bool) -> Result<Held<'_>, AuditError> {
        if last && let Some(live) = &self.live {
            let guard = lock(live);
            if guard.segment == segment {
                return Ok(Held::Live(guard));
            }
        }
        if let Some(index) = lock(&self.cache).indexes.get(segment) {
            // Only an offline reader's last segment can grow.
            let grown =
                last && std::fs::metadata(segment).map(|m| m.len()).unwrap_or(0) > index.covered;
            if !grown {
                return Ok(Held::Closed(Arc::clone(index)));
            }
        }
        let (index, changed) = SegmentIndex::open(segment)?;
        if changed && !last {
            // Saved so the next start does not rebuild it (not possible on a read-only copy,
            // which is fine).
            if let Err(e) = index.save(segment) {
                tracing::debug!(segment = %segment.display(), error = %e, "audit index not saved");
            }
        }
        let index = Arc::new(index);
        let mut cache = lock(&self.cache);
        cache.spans.insert(segment.to_owned(), index.span);
        if let Some(old) = cache.indexes.insert(segment.to_owned(), Arc::clone(&index)) {
            cache.rows = cache.rows.saturating_sub(old.rows.len());
        } else {
            cache.order.push_back(segment.to_owned());
        }
        cache.rows += index.rows.len();
        while cache.rows > self.cache_rows && cache.order.len() > 1 {
            let Some(oldest) = cache.order.pop_front() else {
                break;
            };
            if let Some(evicted) = cache.indexes.remove(&oldest) {
                cache.rows = cache.rows.saturating_sub(evicted.rows.len());
            }
        }
        Ok(Held::Closed(index))
    }

    /// Runs `query`.
    pub fn query(&self, query: &Query) -> Result<Page, AuditError> {
        if query.limit == 0 || query.limit > MAX_LIMIT {
            return Err(AuditError::BadQuery(format!(
                "limit must be between 1 and {MAX_LIMIT}"
            )));
        }
        let after = query.after.as_deref().map(Position::parse).transpose()?;
        let all = segments(&self.dir)?;
        self.forget_removed(&all);
        let mut hits: Vec<(PathBuf, Row)> = Vec::new();
        let mut last_hit = None;
        let mut remaining = 0u64;
        for (i, segment) in all.iter().enumerate() {
            let Some(seq) = segment_seq(segment) else {
                continue;
            };
            if after.is_some_and(|a| seq < a.segment) || self.outside_span(segment, query) {
                continue;
            }
            let held = self.held(segment, i + 1 == all.len())?;
            let index = held.index();
            let Some(matcher) = Matcher::new(query, index) else {
                continue;
            };
            let start = match after {
                Some(a) if a.segment == seq => a.row.saturating_add(1),
                _ => 0,
            };
            for (row_no, row) in index.rows.iter().enumerate().skip(start) {
                if !matcher.matches(row) {
                    continue;
                }
                if hits.len() < query.limit {
                    hits.push((segment.clone(), *row));
                    last_hit = Some(Position {
                        segment: seq,
                        row: row_no,
                    });
                } else {
                    remaining += 1;
                }
            }
        }
        let events = read_events(&hits).inspect_err(|_| {
            // A stale index: forget them all, the next query reads them again.
            *lock(&self.cache) = Cache::default();
        })?;
        Ok(Page {
            events,
            next: last_hit.filter(|_| remaining > 0).map(Position::token),
            remaining,
        })
    }

    /// Whether the segment is known to hold no events in the query's time range.
    fn outside_span(&self, segment: &Path, query: &Query) -> bool {
        if query.since.is_none() && query.until.is_none() {
            return false;
        }
        match lock(&self.cache).spans.get(segment) {
            Some(Some((lo, hi))) => {
                query.since.is_some_and(|s| *hi < s) || query.until.is_some_and(|u| *lo >= u)
            }
            // Known empty, or unknown (not read yet).
            Some(None) | None => false,
        }
    }

    /// Drops cached indexes of segments retention removed.
    fn forget_removed(&self, present: &[PathBuf]) {
        let mut cache = lock(&self.cache);
        let gone: Vec<PathBuf> = cache
            .spans
            .keys()
            .filter(|p| !present.contains(p))
            .cloned()
            .collect();
        for path in gone {
            cache.spans.remove(&path);
            if let Some(evicted) = cache.indexes.remove(&path) {
                cache.rows = cache.rows.saturating_sub(evicted.rows.len());
            }
            cache.order.retain(|p| *p != path);
        }
    }
}

#[derive(Deserialize)]
struct EventOnly<'a> {
    #[serde(borrow)]
    event: &'a RawValue,
}

/// Reads the events of `hits` from their segments.
fn read_events(hits: &[(PathBuf, Row)]) -> Result<Vec<Box<RawValue>>, AuditError> {
    let mut out = Vec::with_capacity(hits.len());
    let mut open: Option<(&Path, std::fs::File)> = None;
    let mut buf = Vec::new();
    for (segment, row) in hits {
        if open
            .as_ref()
            .is_none_or(|(path, _)| *path != segment.as_path())
        {
            open = Some((segment, std::fs::File::open(segment).map_err(io(segment))?));
        }
        let Some((_, file)) = &open else {
            continue;
        };
        buf.resize(usize::try_from(row.len).unwrap_or(usize::MAX), 0);
        file.read_exact_at(&mut buf, row.offset)
            .map_err(io(segment))?;
        let line: EventOnly<'_> = serde_json::from_slice(&buf).map_err(|e| {
            let _ = std::fs::remove_file(crate::index::index_path(segment));
            AuditError::Log(format!(
                "{}: the index does not match the segment at offset {} ({e}); it is rebuilt on the next query, and `bulwark audit verify` checks the log",
                segment.display(),
                row.offset
            ))
        })?;
        out.push(line.event.to_owned());
    }
    Ok(out)
}
