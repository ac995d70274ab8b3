//! Prometheus metrics (`/metrics`): request counts by verb, resource and code, and latency
//! histograms by verb and resource, in upstream's metric names; refusals by each of the
//! server's limits ([`crate::http::limits`]), the open connections and watches they bound, and
//! encryption at rest per provider (values sealed and opened, KMS calls, health).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bulwark_audit::webhook::WebhookStats;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CountLabels {
    verb: String,
    resource: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    verb: String,
    resource: String,
}

/// The apiserver's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<CountLabels, Counter>,
    latency: Family<LatencyLabels, Histogram>,
    refusals: Family<LimitLabels, Counter>,
    /// Open client connections (after the TLS handshake started).
    pub connections: Gauge,
    /// Open watches.
    pub watches: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let requests = Family::<CountLabels, Counter>::default();
        let latency = Family::<LatencyLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        let mut registry = Registry::default();
        registry.register(
            "apiserver_request",
            "Requests by verb, resource and HTTP code",
            requests.clone(),
        );
        registry.register(
            "apiserver_request_duration_seconds",
            "Request latency by verb and resource (watches: time to the start of the stream)",
            latency.clone(),
        );
        let refusals = Family::<LimitLabels, Counter>::default();
        for limit in crate::http::limits::Limit::ALL {
            let _ = refusals.get_or_create(&LimitLabels {
                limit: limit.as_str(),
            });
        }
        registry.register(
            "bulwark_limit_refusals",
            "Requests refused and connections closed by each of the server's limits",
            refusals.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "bulwark_open_connections",
            "Client connections open now",
            connections.clone(),
        );
        let watches = Gauge::default();
        registry.register("bulwark_open_watches", "Watches open now", watches.clone());
        Self {
            registry,
            requests,
            latency,
            refusals,
            connections,
            watches,
        }
    }
}

/// The audit webhook's counters, read at each scrape.
#[derive(Debug)]
struct WebhookCollector(Arc<WebhookStats>);

impl Collector for WebhookCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = &self.0;
        for (name, help, value) in [
            (
                "apiserver_audit_webhook_events_sent",
                "Audit events the webhook endpoint accepted",
                &stats.sent,
            ),
            (
                "apiserver_audit_webhook_batches_sent",
                "Audit batches the webhook endpoint accepted",
                &stats.batches,
            ),
            (
                "apiserver_audit_webhook_failures",
                "Audit webhook requests that failed (each retry counts)",
                &stats.failures,
            ),
            (
                "apiserver_audit_webhook_events_dropped",
                "Audit events that did not reach the webhook (they are in the log)",
                &stats.dropped,
            ),
        ] {
            let counter = ConstCounter::new(value.load(Ordering::Relaxed));
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: String,
}

/// Which counter of a provider's stats.
type StatField = fn(&bulwark_encryption::envelope::EnvelopeStats) -> &std::sync::atomic::AtomicU64;

/// Encryption at rest's counters, read from the providers when scraped.
#[derive(Debug)]
struct EncryptionCollector(Arc<crate::encryption::Encryption>);

impl Collector for EncryptionCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counters: [(&str, &str, StatField); 4] = [
            (
                "apiserver_envelope_encryption_writes",
                "Values sealed by the provider",
                |s| &s.writes,
            ),
            (
                "apiserver_envelope_encryption_reads",
                "Values opened by the provider",
                |s| &s.reads,
            ),
            (
                "apiserver_envelope_encryption_kms_encrypt_calls",
                "Encrypt calls to the key service (one per new data key seed)",
                |s| &s.kms_encrypts,
            ),
            (
                "apiserver_envelope_encryption_kms_decrypt_calls",
                "Decrypt calls to the key service (one per seed not cached)",
                |s| &s.kms_decrypts,
            ),
        ];
        for (name, help, field) in counters {
            let counter = ConstCounter::new(0u64);
            let mut family = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            for envelope in self.0.envelopes() {
                let labels = ProviderLabels {
                    provider: envelope.name().to_owned(),
                };
                ConstCounter::new(field(envelope.stats()).load(Ordering::Relaxed))
                    .encode(family.encode_family(&labels)?)?;
            }
        }
        let health = self.0.health();
        let gauge = prometheus_client::metrics::gauge::ConstGauge::new(0i64);
        let mut family = encoder.encode_descriptor(
            "apiserver_envelope_encryption_provider_healthy",
            "1 when the provider's last status call answered ok",
            None,
            gauge.metric_type(),
        )?;
        for envelope in self.0.envelopes() {
            let healthy = health.get(envelope.name()).is_none_or(|h| h.healthy);
            let labels = ProviderLabels {
                provider: envelope.name().to_owned(),
            };
            prometheus_client::metrics::gauge::ConstGauge::new(i64::from(healthy))
                .encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

impl Metrics {
    /// Exposes encryption at rest's counters per provider.
    pub fn register_encryption(&mut self, encryption: Arc<crate::encryption::Encryption>) {
        self.registry
            .register_collector(Box::new(EncryptionCollector(encryption)));
    }

    /// Exposes the audit webhook's counters (sent, failed, dropped).
    pub fn register_audit_webhook(&mut self, stats: Arc<WebhookStats>) {
        self.registry
            .register_collector(Box::new(WebhookCollector(stats)));
    }

    /// Records one finished request.
    pub fn observe(&self, verb: &str, resource: &str, code: u16, seconds: f64) {
        self.requests
            .get_or_create(&CountLabels {
                verb: verb.to_owned(),
                resource: resource.to_owned(),
                code: code.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&LatencyLabels {
                verb: verb.to_owned(),
                resource: resource.to_owned(),
            })
            .observe(seconds);
    }

    /// Counts one refusal by `limit`.
    pub fn limit_refused(&self, limit: crate::http::limits::Limit) {
        self.refusals
            .get_or_create(&LimitLabels {
                limit: limit.as_str(),
            })
            .inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_audit_webhook_counters() {
        let mut m = Metrics::default();
        let stats = Arc::new(WebhookStats::default());
        stats.dropped.store(7, Ordering::Relaxed);
        m.register_audit_webhook(Arc::clone(&stats));
        let text = m.render();
        assert!(
            text.contains("apiserver_audit_webhook_events_dropped_total 7"),
            "{text}"
        );
        assert!(text.contains("apiserver_audit_webhook_events_sent_total 0"));
    }

    #[test]
    fn renders_counts() {
        let m = Metrics::default();
        m.observe("get", "pods", 200, 0.002);
        let text = m.render();
        assert!(
            text.contains("apiserver_request_total{verb=\"get\",resource=\"pods\",code=\"200\"} 1"),
            "{text}"
        );
        assert!(text.contains("apiserver_request_duration_seconds_bucket"));
        assert!(
            text.contains("bulwark_limit_refusals_total{limit=\"max-json-patch-operations\"} 0"),
            "{text}"
        );
        m.limit_refused(crate::http::limits::Limit::JsonPatchOperations);
        assert!(
            m.render()
                .contains("bulwark_limit_refusals_total{limit=\"max-json-patch-operations\"} 1")
        );
    }
}
