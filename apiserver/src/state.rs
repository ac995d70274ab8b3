//! The server's shared state: the store and the pipeline stages every request passes.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::admission::AdmissionPlugin;
use crate::authn::Authenticator;
use crate::authz::Authorizer;
use crate::http::metrics::Metrics;
use crate::storage::event_cache::EventCache;

impl ApiState {
    /// A server over `store` whose bootstrap admins are `admin_group`: x509 authentication,
    /// the bootstrap authorizer (everyone else denied), namespace lifecycle admission, the
    /// default limits, no audit. The builder's methods add the rest.
    pub fn builder<E: bulwark_store::Engine>(
        store: bulwark_store::Store<E>,
        admin_group: &str,
    ) -> ApiStateBuilder {
        ApiStateBuilder {
            state: crate::default_state(store, admin_group, None),
        }
    }

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

/// Builds an [`ApiState`]: `ApiState::builder(store, admins).tokens(keys).cedar(engine)
/// .auditing(audit).build()`.
pub struct ApiStateBuilder {
    state: ApiState,
}

impl ApiStateBuilder {
    /// Service-account tokens: TokenRequest and bearer-token authentication with `keys`.
    pub fn tokens(mut self, keys: Arc<crate::authn::sa_token::TokenKeys>) -> Self {
        self.state.authenticators.push(Box::new(
            crate::authn::sa_token::ServiceAccountAuthenticator::new(Arc::clone(&keys)),
        ));
        self.state.tokens = Some(keys);
        self
    }

    /// Serves the resources of `registry` instead of only the built-in ones.
    pub fn registry(mut self, registry: Arc<dyn crate::registry::ResourceRegistry>) -> Self {
        self.state.registry = registry;
        self
    }

    /// Every bound on a client's work.
    pub fn limits(mut self, limits: crate::http::limits::Limits) -> Self {
        self.state.apply_limits(limits);
        self
    }

    /// Cedar: authorization by `engine`'s tiered policies, policy, RBAC-escalation and Cedar
    /// admission (over the registry's kinds), and CedarPolicy objects synced into the engines
    /// at bootstrap. Fails when the registry's kinds cannot be modelled for admission.
    pub fn cedar(
        mut self,
        engine: Arc<bulwark_policies::PolicyEngine>,
    ) -> Result<Self, bulwark_admission::AdmissionError> {
        let admission = Arc::new(bulwark_admission::AdmissionEngine::new(
            crate::registry::admission_model()?,
        ));
        let state = &mut self.state;
        state.authorizer = Box::new(crate::authz::CedarAuthorizer::new(Arc::clone(&engine)));
        state.admission.push(Box::new(
            crate::admission::policy::CedarPolicyAdmission::new(
                Arc::clone(&engine),
                Arc::clone(&admission),
            ),
        ));
        state
            .admission
            .push(Box::new(crate::admission::rbac::RbacAdmission::new(
                Arc::clone(&engine),
                Arc::clone(&state.rbac_roles),
            )));
        state
            .admission
            .push(Box::new(crate::admission::cedar::CedarAdmission::new(
                Arc::clone(&admission),
                Arc::clone(&state.namespace_labels),
            )));
        state.policies = Some(CedarEngines {
            authorization: engine,
            admission,
        });
        Ok(self)
    }

    /// Audit every request to `auditing`'s sink under its policy.
    pub fn auditing(mut self, auditing: crate::audit::record::Auditing) -> Self {
        self.state.auditing = Some(auditing);
        self
    }

    /// The value transformer objects are stored through (identity by default).
    pub fn transformer(
        mut self,
        transformer: Arc<dyn bulwark_encryption::ValueTransformer>,
    ) -> Self {
        self.state.objects = self.state.objects.with_transformer(transformer);
        self
    }

    /// Encryption at rest: values stored through its transformer, and the
    /// `encryption.bulwark.dev` API (status, keys, rotation, verification) over it.
    pub fn encryption(mut self, encryption: Arc<crate::encryption::Encryption>) -> Self {
        self.state.objects = self
            .state
            .objects
            .with_transformer(encryption.transformer());
        self.state
            .metrics
            .register_encryption(Arc::clone(&encryption));
        self.state.encryption = Some(encryption);
        self
    }

    /// The posture scanner and the `posture.bulwark.dev` API over it; start it with
    /// [`crate::posture::Posture::start`] once the state is built.
    pub fn posture(mut self, posture: Arc<crate::posture::Posture>) -> Self {
        self.state.posture = Some(posture);
        self
    }

    /// The metrics registry, to register more collectors before serving.
    pub fn metrics(&mut self) -> &mut Metrics {
        &mut self.state.metrics
    }

    /// The state, ready for [`crate::bootstrap`] and serving.
    pub fn build(self) -> Arc<ApiState> {
        Arc::new(self.state)
    }
}

/// The two Cedar engines CedarPolicy objects are synced into.
pub struct CedarEngines {
    /// Authorization (tiered policies); the access review APIs and policy admission use it.
    pub authorization: Arc<bulwark_policies::PolicyEngine>,
    /// Admission policies over the registry's kinds.
    pub admission: Arc<bulwark_admission::AdmissionEngine>,
}

/// Everything a request handler needs.
pub struct ApiState {
    /// What is served: requests look resources up here.
    pub registry: Arc<dyn crate::registry::ResourceRegistry>,
    /// Where objects live: the store behind the value transformer.
    pub objects: crate::storage::ObjectStorage,
    /// Authentication chain, tried in order.
    pub authenticators: Vec<Box<dyn Authenticator>>,
    /// The authorization stage.
    pub authorizer: Box<dyn Authorizer>,
    /// The Cedar engines, when policies are served as CedarPolicy objects (kept in sync with
    /// them; None with the bootstrap authorizer).
    pub policies: Option<CedarEngines>,
    /// The audit log and policy (None: requests are not audited).
    pub auditing: Option<crate::audit::record::Auditing>,
    /// Encryption at rest, when configured (its transformer is the object storage's).
    pub encryption: Option<Arc<crate::encryption::Encryption>>,
    /// The posture scanner, when configured (`posture.bulwark.dev`).
    pub posture: Option<Arc<crate::posture::Posture>>,
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
