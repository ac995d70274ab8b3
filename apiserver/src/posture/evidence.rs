//! The live evidence source: what this server observes of itself at a scan. Collected
//! asynchronously (the store, the encryption counts, file modes), then served to the checks
//! through [`bulwark_posture::EvidenceSource`]. Secrets are never read: no check needs their
//! values.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use bulwark_posture::evidence::{
    AccessAnswer, AdmissionAnswer, AuditCoverage, CertInfo, EncryptedResource, EncryptionState,
    FileInfo, KeyInfo, LimitsConfig, NodeReport, Objects, Observed, PkiState, PolicyInfo,
    PolicyState, ServerConfig,
};
use bulwark_posture::probes::{ACCESS_PROBES, ADMISSION_PROBES, AUDIT_CONCERNS, PROBE_NAMESPACE};
use bulwark_store::ListOptions;
use serde_json::Value;

use super::Posture;
use crate::authn::{AuthMethod, UserInfo};
use crate::authz::RequestAttributes;
use crate::state::ApiState;
use bulwark_policies::Target;

/// The kinds a scan reads (never Secrets).
const KINDS: &[(&str, &str)] = &[
    ("", "Namespace"),
    ("", "Pod"),
    ("", "PodTemplate"),
    ("", "ReplicationController"),
    ("", "ServiceAccount"),
    ("", "ConfigMap"),
    ("", "Service"),
    ("", "Node"),
    ("", "ResourceQuota"),
    ("", "LimitRange"),
    ("apps", "Deployment"),
    ("apps", "ReplicaSet"),
    ("apps", "StatefulSet"),
    ("apps", "DaemonSet"),
    ("batch", "Job"),
    ("batch", "CronJob"),
    ("networking.k8s.io", "NetworkPolicy"),
    ("rbac.authorization.k8s.io", "Role"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "RoleBinding"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
    ),
];

/// Objects listed per page.
const PAGE: usize = 500;

/// What one scan observed.
#[derive(Debug, Clone)]
pub struct LiveEvidence {
    server: Observed<ServerConfig>,
    pki: Observed<PkiState>,
    encryption: Observed<EncryptionState>,
    policies: Observed<PolicyState>,
    objects: Observed<Arc<Objects>>,
    nodes: Observed<Vec<NodeReport>>,
}

impl bulwark_posture::EvidenceSource for LiveEvidence {
    fn name(&self) -> &str {
        "bulwark-apiserver"
    }
    fn server(&self) -> Observed<ServerConfig> {
        self.server.clone()
    }
    fn pki(&self) -> Observed<PkiState> {
        self.pki.clone()
    }
    fn encryption(&self) -> Observed<EncryptionState> {
        self.encryption.clone()
    }
    fn policies(&self) -> Observed<PolicyState> {
        self.policies.clone()
    }
    fn objects(&self) -> Observed<Arc<Objects>> {
        self.objects.clone()
    }
    fn nodes(&self) -> Observed<Vec<NodeReport>> {
        self.nodes.clone()
    }
}

/// Observes everything once.
pub async fn collect(posture: &Posture, state: &ApiState) -> LiveEvidence {
    let settings = posture.settings().clone();
    let pki = tokio::task::spawn_blocking(move || pki_state(&settings))
        .await
        .unwrap_or_else(|e| Observed::unavailable(format!("reading the PKI files failed: {e}")));
    LiveEvidence {
        server: Observed::Available(server_config(posture, state)),
        pki,
        encryption: encryption_state(state).await,
        policies: policy_state(state),
        objects: objects(state).await,
        // Node agents do not exist yet in this release; no node reports its configuration.
        nodes: Observed::Available(Vec::new()),
    }
}

fn server_config(posture: &Posture, state: &ApiState) -> ServerConfig {
    let mut config = posture.settings().server.clone();
    if state.policies.is_some() {
        config.authorization.modes = vec!["Node".to_owned(), "Cedar".to_owned()];
    } else {
        config.authorization.modes = vec!["Bootstrap".to_owned()];
    }
    let mut plugins: Vec<String> = state
        .admission
        .iter()
        .map(|p| p.name().to_owned())
        .collect();
    if let Some(engines) = &state.policies {
        let sources = engines.admission.current();
        // Node restriction is the shipped admission policy set of that name.
        if sources.sources().contains_key("bulwark-node-restriction") {
            plugins.push("NodeRestriction".to_owned());
        }
    }
    config.admission.plugins = plugins;
    let l = &state.limits;
    let secs = |d: std::time::Duration| Some(d.as_secs());
    let count = |n: usize| Some(u64::try_from(n).unwrap_or(u64::MAX));
    config.limits = LimitsConfig {
        max_requests_inflight: count(l.request.max_requests_inflight),
        max_connections_per_source: count(l.connections.max_connections_per_source),
        body_read_timeout_seconds: secs(l.request.body_read_timeout),
        idle_timeout_seconds: secs(l.connections.idle_timeout),
        max_watches_per_user: count(l.watches.max_watches_per_user),
        max_body_bytes: count(l.request.max_body_bytes),
    };
    match &state.auditing {
        Some(auditing) => {
            config.audit.enabled = true;
            config.audit.coverage = AUDIT_CONCERNS
                .iter()
                .map(|c| {
                    let level = if c.unauthenticated {
                        auditing.policy.level_for_unauthenticated()
                    } else {
                        let groups = ["system:authenticated".to_owned()];
                        let subresource = (!c.subresource.is_empty()).then_some(c.subresource);
                        let attributes = bulwark_audit::policy::RequestAttributes {
                            user: "bulwark-posture-probe",
                            groups: &groups,
                            verb: c.verb,
                            resource: Some((
                                c.group,
                                c.resource,
                                subresource,
                                Some(PROBE_NAMESPACE),
                                Some("probe"),
                            )),
                            path: "",
                        };
                        auditing.policy.level_for(&attributes).0
                    };
                    AuditCoverage {
                        concern: c.id.to_owned(),
                        level: format!("{level:?}"),
                    }
                })
                .collect();
        }
        None => {
            config.audit.enabled = false;
            config.audit.coverage.clear();
        }
    }
    // Delivery counters of the configured webhook (the flags named it).
    if let (Some(webhook), Some(stats)) =
        (&mut config.audit.webhook, &posture.settings().webhook_stats)
    {
        let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        webhook.sent = load(&stats.sent);
        webhook.dropped = load(&stats.dropped);
        // Failing: requests fail and none has ever been accepted.
        webhook.failing = load(&stats.failures) > 0 && load(&stats.batches) == 0;
    }
    config
}

fn pki_state(settings: &super::PostureSettings) -> Observed<PkiState> {
    use std::os::unix::fs::MetadataExt;
    let mut files = Vec::new();
    for (path, kind) in &settings.pki_files {
        match std::fs::metadata(path) {
            Ok(meta) => files.push(FileInfo {
                path: path.display().to_string(),
                kind: *kind,
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Observed::unavailable(format!("{}: {e}", path.display())),
        }
    }
    let mut certificates = Vec::new();
    for (name, path, auto_renewed) in &settings.certificates {
        let Ok(pem) = std::fs::read_to_string(path) else {
            continue;
        };
        if let Some(info) = cert_info(name, path, &pem, *auto_renewed) {
            certificates.push(info);
        }
    }
    // The uid the server runs as owns what it created.
    let service_uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0);
    Observed::Available(PkiState {
        service_uid,
        files,
        certificates,
    })
}

fn cert_info(
    name: &str,
    path: &std::path::Path,
    pem: &str,
    auto_renewed: bool,
) -> Option<CertInfo> {
    use base64::Engine as _;
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .ok()?;
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&der).ok()?;
    let algorithm = cert.public_key().algorithm.algorithm.to_id_string();
    let key_type = match algorithm.as_str() {
        "1.2.840.10045.2.1" => "ECDSA P-256".to_owned(),
        "1.3.101.112" => "Ed25519".to_owned(),
        "1.2.840.113549.1.1.1" => "RSA".to_owned(),
        other => other.to_owned(),
    };
    Some(CertInfo {
        name: name.to_owned(),
        path: path.display().to_string(),
        subject: cert.subject().to_string(),
        is_ca: cert.is_ca(),
        key_type,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        auto_renewed,
    })
}

/// The provider kind of a storage provider, from what its values start with.
fn provider_kind(
    provider: &dyn bulwark_encryption::resources::StorageProvider,
    local: Option<&str>,
) -> String {
    if provider.envelope().is_some() {
        return if local == Some(provider.name()) {
            "local-envelope"
        } else {
            "kms-v2"
        }
        .to_owned();
    }
    let prefix = String::from_utf8_lossy(provider.prefix()).to_string();
    for kind in ["aesgcm", "aescbc", "secretbox"] {
        if prefix.contains(kind) {
            return kind.to_owned();
        }
    }
    if prefix.is_empty() {
        "identity".to_owned()
    } else {
        prefix
    }
}

async fn encryption_state(state: &ApiState) -> Observed<EncryptionState> {
    let Some(enc) = &state.encryption else {
        return Observed::Available(EncryptionState {
            resources: vec![EncryptedResource {
                resource: "secrets".to_owned(),
                providers: vec!["identity".to_owned()],
            }],
            ..EncryptionState::default()
        });
    };
    let backing = crate::encryption::Backing::of(state);
    let counts = match crate::encryption::api::counts(&backing, enc).await {
        Ok(c) => c,
        Err(e) => {
            return Observed::unavailable(format!(
                "counting encrypted values failed: {}",
                e.0.message
            ));
        }
    };
    let local = enc.keyring().map(|(name, _)| name.clone());
    let resources = counts
        .iter()
        .map(|(target, _)| {
            let providers = enc
                .transformers()
                .chain_for(&target.group, &target.resource)
                .map(|chain| {
                    chain
                        .providers()
                        .iter()
                        .map(|p| provider_kind(p.as_ref(), local.as_deref()))
                        .collect()
                })
                .unwrap_or_default();
            EncryptedResource {
                resource: if target.group.is_empty() {
                    target.resource.clone()
                } else {
                    format!("{}.{}", target.resource, target.group)
                },
                providers,
            }
        })
        .collect();
    let keys: Vec<KeyInfo> = crate::encryption::api::keys(enc, &counts)
        .iter()
        .filter(|k| !k.pointer("/status/retired").is_some_and(Value::is_string))
        .map(|k| {
            let text = |p: &str| {
                k.pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            KeyInfo {
                name: format!("{}/{}", text("/status/provider"), text("/status/keyID")),
                primary: k.pointer("/status/primary") == Some(&Value::Bool(true)),
                created: time::OffsetDateTime::parse(
                    &text("/status/created"),
                    &time::format_description::well_known::Rfc3339,
                )
                .ok()
                .map(time::OffsetDateTime::unix_timestamp),
                objects: k
                    .pointer("/status/objects")
                    .and_then(Value::as_u64)
                    .unwrap_or(0),
            }
        })
        .collect();
    let plaintext = counts.iter().map(|(_, c)| c.plaintext).sum();
    let stale = keys.iter().filter(|k| !k.primary).map(|k| k.objects).sum();
    Observed::Available(EncryptionState {
        resources,
        keys,
        plaintext_objects: plaintext,
        stale_objects: stale,
    })
}

fn policy_state(state: &ApiState) -> Observed<PolicyState> {
    let Some(engines) = &state.policies else {
        return Observed::unavailable(
            "the server runs with the bootstrap authorizer only (no Cedar policies)",
        );
    };
    let mut policies: Vec<PolicyInfo> = engines
        .authorization
        .current()
        .sources()
        .values()
        .map(|source| PolicyInfo {
            id: source.name.clone(),
            object: source.name.clone(),
            kind: if source.namespace.is_some() {
                "authorization-namespaced"
            } else {
                "authorization"
            }
            .to_owned(),
            text: source.policies.to_string(),
        })
        .collect();
    policies.sort_by(|a, b| a.id.cmp(&b.id));
    let source = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let access = ACCESS_PROBES
        .iter()
        .map(|probe| {
            let user = UserInfo {
                name: probe.principal.user(),
                groups: probe.principal.groups(),
                method: AuthMethod::X509,
                cert_fingerprint: None,
                bound_account: None,
            };
            let namespace = (!probe.namespace.is_empty()).then_some(probe.namespace);
            let labels = namespace.map(|ns| state.namespace_labels.get(ns));
            let attributes = RequestAttributes {
                verb: probe.verb,
                target: Target::Resource {
                    api_group: probe.group,
                    resource: probe.resource,
                    subresource: (!probe.subresource.is_empty()).then_some(probe.subresource),
                    namespace,
                    name: None,
                    namespace_labels: labels.as_deref().unwrap_or_default(),
                },
            };
            let decision = state.authorizer.authorize(&user, &attributes, source);
            AccessAnswer {
                probe: probe.id.to_owned(),
                allowed: decision.allowed,
                policies: decision.policies,
            }
        })
        .collect();
    let groups = vec!["system:authenticated".to_owned()];
    let admission = ADMISSION_PROBES
        .iter()
        .filter_map(|probe| {
            let object = bulwark_posture::probes::admission_probe_object(probe.id)?;
            let kind = object
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let name = object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let verdict = engines
                .admission
                .review(&bulwark_admission::AdmissionInput {
                    user: "bulwark-posture-probe",
                    groups: &groups,
                    auth_method: "x509",
                    cert_fingerprint: None,
                    source_ip: source,
                    operation: bulwark_admission::Operation::Create,
                    group: "",
                    kind: &kind,
                    subresource: None,
                    namespace: Some(PROBE_NAMESPACE),
                    name: &name,
                    object: Some(&object),
                    old_object: None,
                    namespace_labels: &[],
                    dry_run: true,
                });
            Some(AdmissionAnswer {
                probe: probe.id.to_owned(),
                admitted: verdict.admitted(),
                policies: verdict.denied.iter().map(|f| f.policy.clone()).collect(),
            })
        })
        .collect();
    Observed::Available(PolicyState {
        policies,
        access,
        admission,
    })
}

/// Every value stored under `prefix`, a page at a time (the scanner's lists and the
/// history's).
pub(super) async fn list_all(
    state: &ApiState,
    prefix: &str,
) -> Result<Vec<bulwark_store::KeyValue>, bulwark_store::StoreError> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let options = ListOptions {
            limit: PAGE,
            continue_token: token.take(),
            ..ListOptions::default()
        };
        let page = state.objects.list(prefix, options).await?;
        out.extend(page.items);
        match page.continue_token {
            Some(t) => token = Some(t),
            None => return Ok(out),
        }
    }
}

async fn objects(state: &ApiState) -> Observed<Arc<Objects>> {
    let table = state.registry.snapshot();
    let mut items = Vec::new();
    for def in table.iter().filter(|d| d.stored()) {
        if !KINDS.iter().any(|(g, k)| def.is(g, k)) {
            continue;
        }
        let prefix = crate::storage::collection_prefix(def, None);
        let stored = match list_all(state, &prefix).await {
            Ok(kvs) => kvs,
            Err(e) => return Observed::unavailable(format!("listing {}: {e}", def.plural())),
        };
        items.extend(
            stored
                .iter()
                .filter_map(|kv| crate::storage::decode(def, kv).ok())
                .map(Arc::new),
        );
    }
    Observed::Available(Arc::new(Objects { items }))
}

/// The PostureException objects in force (ones that no longer validate are skipped, logged:
/// they were valid when written, e.g. a control since removed from the catalogue).
pub async fn exceptions(state: &ApiState) -> Vec<bulwark_api::posture::PostureException> {
    let table = state.registry.snapshot();
    let Some(def) = table
        .iter()
        .find(|d| d.is(bulwark_api::posture::GROUP, "PostureException"))
    else {
        return Vec::new();
    };
    let Ok(stored) = list_all(state, &crate::storage::collection_prefix(def, None)).await else {
        tracing::error!("posture: listing PostureExceptions failed; scanning without them");
        return Vec::new();
    };
    let mut out = Vec::new();
    for kv in &stored {
        let Ok(object) = crate::storage::decode(def, kv) else {
            continue;
        };
        match bulwark_api::posture::PostureException::from_object(&object) {
            Ok(e) => out.push(e),
            Err(e) => {
                tracing::warn!(error = %e, "posture: a stored PostureException no longer validates; ignored")
            }
        }
    }
    out
}
