//! Evidence sources: where a scan's observations come from, behind one trait
//! ([`EvidenceSource`]) so that the live server, an offline manifest scan and tests feed the
//! same checks. Every area is typed; an area a source cannot observe says why
//! ([`Observed::Unavailable`]) and the controls that need it report not-evaluated with that
//! reason, never passed.
//!
//! Where the effective behaviour can be asked directly, the evidence is the answer, not a
//! reading of configuration: the [`probes`](crate::probes) put fixed questions to the running
//! authorizer ("may any authenticated user read Secrets?") and admission chain ("is a
//! privileged pod admitted in a namespace without labels?"), so a policy written in any form
//! is judged by what it does.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub mod conformance;
pub mod fake;

/// An area's evidence, or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Observed<T> {
    /// Observed.
    Available(T),
    /// Not observable by this source (the reason is reported with every control that needs
    /// it).
    Unavailable {
        /// Why.
        reason: String,
    },
}

impl<T> Observed<T> {
    /// Unavailable for `reason`.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Observed::Unavailable {
            reason: reason.into(),
        }
    }

    /// The evidence, or the reason it is missing.
    pub fn get(&self) -> Result<&T, &str> {
        match self {
            Observed::Available(v) => Ok(v),
            Observed::Unavailable { reason } => Err(reason),
        }
    }
}

/// A listener of the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    /// `127.0.0.1:6443`.
    pub address: String,
    /// Serves TLS.
    pub tls: bool,
    /// What it serves (`api`, `metrics`, `healthz`).
    pub purpose: String,
}

/// The TLS settings every listener uses.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsSettings {
    /// Protocol versions offered (`TLSv1.2`, `TLSv1.3`).
    pub versions: Vec<String>,
    /// Cipher suites offered, IANA names.
    pub cipher_suites: Vec<String>,
    /// The serving certificate file, if one is configured.
    pub serving_cert: Option<String>,
    /// The serving key file.
    pub serving_key: Option<String>,
    /// The CA client certificates are verified against.
    pub client_ca: Option<String>,
}

/// How requests are authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authentication {
    /// Anonymous requests are accepted (as system:anonymous).
    pub anonymous: bool,
    /// The authenticators in force (`x509`, `serviceaccount-token`, `bootstrap-token`,
    /// `oidc`, `static-token`, `basic-auth`).
    pub authenticators: Vec<String>,
}

/// Service-account tokens.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountTokens {
    /// The signing key file.
    pub signing_key: Option<String>,
    /// The verification (public) key file.
    pub verify_key: Option<String>,
    /// Tokens are bound to an object (pod, secret) and checked against it.
    pub bound: bool,
    /// Tokens are looked up at use (deleting the account revokes them).
    pub lookup: bool,
    /// The longest lifetime a token may be issued for, seconds.
    pub max_lifetime_seconds: Option<u64>,
    /// Legacy Secret-based tokens (no expiry) are accepted.
    pub legacy_secret_tokens: bool,
}

/// The authorization chain.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authorization {
    /// The authorizers in order (`Node`, `Cedar`, `AlwaysAllow` …).
    pub modes: Vec<String>,
}

/// The admission chain.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Admission {
    /// The built-in plugins in force (`NamespaceLifecycle`, `ServiceAccount`,
    /// `NodeRestriction`, …).
    pub plugins: Vec<String>,
}

/// The datastore and its transport.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Datastore {
    /// `embedded` (in-process, no transport) or `fdb`.
    pub engine: String,
    /// The transport, for an engine reached over the network.
    pub transport: Option<DatastoreTransport>,
}

/// How the server reaches a networked datastore.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatastoreTransport {
    /// TLS is used.
    pub tls: bool,
    /// Peers present and verify client certificates.
    pub mutual: bool,
    /// The CA that issued the datastore's certificates (subject), if known.
    pub ca: Option<String>,
    /// That CA is not the cluster CA.
    pub dedicated_ca: Option<bool>,
    /// Certificates are self-signed or auto-generated.
    pub self_signed: Option<bool>,
}

/// The audit log.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditConfig {
    /// Events are recorded.
    pub enabled: bool,
    /// The log directory.
    pub directory: Option<String>,
    /// Events are fsynced before the log is considered written.
    pub durable: bool,
    /// Records are hash-chained.
    pub hash_chained: bool,
    /// Checkpoints are signed.
    pub signed: bool,
    /// Where the policy came from (`built-in default` or a file).
    pub policy_source: String,
    /// The level the policy gives each key concern (see [`crate::probes::AUDIT_CONCERNS`]).
    pub coverage: Vec<AuditCoverage>,
    /// Segments are rotated beyond this size.
    pub max_segment_bytes: u64,
    /// Segments are rotated beyond this age, seconds.
    pub max_segment_age_seconds: u64,
    /// At most this many segments are kept.
    pub max_segments: u64,
    /// Age of the oldest event still in the log, seconds (none when empty).
    pub oldest_event_age_seconds: Option<u64>,
    /// Segments have been removed by retention.
    pub segments_removed: bool,
    /// The off-cluster sink, if configured.
    pub webhook: Option<AuditWebhook>,
}

/// What the audit policy records for one concern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditCoverage {
    /// The concern (`secrets`, `rbac-changes`, `exec`, `token-requests`,
    /// `authentication-failures`, …).
    pub concern: String,
    /// The level (`None`, `Metadata`, `Request`, `RequestResponse`).
    pub level: String,
}

/// The audit webhook.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditWebhook {
    /// The endpoint.
    pub url: String,
    /// Events sent.
    pub sent: u64,
    /// Events it could not take (they stay in the log).
    pub dropped: u64,
    /// Deliveries fail (requests fail and none has been accepted).
    pub failing: bool,
}

/// Request, connection and watch limits.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LimitsConfig {
    /// Requests served at once, at most.
    pub max_requests_inflight: Option<u64>,
    /// Connections per source address, at most.
    pub max_connections_per_source: Option<u64>,
    /// A request body must arrive within, seconds.
    pub body_read_timeout_seconds: Option<u64>,
    /// An idle connection is closed after, seconds.
    pub idle_timeout_seconds: Option<u64>,
    /// Watches per user, at most.
    pub max_watches_per_user: Option<u64>,
    /// Request body size, at most.
    pub max_body_bytes: Option<u64>,
}

/// Another control-plane component and its endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    /// `controller-manager`, `scheduler`.
    pub name: String,
    /// What it listens on.
    pub endpoints: Vec<Listener>,
}

/// The API server's typed, effective configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerConfig {
    /// The server's version.
    pub version: String,
    /// Every listener.
    pub listeners: Vec<Listener>,
    /// TLS settings.
    pub tls: TlsSettings,
    /// Authentication.
    pub authentication: Authentication,
    /// Service-account tokens.
    pub service_accounts: ServiceAccountTokens,
    /// Authorization.
    pub authorization: Authorization,
    /// Admission.
    pub admission: Admission,
    /// Profiling or debug endpoints served (paths).
    pub debug_endpoints: Vec<String>,
    /// Controller manager, scheduler …, when they run.
    pub components: Vec<Component>,
    /// Limits.
    pub limits: LimitsConfig,
    /// The datastore.
    pub datastore: Datastore,
    /// The audit log.
    pub audit: AuditConfig,
    /// How the server reaches node agents (none until it does).
    pub node_client: Option<NodeClient>,
}

/// The API server's client side towards node agents.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeClient {
    /// The client certificate presented.
    pub client_cert: Option<String>,
    /// The CA node serving certificates are verified against.
    pub verify_ca: Option<String>,
}

/// A file of the PKI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileInfo {
    /// Path.
    pub path: String,
    /// What it is.
    pub kind: FileKind,
    /// Permission bits.
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
}

/// What a PKI file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    /// A private key (or a kubeconfig embedding one).
    PrivateKey,
    /// A certificate or public key.
    Certificate,
    /// A directory.
    Directory,
}

/// A certificate in use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertInfo {
    /// What it is (`cluster-ca`, `apiserver-serving`, `admin-client`).
    pub name: String,
    /// Its file.
    pub path: String,
    /// Subject.
    pub subject: String,
    /// A CA certificate.
    pub is_ca: bool,
    /// Key type (`ECDSA P-256`).
    pub key_type: String,
    /// Valid from (Unix seconds).
    pub not_before: i64,
    /// Valid until (Unix seconds).
    pub not_after: i64,
    /// The server renews it itself (at a third of its lifetime left).
    pub auto_renewed: bool,
}

/// PKI state.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PkiState {
    /// The uid the server runs as (files must be owned by it).
    pub service_uid: u32,
    /// Every key, certificate and the PKI directory.
    pub files: Vec<FileInfo>,
    /// Every certificate in use.
    pub certificates: Vec<CertInfo>,
}

/// An encryption key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyInfo {
    /// Provider and key name.
    pub name: String,
    /// New writes use it.
    pub primary: bool,
    /// Created (Unix seconds), when known.
    pub created: Option<i64>,
    /// Stored values under it.
    pub objects: u64,
}

/// Which providers protect one resource, first one encrypting new writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptedResource {
    /// `secrets`, `configmaps`, `*.apps`.
    pub resource: String,
    /// Provider kinds in order (`kms-v2`, `local-envelope`, `aesgcm`, `secretbox`, `aescbc`,
    /// `identity`).
    pub providers: Vec<String>,
}

/// Encryption at rest.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionState {
    /// Resources and their providers (Secrets always listed; `identity` only when none).
    pub resources: Vec<EncryptedResource>,
    /// Keys.
    pub keys: Vec<KeyInfo>,
    /// Stored values of encrypted resources that are plaintext.
    pub plaintext_objects: u64,
    /// Stored values under a key other than the primary.
    pub stale_objects: u64,
}

/// A Cedar policy in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyInfo {
    /// The policy id.
    pub id: String,
    /// The CedarPolicy object (or `bootstrap`).
    pub object: String,
    /// Authorization or admission.
    pub kind: String,
    /// The policy text.
    pub text: String,
}

/// One question put to the running authorizer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessAnswer {
    /// The probe's id (see [`crate::probes::ACCESS_PROBES`]).
    pub probe: String,
    /// Allowed.
    pub allowed: bool,
    /// The policies that decided.
    pub policies: Vec<String>,
}

/// One object put to the running admission chain (dry run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionAnswer {
    /// The probe's id (see [`crate::probes::ADMISSION_PROBES`]).
    pub probe: String,
    /// Admitted.
    pub admitted: bool,
    /// The policies that refused it.
    pub policies: Vec<String>,
}

/// The policies in force and the answers of the probes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyState {
    /// Every policy.
    pub policies: Vec<PolicyInfo>,
    /// Authorization probes.
    pub access: Vec<AccessAnswer>,
    /// Admission probes.
    pub admission: Vec<AdmissionAnswer>,
}

/// The stored objects (or manifests) a scan judges: everything, as the API serves it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Objects {
    /// The objects.
    pub items: Vec<Arc<Value>>,
}

/// What a node agent reports of its own configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeReport {
    /// The node's name.
    pub node: String,
    /// Anonymous requests accepted.
    pub anonymous_auth: bool,
    /// Authorization mode (`Webhook`, `AlwaysAllow`).
    pub authorization_mode: String,
    /// Client CA file.
    pub client_ca: Option<String>,
    /// Unauthenticated read-only port (0: off).
    pub read_only_port: u16,
    /// Serving certificate file.
    pub serving_cert: Option<String>,
    /// TLS cipher suites offered.
    pub tls_cipher_suites: Vec<String>,
    /// Client certificate rotation on.
    pub rotate_client_cert: bool,
    /// Serving certificate rotation on.
    pub rotate_serving_cert: bool,
    /// PIDs per pod, at most (none: unlimited).
    pub pod_pids_limit: Option<i64>,
    /// Pods without a profile get RuntimeDefault.
    pub seccomp_default: bool,
    /// Config, kubeconfig, key and service files.
    pub files: Vec<FileInfo>,
    /// The network plugin enforces NetworkPolicy.
    pub network_policy_enforced: bool,
    /// Pods cannot reach the cloud metadata endpoint or the agent's port.
    pub sensitive_endpoints_blocked: Option<bool>,
}

/// Everything one scan reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The server's configuration.
    pub server: Observed<ServerConfig>,
    /// PKI.
    pub pki: Observed<PkiState>,
    /// Encryption at rest.
    pub encryption: Observed<EncryptionState>,
    /// Policies and probe answers.
    pub policies: Observed<PolicyState>,
    /// Stored objects.
    pub objects: Observed<Arc<Objects>>,
    /// Node agents' reports.
    pub nodes: Observed<Vec<NodeReport>>,
    /// When it was taken (Unix seconds).
    pub taken: i64,
}

/// Where a scan's evidence comes from. The live server, an offline manifest scan and the
/// test fake implement it; [`conformance::run`] checks any implementation.
pub trait EvidenceSource: Send + Sync {
    /// A name for reports (`bulwark-apiserver`, `manifests`).
    fn name(&self) -> &str;
    /// The server's configuration.
    fn server(&self) -> Observed<ServerConfig>;
    /// PKI state.
    fn pki(&self) -> Observed<PkiState>;
    /// Encryption at rest.
    fn encryption(&self) -> Observed<EncryptionState>;
    /// Policies, and the answers to [`crate::probes`].
    fn policies(&self) -> Observed<PolicyState>;
    /// Stored objects.
    fn objects(&self) -> Observed<Arc<Objects>>;
    /// Node agents' reports.
    fn nodes(&self) -> Observed<Vec<NodeReport>>;

    /// Every area at once, at `now` (Unix seconds).
    fn snapshot(&self, now: i64) -> Snapshot {
        Snapshot {
            server: self.server(),
            pki: self.pki(),
            encryption: self.encryption(),
            policies: self.policies(),
            objects: self.objects(),
            nodes: self.nodes(),
            taken: now,
        }
    }
}
