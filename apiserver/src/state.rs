//! The server's shared state: the store and the pipeline stages every request passes.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::admission::AdmissionPlugin;
use crate::authn::Authenticator;
use crate::authz::Authorizer;
use crate::http::metrics::Metrics;
use crate::storage::event_cache::EventCache;

impl ApiState {
    /// Puts `limits` in force (before serving): the limits themselves and the counters that
    /// enforce them.
    pub fn apply_limits(&mut self, limits: crate::http::limits::Limits) {
        self.inflight =
            crate::http::inflight::InflightLimit::new(limits.request.max_requests_inflight);
        self.watch_slots = crate::rest::watch_slots::WatchSlots::new(
            &limits.watches,
            self.metrics.watches.clone(),
        );
        self.limits = limits;
    }
}

/// Everything a request handler needs.
pub struct ApiState {
    /// Where objects live: the store behind the value transformer.
    pub objects: crate::storage::ObjectStorage,
    /// Authentication chain, tried in order.
    pub authenticators: Vec<Box<dyn Authenticator>>,
    /// The authorization stage.
    pub authorizer: Box<dyn Authorizer>,
    /// The Cedar engine, when policies are served as CedarPolicy objects (the access review
    /// APIs and policy admission use it; None with the bootstrap authorizer).
    pub policies: Option<Arc<bulwark_policies::PolicyEngine>>,
    /// The admission policies in force (kept in sync with CedarPolicy objects of kind
    /// Admission whenever `policies` is set).
    pub admission_policies: Arc<bulwark_admission::AdmissionEngine>,
    /// The audit log and policy (None: requests are not audited).
    pub auditing: Option<crate::audit::record::Auditing>,
    /// The mirrored RBAC roles and bindings (RBAC escalation checks read roles here).
    pub rbac_roles: Arc<arc_swap::ArcSwap<bulwark_policies::rbac::RbacSet>>,
    /// Namespace labels, mirrored for authorization.
    pub namespace_labels: Arc<crate::authz::namespace_labels::NamespaceLabels>,
    /// Admission plugins, run in order on writes.
    pub admission: Vec<Box<dyn AdmissionPlugin>>,
    /// Watch events decoded once for all watchers.
    pub events: Arc<EventCache>,
    /// Service-account token keys (TokenRequest and bearer-token authentication).
    pub tokens: Option<Arc<crate::authn::sa_token::TokenKeys>>,
    /// Request metrics.
    pub metrics: Metrics,
    /// Admissions run a bounded number at a time, off the async workers.
    pub admission_gate: crate::admission::gate::AdmissionGate,
    /// Concurrent request limit (429 beyond it).
    pub inflight: crate::http::inflight::InflightLimit,
    /// Every bound on a client's work (see [`crate::http::limits`]); set with
    /// [`ApiState::apply_limits`] so the counters below follow.
    pub limits: crate::http::limits::Limits,
    /// Open watches, per user and in total.
    pub watch_slots: Arc<crate::rest::watch_slots::WatchSlots>,
    /// Set once bootstrap objects exist; `/readyz` reports it.
    pub ready: AtomicBool,
}
