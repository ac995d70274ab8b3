//! What `bulwark server` tells the posture scanner about itself: the configuration the flags
//! decided, the PKI files and certificates it created, and the signing key for reports.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bulwark_posture::evidence::{
    AuditConfig, AuditWebhook, Authentication, Datastore, DatastoreTransport, FileKind, Listener,
    ServerConfig, ServiceAccountTokens, TlsSettings,
};

/// The posture signing identity's file name (in DIR/pki).
const SIGNING_NAME: &str = "posture-signing";

/// Inputs from the server's flags.
pub(crate) struct Facts<'a> {
    pub(crate) data_dir: &'a Path,
    pub(crate) listen: std::net::SocketAddr,
    pub(crate) tls: &'a rustls::ServerConfig,
    pub(crate) store: &'a str,
    pub(crate) audit_policy_source: String,
    pub(crate) audit_webhook: Option<String>,
    pub(crate) webhook_stats: Option<Arc<bulwark_audit::webhook::WebhookStats>>,
    pub(crate) interval: Duration,
    pub(crate) history_retention: Duration,
}

/// A datastore's transport as its cluster file says (`…@host:port:tls,…`).
fn fdb_transport(cluster_file: &str) -> Option<DatastoreTransport> {
    let text = std::fs::read_to_string(cluster_file).ok()?;
    let addresses = text.split('@').nth(1)?.trim();
    let tls = !addresses.is_empty() && addresses.split(',').all(|a| a.trim().ends_with(":tls"));
    Some(DatastoreTransport {
        tls,
        // FoundationDB's TLS verifies peers (client and server) unless told otherwise.
        mutual: tls,
        ca: None,
        dedicated_ca: None,
        self_signed: None,
    })
}

pub(crate) fn settings(facts: &Facts<'_>) -> bulwark_apiserver::posture::PostureSettings {
    let dir = facts.data_dir;
    let pki = dir.join("pki");
    let path = |p: &Path| p.display().to_string();
    let (versions, suites) = bulwark_pki::tls::offered(facts.tls);
    let defaults = bulwark_audit::AuditOptions::new(dir.join("audit"));
    let datastore = match facts.store.strip_prefix("fdb:") {
        Some(file) => Datastore {
            engine: "fdb".to_owned(),
            transport: fdb_transport(file),
        },
        None => Datastore {
            engine: "embedded".to_owned(),
            transport: None,
        },
    };
    let server = ServerConfig {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        listeners: vec![Listener {
            address: facts.listen.to_string(),
            tls: true,
            purpose: "api, health and metrics".to_owned(),
        }],
        tls: TlsSettings {
            versions,
            cipher_suites: suites,
            serving_cert: Some(path(&pki.join("apiserver.crt"))),
            serving_key: Some(path(&pki.join("apiserver.key"))),
            client_ca: Some(path(&pki.join("ca.crt"))),
        },
        authentication: Authentication {
            anonymous: false,
            authenticators: vec!["x509".to_owned(), "serviceaccount-token".to_owned()],
        },
        service_accounts: ServiceAccountTokens {
            signing_key: Some(path(&pki.join("sa.key"))),
            verify_key: Some(path(&pki.join("sa.pub"))),
            bound: true,
            lookup: true,
            max_lifetime_seconds: Some(48 * 3600),
            legacy_secret_tokens: false,
        },
        datastore,
        audit: AuditConfig {
            enabled: true,
            directory: Some(path(&dir.join("audit"))),
            durable: true,
            hash_chained: true,
            signed: true,
            policy_source: facts.audit_policy_source.clone(),
            max_segment_bytes: defaults.max_segment_bytes,
            max_segment_age_seconds: defaults.max_segment_age.as_secs(),
            max_segments: u64::try_from(defaults.max_segments).unwrap_or(u64::MAX),
            webhook: facts.audit_webhook.as_ref().map(|url| AuditWebhook {
                url: url.clone(),
                ..AuditWebhook::default()
            }),
            ..AuditConfig::default()
        },
        ..ServerConfig::default()
    };
    let mut pki_files = vec![
        (dir.to_path_buf(), FileKind::Directory),
        (pki.clone(), FileKind::Directory),
        (dir.join("admin.kubeconfig"), FileKind::PrivateKey),
        (dir.join("audit"), FileKind::Directory),
        (dir.join("encryption"), FileKind::Directory),
    ];
    for key in [
        "ca.key",
        "apiserver.key",
        "admin.key",
        "sa.key",
        "audit-signing.key",
        "posture-signing.key",
    ] {
        pki_files.push((pki.join(key), FileKind::PrivateKey));
    }
    for cert in [
        "ca.crt",
        "apiserver.crt",
        "admin.crt",
        "sa.pub",
        "audit-signing.key.pub",
        "posture-signing.crt",
    ] {
        pki_files.push((pki.join(cert), FileKind::Certificate));
    }
    if let Ok(entries) = std::fs::read_dir(dir.join("encryption").join("local")) {
        pki_files.push((dir.join("encryption").join("local"), FileKind::Directory));
        for entry in entries.filter_map(Result::ok) {
            pki_files.push((entry.path(), FileKind::PrivateKey));
        }
    }
    bulwark_apiserver::posture::PostureSettings {
        server,
        pki_files,
        certificates: vec![
            ("cluster-ca".to_owned(), pki.join("ca.crt"), false),
            (
                "apiserver-serving".to_owned(),
                pki.join("apiserver.crt"),
                true,
            ),
            ("admin-client".to_owned(), pki.join("admin.crt"), false),
            (
                "posture-signing".to_owned(),
                pki.join(format!("{SIGNING_NAME}.crt")),
                true,
            ),
        ],
        interval: facts.interval,
        debounce: Duration::from_millis(200),
        webhook_stats: facts.webhook_stats.clone(),
        history_retention: facts.history_retention,
    }
}

/// Loads (creating or renewing when due) the report signing key and hands it to the scanner.
/// Returns whether a new key was made.
pub(crate) fn refresh_signer(
    posture: &bulwark_apiserver::posture::Posture,
    data_dir: &Path,
    ca: &bulwark_pki::CertificateAuthority,
) -> anyhow::Result<bool> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (identity, created) = bulwark_pki::signing::SigningIdentity::load_or_renew(
        &data_dir.join("pki"),
        SIGNING_NAME,
        ca,
        "bulwark-posture-signing",
        now,
    )?;
    let der = zeroize::Zeroizing::new(identity.key_der()?);
    let signer = bulwark_apiserver::posture::Signer::new(&der, identity.cert_pem)
        .map_err(|e| anyhow::anyhow!(e))?;
    posture.set_signer(signer);
    Ok(created)
}
