//! What the listener knows about its connections, so that strangers cannot exhaust it:
//!
//! - [`ConnectionTable`]: every open connection is counted, in total and per source address
//!   (IPv6 sources grouped by /64, since one host usually holds a whole /64); one over either
//!   cap is closed right after accept, before TLS, so it costs a socket for a moment and
//!   nothing else.
//! - [`Activity`]: each connection's requests in flight and when it was last busy; the
//!   listener closes a connection that sends no request soon after its handshake, or that
//!   stays idle (nothing in flight) too long. A watch is in flight for as long as it streams.
//! - [`RefusalLog`]: connection-level refusals have no request to audit, and auditing each one
//!   would let a flood write the audit log; they are counted in `/metrics` and summarised in
//!   one audit event per interval (counts per limit and the busiest sources).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::http::limits::{ConnectionLimits, Limit};

/// The part of a source address that connection caps count by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceKey(IpAddr);

impl SourceKey {
    /// IPv4 addresses as they are; IPv6 by their /64 (IPv4-mapped ones as IPv4).
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Self(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let bits = u128::from(v6) & !((1u128 << 64) - 1);
                    Self(IpAddr::V6(bits.into()))
                }
            },
        }
    }
}

impl std::fmt::Display for SourceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// Open connections, in total and per source (and in the `bulwark_open_connections` gauge).
#[derive(Debug)]
pub struct ConnectionTable {
    max_total: usize,
    max_per_source: usize,
    open: Mutex<Open>,
    gauge: prometheus_client::metrics::gauge::Gauge,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_source: HashMap<SourceKey, usize>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct ConnectionSlot {
    table: Arc<ConnectionTable>,
    source: SourceKey,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.table.gauge.dec();
        if let Ok(mut open) = self.table.open.lock() {
            open.total = open.total.saturating_sub(1);
            if let Some(n) = open.per_source.get_mut(&self.source) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    open.per_source.remove(&self.source);
                }
            }
        }
    }
}

impl ConnectionTable {
    /// A table enforcing `limits`' connection caps, showing its open connections in `gauge`.
    pub fn new(
        limits: &ConnectionLimits,
        gauge: prometheus_client::metrics::gauge::Gauge,
    ) -> Arc<Self> {
        Arc::new(Self {
            max_total: limits.max_connections,
            max_per_source: limits.max_connections_per_source,
            open: Mutex::new(Open::default()),
            gauge,
        })
    }

    /// Admits a connection from `peer`, or names the cap it would break.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<ConnectionSlot, Limit> {
        let source = SourceKey::of(peer);
        let mut open = self.open.lock().map_err(|_| Limit::Connections)?;
        if open.total >= self.max_total {
            return Err(Limit::Connections);
        }
        let from_source = open.per_source.entry(source).or_insert(0);
        if *from_source >= self.max_per_source {
            return Err(Limit::ConnectionsPerSource);
        }
        *from_source += 1;
        open.total += 1;
        self.gauge.inc();
        Ok(ConnectionSlot {
            table: Arc::clone(self),
            source,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().map(|o| o.total).unwrap_or(0)
    }
}

/// One connection's requests: how many are in flight, how many there were, when it was last
/// busy, and the deadlines of its streaming responses.
#[derive(Debug)]
pub struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    /// Milliseconds after `started` when a request last began or ended.
    last_busy_ms: AtomicU64,
    /// Streaming responses (watches) by request number, with when each must have ended.
    deadlines: Mutex<Vec<(u64, Instant)>>,
}

/// When a streaming response (a watch) must have ended. A handler puts it in the response's
/// extensions; a stream still open this long after it (its client keeps the HTTP/2 window
/// closed, so the server cannot even send its end) gets its connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamDeadline(pub Instant);

/// How long after its deadline a stream may still be open before its connection is closed.
pub const OVERDUE_GRACE: Duration = Duration::from_secs(30);

/// Marks one request in flight until dropped (held by the response body, so a streamed
/// response counts until its last byte).
#[derive(Debug)]
pub struct InFlight {
    activity: Arc<Activity>,
    request: u64,
}

impl InFlight {
    /// Records when this request's streaming response must have ended.
    pub fn set_deadline(&self, deadline: StreamDeadline) {
        if let Ok(mut deadlines) = self.activity.deadlines.lock() {
            deadlines.push((self.request, deadline.0));
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut deadlines) = self.activity.deadlines.lock() {
            deadlines.retain(|(request, _)| *request != self.request);
        }
        self.activity.touch();
        self.activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why the listener closes a connection it is not told to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// No request arrived in time after the handshake.
    NoFirstRequest,
    /// Nothing was in flight for too long.
    Idle,
    /// A streaming response is still open well past its deadline: its client stopped taking
    /// its data without closing the connection.
    OverdueStream,
}

impl Expiry {
    /// The limit that closed it.
    pub fn limit(self) -> Limit {
        match self {
            Self::NoFirstRequest => Limit::FirstRequestTimeout,
            Self::Idle => Limit::IdleTimeout,
            Self::OverdueStream => Limit::WriteStall,
        }
    }
}

impl Activity {
    /// A new connection's (its handshake just finished).
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            last_busy_ms: AtomicU64::new(0),
            deadlines: Mutex::new(Vec::new()),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn touch(&self) {
        self.last_busy_ms.store(self.now_ms(), Ordering::Release);
    }

    /// A request began.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        let request = self.requests.fetch_add(1, Ordering::AcqRel);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.touch();
        InFlight {
            activity: Arc::clone(self),
            request,
        }
    }

    /// The earliest time a streaming response becomes overdue.
    fn first_overdue(&self) -> Option<Instant> {
        let deadlines = self.deadlines.lock().ok()?;
        deadlines
            .iter()
            .map(|(_, deadline)| *deadline + OVERDUE_GRACE)
            .min()
    }

    /// When [`Activity::expired`] could next become true if nothing happens meanwhile (the
    /// listener sleeps until then instead of polling).
    pub fn next_check(&self, first_request: Duration, idle: Duration) -> Instant {
        if self.requests.load(Ordering::Acquire) == 0 {
            return self.started + first_request;
        }
        let overdue = self.first_overdue();
        if self.in_flight.load(Ordering::Acquire) > 0 {
            let recheck = Instant::now() + idle;
            return overdue.map_or(recheck, |o| o.min(recheck));
        }
        self.started + Duration::from_millis(self.last_busy_ms.load(Ordering::Acquire)) + idle
    }

    /// Whether the connection should be closed now, and why: no request within
    /// `first_request` of the handshake, or nothing in flight for `idle`.
    pub fn expired(&self, first_request: Duration, idle: Duration) -> Option<Expiry> {
        let now = self.now_ms();
        let as_ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        if self.requests.load(Ordering::Acquire) == 0 {
            return (now >= as_ms(first_request)).then_some(Expiry::NoFirstRequest);
        }
        if self.first_overdue().is_some_and(|o| o <= Instant::now()) {
            return Some(Expiry::OverdueStream);
        }
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let quiet = now.saturating_sub(self.last_busy_ms.load(Ordering::Acquire));
        (quiet >= as_ms(idle)).then_some(Expiry::Idle)
    }
}

/// A response body that keeps its request counted as in flight until it is sent or dropped,
/// passing size hints through (content lengths stay exact).
pub struct TrackedBody {
    inner: axum::body::Body,
    _in_flight: InFlight,
}

impl TrackedBody {
    /// Wraps `inner`, in flight until it ends.
    pub fn new(inner: axum::body::Body, in_flight: InFlight) -> Self {
        Self {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl http_body::Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Counts connection-level refusals per limit and source between summaries.
#[derive(Debug, Default)]
pub struct RefusalLog {
    /// Refusals per limit and source; `None` counts the sources there was no room to name.
    pending: Mutex<HashMap<(Limit, Option<SourceKey>), u64>>,
}

/// Sources named in one summary, busiest first.
const SUMMARY_SOURCES: usize = 10;
/// Distinct (limit, source) pairs kept between summaries; beyond it refusals are still
/// counted (in `/metrics` and the summary's total) but not per source, so the log itself
/// stays bounded under a flood from many addresses.
const MAX_PENDING: usize = 4096;

/// One interval's refusals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusalSummary {
    /// Refusals per limit.
    pub per_limit: Vec<(Limit, u64)>,
    /// The busiest sources with their refusals (`None`: sources not named, past the log's
    /// room).
    pub top_sources: Vec<(Option<SourceKey>, u64)>,
}

impl RefusalLog {
    /// Records one refusal.
    pub fn record(&self, limit: Limit, peer: IpAddr) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        let key = (limit, Some(SourceKey::of(peer)));
        if pending.len() >= MAX_PENDING && !pending.contains_key(&key) {
            // Keep counting under a catch-all source.
            *pending.entry((limit, None)).or_insert(0) += 1;
            return;
        }
        *pending.entry(key).or_insert(0) += 1;
    }

    /// What was refused since the last call (None if nothing was).
    pub fn take(&self) -> Option<RefusalSummary> {
        let pending = std::mem::take(&mut *self.pending.lock().ok()?);
        if pending.is_empty() {
            return None;
        }
        let mut per_limit: HashMap<Limit, u64> = HashMap::new();
        let mut per_source: HashMap<Option<SourceKey>, u64> = HashMap::new();
        for ((limit, source), n) in pending {
            *per_limit.entry(limit).or_insert(0) += n;
            *per_source.entry(source).or_insert(0) += n;
        }
        let mut per_limit: Vec<_> = per_limit.into_iter().collect();
        per_limit.sort();
        let mut top_sources: Vec<_> = per_source.into_iter().collect();
        top_sources.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        top_sources.truncate(SUMMARY_SOURCES);
        Some(RefusalSummary {
            per_limit,
            top_sources,
        })
    }
}

impl RefusalSummary {
    /// The audit event of this summary (component `apiserver`, verb `refuse-connections`).
    pub fn event(&self, interval: Duration) -> bulwark_audit::Event {
        let per_limit: Vec<String> = self
            .per_limit
            .iter()
            .map(|(l, n)| format!("{}={n}", l.as_str()))
            .collect();
        let sources: Vec<String> = self
            .top_sources
            .iter()
            .map(|(s, n)| match s {
                Some(source) => format!("{source}={n}"),
                None => format!("others={n}"),
            })
            .collect();
        let total: u64 = self.per_limit.iter().map(|(_, n)| n).sum();
        bulwark_audit::Event::component(
            "apiserver",
            "refuse-connections",
            bulwark_audit::ObjectRef::default(),
        )
        .note("limits.bulwark.dev/refused", per_limit.join(","))
        .note("limits.bulwark.dev/sources", sources.join(","))
        .note("limits.bulwark.dev/total", total.to_string())
        .note(
            "limits.bulwark.dev/interval-seconds",
            interval.as_secs().to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn limits(total: usize, per_source: usize) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: total,
            max_connections_per_source: per_source,
            ..ConnectionLimits::default()
        }
    }

    #[test]
    fn caps_per_source_and_in_total_and_frees_on_drop() {
        let table = ConnectionTable::new(&limits(3, 2), Default::default());
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let a1 = table.admit(a).unwrap();
        let _a2 = table.admit(a).unwrap();
        assert_eq!(table.admit(a).unwrap_err(), Limit::ConnectionsPerSource);
        let _b1 = table.admit(b).unwrap();
        assert_eq!(table.admit(b).unwrap_err(), Limit::Connections);
        assert_eq!((table.open(), table.gauge.get()), (3, 3));
        drop(a1);
        assert_eq!((table.open(), table.gauge.get()), (2, 2));
        assert!(table.admit(a).is_ok());
    }

    #[test]
    fn ipv6_sources_are_grouped_by_64() {
        let table = ConnectionTable::new(&limits(10, 1), Default::default());
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _x = table.admit(one).unwrap();
        assert_eq!(
            table.admit(same_64).unwrap_err(),
            Limit::ConnectionsPerSource
        );
        assert!(table.admit(other_64).is_ok());
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
        assert_eq!(SourceKey::of(mapped).to_string(), "192.0.2.1");
        assert_eq!(
            SourceKey::of(IpAddr::V6(Ipv6Addr::LOCALHOST)).to_string(),
            "::/64"
        );
    }

    #[test]
    fn a_connection_expires_without_a_first_request_or_when_idle() {
        let activity = Activity::new();
        let zero = Duration::ZERO;
        let long = Duration::from_secs(3600);
        assert_eq!(activity.expired(long, long), None);
        assert_eq!(activity.expired(zero, long), Some(Expiry::NoFirstRequest));
        let request = activity.begin();
        // In flight: never idle, whatever the timeouts.
        assert_eq!(activity.expired(zero, zero), None);
        drop(request);
        assert_eq!(activity.expired(zero, long), None);
        assert_eq!(activity.expired(zero, zero), Some(Expiry::Idle));
        // A stream open past its deadline and the grace closes the connection; one that
        // ended is forgotten.
        let watch = activity.begin();
        watch.set_deadline(StreamDeadline(Instant::now() + Duration::from_secs(600)));
        assert_eq!(activity.expired(long, long), None);
        drop(watch);
        let stuck = activity.begin();
        stuck.set_deadline(StreamDeadline(Instant::now() - OVERDUE_GRACE));
        assert_eq!(activity.expired(long, long), Some(Expiry::OverdueStream));
        drop(stuck);
        assert_eq!(activity.expired(long, long), None);
    }

    #[test]
    fn a_flood_from_many_sources_keeps_the_log_bounded() {
        let log = RefusalLog::default();
        for i in 0..(MAX_PENDING as u32 + 100) {
            log.record(
                Limit::Connections,
                IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)),
            );
        }
        let summary = log.take().unwrap();
        assert_eq!(
            summary.per_limit,
            vec![(Limit::Connections, MAX_PENDING as u64 + 100)]
        );
        assert_eq!(summary.top_sources[0], (None, 100));
        let event = summary.event(Duration::from_secs(60));
        assert!(event.annotations["limits.bulwark.dev/sources"].starts_with("others=100,"));
    }

    #[test]
    fn refusals_are_summarised_busiest_source_first() {
        let log = RefusalLog::default();
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        for _ in 0..3 {
            log.record(Limit::ConnectionsPerSource, a);
        }
        log.record(Limit::FirstRequestTimeout, b);
        let summary = log.take().unwrap();
        assert_eq!(
            summary.per_limit,
            vec![
                (Limit::ConnectionsPerSource, 3),
                (Limit::FirstRequestTimeout, 1)
            ]
        );
        assert_eq!(summary.top_sources[0], (Some(SourceKey::of(a)), 3));
        let event = summary.event(Duration::from_secs(60));
        assert_eq!(
            event.annotations["limits.bulwark.dev/refused"],
            "max-connections-per-source=3,first-request-timeout=1"
        );
        assert_eq!(event.annotations["limits.bulwark.dev/total"], "4");
        assert!(log.take().is_none());
    }
}
