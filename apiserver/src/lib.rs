//! Bulwark's Kubernetes API server.
//!
//! HTTPS only (rustls, TLS 1.2+, HTTP/2 and HTTP/1.1), client-certificate authentication
//! against the cluster CA, and Kubernetes REST semantics over `bulwark-store`, generic over
//! the [`registry`] of served kinds. Every request goes through [`pipeline`]: authenticate →
//! authorize → decode and validate → admission → store, with a `metav1.Status` for every
//! failure ([`http::error`]).
//!
//! Decisions:
//! - Objects are stored as upstream JSON (pruned through the k8s-openapi type), keyed by
//!   `/registry/<group>/<resource>/[<namespace>/]<name>`; `resourceVersion` is the store
//!   revision.
//! - Authorization is a trait: the server plugs in [`authz::CedarAuthorizer`] (tiered Cedar
//!   policies); [`default_state`] starts with [`authz::BootstrapAuthorizer`] (bootstrap admins
//!   only, default deny) for embedders and tests.
//! - `core/v1` and `events.k8s.io/v1` Events share one storage, converted on the way in and
//!   out (their strategy in `registry/kinds/events.rs`), as upstream.

pub(crate) mod admission;
pub mod audit;
pub mod authn;
pub mod authz;
pub mod codec;
pub(crate) mod discovery;
pub mod encryption;
pub mod http;
pub mod pipeline;
pub mod posture;
pub mod registry;
pub mod rest;
pub mod state;
pub(crate) mod storage;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bulwark_store::{Engine, Store, StoreError};
use serde_json::json;

pub use http::error::ApiError;
pub use state::ApiState;

/// The namespaces every cluster has.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Builds the default state: x509 and (with `tokens`) service-account token authentication,
/// the bootstrap authorizer for `admin_group`, and the built-in admission plugins.
pub fn default_state<E: Engine>(
    store: Store<E>,
    admin_group: &str,
    tokens: Option<Arc<crate::authn::sa_token::TokenKeys>>,
) -> ApiState {
    let mut authenticators: Vec<Box<dyn crate::authn::Authenticator>> =
        vec![Box::new(crate::authn::X509Authenticator)];
    if let Some(keys) = &tokens {
        authenticators.push(Box::new(
            crate::authn::sa_token::ServiceAccountAuthenticator::new(Arc::clone(keys)),
        ));
    }
    let metrics = crate::http::metrics::Metrics::default();
    let watch_slots = crate::rest::watch_slots::WatchSlots::new(
        &crate::http::limits::WatchLimits::default(),
        metrics.watches.clone(),
    );
    ApiState {
        registry: Arc::new(registry::ServedResources::builtin()),
        objects: storage::ObjectStorage::new(store, Arc::new(storage::Identity)),
        tokens,
        authenticators,
        authorizer: Box::new(authz::BootstrapAuthorizer::new(admin_group)),
        admission: vec![Box::new(admission::NamespaceLifecycle)],
        policies: None,
        auditing: None,
        encryption: None,
        posture: None,
        rbac_roles: Arc::new(arc_swap::ArcSwap::from_pointee(
            bulwark_policies::rbac::RbacSet::with_builtin_roles(),
        )),
        namespace_labels: Arc::default(),
        events: Arc::default(),
        metrics,
        inflight: crate::http::inflight::InflightLimit::default(),
        admission_gate: crate::admission::gate::AdmissionGate::default(),
        limits: crate::http::limits::Limits::default(),
        watch_slots,
        ready: std::sync::atomic::AtomicBool::new(false),
    }
}

/// Where the store records how far the first-start installation got: `installing` from the
/// moment a fresh store is claimed, `done` once the system namespaces and the default
/// policies are all in. Outside `/registry/`, so no API request can read or change it.
pub const BOOTSTRAP_KEY: &str = "/bulwark/bootstrap";

/// Whether the first-start installation still has to run, claiming a fresh store for it.
/// A store with the `default` namespace but no marker is a cluster from before the marker
/// existed: its installation ran, and what an operator deleted since stays deleted.
async fn installation_pending(state: &ApiState) -> Result<bool, ApiError> {
    let internal = |e: StoreError| crate::http::error::from_store(e, "", "bootstrap", "");
    if let Some(kv) = state.objects.get(BOOTSTRAP_KEY).await.map_err(internal)? {
        return Ok(kv.value.as_ref() != b"done");
    }
    let def = registry::lookup(&bulwark_api::GroupVersionResource::new(
        "",
        "v1",
        "namespaces",
    ))
    .ok_or_else(|| ApiError::internal("namespaces are not registered"))?;
    let legacy = state
        .objects
        .get(&storage::object_key(&def, None, "default"))
        .await
        .map_err(internal)?
        .is_some();
    let marker: &[u8] = if legacy { b"done" } else { b"installing" };
    match state.objects.create(BOOTSTRAP_KEY, marker.to_vec()).await {
        Ok(_) => Ok(!legacy),
        // Another server claimed it first (a shared FoundationDB store): read its state.
        Err(StoreError::AlreadyExists { .. }) => Box::pin(installation_pending(state)).await,
        Err(e) => Err(internal(e)),
    }
}

/// Creates the system namespaces if missing and, until the first start has finished (it
/// resumes after a crash), the shipped default CedarPolicy objects; starts the
/// namespace-label mirror and, with Cedar policies, the policy sync; marks the server ready
/// once the policies are in force.
pub async fn bootstrap(state: &Arc<ApiState>) -> Result<(), ApiError> {
    let def = registry::lookup(&bulwark_api::GroupVersionResource::new(
        "",
        "v1",
        "namespaces",
    ))
    .ok_or_else(|| ApiError::internal("namespaces are not registered"))?;
    let installing = installation_pending(state).await?;
    for name in SYSTEM_NAMESPACES {
        let mut obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        crate::rest::object::prepare_create(&def, &mut obj, None)?;
        let key = storage::object_key(&def, None, name);
        match state
            .objects
            .create(&key, storage::encode(&def, &obj)?)
            .await
        {
            Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
            Err(e) => return Err(crate::http::error::from_store(e, "", "namespaces", name)),
        }
    }
    // Without Cedar policies (an embedder's bootstrap authorizer) the installation waits for
    // a start that has them.
    if installing && state.policies.is_some() {
        crate::authz::policy_sync::install_defaults(&state.objects).await?;
        state
            .objects
            .update(BOOTSTRAP_KEY, b"done".to_vec(), None)
            .await
            .map_err(|e| crate::http::error::from_store(e, "", "bootstrap", ""))?;
    }
    // Authorization reads namespace labels (as tags): not ready before they are known, or a
    // guardrail on a label would not apply to the first requests.
    let labels = Arc::clone(&state.namespace_labels);
    let (first_tx, first_rx) = tokio::sync::oneshot::channel();
    let mut first_tx = Some(first_tx);
    tokio::spawn(crate::storage::mirror::run(
        state.objects.clone(),
        def,
        move |objects| {
            labels.update(objects);
            if let Some(tx) = first_tx.take() {
                let _ = tx.send(());
            }
        },
    ));
    first_rx
        .await
        .map_err(|_| ApiError::internal("the namespace mirror stopped before its first list"))?;
    if let Some(engines) = &state.policies {
        crate::authz::policy_sync::start(
            state.objects.clone(),
            Arc::clone(&engines.authorization),
            Arc::clone(&engines.admission),
            Arc::clone(&state.rbac_roles),
        )
        .await?;
    }
    if let Some(encryption) = &state.encryption {
        encryption.refresh().await;
        crate::encryption::rotation::resume(
            crate::encryption::Backing::of(state),
            Arc::clone(encryption),
        )
        .await?;
    }
    state.ready.store(true, Ordering::Release);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulwark_store::{EmbeddedEngine, StoreOptions};

    async fn server(dir: &std::path::Path) -> Arc<ApiState> {
        let store = Store::open(
            EmbeddedEngine::open(dir.join("db")).unwrap(),
            StoreOptions::default(),
        )
        .await
        .unwrap();
        let mut state = default_state(store, "system:masters", None);
        let (engine, _) = bulwark_policies::PolicyEngine::new(&[]).unwrap();
        state.policies = Some(crate::state::CedarEngines {
            authorization: Arc::new(engine),
            admission: Arc::new(bulwark_admission::AdmissionEngine::new(
                registry::admission_model().unwrap(),
            )),
        });
        Arc::new(state)
    }

    async fn default_policies(state: &ApiState) -> usize {
        let page = state
            .objects
            .list(
                "/registry/policy.bulwark.dev/cedarpolicies/",
                Default::default(),
            )
            .await
            .unwrap();
        page.items.len()
    }

    /// A first start that stopped after the namespaces, before the default policies (the
    /// marker still says `installing`), finishes the installation on the next start.
    #[tokio::test(flavor = "multi_thread")]
    async fn an_interrupted_first_start_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let state = server(dir.path()).await;
        state
            .objects
            .create(BOOTSTRAP_KEY, b"installing".to_vec())
            .await
            .unwrap();
        let def = registry::lookup(&bulwark_api::GroupVersionResource::new(
            "",
            "v1",
            "namespaces",
        ))
        .unwrap();
        for name in SYSTEM_NAMESPACES {
            let mut obj =
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            crate::rest::object::prepare_create(&def, &mut obj, None).unwrap();
            let key = storage::object_key(&def, None, name);
            state
                .objects
                .create(&key, storage::encode(&def, &obj).unwrap())
                .await
                .unwrap();
        }
        assert_eq!(default_policies(&state).await, 0);
        bootstrap(&state).await.unwrap();
        let installed = default_policies(&state).await;
        assert!(installed > 0);
        let marker = state.objects.get(BOOTSTRAP_KEY).await.unwrap().unwrap();
        assert_eq!(marker.value.as_ref(), b"done");

        // Once done, a deleted default stays deleted. (Unconditionally: the policy sync may be
        // writing the object's status meanwhile.)
        let key = "/registry/policy.bulwark.dev/cedarpolicies/bulwark-pod-security";
        state.objects.delete(key, None).await.unwrap();
        bootstrap(&state).await.unwrap();
        assert_eq!(default_policies(&state).await, installed - 1);
    }

    /// A cluster from before the marker (its namespaces exist) is not reinstalled.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_cluster_without_the_marker_keeps_its_choices() {
        let dir = tempfile::tempdir().unwrap();
        let state = server(dir.path()).await;
        let def = registry::lookup(&bulwark_api::GroupVersionResource::new(
            "",
            "v1",
            "namespaces",
        ))
        .unwrap();
        let mut obj =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}});
        crate::rest::object::prepare_create(&def, &mut obj, None).unwrap();
        let key = storage::object_key(&def, None, "default");
        state
            .objects
            .create(&key, storage::encode(&def, &obj).unwrap())
            .await
            .unwrap();
        bootstrap(&state).await.unwrap();
        assert_eq!(default_policies(&state).await, 0);
        let fresh = tempfile::tempdir().unwrap();
        let fresh = server(fresh.path()).await;
        bootstrap(&fresh).await.unwrap();
        assert!(default_policies(&fresh).await > 0);
    }
}
