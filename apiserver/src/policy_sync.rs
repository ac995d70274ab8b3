//! CedarPolicy objects → the Cedar engine: every API server mirrors the objects from the
//! store and rebuilds its policy snapshot when they change, so an accepted policy takes effect
//! everywhere within a second, with no restart. Each object's outcome is written back to its
//! status (`Loaded` condition, the generation and policy ids in force).
//!
//! Objects are compiled once per generation; a rebuild after one object changes re-parses only
//! that object. Sources enter the snapshot oldest first, so when two objects claim the same
//! `@id` (possible only if two servers accept them at the same moment) the older one stays in
//! force and the newer one reports the conflict.

use std::collections::HashMap;
use std::sync::Arc;

use bulwark_api::cedar_policy::CedarPolicy;
use bulwark_policies::engine::Snapshot;
use bulwark_policies::{CompiledPolicies, PolicyEngine};
use bulwark_store::{Engine, Store, StoreError};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::error::ApiError;
use crate::mirror::{self, Objects};
use crate::registry::{self, ResourceDef};
use crate::{object, storage};

/// The registry row of CedarPolicy.
pub fn cedar_policy_def() -> Result<&'static ResourceDef, ApiError> {
    registry::lookup(bulwark_api::cedar_policy::GROUP, "v1", "cedarpolicies")
        .ok_or_else(|| ApiError::internal("cedarpolicies are not registered"))
}

/// A compiled object, or why it did not compile.
type Compiled = Result<Arc<CompiledPolicies>, String>;

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
    entries: HashMap<String, Entry>,
    /// (name, generation) of the sources in the snapshot in force.
    in_force: Vec<(String, i64)>,
    /// Sources the snapshot in force left out, and why.
    skipped: Vec<bulwark_policies::engine::Skipped>,
    statuses: mpsc::UnboundedSender<Vec<WantedStatus>>,
    first: Option<oneshot::Sender<()>>,
}

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

/// Compiles one object's spec.
pub fn compile(policy: &CedarPolicy) -> Result<CompiledPolicies, bulwark_policies::PolicyError> {
    let name = policy.metadata.name.as_deref().unwrap_or_default();
    CompiledPolicies::compile(
        name,
        policy.spec.namespace.as_deref(),
        &policy.spec.policies,
    )
}

impl Sync {
    fn on_change(&mut self, objects: &Objects) {
        let mut seen = HashMap::new();
        for obj in objects.values() {
            if obj.pointer("/spec/kind").and_then(Value::as_str) != Some("Authorization") {
                continue;
            }
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
            let entry = match cached {
                Some(entry) => Entry { status, ..entry },
                None => {
                    let Ok(policy) = serde_json::from_value::<CedarPolicy>(Value::clone(obj))
                    else {
                        continue;
                    };
                    Entry {
                        generation,
                        created: object::meta_str(obj, "creationTimestamp")
                            .unwrap_or_default()
                            .to_owned(),
                        compiled: compile(&policy).map(Arc::new).map_err(|e| e.to_string()),
                        status,
                    }
                }
            };
            seen.insert(name, entry);
        }
        self.entries = seen;

        let mut order: Vec<(&String, &Entry)> = self.entries.iter().collect();
        order.sort_by(|a, b| (&a.1.created, a.0).cmp(&(&b.1.created, b.0)));
        let in_force: Vec<(String, i64)> = order
            .iter()
            .filter(|(_, e)| e.compiled.is_ok())
            .map(|(n, e)| ((*n).clone(), e.generation))
            .collect();
        let sources: Vec<Arc<CompiledPolicies>> = order
            .iter()
            .filter_map(|(_, e)| e.compiled.as_ref().ok().cloned())
            .collect();
        if in_force != self.in_force || self.first.is_some() {
            match Snapshot::build(&sources) {
                Ok((snapshot, skipped)) => {
                    let statuses = self.statuses_for(&snapshot, &skipped);
                    self.engine.install(snapshot);
                    self.in_force = in_force;
                    self.skipped = skipped;
                    tracing::info!(
                        sources = sources.len() - self.skipped.len(),
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
            let statuses = self.statuses_for(&self.engine.current(), &self.skipped);
            self.send(statuses);
        }
        if let Some(first) = self.first.take() {
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
    fn statuses_for(
        &self,
        snapshot: &Snapshot,
        skipped: &[bulwark_policies::engine::Skipped],
    ) -> Vec<WantedStatus> {
        self.entries
            .iter()
            .filter_map(|(name, entry)| {
                let generation = entry.generation;
                let status = match &entry.compiled {
                    Err(why) => json!({
                        "conditions": [condition(false, "Invalid", why, generation)],
                    }),
                    Ok(compiled) => match skipped.iter().find(|s| &s.name == name) {
                        Some(s) => json!({
                            "conditions": [condition(false, "Conflict", &s.reason, generation)],
                        }),
                        None if snapshot.sources().contains_key(name) => json!({
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
async fn write_statuses<E: Engine>(
    store: Store<E>,
    def: &'static ResourceDef,
    mut wanted: mpsc::UnboundedReceiver<Vec<WantedStatus>>,
) {
    while let Some(mut batch) = wanted.recv().await {
        // Only the newest batch matters.
        while let Ok(newer) = wanted.try_recv() {
            batch = newer;
        }
        for WantedStatus { name, status } in batch {
            let key = storage::object_key(def, None, &name);
            for _ in 0..5 {
                let Ok(Some(kv)) = store.get(&key).await else {
                    break;
                };
                let Ok(mut obj) = storage::decode(def, &kv) else {
                    break;
                };
                if same_status(obj.get("status"), &status) {
                    break;
                }
                if let Some(map) = obj.as_object_mut() {
                    map.insert("status".into(), status.clone());
                }
                let Ok(bytes) = storage::encode(def, &obj) else {
                    break;
                };
                match store.update(&key, bytes, Some(kv.mod_revision)).await {
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => {
                        tracing::warn!(policy = %name, error = %e, "could not write CedarPolicy status");
                        break;
                    }
                    Ok(_) => break,
                }
            }
        }
    }
}

/// Starts mirroring CedarPolicy objects into `engine`; resolves once the first set of
/// objects is in force (the server is not ready before that).
pub async fn start<E: Engine>(store: Store<E>, engine: Arc<PolicyEngine>) -> Result<(), ApiError> {
    let def = cedar_policy_def()?;
    let (tx, rx) = mpsc::unbounded_channel();
    let (first_tx, first_rx) = oneshot::channel();
    let mut sync = Sync {
        engine,
        entries: HashMap::new(),
        in_force: Vec::new(),
        skipped: Vec::new(),
        statuses: tx,
        first: Some(first_tx),
    };
    tokio::spawn(write_statuses(store.clone(), def, rx));
    tokio::spawn(mirror::run(store, def, move |objects: &Objects| {
        // Compiling thousands of policies takes a while: keep the runtime's other tasks
        // moving while it does.
        if tokio::runtime::Handle::current().runtime_flavor()
            == tokio::runtime::RuntimeFlavor::MultiThread
        {
            tokio::task::block_in_place(|| sync.on_change(objects));
        } else {
            sync.on_change(objects);
        }
    }));
    first_rx
        .await
        .map_err(|_| ApiError::internal("the policy mirror stopped before loading policies"))
}

/// Installs the shipped default policies as CedarPolicy objects (first start only: an
/// operator who deletes or edits them later keeps that choice).
pub async fn install_defaults<E: Engine>(store: &Store<E>) -> Result<(), ApiError> {
    let def = cedar_policy_def()?;
    for (name, text) in bulwark_policies::engine::DEFAULT_SOURCES {
        let mut obj = json!({
            "apiVersion": def.api_version(),
            "kind": def.kind,
            "metadata": {"name": name, "labels": {"bulwark.dev/default": "true"}},
            "spec": {"kind": "Authorization", "policies": text},
        });
        object::prepare_create(def, &mut obj, None)?;
        let key = storage::object_key(def, None, name);
        match store.create(&key, storage::encode(def, &obj)?).await {
            Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
            Err(e) => return Err(crate::error::from_store(e, def.group, def.plural, name)),
        }
    }
    Ok(())
}
