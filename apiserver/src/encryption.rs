//! Encryption at rest, operated: which providers and keys are in force and how healthy they
//! are ([`Encryption`]), what is stored under which key ([`scan`]), online key rotation
//! ([`rotation`]) and the `encryption.bulwark.dev/v1` API that exposes them ([`api`]), so
//! operators and auditors use kubectl or `bulwark secrets` instead of the data directory.

pub(crate) mod api;
pub(crate) mod rotation;
pub(crate) mod scan;

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bulwark_encryption::ValueTransformer;
use bulwark_encryption::envelope::EnvelopeProvider;
use bulwark_encryption::local::LocalKeyring;
use bulwark_encryption::resources::ResourceTransformers;

/// The current time in RFC 3339, as records and objects show it.
pub(crate) fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// What encryption operations read and write: the object storage and the served resources
/// (owned, so a rotation outlives the request that started it).
#[derive(Clone)]
pub(crate) struct Backing {
    /// The store behind the transformer.
    pub objects: crate::storage::ObjectStorage,
    /// The served resources.
    pub registry: Arc<dyn crate::registry::ResourceRegistry>,
    /// Where what a rotation does on its own (finishing, retiring keys, failing) is recorded.
    pub audit: Option<Arc<dyn bulwark_audit::AuditSink>>,
}

impl Backing {
    /// The backing of `state`.
    pub fn of(state: &crate::state::ApiState) -> Self {
        Self {
            objects: state.objects.clone(),
            registry: Arc::clone(&state.registry),
            audit: state.auditing.as_ref().map(|a| Arc::clone(&a.sink)),
        }
    }

    /// Records a component event of encryption at rest about `key` (a key id), if audited.
    pub async fn record(&self, verb: &str, key: &str, notes: &[(&str, String)]) {
        let Some(sink) = &self.audit else {
            return;
        };
        let object = bulwark_audit::ObjectRef {
            resource: "encryptionkeys".into(),
            name: Some(key.to_owned()),
            api_group: api::GROUP.into(),
            api_version: "v1".into(),
            ..bulwark_audit::ObjectRef::default()
        };
        let mut event = bulwark_audit::Event::component("encryption", verb, object);
        for (name, value) in notes {
            event = event.note(name, value.clone());
        }
        sink.record(event).await;
    }
}

/// What a provider last said about its health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Health {
    /// Whether its last status call succeeded with `ok`.
    pub healthy: bool,
    /// The status message, or why the call failed.
    pub message: String,
    /// The key id it named.
    pub key_id: Option<String>,
}

/// The server's encryption at rest: the transformer every stored value goes through, the
/// local keyring when Bulwark holds the KEK itself, and the state of a rotation.
#[derive(Debug)]
pub struct Encryption {
    transformers: Arc<ResourceTransformers>,
    keyring: Option<(String, Arc<LocalKeyring>)>,
    source: String,
    health: RwLock<BTreeMap<String, Health>>,
    pub(crate) rotation: rotation::Rotator,
}

impl Encryption {
    /// Encryption by `transformers`; `keyring` is the local keyring and the name of the
    /// provider it backs, if one does; `source` says where the configuration came from.
    pub fn new(
        transformers: ResourceTransformers,
        keyring: Option<(String, Arc<LocalKeyring>)>,
        source: impl Into<String>,
    ) -> Self {
        Self {
            transformers: Arc::new(transformers),
            keyring,
            source: source.into(),
            health: RwLock::default(),
            rotation: rotation::Rotator::default(),
        }
    }

    /// The transformer object storage writes and reads through.
    pub fn transformer(&self) -> Arc<dyn ValueTransformer> {
        Arc::clone(&self.transformers) as Arc<dyn ValueTransformer>
    }

    /// The resource rules.
    pub fn transformers(&self) -> &ResourceTransformers {
        &self.transformers
    }

    /// The local keyring and its provider's name.
    pub(crate) fn keyring(&self) -> Option<&(String, Arc<LocalKeyring>)> {
        self.keyring.as_ref()
    }

    /// Where the configuration came from (the server's start event records it).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Every envelope provider, by name.
    pub(crate) fn envelopes(&self) -> impl Iterator<Item = &EnvelopeProvider> {
        self.transformers
            .readers()
            .iter()
            .filter_map(|p| p.envelope())
    }

    /// What each provider last said.
    pub(crate) fn health(&self) -> BTreeMap<String, Health> {
        self.health
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Asks every envelope provider for its status now (and so picks up a new key id).
    pub async fn refresh(&self) {
        for envelope in self.envelopes() {
            let health = match envelope.refresh().await {
                Ok(status) => Health {
                    healthy: true,
                    message: status.healthz,
                    key_id: Some(status.key_id),
                },
                Err(e) => Health {
                    healthy: false,
                    message: e.to_string(),
                    key_id: None,
                },
            };
            let previous = self
                .health
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(envelope.name().to_owned(), health.clone());
            // Logged when it changes, not on every poll.
            if previous.as_ref().map(|h| h.healthy) != Some(health.healthy) {
                if health.healthy {
                    tracing::info!(provider = envelope.name(), key_id = ?health.key_id, "encryption provider healthy");
                } else {
                    tracing::error!(provider = envelope.name(), message = %health.message, "encryption provider unhealthy: writes needing a new data key will fail");
                }
            }
        }
    }

    /// Polls every provider's status every `every` (upstream polls KMS plugins each minute).
    pub fn start_status_poll(self: &Arc<Self>, every: Duration) {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            // Bootstrap asked once already: the first poll is one interval later.
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tick.tick().await;
                this.refresh().await;
            }
        });
    }
}
