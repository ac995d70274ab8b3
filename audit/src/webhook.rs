//! The audit webhook sink: ships the log's events to an HTTPS endpoint (a SIEM, a log
//! collector, a second site) in upstream's batching-webhook format, a `POST` of an
//! `audit.k8s.io/v1` `EventList`, so receivers written for Kubernetes work unchanged. Every
//! batch also carries `checkpoint`: the latest signed checkpoint line, verbatim. A receiver
//! that keeps it holds the evidence `bulwark audit verify --checkpoint` needs to prove that
//! records were cut off the end of the local log.
//!
//! - **The log stays the source of truth.** Events reach the webhook only after their batch is
//!   fsynced, and a slow or unreachable webhook never slows requests. The buffer is bounded
//!   ([`WebhookOptions::buffer`]). Events that do not fit are dropped *from the webhook* only:
//!   they stay in the log. Drops are counted, and each drop is itself recorded in the log
//!   (user `system:bulwark:audit-webhook`, verb `drop`, the sequence numbers missed), so a
//!   receiver's gap is explained and can be filled from the log.
//! - **Batches** hold up to [`WebhookOptions::max_batch`] events. A batch goes when it is
//!   full, or [`WebhookOptions::max_wait`] after its first event.
//! - **Retries**: connection errors, timeouts, 408, 429 and 5xx are retried with exponential
//!   backoff and jitter, up to [`WebhookOptions::max_attempts`]; then the batch is dropped
//!   (counted and recorded). Any other status drops the batch at once: retrying cannot help.
//! - **The endpoint** is given as a kubeconfig, as upstream does:
//!   - `https://` only, TLS 1.2+, trusting the CA the file names.
//!   - Optionally a client certificate or a bearer token.
//!   - Redirects are not followed.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulwark_pki::SecretPem;
use bytes::Bytes;
use tokio::sync::Notify;

use crate::event::{Event, ObjectRef};
use crate::{AuditError, AuditSink};

/// How the webhook batches, buffers and retries. The defaults follow upstream's batching
/// backend, except that a batch waits at most a second (upstream: 30 s), so a receiver is
/// close behind the log.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    /// Where events go.
    pub endpoint: WebhookEndpoint,
    /// Events buffered while the endpoint is slow or down; newer ones are dropped beyond it.
    pub buffer: usize,
    /// Most events per request.
    pub max_batch: usize,
    /// Longest a batch waits to fill.
    pub max_wait: Duration,
    /// First retry delay; it doubles per attempt, up to [`WebhookOptions::max_backoff`].
    pub initial_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// Attempts per batch before it is dropped.
    pub max_attempts: u32,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Shortest time between two drop records while drops continue.
    pub drop_report_interval: Duration,
}

impl WebhookOptions {
    /// Defaults for `endpoint`: a 10,000-event buffer, batches of up to 400 events or 1 s,
    /// retries from 1 s doubling to 30 s, 8 attempts, 30 s per request.
    pub fn new(endpoint: WebhookEndpoint) -> Self {
        Self {
            endpoint,
            buffer: 10_000,
            max_batch: 400,
            max_wait: Duration::from_secs(1),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            max_attempts: 8,
            timeout: Duration::from_secs(30),
            drop_report_interval: Duration::from_secs(10),
        }
    }
}

/// Where the webhook sends events and how it authenticates.
#[derive(Clone)]
pub struct WebhookEndpoint {
    /// `https://…`.
    pub url: String,
    /// The CA bundle the endpoint's certificate must chain to, PEM.
    pub ca_pem: String,
    /// A client certificate and key to present, PEM.
    pub client: Option<(String, SecretPem)>,
    /// A bearer token to send.
    pub token: Option<SecretPem>,
}

impl std::fmt::Debug for WebhookEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookEndpoint")
            .field("url", &self.url)
            .field("client_cert", &self.client.is_some())
            .field("token", &self.token.is_some())
            .finish_non_exhaustive()
    }
}

fn config_err(message: impl Into<String>) -> AuditError {
    AuditError::Webhook(message.into())
}

impl WebhookEndpoint {
    /// Reads the endpoint from a kubeconfig file (upstream's `--audit-webhook-config-file`
    /// format): the current context's cluster and user, or the first of each.
    pub fn from_kubeconfig(path: &Path) -> Result<Self, AuditError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| config_err(format!("{}: {e}", path.display())))?;
        Self::parse_kubeconfig(&text, path.parent().unwrap_or(Path::new(".")))
    }

    /// Parses kubeconfig `text`; relative file names are taken from `base`.
    pub fn parse_kubeconfig(text: &str, base: &Path) -> Result<Self, AuditError> {
        let creds = bulwark_pki::kubeconfig::KubeconfigCredentials::parse(text, base)
            .map_err(|e| config_err(e.to_string()))?;
        if creds.insecure_skip_tls_verify {
            return Err(config_err(
                "insecure-skip-tls-verify is refused: audit events go only to a verified endpoint",
            ));
        }
        if !creds.server.starts_with("https://") {
            return Err(config_err(format!(
                "server {} is not https://: audit events are never sent in clear",
                creds.server
            )));
        }
        let ca_pem = creds.ca_pem.ok_or_else(|| {
            config_err("certificate-authority or certificate-authority-data is required")
        })?;
        let (client, token) = (creds.client, creds.token);
        let endpoint = Self {
            url: creds.server,
            ca_pem,
            client,
            token,
        };
        // Refuse bad PEM now, not at the first event.
        endpoint.tls_config()?;
        Ok(endpoint)
    }

    /// TLS 1.2+ with the ring provider, trusting only the configured CA; HTTP/1.1 (what every
    /// webhook receiver speaks).
    fn tls_config(&self) -> Result<rustls::ClientConfig, AuditError> {
        let client = self.client.as_ref().map(|(cert, key)| (cert.as_str(), key));
        let mut config = bulwark_pki::tls::client_config(&self.ca_pem, client)
            .map_err(|e| config_err(format!("TLS: {e}")))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }

    fn host(&self) -> String {
        self.url
            .trim_start_matches("https://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned()
    }
}

/// Counters of what the webhook did, since the server started.
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Events the endpoint accepted.
    pub sent: AtomicU64,
    /// Requests the endpoint accepted.
    pub batches: AtomicU64,
    /// Requests that failed (each retry counts).
    pub failures: AtomicU64,
    /// Events dropped (buffer full, or their batch given up).
    pub dropped: AtomicU64,
}

/// Events dropped and not yet recorded: how many, and the sequence numbers they spanned.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Dropped {
    count: u64,
    first: u64,
    last: u64,
}

impl Dropped {
    fn add(&mut self, first: u64, last: u64, count: u64) {
        if self.count == 0 {
            self.first = first;
        }
        self.first = self.first.min(first);
        self.last = self.last.max(last);
        self.count += count;
    }
}

/// What is waiting to be sent.
#[derive(Debug, Default)]
struct Queue {
    /// (sequence number, event JSON), oldest first.
    events: VecDeque<(u64, Bytes)>,
    /// The latest checkpoint line, while not yet sent.
    checkpoint: Option<Bytes>,
    /// The latest checkpoint line sent (repeated in every batch).
    last_checkpoint: Option<Bytes>,
    dropped: Dropped,
    /// Why the last drop happened.
    drop_reason: String,
    /// A batch is being sent.
    busy: bool,
}

/// The bounded buffer between the log writer (which publishes after each fsync) and the
/// sender task.
#[derive(Debug)]
pub(crate) struct Outbox {
    queue: Mutex<Queue>,
    capacity: usize,
    /// Wakes the sender: events arrived.
    arrived: Notify,
    /// Wakes waiters: a batch finished or the queue emptied.
    progressed: Notify,
    stats: Arc<WebhookStats>,
}

impl Outbox {
    fn new(capacity: usize, stats: Arc<WebhookStats>) -> Self {
        Self {
            queue: Mutex::new(Queue::default()),
            capacity: capacity.max(1),
            arrived: Notify::new(),
            progressed: Notify::new(),
            stats,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes a fsynced batch of events (and the newest checkpoint line, if one was written):
    /// what does not fit is dropped and counted. Never blocks on the endpoint.
    pub(crate) fn publish(&self, events: Vec<(u64, Bytes)>, checkpoint: Option<Bytes>) {
        if events.is_empty() && checkpoint.is_none() {
            return;
        }
        let mut queue = self.lock();
        let mut dropped = 0;
        for (seq, event) in events {
            if queue.events.len() >= self.capacity {
                queue.dropped.add(seq, seq, 1);
                dropped += 1;
            } else {
                queue.events.push_back((seq, event));
            }
        }
        if dropped > 0 {
            queue.drop_reason = format!("the webhook buffer ({} events) is full", self.capacity);
            self.stats.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        if checkpoint.is_some() {
            queue.checkpoint = checkpoint;
        }
        drop(queue);
        self.arrived.notify_one();
    }
}

/// The upstream batch body: an `EventList` of the events exactly as logged, plus the latest
/// checkpoint line as a string (receivers that do not know it ignore it).
fn batch_body(events: &[(u64, Bytes)], checkpoint: Option<&Bytes>) -> Vec<u8> {
    let size: usize = events.iter().map(|(_, e)| e.len() + 1).sum();
    let mut body = Vec::with_capacity(size + 256);
    body.extend_from_slice(
        br#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":["#,
    );
    for (i, (_, event)) in events.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(event);
    }
    body.push(b']');
    if let Some(line) = checkpoint {
        body.extend_from_slice(br#","checkpoint":"#);
        let text = String::from_utf8_lossy(line);
        // A JSON string of the verbatim line (its hash is what verify compares).
        if let Ok(quoted) = serde_json::to_string(text.as_ref()) {
            body.extend_from_slice(quoted.as_bytes());
        } else {
            body.extend_from_slice(b"null");
        }
    }
    body.push(b'}');
    body
}

/// How one attempt ended.
enum Attempt {
    Sent,
    /// Worth another try (connection error, timeout, 408, 429, 5xx).
    Retry(String),
    /// Retrying cannot help (another 4xx, or the request cannot be built).
    GiveUp(String),
}

/// The webhook's handle, held by the [`crate::AuditLog`].
#[derive(Debug)]
pub(crate) struct Webhook {
    pub(crate) outbox: Arc<Outbox>,
    pub(crate) stats: Arc<WebhookStats>,
}

impl Webhook {
    /// The buffer the log writer publishes into; [`Webhook::start`] starts sending.
    pub(crate) fn new(options: &WebhookOptions) -> Self {
        let stats = Arc::new(WebhookStats::default());
        Self {
            outbox: Arc::new(Outbox::new(options.buffer, Arc::clone(&stats))),
            stats,
        }
    }

    /// Builds the HTTPS client and starts the sender task on the current Tokio runtime;
    /// drops are recorded through `sink`.
    pub(crate) fn start(
        &self,
        mut options: WebhookOptions,
        sink: Arc<dyn AuditSink>,
    ) -> Result<(), AuditError> {
        options.max_batch = options.max_batch.max(1);
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(options.endpoint.tls_config()?)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(options.timeout)
            .connect_timeout(options.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| config_err(format!("HTTP client: {e}")))?;
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| config_err("the webhook needs a Tokio runtime"))?;
        let sender = Sender {
            client,
            options,
            outbox: Arc::clone(&self.outbox),
            sink,
            last_report: None,
        };
        handle.spawn(sender.run());
        Ok(())
    }

    /// Waits until everything published so far was sent or dropped, at most `within`;
    /// returns whether the buffer emptied.
    pub(crate) async fn drain(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let progressed = self.outbox.progressed.notified();
            {
                let queue = self.outbox.lock();
                if queue.events.is_empty() && queue.checkpoint.is_none() && !queue.busy {
                    return true;
                }
            }
            self.outbox.arrived.notify_one();
            if tokio::time::timeout_at(deadline, progressed).await.is_err() {
                return false;
            }
        }
    }
}

struct Sender {
    client: reqwest::Client,
    options: WebhookOptions,
    outbox: Arc<Outbox>,
    sink: Arc<dyn AuditSink>,
    last_report: Option<Instant>,
}

impl Sender {
    async fn run(mut self) {
        loop {
            let batch = self.next_batch().await;
            let (events, checkpoint) = batch;
            let first = events.first().map(|(seq, _)| *seq);
            let last = events.last().map(|(seq, _)| *seq);
            let body = Bytes::from(batch_body(&events, checkpoint.as_ref()));
            match self.send_with_retries(body).await {
                Ok(()) => {
                    let stats = &self.outbox.stats;
                    stats.sent.fetch_add(events.len() as u64, Ordering::Relaxed);
                    stats.batches.fetch_add(1, Ordering::Relaxed);
                    let mut queue = self.outbox.lock();
                    if checkpoint.is_some() {
                        queue.last_checkpoint.clone_from(&checkpoint);
                    }
                }
                Err(why) => {
                    let mut queue = self.outbox.lock();
                    if let (Some(first), Some(last)) = (first, last) {
                        queue.dropped.add(first, last, events.len() as u64);
                        queue.drop_reason = why;
                        self.outbox
                            .stats
                            .dropped
                            .fetch_add(events.len() as u64, Ordering::Relaxed);
                    }
                    // A checkpoint not delivered is offered again with the next batch.
                    if queue.checkpoint.is_none() && checkpoint != queue.last_checkpoint {
                        queue.checkpoint = checkpoint;
                    }
                }
            }
            self.outbox.lock().busy = false;
            self.report_drops().await;
            self.outbox.progressed.notify_waiters();
        }
    }

    /// Waits for events (or a new checkpoint), then up to `max_wait` for the batch to fill;
    /// takes up to `max_batch` events and the checkpoint to send with them.
    async fn next_batch(&mut self) -> (Vec<(u64, Bytes)>, Option<Bytes>) {
        let outbox = Arc::clone(&self.outbox);
        loop {
            let arrived = outbox.arrived.notified();
            let unreported = {
                let queue = outbox.lock();
                if !queue.events.is_empty() || queue.checkpoint.is_some() {
                    break;
                }
                queue.dropped.count > 0
            };
            // Drops seen while idle are still recorded, once their report is due.
            self.report_drops().await;
            outbox.progressed.notify_waiters();
            if unreported {
                let _ = tokio::time::timeout(self.options.drop_report_interval, arrived).await;
            } else {
                arrived.await;
            }
        }
        let deadline = tokio::time::Instant::now() + self.options.max_wait;
        loop {
            let arrived = outbox.arrived.notified();
            if outbox.lock().events.len() >= self.options.max_batch {
                break;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                break;
            }
        }
        let mut queue = outbox.lock();
        let take = queue.events.len().min(self.options.max_batch);
        let events: Vec<(u64, Bytes)> = queue.events.drain(..take).collect();
        let checkpoint = queue
            .checkpoint
            .take()
            .or_else(|| queue.last_checkpoint.clone());
        queue.busy = true;
        (events, checkpoint)
    }

    async fn send_with_retries(&self, body: Bytes) -> Result<(), String> {
        let mut delay = self.options.initial_backoff;
        let mut attempt = 1;
        loop {
            let why = match self.send_once(body.clone()).await {
                Attempt::Sent => return Ok(()),
                Attempt::GiveUp(why) => {
                    self.outbox.stats.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(endpoint = %self.options.endpoint.url, error = %why, "audit webhook refused a batch; dropped from the webhook (it stays in the log)");
                    return Err(why);
                }
                Attempt::Retry(why) => why,
            };
            self.outbox.stats.failures.fetch_add(1, Ordering::Relaxed);
            if attempt >= self.options.max_attempts {
                tracing::warn!(endpoint = %self.options.endpoint.url, attempts = attempt, error = %why, "audit webhook batch given up; dropped from the webhook (it stays in the log)");
                return Err(format!("{why} (after {attempt} attempts)"));
            }
            tracing::debug!(endpoint = %self.options.endpoint.url, attempt, error = %why, "audit webhook batch failed; retrying");
            tokio::time::sleep(jittered(delay)).await;
            delay = delay.saturating_mul(2).min(self.options.max_backoff);
            attempt += 1;
        }
    }

    async fn send_once(&self, body: Bytes) -> Attempt {
        let mut request = self
            .client
            .post(&self.options.endpoint.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(token) = &self.options.endpoint.token {
            let Ok(mut value) =
                reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            else {
                return Attempt::GiveUp("the bearer token is not a valid header value".into());
            };
            value.set_sensitive(true);
            request = request.header(reqwest::header::AUTHORIZATION, value);
        }
        match request.send().await {
            Ok(mut response) => {
                let status = response.status();
                // Read (a bounded part of) the answer, so the connection is kept for the next
                // batch.
                let mut read = 0;
                while let Ok(Some(chunk)) = response.chunk().await {
                    read += chunk.len();
                    if read > MAX_ANSWER {
                        break;
                    }
                }
                if status.is_success() {
                    Attempt::Sent
                } else if status.is_server_error()
                    || status == reqwest::StatusCode::REQUEST_TIMEOUT
                    || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                {
                    Attempt::Retry(format!("the endpoint answered {status}"))
                } else {
                    Attempt::GiveUp(format!("the endpoint answered {status}"))
                }
            }
            Err(e) => Attempt::Retry(error_chain(&e)),
        }
    }

    /// Records the drops not yet recorded, at most once per `drop_report_interval` while they
    /// continue.
    async fn report_drops(&mut self) {
        let due = self
            .last_report
            .is_none_or(|at| at.elapsed() >= self.options.drop_report_interval);
        if !due {
            return;
        }
        let (dropped, reason) = {
            let mut queue = self.outbox.lock();
            if queue.dropped.count == 0 {
                return;
            }
            (
                std::mem::take(&mut queue.dropped),
                std::mem::take(&mut queue.drop_reason),
            )
        };
        self.last_report = Some(Instant::now());
        let event = drop_event(&self.options.endpoint, dropped, &reason);
        self.sink.record(event).await;
    }
}

/// The record of events that did not reach the webhook.
fn drop_event(endpoint: &WebhookEndpoint, dropped: Dropped, reason: &str) -> Event {
    Event::component(
        "audit-webhook",
        "drop",
        ObjectRef {
            api_group: "audit.bulwark.dev".into(),
            resource: "webhooks".into(),
            name: Some(endpoint.host()),
            ..ObjectRef::default()
        },
    )
    .note("audit.bulwark.dev/dropped", dropped.count.to_string())
    .note(
        "audit.bulwark.dev/dropped-seq",
        format!("{}-{}", dropped.first, dropped.last),
    )
    .failed(format!(
        "{} events did not reach the webhook ({reason}); they are in the log, records {} to {}",
        dropped.count, dropped.first, dropped.last
    ))
}

/// An error with its causes (reqwest's own message alone says little).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `delay` with up to half of it taken off at random, so senders do not retry in step.
fn jittered(delay: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let random = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut byte)
        .map_or(0, |()| byte[0]);
    delay.saturating_sub((delay / 2).saturating_mul(u32::from(random)) / 255)
}

/// The most of an endpoint's answer that is read (the rest is dropped with the connection).
const MAX_ANSWER: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    #[test]
    fn batch_body_is_an_event_list_with_the_checkpoint_verbatim() {
        let events = vec![
            (1, Bytes::from_static(br#"{"auditID":"a"}"#)),
            (2, Bytes::from_static(br#"{"auditID":"b"}"#)),
        ];
        let line = Bytes::from_static(br#"{"seq":3,"prev":"x","checkpoint":{"sig":"\u00e9"}}"#);
        let body: serde_json::Value =
            serde_json::from_slice(&batch_body(&events, Some(&line))).unwrap();
        assert_eq!(body["kind"], "EventList");
        assert_eq!(body["apiVersion"], "audit.k8s.io/v1");
        assert_eq!(body["items"][1]["auditID"], "b");
        assert_eq!(body["checkpoint"].as_str().unwrap().as_bytes(), &line[..]);
        let empty: serde_json::Value = serde_json::from_slice(&batch_body(&[], None)).unwrap();
        assert_eq!(empty["items"], serde_json::json!([]));
        assert!(empty.get("checkpoint").is_none());
    }

    #[test]
    fn a_full_buffer_drops_and_counts() {
        let stats = Arc::new(WebhookStats::default());
        let outbox = Outbox::new(2, Arc::clone(&stats));
        let events = (10..15).map(|s| (s, Bytes::from_static(b"{}"))).collect();
        outbox.publish(events, None);
        let queue = outbox.lock();
        assert_eq!(queue.events.len(), 2);
        assert_eq!(
            queue.dropped,
            Dropped {
                count: 3,
                first: 12,
                last: 14
            }
        );
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn jitter_stays_within_half() {
        for _ in 0..100 {
            let d = jittered(Duration::from_millis(1000));
            assert!(d >= Duration::from_millis(500) && d <= Duration::from_millis(1000));
        }
    }

    fn kubeconfig(cluster_extra: &str, user: &str) -> String {
        let ca =
            bulwark_pki::ca::CertificateAuthority::generate("siem-ca", Duration::from_secs(3600))
                .unwrap();
        let ca = STANDARD.encode(ca.cert_pem());
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: siem\n  cluster:\n    server: https://siem.example:8443/audit\n    certificate-authority-data: {ca}\n{cluster_extra}users:\n- name: bulwark\n  user:\n{user}contexts:\n- name: c\n  context:\n    cluster: siem\n    user: bulwark\ncurrent-context: c\n"
        )
    }

    #[test]
    fn kubeconfigs_are_read_and_unsafe_ones_refused() {
        let base = Path::new("/nonexistent");
        let ok = WebhookEndpoint::parse_kubeconfig(&kubeconfig("", "    token: s3cret\n"), base);
        let ok = ok.unwrap();
        assert_eq!(ok.url, "https://siem.example:8443/audit");
        assert_eq!(ok.token.as_ref().unwrap().expose(), "s3cret");
        assert_eq!(ok.host(), "siem.example:8443");
        assert!(!format!("{ok:?}").contains("s3cret"));
        let refused = [
            (
                kubeconfig("    insecure-skip-tls-verify: true\n", "    token: t\n"),
                "insecure",
            ),
            (
                kubeconfig("", "    exec:\n      command: get-token\n"),
                "only client certificates",
            ),
            (
                kubeconfig("", "    client-certificate-data: eA==\n"),
                "needs its key",
            ),
            (
                kubeconfig("", "    token: t\n").replace("https://siem", "http://siem"),
                "not https",
            ),
            (
                kubeconfig("", "    token: t\n")
                    .replace("current-context: c", "current-context: d"),
                "not defined",
            ),
            ("clusters: 7".to_owned(), "not a kubeconfig"),
        ];
        for (text, why) in refused {
            let err = WebhookEndpoint::parse_kubeconfig(&text, base).unwrap_err();
            assert!(err.to_string().contains(why), "{why}: {err}");
        }
        let no_ca = kubeconfig("", "    token: t\n").replace("certificate-authority-data", "x");
        let err = WebhookEndpoint::parse_kubeconfig(&no_ca, base).unwrap_err();
        assert!(err.to_string().contains("required"), "{err}");
    }
}
