//! Publishing each scan as `wgpolicyk8s.io/v1alpha2` objects, so report tooling built on the
//! Policy WG's format (Policy Reporter) lists and watches Bulwark's posture like any other
//! engine's: one `PolicyReport` per namespace with findings (`bulwark-posture`, split into
//! `bulwark-posture-2` … past a size), one `ClusterPolicyReport` for everything else.
//!
//! The reports are ordinary stored objects (list, watch, Cedar-authorized reads); the server
//! writes them itself, and the kind refuses any request that would create or change one
//! (`registry::kinds::bulwark`). A report is written only when its results changed, and a
//! result keeps the time it was first found in its state, so a quiet cluster's reports stay
//! still and a watcher sees real changes only. Reports of namespaces with no findings left
//! are deleted.

use std::collections::{BTreeMap, HashMap};

use bulwark_api::policy_report::{
    API_VERSION, GROUP, PolicyReportResult, PolicyReportSummary, Timestamp,
};
use bulwark_posture::Report;
use bulwark_posture::policy_report::{self, MANAGED_BY_LABEL, SOURCE};
use bulwark_store::{Revision, StoreError};
use serde_json::{Value, json};

use crate::registry::ResourceDef;
use crate::state::ApiState;

/// The prefix every key of the group shares: the scanner's own watch ignores writes below
/// it (they are its output, not evidence).
pub(crate) const KEY_PREFIX: &str = "/registry/wgpolicyk8s.io/";

/// A published report as the publisher last wrote or read it.
#[derive(Debug, Clone)]
struct Held {
    revision: Revision,
    uid: String,
    created: String,
    digest: Vec<u8>,
}

/// What the publisher holds between scans.
#[derive(Debug, Default)]
struct HeldState {
    /// The reports it wrote or read, by key.
    reports: BTreeMap<String, Held>,
    /// Each published result's identity and the time it was first found: kept apart from
    /// the reports, so a report deleted and written again keeps its results' times.
    since: HashMap<String, Timestamp>,
}

/// What was published, by key; loaded from the store on first use.
#[derive(Debug, Default)]
pub(crate) struct Publisher {
    held: tokio::sync::Mutex<Option<HeldState>>,
    /// Reports deleted behind the publisher's back since it last published (it writes them
    /// again).
    deleted: std::sync::Mutex<Vec<String>>,
}

/// One report to publish.
struct Desired {
    key: String,
    namespace: Option<String>,
    name: String,
    summary: PolicyReportSummary,
    results: Vec<PolicyReportResult>,
    digest: Vec<u8>,
}

/// What a publish did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Published {
    /// Reports written (created or changed).
    pub written: usize,
    /// Reports unchanged.
    pub unchanged: usize,
    /// Reports deleted.
    pub deleted: usize,
}

impl Publisher {
    /// Notes that the report at `key` was deleted (the scanner's watch saw it), so the next
    /// publish writes it again if it is still wanted.
    pub(crate) fn forget(&self, key: &str) {
        if let Ok(mut deleted) = self.deleted.lock() {
            deleted.push(key.to_owned());
        }
    }

    /// Publishes `report`: writes the reports whose results changed, deletes the ones no
    /// longer needed. Failures are logged and retried at the next scan.
    pub(crate) async fn publish(
        &self,
        state: &ApiState,
        report: &std::sync::Arc<Report>,
    ) -> Published {
        let table = state.registry.snapshot();
        let (Some(namespaced), Some(cluster)) = (
            table.iter().find(|d| d.is(GROUP, "PolicyReport")),
            table.iter().find(|d| d.is(GROUP, "ClusterPolicyReport")),
        ) else {
            return Published::default();
        };
        let mut guard = self.held.lock().await;
        if guard.is_none() {
            match load(state, &[namespaced, cluster]).await {
                Ok(held) => *guard = Some(held),
                Err(e) => {
                    tracing::warn!(error = %e, "posture: reading the published PolicyReports failed; publishing at the next scan");
                    return Published::default();
                }
            }
        }
        let Some(HeldState {
            reports: held,
            since,
        }) = guard.as_mut()
        else {
            return Published::default();
        };
        if let Ok(mut deleted) = self.deleted.lock() {
            for key in deleted.drain(..) {
                held.remove(&key);
            }
        }
        let previous_since = std::mem::take(since);
        let now = Timestamp {
            seconds: time::OffsetDateTime::now_utc().unix_timestamp(),
            nanos: 0,
        };
        let report = std::sync::Arc::clone(report);
        let (namespaced_def, cluster_def) = (namespaced.clone(), cluster.clone());
        let Ok((desired, found)) = tokio::task::spawn_blocking(move || {
            desired(&report, &previous_since, now, &namespaced_def, &cluster_def)
        })
        .await
        else {
            *guard = None;
            return Published::default();
        };
        *since = found;
        let mut done = Published::default();
        let mut keep = std::collections::BTreeSet::new();
        for d in desired {
            keep.insert(d.key.clone());
            let previous = held.get(&d.key).cloned();
            if previous.as_ref().is_some_and(|p| p.digest == d.digest) {
                done.unchanged += 1;
                continue;
            }
            let def = if d.namespace.is_some() {
                namespaced
            } else {
                cluster
            };
            let (uid, created) = previous.as_ref().map_or_else(
                || {
                    (
                        uuid::Uuid::new_v4().to_string(),
                        crate::rest::object::now_rfc3339(),
                    )
                },
                |p| (p.uid.clone(), p.created.clone()),
            );
            let object = object_of(def, &d, &uid, &created);
            let bytes = match crate::storage::encode(def, &object) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = ?e, report = %d.key, "posture: encoding a PolicyReport failed");
                    continue;
                }
            };
            match write(state, &d.key, bytes, previous.as_ref().map(|p| p.revision)).await {
                Ok(revision) => {
                    done.written += 1;
                    held.insert(
                        d.key.clone(),
                        Held {
                            revision,
                            uid,
                            created,
                            digest: d.digest,
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!(error = %e, report = %d.key, "posture: writing a PolicyReport failed; retried at the next scan");
                    held.remove(&d.key);
                }
            }
        }
        let stale: Vec<(String, Revision)> = held
            .iter()
            .filter(|(k, _)| !keep.contains(*k))
            .map(|(k, h)| (k.clone(), h.revision))
            .collect();
        for (key, revision) in stale {
            match state.objects.delete(&key, Some(revision)).await {
                Ok(_) | Err(StoreError::NotFound { .. }) => {
                    done.deleted += 1;
                    held.remove(&key);
                }
                Err(e) => {
                    tracing::warn!(error = %e, report = %key, "posture: deleting a stale PolicyReport failed");
                    // Read it again next time.
                    *guard = None;
                    break;
                }
            }
        }
        done
    }
}

/// The reports `report` makes, results dated from `since` where they were found before
/// (else `now`), and every result's identity with its date.
fn desired(
    report: &Report,
    since: &HashMap<String, Timestamp>,
    now: Timestamp,
    namespaced: &ResourceDef,
    cluster: &ResourceDef,
) -> (Vec<Desired>, HashMap<String, Timestamp>) {
    let mut out = Vec::new();
    let mut found = HashMap::with_capacity(since.len());
    for (namespace, mut results) in policy_report::results(report) {
        for r in &mut results {
            let identity = policy_report::identity(r);
            r.timestamp = since.get(&identity).copied().unwrap_or(now);
            found.insert(identity, r.timestamp);
        }
        let def = if namespace.is_some() {
            namespaced
        } else {
            cluster
        };
        for (i, results) in policy_report::split(results).into_iter().enumerate() {
            let name = policy_report::report_name(i);
            let summary = PolicyReportSummary::of(&results);
            let digest = digest(&summary, &results);
            out.push(Desired {
                key: crate::storage::object_key(def, namespace.as_deref(), &name),
                namespace: namespace.clone(),
                name,
                summary,
                results,
                digest,
            });
        }
    }
    (out, found)
}

/// What decides whether a report changed: its summary and results.
fn digest(summary: &PolicyReportSummary, results: &[PolicyReportResult]) -> Vec<u8> {
    serde_json::to_vec(&(summary, results))
        .map(|b| {
            ring::digest::digest(&ring::digest::SHA256, &b)
                .as_ref()
                .to_vec()
        })
        .unwrap_or_default()
}

fn object_of(def: &ResourceDef, d: &Desired, uid: &str, created: &str) -> Value {
    let mut metadata = json!({
        "name": d.name,
        "uid": uid,
        "creationTimestamp": created,
        "generation": 1,
        "labels": {MANAGED_BY_LABEL: SOURCE},
    });
    if let (Some(ns), Some(meta)) = (&d.namespace, metadata.as_object_mut()) {
        meta.insert("namespace".into(), Value::String(ns.clone()));
    }
    json!({
        "apiVersion": API_VERSION,
        "kind": def.kind(),
        "metadata": metadata,
        "summary": d.summary,
        "results": d.results,
    })
}

/// Writes `bytes` at `key`: an update of the revision the publisher holds, or a create; an
/// object changed or removed behind the publisher's back (only deletion is possible through
/// the API) is read again and overwritten.
async fn write(
    state: &ApiState,
    key: &str,
    bytes: Vec<u8>,
    held: Option<Revision>,
) -> Result<Revision, StoreError> {
    let first = match held {
        Some(revision) => {
            state
                .objects
                .update(key, bytes.clone(), Some(revision))
                .await
        }
        None => state.objects.create(key, bytes.clone()).await,
    };
    match first {
        Ok(kv) => Ok(kv.mod_revision),
        Err(
            StoreError::NotFound { .. }
            | StoreError::Conflict { .. }
            | StoreError::AlreadyExists { .. },
        ) => match state.objects.get(key).await? {
            Some(kv) => Ok(state
                .objects
                .update(key, bytes, Some(kv.mod_revision))
                .await?
                .mod_revision),
            None => Ok(state.objects.create(key, bytes).await?.mod_revision),
        },
        Err(e) => Err(e),
    }
}

/// The scanner's reports already stored (by their label), as held.
async fn load(state: &ApiState, defs: &[&ResourceDef]) -> Result<HeldState, StoreError> {
    let mut held = HeldState::default();
    for def in defs {
        let prefix = crate::storage::collection_prefix(def, None);
        for kv in super::evidence::list_all(state, &prefix).await? {
            let Ok(object) = crate::storage::decode_stored(&kv) else {
                continue;
            };
            if !policy_report::is_managed(&object) {
                continue;
            }
            let results: Vec<PolicyReportResult> = object
                .get("results")
                .cloned()
                .and_then(|r| serde_json::from_value(r).ok())
                .unwrap_or_default();
            let summary: PolicyReportSummary = object
                .get("summary")
                .cloned()
                .and_then(|s| serde_json::from_value(s).ok())
                .unwrap_or_default();
            let text = |field: &str| {
                crate::rest::object::meta_str(&object, field)
                    .unwrap_or_default()
                    .to_owned()
            };
            let digest = digest(&summary, &results);
            held.since.extend(
                results
                    .iter()
                    .map(|r| (policy_report::identity(r), r.timestamp)),
            );
            held.reports.insert(
                kv.key.clone(),
                Held {
                    revision: kv.mod_revision,
                    uid: text("uid"),
                    created: text("creationTimestamp"),
                    digest,
                },
            );
        }
    }
    Ok(held)
}
