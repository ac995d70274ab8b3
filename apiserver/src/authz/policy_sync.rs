//! CedarPolicy objects (and RBAC roles and bindings, translated) → the Cedar engines: every
//! API server mirrors the objects from the store and rebuilds its authorization and admission
//! snapshots when they change, so an accepted policy takes effect
//! everywhere within a second, with no restart. Each object's outcome is written back to its
//! status (`Loaded` condition, the generation and policy ids in force).
//!
//! Objects are compiled once per generation; a rebuild after one object changes re-parses only
//! that object. Sources enter the snapshot oldest first, so when two objects claim the same
//! `@id` (possible only if two servers accept them at the same moment) the older one stays in
//! force and the newer one reports the conflict.

use std::collections::HashMap;
use std::sync::Arc;

use std::collections::HashSet;

use bulwark_admission::{AdmissionEngine, AdmissionSnapshot, Mode};
use bulwark_api::cedar_policy::{CedarPolicy, CedarPolicyKind, CedarPolicyMode};
use bulwark_policies::engine::{Skipped, Snapshot};
use bulwark_policies::rbac::RbacSet;
use bulwark_policies::{CompiledPolicies, PolicyEngine, PolicyKind};
use bulwark_store::StoreError;
use rayon::prelude::*;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::http::error::ApiError;
use crate::registry::{self, ResourceDef};
use crate::rest::object;
use crate::storage;
use crate::storage::mirror::{self, Objects};

/// The registry row of CedarPolicy.
pub fn cedar_policy_def() -> Result<Arc<ResourceDef>, ApiError> {
    registry::lookup(&bulwark_api::GroupVersionResource::new(
        bulwark_api::cedar_policy::GROUP,
        "v1",
        "cedarpolicies",
    ))
    .ok_or_else(|| ApiError::internal("cedarpolicies are not registered"))
}

/// A compiled object (with its admission mode), or why it did not compile.
type Compiled = Result<(Arc<CompiledPolicies>, Mode), String>;

/// What the sync knows about one object.
struct Entry {
    generation: i64,
    created: String,
    compiled: Compiled,
    /// The object's status as stored.
    status: Option<Value>,
}

/// The status an object should have.
struct WantedStatus {
    name: String,
    status: Value,
}

/// Turns the mirrored objects into snapshots.
struct Sync {
    engine: Arc<PolicyEngine>,
    admission: Arc<AdmissionEngine>,
    entries: HashMap<String, Entry>,
    /// (name, generation) of the sources in the snapshots in force.
    in_force: Vec<(String, i64)>,
    /// Names of the sources the snapshots in force hold.
    loaded: HashSet<String>,
    /// Sources the snapshots in force left out, and why.
    skipped: Vec<Skipped>,
    statuses: mpsc::UnboundedSender<Vec<WantedStatus>>,
    /// Mirrored RBAC objects, by plural.
    rbac: HashMap<&'static str, Objects>,
    /// The mirrored RBAC objects, published for the escalation checks.
    rbac_roles: Arc<arc_swap::ArcSwap<RbacSet>>,
    /// The RBAC bindings as compiled Cedar (authorization sources).
    rbac_sources: Vec<Arc<CompiledPolicies>>,
    /// Bumped whenever `rbac_sources` changes.
    rbac_generation: i64,
    /// Mirrors that have not delivered their first list yet; ready when none remain.
    pending_first: usize,
    first: Option<oneshot::Sender<()>>,
    /// Problems already logged, so a broken object is reported once, not at every change.
    reported: Reported,
}

/// Problems logged so far, by object and resourceVersion.
#[derive(Debug, Default)]
struct Reported(HashSet<String>);

impl Reported {
    /// Whether `what` about `obj` (at its resourceVersion) is new; it is remembered.
    fn first_time(&mut self, what: &str, obj: &Value) -> bool {
        let key = format!(
            "{what} {}/{}@{}",
            object::meta_str(obj, "namespace").unwrap_or_default(),
            object::meta_str(obj, "name").unwrap_or_default(),
            object::meta_str(obj, "resourceVersion").unwrap_or_default()
        );
        // Bounded: objects come and go, and an old report is harmless to repeat.
        if self.0.len() > 10_000 {
            self.0.clear();
        }
        self.0.insert(key)
    }
}

/// The CedarPolicy in `obj`, or `None` (logged once per resourceVersion) when it does not
/// decode: an object written by another version, or damaged in the store.
fn decode_policy(obj: &Value, reported: &mut Reported) -> Option<CedarPolicy> {
    match serde_json::from_value::<CedarPolicy>(Value::clone(obj)) {
        Ok(policy) => Some(policy),
        Err(e) => {
            if reported.first_time("decode", obj) {
                tracing::error!(
                    policy = object::meta_str(obj, "name").unwrap_or_default(),
                    resource_version = object::meta_str(obj, "resourceVersion").unwrap_or_default(),
                    error = %e,
                    "CedarPolicy does not decode: it is not in force (fix or delete the object)"
                );
            }
            None
        }
    }
}

/// The RBAC resources translated into Cedar.
const RBAC_RESOURCES: &[&str] = &[
    "roles",
    "clusterroles",
    "rolebindings",
    "clusterrolebindings",
];

fn condition(status: bool, reason: &str, message: &str, generation: i64) -> Value {
    json!({
        "type": "Loaded",
        "status": if status { "True" } else { "False" },
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": object::now_rfc3339(),
    })
}

/// The admission mode of an object (Enforce unless it says otherwise).
pub fn mode_of(policy: &CedarPolicy) -> Mode {
    match policy.spec.mode {
        None | Some(CedarPolicyMode::Enforce) => Mode::Enforce,
        Some(CedarPolicyMode::Warn) => Mode::Warn,
        Some(CedarPolicyMode::Audit) => Mode::Audit,
    }
}

/// Compiles one object's spec, as authorization or admission policies.
pub fn compile(policy: &CedarPolicy) -> Result<CompiledPolicies, bulwark_policies::PolicyError> {
    let name = policy.metadata.name.as_deref().unwrap_or_default();
    match policy.spec.kind {
        CedarPolicyKind::Authorization => CompiledPolicies::compile(
            name,
            policy.spec.namespace.as_deref(),
            &policy.spec.policies,
        ),
        CedarPolicyKind::Admission => {
            CompiledPolicies::compile_admission(name, &policy.spec.policies)
        }
    }
}

impl Sync {
    /// Translates the mirrored RBAC objects into authorization sources.
    fn on_rbac(&mut self, plural: &'static str, objects: &Objects) {
        self.rbac.insert(plural, objects.clone());
        let mut set = RbacSet::with_builtin_roles();
        for obj in self.rbac.values().flat_map(|o| o.values()) {
            if let Err(e) = set.add(obj)
                && self.reported.first_time("rbac", obj)
            {
                tracing::warn!(
                    resource = plural,
                    namespace = object::meta_str(obj, "namespace").unwrap_or_default(),
                    name = object::meta_str(obj, "name").unwrap_or_default(),
                    error = %e,
                    "RBAC object not translated: it grants nothing"
                );
            }
        }
        let translations = set.translate();
        for translation in &translations {
            for warning in &translation.warnings {
                tracing::debug!(binding = %translation.name, %warning, "RBAC translation");
            }
        }
        // Every binding compiled on every core, as CedarPolicy objects are.
        let compiled: Vec<_> = translations
            .par_iter()
            .filter(|t| !t.text.is_empty())
            .map(|t| {
                (
                    t,
                    CompiledPolicies::compile(&t.name, t.namespace.as_deref(), &t.text),
                )
            })
            .collect();
        let mut sources = Vec::new();
        for (translation, result) in compiled {
            match result {
                Ok(compiled) => sources.push(Arc::new(compiled)),
                Err(e) => {
                    tracing::warn!(binding = %translation.name, error = %e, "RBAC binding not translated")
                }
            }
        }
        self.rbac_sources = sources;
        self.rbac_roles.store(Arc::new(set));
        self.rbac_generation += 1;
        self.rebuild();
    }

    fn on_change(&mut self, objects: &Objects) {
        let mut seen = HashMap::new();
        // Objects whose generation changed: decoded here, compiled below on every core (a
        // first load of thousands of objects is bound by Cedar's validator).
        let mut fresh = Vec::new();
        for obj in objects.values() {
            let name = object::meta_str(obj, "name").unwrap_or_default().to_owned();
            let generation = obj
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let status = obj.get("status").cloned();
            // Decoded and compiled once per generation; status writes only refresh `status`.
            let cached = self
                .entries
                .remove(&name)
                .filter(|e| e.generation == generation);
            match cached {
                Some(entry) => {
                    seen.insert(name, Entry { status, ..entry });
                }
                None => {
                    let Some(policy) = decode_policy(obj, &mut self.reported) else {
                        continue;
                    };
                    let created = object::meta_str(obj, "creationTimestamp")
                        .unwrap_or_default()
                        .to_owned();
                    fresh.push((name, generation, created, status, policy));
                }
            }
        }
        let compiled: Vec<Compiled> = fresh
            .par_iter()
            .map(|(_, _, _, _, policy)| {
                compile(policy)
                    .map(|c| (Arc::new(c), mode_of(policy)))
                    .map_err(|e| e.to_string())
            })
            .collect();
        for ((name, generation, created, status, _), compiled) in fresh.into_iter().zip(compiled) {
            seen.insert(
                name,
                Entry {
                    generation,
                    created,
                    compiled,
                    status,
                },
            );
        }
        self.entries = seen;
        self.rebuild();
    }

    /// Rebuilds the snapshots when the sources in force changed (else refreshes statuses).
    fn rebuild(&mut self) {
        let mut order: Vec<(&String, &Entry)> = self.entries.iter().collect();
        order.sort_by(|a, b| (&a.1.created, a.0).cmp(&(&b.1.created, b.0)));
        let in_force: Vec<(String, i64)> = order
            .iter()
            .filter(|(_, e)| e.compiled.is_ok())
            .map(|(n, e)| ((*n).clone(), e.generation))
            .chain(std::iter::once(("rbac".to_owned(), self.rbac_generation)))
            .collect();
        if in_force != self.in_force || self.first.is_some() {
            let compiled = order.iter().filter_map(|(_, e)| e.compiled.as_ref().ok());
            let (authorization, admission): (Vec<_>, Vec<_>) =
                compiled.partition(|(c, _)| c.kind == PolicyKind::Authorization);
            // CedarPolicy objects first: they win @id collisions against translated RBAC.
            let authorization: Vec<Arc<CompiledPolicies>> = authorization
                .into_iter()
                .map(|(c, _)| Arc::clone(c))
                .chain(self.rbac_sources.iter().cloned())
                .collect();
            let admission: Vec<(Arc<CompiledPolicies>, Mode)> = admission
                .into_iter()
                .map(|(c, m)| (Arc::clone(c), *m))
                .collect();
            let built = Snapshot::build(&authorization)
                .map_err(|e| e.to_string())
                .and_then(|authz| {
                    AdmissionSnapshot::build(self.admission.model(), &admission)
                        .map(|adm| (authz, adm))
                        .map_err(|e| e.to_string())
                });
            match built {
                Ok(((snapshot, mut skipped), (admission_snapshot, admission_skipped))) => {
                    skipped.extend(admission_skipped);
                    let loaded = loaded_names(&snapshot, &admission_snapshot);
                    let statuses = self.statuses_for(&loaded, &skipped);
                    self.engine.install(snapshot);
                    self.admission.install(admission_snapshot);
                    self.in_force = in_force;
                    self.skipped = skipped;
                    self.loaded = loaded;
                    tracing::info!(
                        sources = self.loaded.len(),
                        skipped = self.skipped.len(),
                        "policies reloaded"
                    );
                    self.send(statuses);
                }
                Err(e) => {
                    tracing::error!(error = %e, "policies not reloaded; keeping the ones in force");
                }
            }
        } else {
            // Only statuses (or nothing) changed: make sure failed objects still say why.
            let statuses = self.statuses_for(&self.loaded, &self.skipped);
            self.send(statuses);
        }
    }

    /// Counts one mirror's first delivery; the first snapshot is in force once all arrived.
    fn first_delivered(&mut self) {
        self.pending_first = self.pending_first.saturating_sub(1);
        if self.pending_first == 0
            && let Some(first) = self.first.take()
        {
            let _ = first.send(());
        }
    }

    /// Hands the statuses that differ from what is stored to the writer (only those cost
    /// store I/O).
    fn send(&self, statuses: Vec<WantedStatus>) {
        if !statuses.is_empty() {
            let _ = self.statuses.send(statuses);
        }
    }

    /// The statuses objects should have and do not have yet.
    fn statuses_for(&self, loaded: &HashSet<String>, skipped: &[Skipped]) -> Vec<WantedStatus> {
        self.entries
            .iter()
            .filter_map(|(name, entry)| {
                let generation = entry.generation;
                let status = match &entry.compiled {
                    Err(why) => json!({
                        "conditions": [condition(false, "Invalid", why, generation)],
                    }),
                    Ok((compiled, _)) => match skipped.iter().find(|s| &s.name == name) {
                        Some(s) => json!({
                            "conditions": [condition(false, "Conflict", &s.reason, generation)],
                        }),
                        None if loaded.contains(name) => json!({
                            "loadedGeneration": generation,
                            "policyIds": compiled.ids(),
                            "conditions": [condition(true, "Loaded", "the policies are in force", generation)],
                        }),
                        None => json!({
                            "conditions": [condition(false, "Conflict", "not in force: an @id collides with another source", generation)],
                        }),
                    },
                };
                (!same_status(entry.status.as_ref(), &status)).then(|| WantedStatus {
                    name: name.clone(),
                    status,
                })
            })
            .collect()
    }
}

/// The names of the sources in force in either snapshot.
fn loaded_names(authorization: &Snapshot, admission: &AdmissionSnapshot) -> HashSet<String> {
    authorization
        .sources()
        .keys()
        .chain(admission.sources().keys())
        .cloned()
        .collect()
}

/// Whether two statuses differ in more than condition timestamps.
fn same_status(current: Option<&Value>, wanted: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(cs) = v.get_mut("conditions").and_then(Value::as_array_mut) {
            for c in cs {
                if let Some(c) = c.as_object_mut() {
                    c.remove("lastTransitionTime");
                }
            }
        }
        v
    };
    current.is_some_and(|c| strip(c) == strip(wanted))
}

/// Writes wanted statuses (compare-and-swap; a lost race is retried with the fresh object).
async fn write_statuses(
    store: crate::storage::ObjectStorage,
    def: Arc<ResourceDef>,
    mut wanted: mpsc::UnboundedReceiver<Vec<WantedStatus>>,
) {
    while let Some(mut batch) = wanted.recv().await {
        // Only the newest batch matters.
        while let Ok(newer) = wanted.try_recv() {
            batch = newer;
        }
        for WantedStatus { name, status } in batch {
            let key = storage::object_key(&def, None, &name);
            let failed = |what: &str, error: &dyn std::fmt::Display| {
                tracing::warn!(policy = %name, %error, "could not write CedarPolicy status: {what}");
            };
            for _ in 0..5 {
                let kv = match store.get(&key).await {
                    Ok(Some(kv)) => kv,
                    // Deleted meanwhile: nothing to write.
                    Ok(None) => break,
                    Err(e) => {
                        failed("reading the object", &e);
                        break;
                    }
                };
                let mut obj = match storage::decode(&def, &kv) {
                    Ok(obj) => obj,
                    Err(e) => {
                        failed("decoding the object", &e.0.message);
                        break;
                    }
                };
                if same_status(obj.get("status"), &status) {
                    break;
                }
                if let Some(map) = obj.as_object_mut() {
                    map.insert("status".into(), status.clone());
                }
                let bytes = match storage::encode(&def, &obj) {
                    Ok(bytes) => bytes,
                    Err(e) => {
                        failed("encoding the object", &e.0.message);
                        break;
                    }
                };
                match store.update(&key, bytes, Some(kv.mod_revision)).await {
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => {
                        failed("storing it", &e);
                        break;
                    }
                    Ok(_) => break,
                }
            }
        }
    }
}

/// Starts mirroring CedarPolicy objects into `engine` (authorization) and `admission`, and
/// RBAC roles and bindings (translated into Cedar grants) into `engine`; resolves once the
/// first set of objects is in force (the server is not ready before that).
pub async fn start(
    store: crate::storage::ObjectStorage,
    engine: Arc<PolicyEngine>,
    admission: Arc<AdmissionEngine>,
    rbac_roles: Arc<arc_swap::ArcSwap<RbacSet>>,
) -> Result<(), ApiError> {
    let def = cedar_policy_def()?;
    let (tx, rx) = mpsc::unbounded_channel();
    let (first_tx, first_rx) = oneshot::channel();
    let sync = Arc::new(std::sync::Mutex::new(Sync {
        engine,
        admission,
        entries: HashMap::new(),
        in_force: Vec::new(),
        loaded: HashSet::new(),
        skipped: Vec::new(),
        statuses: tx,
        rbac: HashMap::new(),
        rbac_roles,
        rbac_sources: Vec::new(),
        rbac_generation: 0,
        pending_first: 1 + RBAC_RESOURCES.len(),
        first: Some(first_tx),
        reported: Reported::default(),
    }));
    tokio::spawn(write_statuses(store.clone(), Arc::clone(&def), rx));
    let mut mirrored: Vec<(Arc<ResourceDef>, Option<&'static str>)> = vec![(def, None)];
    for plural in RBAC_RESOURCES {
        let rbac_def = registry::lookup(&bulwark_api::GroupVersionResource::new(
            "rbac.authorization.k8s.io",
            "v1",
            plural,
        ))
        .ok_or_else(|| ApiError::internal("RBAC kinds are not registered"))?;
        mirrored.push((rbac_def, Some(*plural)));
    }
    for (mirrored_def, rbac) in mirrored {
        let sync = Arc::clone(&sync);
        let mut first = true;
        tokio::spawn(mirror::run(
            store.clone(),
            mirrored_def,
            move |objects: &Objects| {
                let mut work = || {
                    // A poisoned lock means a panic mid-rebuild: keep the snapshots in force.
                    let Ok(mut sync) = sync.lock() else {
                        return;
                    };
                    match rbac {
                        Some(plural) => sync.on_rbac(plural, objects),
                        None => sync.on_change(objects),
                    }
                    if std::mem::take(&mut first) {
                        sync.first_delivered();
                    }
                };
                // Compiling thousands of policies takes a while: keep the runtime's other tasks
                // moving while it does.
                if tokio::runtime::Handle::current().runtime_flavor()
                    == tokio::runtime::RuntimeFlavor::MultiThread
                {
                    tokio::task::block_in_place(work);
                } else {
                    work();
                }
            },
        ));
    }
    first_rx
        .await
        .map_err(|_| ApiError::internal("the policy mirror stopped before loading policies"))
}

/// Installs the shipped default policies as CedarPolicy objects (first start only: an
/// operator who deletes or edits them later keeps that choice).
pub async fn install_defaults(store: &crate::storage::ObjectStorage) -> Result<(), ApiError> {
    let def = cedar_policy_def()?;
    let authorization = bulwark_policies::engine::DEFAULT_SOURCES
        .iter()
        .map(|(name, text)| (name, json!({"kind": "Authorization", "policies": text})));
    let admission = bulwark_policies::engine::DEFAULT_ADMISSION_SOURCES
        .iter()
        .map(|(name, text)| {
            (
                name,
                json!({"kind": "Admission", "mode": "Enforce", "policies": text}),
            )
        });
    for (name, spec) in authorization.chain(admission) {
        let mut obj = json!({
            "apiVersion": def.api_version(),
            "kind": def.kind(),
            "metadata": {"name": name, "labels": {"bulwark.dev/default": "true"}},
            "spec": spec,
        });
        object::prepare_create(&def, &mut obj, None)?;
        let key = storage::object_key(&def, None, name);
        match store.create(&key, storage::encode(&def, &obj)?).await {
            Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
            Err(e) => {
                return Err(crate::http::error::from_store(
                    e,
                    def.group(),
                    def.plural(),
                    name,
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CedarPolicy that does not decode is logged, once per resourceVersion, with its name.
    #[test]
    fn undecodable_policies_are_logged_once() {
        #[derive(Clone, Default)]
        struct Buffer(Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let broken = json!({"apiVersion": "policy.bulwark.dev/v1", "kind": "CedarPolicy",
            "metadata": {"name": "broken", "resourceVersion": "7"}, "spec": {"kind": 5}});
        tracing::subscriber::with_default(subscriber, || {
            let mut reported = Reported::default();
            assert!(decode_policy(&broken, &mut reported).is_none());
            assert!(decode_policy(&broken, &mut reported).is_none());
            let mut next = broken.clone();
            next["metadata"]["resourceVersion"] = json!("8");
            assert!(decode_policy(&next, &mut reported).is_none());
        });
        let log = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            log.matches("CedarPolicy does not decode").count(),
            2,
            "{log}"
        );
        assert!(log.contains("broken"), "{log}");
    }
}
