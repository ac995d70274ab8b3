//! Bulwark's Kubernetes API server.
//!
//! HTTPS only (rustls, TLS 1.2+, HTTP/2 and HTTP/1.1), client-certificate authentication
//! against the cluster CA, and Kubernetes REST semantics over `bulwark-store`, generic over
//! the [`registry`] of served kinds. Every request goes through [`pipeline`]: authenticate →
//! authorize → decode and validate → admission → store, with a `metav1.Status` for every
//! failure ([`error`]).
//!
//! Decisions:
//! - Objects are stored as upstream JSON (pruned through the k8s-openapi type), keyed by
//!   `/registry/<group>/<resource>/[<namespace>/]<name>`; `resourceVersion` is the store
//!   revision.
//! - Authorization is a trait: the server plugs in [`authz::CedarAuthorizer`] (tiered Cedar
//!   policies); [`default_state`] starts with [`authz::BootstrapAuthorizer`] (bootstrap admins
//!   only, default deny) for embedders and tests.
//! - `core/v1` and `events.k8s.io/v1` Events share one storage, converted on the way in and
//!   out ([`convert`]), as upstream.

pub mod access_review;
pub mod admission;
pub mod admission_gate;
pub mod audit_query;
pub mod audit_record;
pub mod auth;
pub mod authz;
pub mod cedar_admission;
pub mod client;
pub mod codec;
pub mod collection;
pub mod connections;
pub mod convert;
pub mod defaults;
pub mod discovery;
pub mod error;
pub mod event_cache;
pub mod impersonation;
pub mod inflight;
pub mod limits;
pub mod metrics;
pub mod mirror;
pub mod namespace_labels;
pub mod negotiate;
pub mod node_reads;
pub mod object;
pub mod openapi;
pub mod patch;
pub mod pipeline;
pub mod policy_admission;
pub mod policy_sync;
pub mod rbac_admission;
pub mod registry;
pub mod request_info;
pub mod resource;
pub mod respond;
pub mod sa_token;
pub mod server;
pub mod stall_io;
pub mod state;
pub mod storage;
pub mod subresource;
pub mod table;
pub mod typed;
pub mod validation;
pub mod watch;
pub mod watch_slots;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bulwark_store::{Engine, Store, StoreError};
use serde_json::json;

pub use error::ApiError;
pub use state::ApiState;

/// The namespaces every cluster has.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Builds the default state: x509 and (with `tokens`) service-account token authentication,
/// the bootstrap authorizer for `admin_group`, and the built-in admission plugins.
pub fn default_state<E: Engine>(
    store: Store<E>,
    admin_group: &str,
    tokens: Option<Arc<sa_token::TokenKeys>>,
) -> ApiState<E> {
    let mut authenticators: Vec<Box<dyn auth::Authenticator>> =
        vec![Box::new(auth::X509Authenticator)];
    if let Some(keys) = &tokens {
        authenticators.push(Box::new(sa_token::ServiceAccountAuthenticator::new(
            Arc::clone(keys),
        )));
    }
    let metrics = metrics::Metrics::default();
    let watch_slots =
        watch_slots::WatchSlots::new(&limits::WatchLimits::default(), metrics.watches.clone());
    ApiState {
        store,
        tokens,
        authenticators,
        authorizer: Box::new(authz::BootstrapAuthorizer::new(admin_group)),
        admission: vec![Box::new(admission::NamespaceLifecycle)],
        policies: None,
        admission_policies: Arc::default(),
        auditing: None,
        rbac_roles: Arc::new(arc_swap::ArcSwap::from_pointee(
            bulwark_policies::rbac::RbacSet::with_builtin_roles(),
        )),
        namespace_labels: Arc::default(),
        events: Arc::default(),
        metrics,
        inflight: inflight::InflightLimit::default(),
        admission_gate: admission_gate::AdmissionGate::default(),
        limits: limits::Limits::default(),
        watch_slots,
        ready: std::sync::atomic::AtomicBool::new(false),
    }
}

/// Creates the system namespaces if missing (and, on the very first start, the shipped
/// default CedarPolicy objects), starts the namespace-label mirror and, with Cedar policies,
/// the policy sync; marks the server ready once the policies are in force.
pub async fn bootstrap<E: Engine>(state: &Arc<ApiState<E>>) -> Result<(), ApiError> {
    let def = registry::lookup("", "v1", "namespaces")
        .ok_or_else(|| ApiError::internal("namespaces are not registered"))?;
    let mut first_start = false;
    for name in SYSTEM_NAMESPACES {
        let mut obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        object::prepare_create(def, &mut obj, None)?;
        let key = storage::object_key(def, None, name);
        match state.store.create(&key, storage::encode(def, &obj)?).await {
            Ok(_) => first_start |= *name == "default",
            Err(StoreError::AlreadyExists { .. }) => {}
            Err(e) => return Err(error::from_store(e, "", "namespaces", name)),
        }
    }
    if first_start && state.policies.is_some() {
        policy_sync::install_defaults(&state.store).await?;
    }
    // Authorization reads namespace labels (as tags): not ready before they are known, or a
    // guardrail on a label would not apply to the first requests.
    let labels = Arc::clone(&state.namespace_labels);
    let (first_tx, first_rx) = tokio::sync::oneshot::channel();
    let mut first_tx = Some(first_tx);
    tokio::spawn(mirror::run(state.store.clone(), def, move |objects| {
        labels.update(objects);
        if let Some(tx) = first_tx.take() {
            let _ = tx.send(());
        }
    }));
    first_rx
        .await
        .map_err(|_| ApiError::internal("the namespace mirror stopped before its first list"))?;
    if let Some(engine) = &state.policies {
        policy_sync::start(
            state.store.clone(),
            Arc::clone(engine),
            Arc::clone(&state.admission_policies),
            Arc::clone(&state.rbac_roles),
        )
        .await?;
    }
    state.ready.store(true, Ordering::Release);
    Ok(())
}
