//! The posture scanner inside the API server: it gathers the server's own evidence (its
//! effective configuration, PKI files, encryption state, policies and the answers of the
//! posture probes, the stored objects), runs the catalogue over it, and keeps the latest
//! report and the score's history. A full scan runs every `interval` (10 minutes by
//! default) and whenever objects change (watch-driven, debounced); every scan's summary and
//! every finding that opened or closed is an audit event. Reports are served by
//! `posture.bulwark.dev/v1` ([`api`]), exports are signed with the PKI's posture signing
//! key, and every scan is also published as `wgpolicyk8s.io/v1alpha2` PolicyReports
//! (`publish`) for the tools built on the Policy WG's format.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bulwark_posture::export::{Format, TrendPoint};
use bulwark_posture::signing::ReportSignature;
use bulwark_posture::{Catalogue, Framework, Report, State};

use crate::state::ApiState;

pub mod api;
pub mod evidence;
mod history;
mod publish;

/// Points of the trend kept in memory (the stored history may hold more).
const HISTORY: usize = 10_000;
/// After a rescan driven by object changes, the scanner waits at least this many times as
/// long as the scan took (and at least the debounce): under constant change it takes at
/// most a fifth of one core, so a large cluster's writes are not slowed by rescanning it.
/// A small cluster's scan takes milliseconds and still follows a change within a second.
const RESCAN_PAUSE_PER_SCAN_TIME: u32 = 4;

/// What the binary knows of the server that the state does not hold.
#[derive(Debug, Clone)]
pub struct PostureSettings {
    /// The configuration parts the flags decide (listeners, TLS, datastore, audit files …);
    /// the rest is filled from the state at each scan.
    pub server: bulwark_posture::evidence::ServerConfig,
    /// Key, certificate and directory files of the PKI, with what each holds.
    pub pki_files: Vec<(std::path::PathBuf, bulwark_posture::evidence::FileKind)>,
    /// Certificates in use: (name, file, renewed by the server).
    pub certificates: Vec<(String, std::path::PathBuf, bool)>,
    /// Full-scan period.
    pub interval: Duration,
    /// How long object changes are gathered before a rescan.
    pub debounce: Duration,
    /// The audit webhook's counters, when one is configured.
    pub webhook_stats: Option<Arc<bulwark_audit::webhook::WebhookStats>>,
    /// How long the score's history is kept.
    pub history_retention: Duration,
}

/// The key exports are signed with.
pub struct Signer {
    key: ring::signature::Ed25519KeyPair,
    cert_pem: String,
}

impl Signer {
    /// A signer from a PKCS#8 Ed25519 key and its certificate.
    pub fn new(pkcs8: &[u8], cert_pem: String) -> Result<Self, String> {
        let key = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8)
            .map_err(|e| format!("the posture signing key is not an Ed25519 PKCS#8 key: {e}"))?;
        Ok(Self { key, cert_pem })
    }
}

/// The scanner.
pub struct Posture {
    settings: PostureSettings,
    catalogue: Catalogue,
    latest: ArcSwapOption<Report>,
    history: std::sync::Mutex<VecDeque<TrendPoint>>,
    signer: ArcSwapOption<Signer>,
    scans: AtomicU64,
    trigger: tokio::sync::Notify,
    scanning: tokio::sync::Mutex<()>,
    closed: std::sync::atomic::AtomicBool,
    /// The last point stored (its time, score and failing count).
    stored: std::sync::Mutex<Option<(i64, Option<f64>, u32)>>,
    /// The `wgpolicyk8s.io` reports published.
    publisher: publish::Publisher,
}

impl std::fmt::Debug for Posture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Posture")
            .field("scans", &self.scans.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// A signed export.
#[derive(Debug, Clone)]
pub struct Export {
    /// The rendered report.
    pub content: Vec<u8>,
    /// Its signature (None when no signing key is configured).
    pub signature: Option<ReportSignature>,
}

impl Posture {
    /// A scanner over the built-in catalogue.
    pub fn new(settings: PostureSettings) -> Result<Self, bulwark_posture::PostureError> {
        Ok(Self {
            settings,
            catalogue: Catalogue::builtin()?,
            latest: ArcSwapOption::empty(),
            history: std::sync::Mutex::new(VecDeque::new()),
            signer: ArcSwapOption::empty(),
            scans: AtomicU64::new(0),
            trigger: tokio::sync::Notify::new(),
            scanning: tokio::sync::Mutex::new(()),
            closed: std::sync::atomic::AtomicBool::new(false),
            stored: std::sync::Mutex::new(None),
            publisher: publish::Publisher::default(),
        })
    }

    /// Signs exports with `signer` from now on (the PKI renews it).
    pub fn set_signer(&self, signer: Signer) {
        self.signer.store(Some(Arc::new(signer)));
    }

    /// The settings.
    pub fn settings(&self) -> &PostureSettings {
        &self.settings
    }

    /// The catalogue.
    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// The latest report (None before the first scan).
    pub fn latest(&self) -> Option<Arc<Report>> {
        self.latest.load_full()
    }

    /// Scans run so far.
    pub fn scans(&self) -> u64 {
        self.scans.load(Ordering::Relaxed)
    }

    /// The score's history, oldest first.
    pub fn trend(&self) -> Vec<TrendPoint> {
        self.history
            .lock()
            .map(|h| h.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Asks for a rescan soon.
    pub fn poke(&self) {
        self.trigger.notify_one();
    }

    /// Ends the scanning task started by [`Posture::start`] once the scan under way (if any)
    /// is finished. The server calls it at shutdown before its last audit flush, so that no
    /// scan logs an event after the log has been handed to the webhook.
    pub fn stop(&self) {
        self.closed.store(true, Ordering::Release);
        self.trigger.notify_one();
    }

    /// Runs one full scan now and makes it the latest report.
    pub async fn scan(&self, state: &ApiState) -> Arc<Report> {
        let _one_at_a_time = self.scanning.lock().await;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let started = std::time::Instant::now();
        let source = evidence::collect(self, state).await;
        let exceptions = evidence::exceptions(state).await;
        let collected = started.elapsed();
        let catalogue = self.catalogue.clone();
        let report = tokio::task::spawn_blocking(move || {
            use bulwark_posture::EvidenceSource as _;
            let snapshot = source.snapshot(now);
            bulwark_posture::scan(
                &snapshot,
                &bulwark_posture::ScanOptions {
                    catalogue: &catalogue,
                    exceptions: &exceptions,
                    manifests_only: false,
                    framework: None,
                    name: "cluster",
                    source: "bulwark-apiserver",
                },
            )
        })
        .await;
        let report = match report {
            Ok(r) => Arc::new(r),
            Err(e) => {
                tracing::error!(error = %e, "posture scan task failed");
                return self
                    .latest()
                    .unwrap_or_else(|| Arc::new(empty_report(&self.catalogue)));
            }
        };
        let previous = self.latest.swap(Some(Arc::clone(&report)));
        let scan = self.scans.fetch_add(1, Ordering::Relaxed) + 1;
        let point = TrendPoint {
            time: report.generated.clone(),
            score: report.summaries.first().and_then(|s| s.score),
            failing: u32::try_from(
                report
                    .controls
                    .iter()
                    .filter(|c| c.state == State::Fail)
                    .count(),
            )
            .unwrap_or(u32::MAX),
        };
        if let Ok(mut history) = self.history.lock() {
            history.push_back(point.clone());
            while history.len() > HISTORY {
                history.pop_front();
            }
        }
        let due = self.stored.lock().ok().is_some_and(|mut last| {
            let interval = i64::try_from(self.settings.interval.as_secs()).unwrap_or(i64::MAX);
            let due = last.is_none_or(|(at, score, failing)| {
                score != point.score || failing != point.failing || now - at >= interval
            });
            if due {
                *last = Some((now, point.score, point.failing));
            }
            due
        });
        if due {
            let retention =
                i64::try_from(self.settings.history_retention.as_secs()).unwrap_or(i64::MAX);
            history::append(state, &point, now, scan, now.saturating_sub(retention)).await;
        }
        let evaluated = started.elapsed();
        audit_scan(state, previous.as_deref(), &report).await;
        let audited = started.elapsed();
        let published = self.publisher.publish(state, &report).await;
        tracing::debug!(
            collect_ms = collected.as_millis(),
            evaluate_ms = (evaluated - collected).as_millis(),
            audit_ms = (audited - evaluated).as_millis(),
            publish_ms = (started.elapsed() - audited).as_millis(),
            reports_written = published.written,
            reports_unchanged = published.unchanged,
            reports_deleted = published.deleted,
            findings = report.findings().count(),
            "posture scan"
        );
        report
    }

    /// Renders the latest report (restricted to `framework`) as `format`, signed.
    pub fn export(&self, report: &Report, format: Format, framework: Option<Framework>) -> Export {
        let report = report.restrict(framework);
        let content = bulwark_posture::export::render(&report, format, &self.trend());
        let signature = self.signer.load_full().map(|s| {
            bulwark_posture::signing::sign(
                &content,
                format.as_str(),
                &bulwark_posture::scan::rfc3339(time::OffsetDateTime::now_utc().unix_timestamp()),
                &s.key,
                &s.cert_pem,
            )
        });
        Export { content, signature }
    }

    /// Scans when the server is ready, then every interval and after object changes.
    pub fn start(self: &Arc<Self>, state: Arc<ApiState>) -> tokio::task::JoinHandle<()> {
        let me = Arc::clone(self);
        let watcher_state = Arc::clone(&state);
        let watcher = Arc::clone(self);
        // Object changes poke the scanner; a closed store ends both tasks.
        tokio::spawn(async move {
            use bulwark_store::{ListOptions, StoreError};
            let pause = || tokio::time::sleep(Duration::from_secs(1));
            loop {
                let options = ListOptions {
                    limit: 1,
                    ..ListOptions::default()
                };
                let after = match watcher_state
                    .objects
                    .list("/registry/namespaces/", options)
                    .await
                {
                    Ok(page) => page.revision,
                    Err(StoreError::Closed) => break,
                    Err(_) => {
                        pause().await;
                        continue;
                    }
                };
                let mut watch = match watcher_state.objects.watch("/registry/", after).await {
                    Ok(w) => w,
                    Err(StoreError::Closed) => break,
                    Err(_) => {
                        pause().await;
                        continue;
                    }
                };
                loop {
                    match watch.next().await {
                        // The published reports are output, not evidence; but a deleted
                        // one is published again at once.
                        Ok(event) if event.kv.key.starts_with(publish::KEY_PREFIX) => {
                            if event.kind == bulwark_store::EventKind::Delete {
                                watcher.publisher.forget(&event.kv.key);
                                watcher.poke();
                            }
                        }
                        Ok(_) => watcher.poke(),
                        Err(StoreError::Closed) => {
                            watcher.closed.store(true, Ordering::Release);
                            watcher.poke();
                            return;
                        }
                        // Compacted or lagging: watch again from now.
                        Err(_) => break,
                    }
                }
            }
            watcher.closed.store(true, Ordering::Release);
            watcher.poke();
        });
        tokio::spawn(async move {
            // The stored history first (it needs only the store), so that it is there as soon
            // as the server answers; points of scans asked for meanwhile are newer and stay
            // after it.
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let retention =
                i64::try_from(me.settings.history_retention.as_secs()).unwrap_or(i64::MAX);
            let stored = history::load(&state, now.saturating_sub(retention)).await;
            if let Ok(mut history) = me.history.lock() {
                let mut merged: VecDeque<TrendPoint> = stored.into();
                merged.append(&mut history);
                let skip = merged.len().saturating_sub(HISTORY);
                merged.drain(..skip);
                *history = merged;
            }
            while !state.ready.load(Ordering::Acquire) {
                if me.closed.load(Ordering::Acquire) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            loop {
                if me.closed.load(Ordering::Acquire) {
                    return;
                }
                let started = std::time::Instant::now();
                me.scan(&state).await;
                let took = started.elapsed();
                tokio::select! {
                    () = tokio::time::sleep(me.settings.interval) => {}
                    () = me.trigger.notified() => {
                        if me.closed.load(Ordering::Acquire) {
                            return;
                        }
                        // Gather the burst, then scan once.
                        let pause = me.settings.debounce.max(took * RESCAN_PAUSE_PER_SCAN_TIME);
                        tokio::time::sleep(pause).await;
                    }
                }
            }
        })
    }
}

fn empty_report(catalogue: &Catalogue) -> Report {
    Report {
        api_version: bulwark_posture::report::REPORT_API_VERSION.to_owned(),
        kind: "PostureReport".to_owned(),
        metadata: serde_json::json!({"name": "cluster"}),
        generated: String::new(),
        catalogue_version: catalogue.version().to_owned(),
        source: "bulwark-apiserver".to_owned(),
        framework: "all".to_owned(),
        summaries: Vec::new(),
        controls: Vec::new(),
    }
}

/// The audit events of a scan: its summary, and each failing finding that opened or closed
/// since the previous scan.
async fn audit_scan(state: &ApiState, previous: Option<&Report>, report: &Report) {
    let Some(auditing) = &state.auditing else {
        return;
    };
    let failing = |r: &Report| -> BTreeSet<(String, String)> {
        r.findings()
            .filter(|f| f.outcome.state == State::Fail)
            .map(|f| (f.key(), f.outcome.message.clone()))
            .collect()
    };
    let now = failing(report);
    let object = |name: &str| bulwark_audit::ObjectRef {
        resource: "posturereports".into(),
        name: Some(name.to_owned()),
        api_group: bulwark_api::posture::GROUP.into(),
        api_version: "v1".into(),
        ..bulwark_audit::ObjectRef::default()
    };
    let all = report.summaries.first();
    let event = bulwark_audit::Event::component("posture", "scan", object("cluster"))
        .note(
            "posture.bulwark.dev/catalogue-version",
            report.catalogue_version.clone(),
        )
        .note(
            "posture.bulwark.dev/score",
            all.and_then(|s| s.score)
                .map_or_else(|| "none".to_owned(), |s| format!("{s:.1}")),
        )
        .note(
            "posture.bulwark.dev/coverage",
            all.map_or_else(String::new, |s| format!("{:.1}", s.coverage)),
        )
        .note(
            "posture.bulwark.dev/failing-findings",
            now.len().to_string(),
        );
    auditing.sink.record(event).await;
    let Some(previous) = previous else {
        // The first scan of this process: every failing finding is news.
        for (key, message) in &now {
            let event =
                bulwark_audit::Event::component("posture", "finding-opened", object("cluster"))
                    .note("posture.bulwark.dev/finding", key.clone())
                    .note("posture.bulwark.dev/message", message.clone());
            auditing.sink.record(event).await;
        }
        return;
    };
    let before = failing(previous);
    let keys =
        |s: &BTreeSet<(String, String)>| s.iter().map(|(k, _)| k.clone()).collect::<BTreeSet<_>>();
    let (before_keys, now_keys) = (keys(&before), keys(&now));
    for (key, message) in now.iter().filter(|(k, _)| !before_keys.contains(k)) {
        let event = bulwark_audit::Event::component("posture", "finding-opened", object("cluster"))
            .note("posture.bulwark.dev/finding", key.clone())
            .note("posture.bulwark.dev/message", message.clone());
        auditing.sink.record(event).await;
    }
    for (key, _) in before.iter().filter(|(k, _)| !now_keys.contains(k)) {
        let event =
            bulwark_audit::Event::component("posture", "finding-resolved", object("cluster"))
                .note("posture.bulwark.dev/finding", key.clone());
        auditing.sink.record(event).await;
    }
}
