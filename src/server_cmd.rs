//! `bulwark server`: bootstrap the PKI, open the store, serve the API over HTTPS.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bulwark_audit::AuditSink;
use bulwark_pki::{ADMIN_GROUP, BootstrapOptions, ClusterPki};
use bulwark_store::{CompactionOptions, Engine, Store, StoreOptions};

use crate::EngineJob;

/// How long shutdown waits for a posture scan under way to finish.
const POSTURE_STOP: Duration = Duration::from_secs(10);
/// How often the serving certificate is checked for renewal.
const RENEWAL_CHECK: Duration = Duration::from_secs(3600);

#[derive(clap::Args)]
pub(crate) struct ServerArgs {
    /// Data directory, storage engine and (on FoundationDB) the cluster's subspace.
    #[command(flatten)]
    pub(crate) storage: crate::StoreArgs,
    /// Address to listen on (HTTPS).
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub(crate) listen: SocketAddr,
    /// Extra DNS names or IPs for the serving certificate (repeatable).
    #[arg(long = "san")]
    pub(crate) sans: Vec<String>,
    /// How much change history to keep for watches and list continue tokens; older
    /// resourceVersions get 410 Expired (e.g. 5m, 1h).
    #[arg(long, default_value = "5m", value_parser = parse_positive)]
    pub(crate) history: Duration,
    /// Audit policy file (upstream `audit.k8s.io/v1 Policy` format). Default: the hardened
    /// built-in policy (Metadata for everything, bodies of policy, RBAC, approval and exec
    /// changes, never bodies of secrets or tokens).
    #[arg(long)]
    pub(crate) audit_policy: Option<PathBuf>,
    /// Also send audit events to a webhook: a kubeconfig naming an `https://` endpoint, its
    /// CA, and a client certificate or bearer token (upstream's format). Events go after the
    /// log has them; ones the endpoint cannot take stay in the log and the drop is recorded.
    #[arg(long)]
    pub(crate) audit_webhook_config_file: Option<PathBuf>,
    /// Events buffered for the webhook while it is slow or down.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) audit_webhook_batch_buffer_size: usize,
    /// Most events per webhook request.
    #[arg(long, default_value_t = 400)]
    pub(crate) audit_webhook_batch_max_size: usize,
    /// Longest a webhook batch waits to fill (e.g. 1s).
    #[arg(long, default_value = "1s", value_parser = parse_positive)]
    pub(crate) audit_webhook_batch_max_wait: Duration,
    /// First retry delay of a failed webhook request; it doubles up to 30s.
    #[arg(long, default_value = "1s", value_parser = parse_positive)]
    pub(crate) audit_webhook_initial_backoff: Duration,
    /// Encryption at rest from an upstream `EncryptionConfiguration` file
    /// (`apiserver.config.k8s.io/v1`: kms v2, aesgcm, aescbc, secretbox, identity; mode 0600).
    /// Default: Secrets envelope-encrypted under a local key in DIR/encryption/local.
    #[arg(long, conflicts_with = "encrypt_resources")]
    pub(crate) encryption_provider_config: Option<PathBuf>,
    /// More resources to encrypt at rest under the local keyring, besides Secrets
    /// (repeatable; upstream's names: `configmaps`, `cedarpolicies.policy.bulwark.dev`,
    /// `*.apps`, `*.*` …).
    #[arg(long = "encrypt-resource")]
    pub(crate) encrypt_resources: Vec<String>,
    /// How often the posture scanner runs a full scan (it also rescans within a second of
    /// object changes), e.g. 10m.
    #[arg(long, default_value = "10m", value_parser = parse_positive)]
    pub(crate) posture_interval: Duration,
    /// How long the posture score's history is kept (stored outside the object keyspace),
    /// e.g. 90d.
    #[arg(long, default_value = "90d", value_parser = parse_positive)]
    pub(crate) posture_history_retention: Duration,
    #[command(flatten)]
    pub(crate) limits: crate::limits_args::LimitArgs,
}

/// The webhook options the flags give (None without `--audit-webhook-config-file`).
fn webhook_options(
    args: &ServerArgs,
) -> anyhow::Result<Option<bulwark_audit::webhook::WebhookOptions>> {
    let Some(path) = &args.audit_webhook_config_file else {
        return Ok(None);
    };
    let endpoint = bulwark_audit::webhook::WebhookEndpoint::from_kubeconfig(path)?;
    let mut options = bulwark_audit::webhook::WebhookOptions::new(endpoint);
    options.buffer = args.audit_webhook_batch_buffer_size.max(1);
    options.max_batch = args.audit_webhook_batch_max_size.max(1);
    options.max_wait = args.audit_webhook_batch_max_wait;
    options.initial_backoff = args.audit_webhook_initial_backoff;
    options.max_backoff = options.max_backoff.max(options.initial_backoff);
    Ok(Some(options))
}

fn parse_positive(text: &str) -> Result<Duration, String> {
    match crate::duration::parse(text) {
        Ok(d) if d.is_zero() => Err("must be at least 1s".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("{e:#}")),
    }
}

/// Opens the audit log in `<data-dir>/audit`, signed with `<data-dir>/pki/audit-signing.key`
/// (created on first start; its public key, `audit-signing.key.pub`, is what auditors verify
/// with), and loads the audit policy. Returns the audit log, the audit policy, and the start
/// event recording which policy is in force (lowering the audit level is how one would hide,
/// so auditors see every change of it) and where events are also sent.
fn open_audit(
    data_dir: &std::path::Path,
    policy: Option<&std::path::Path>,
    webhook: Option<bulwark_audit::webhook::WebhookOptions>,
) -> anyhow::Result<(
    bulwark_audit::AuditLog,
    bulwark_audit::AuditPolicy,
    bulwark_audit::Event,
)> {
    let (policy, text, source) = match policy {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the audit policy {}", path.display()))?;
            (
                bulwark_audit::AuditPolicy::parse(&text)?,
                text,
                path.display().to_string(),
            )
        }
        None => (
            bulwark_audit::AuditPolicy::hardened_default()?,
            bulwark_audit::policy::DEFAULT_POLICY.to_owned(),
            "built-in default".to_owned(),
        ),
    };
    let mut start =
        bulwark_audit::Event::component("apiserver", "start", bulwark_audit::ObjectRef::default())
            .note("bulwark.dev/version", env!("CARGO_PKG_VERSION"))
            .note("audit.bulwark.dev/policy", source)
            .note(
                "audit.bulwark.dev/policy-sha256",
                bulwark_audit::chain::line_hash(text.as_bytes()),
            );
    if let Some(webhook) = &webhook {
        start = start.note("audit.bulwark.dev/webhook", webhook.endpoint.url.clone());
    }
    let key = bulwark_audit::chain::SigningKey::load_or_create(
        &data_dir.join("pki").join("audit-signing.key"),
    )?;
    let mut options = bulwark_audit::AuditOptions::new(data_dir.join("audit"));
    options.webhook = webhook;
    let log = bulwark_audit::AuditLog::open(options, key)?;
    Ok((log, policy, start))
}

/// The audit event of a change of the serving certificate: `rotate` (renewed before it
/// expires) or `reload` (replaced on disk by an operator, SIGHUP).
fn serving_cert_event(verb: &str, outcome: Result<(), String>) -> bulwark_audit::Event {
    let event = bulwark_audit::Event::component(
        "pki",
        verb,
        bulwark_audit::ObjectRef {
            resource: "certificates".into(),
            name: Some("apiserver-serving".into()),
            ..bulwark_audit::ObjectRef::default()
        },
    );
    match outcome {
        Ok(()) => event,
        Err(why) => event.failed(why),
    }
}

/// How long shutdown waits for the audit webhook to take what the log holds.
const WEBHOOK_DRAIN: Duration = Duration::from_secs(5);

/// The server job.
pub(crate) struct Server(pub(crate) ServerArgs);

fn server_url(addr: SocketAddr) -> String {
    let host = match addr.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        ip => ip.to_string(),
    };
    format!("https://{host}:{}", addr.port())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

impl EngineJob for Server {
    async fn run<E: Engine>(self, engine: E) -> anyhow::Result<()> {
        let args = self.0;
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let addr = listener.local_addr()?;
        let url = server_url(addr);
        let mut sans = args.sans.clone();
        if !addr.ip().is_unspecified() && !addr.ip().is_loopback() {
            sans.push(addr.ip().to_string());
        }
        let data_dir = args.storage.data_dir.clone();
        let options = BootstrapOptions {
            extra_sans: sans,
            server_url: url.clone(),
        };
        let pki =
            tokio::task::spawn_blocking(move || ClusterPki::load_or_bootstrap(&data_dir, &options))
                .await?
                .context("bootstrapping the cluster PKI")?;
        for created in pki.created() {
            tracing::info!(what = created, "bootstrap: created");
        }
        let tls = bulwark_pki::tls::server_config(pki.serving(), pki.ca().cert_pem())?;
        let options = StoreOptions {
            compaction: Some(CompactionOptions::with_window(args.history)),
            ..StoreOptions::default()
        };
        let store = Store::open(engine, options)
            .await
            .context("opening the store")?;
        let tokens = bulwark_apiserver::authn::sa_token::TokenKeys::from_pem(pki.sa_signing_key())?;
        // Until the CedarPolicy objects are loaded (before the server is ready) only the
        // compiled-in bootstrap tier is in force.
        let (engine, _) = bulwark_policies::PolicyEngine::new(&[])?;
        let engine = Arc::new(engine);
        let limits = args.limits.limits();
        if limits == bulwark_apiserver::http::limits::Limits::dangerous_unlimited() {
            tracing::warn!("--dangerous-no-limits: every limit is raised out of the way");
        } else if limits != bulwark_apiserver::http::limits::Limits::default() {
            tracing::info!(?limits, "limits differ from the defaults");
        }
        let webhook = webhook_options(&args)?;
        let webhook_url = webhook.as_ref().map(|w| w.endpoint.url.clone());
        let audit = open_audit(
            &args.storage.data_dir,
            args.audit_policy.as_deref(),
            webhook,
        )?;
        let encryption = Arc::new(match &args.encryption_provider_config {
            Some(path) => crate::encryption_setup::from_config_file(path)?,
            None => crate::encryption_setup::default_encryption(
                &args.storage.data_dir,
                &args.encrypt_resources,
            )?,
        });
        encryption.start_status_poll(crate::encryption_setup::STATUS_POLL);
        let encryption_source = encryption.source().to_owned();
        let mut builder = bulwark_apiserver::ApiState::builder(store.clone(), ADMIN_GROUP)
            .tokens(Arc::new(tokens))
            .encryption(encryption)
            .limits(limits)
            .cedar(engine)
            .context("modelling the served kinds for admission")?
            .auditing(bulwark_apiserver::audit::record::Auditing {
                sink: Arc::new(audit.0.clone()),
                policy: audit.1,
                reader: Some(Arc::new(audit.0.reader())),
            });
        if let Some(stats) = audit.0.webhook_stats() {
            builder.metrics().register_audit_webhook(stats);
        }
        let posture = Arc::new(bulwark_apiserver::posture::Posture::new(
            crate::posture_setup::settings(&crate::posture_setup::Facts {
                data_dir: &args.storage.data_dir,
                listen: addr,
                tls: &tls,
                store: &args.storage.store,
                audit_policy_source: args.audit_policy.as_ref().map_or_else(
                    || "built-in default".to_owned(),
                    |p| p.display().to_string(),
                ),
                audit_webhook: webhook_url,
                webhook_stats: audit.0.webhook_stats(),
                interval: args.posture_interval,
                history_retention: args.posture_history_retention,
            }),
        )?);
        crate::posture_setup::refresh_signer(&posture, &args.storage.data_dir, pki.ca())
            .context("the posture report signing key")?;
        let builder = builder.posture(Arc::clone(&posture));
        let audit_log = audit.0;
        audit_log
            .record(
                audit
                    .2
                    .note("encryption.bulwark.dev/configuration", encryption_source),
            )
            .await;
        let state = builder.build();
        bulwark_apiserver::bootstrap(&state)
            .await
            .map_err(|e| anyhow::anyhow!("bootstrapping system namespaces: {e}"))?;
        // Ends when the store closes at shutdown.
        let posture_task = posture.start(Arc::clone(&state));

        let pki = Arc::new(pki);
        let renewer = Arc::clone(&pki);
        let renewal_log = audit_log.clone();
        let renewal_posture = Arc::clone(&posture);
        let renewal_dir = args.storage.data_dir.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RENEWAL_CHECK);
            loop {
                tick.tick().await;
                {
                    let (pki, posture, dir) = (
                        Arc::clone(&renewer),
                        Arc::clone(&renewal_posture),
                        renewal_dir.clone(),
                    );
                    match tokio::task::spawn_blocking(move || {
                        crate::posture_setup::refresh_signer(&posture, &dir, pki.ca())
                    })
                    .await
                    {
                        Ok(Ok(true)) => tracing::info!("posture report signing key renewed"),
                        Ok(Ok(false)) => {}
                        Ok(Err(e)) => {
                            tracing::error!(error = %e, "posture signing key renewal failed")
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "posture signing key renewal task failed")
                        }
                    }
                }
                let pki = Arc::clone(&renewer);
                let outcome =
                    match tokio::task::spawn_blocking(move || pki.renew_serving_if_due()).await {
                        Ok(Ok(true)) => {
                            tracing::info!("serving certificate renewed without a restart");
                            Some(Ok(()))
                        }
                        Ok(Ok(false)) => None,
                        Ok(Err(e)) => {
                            tracing::error!(error = %e, "serving certificate renewal failed");
                            Some(Err(e.to_string()))
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "serving certificate renewal task failed");
                            Some(Err(e.to_string()))
                        }
                    };
                if let Some(outcome) = outcome {
                    renewal_log
                        .record(serving_cert_event("rotate", outcome))
                        .await;
                }
            }
        });

        // SIGHUP: reload the serving certificate from disk, without a restart. A pair that
        // fails to load is refused and the one in force stays. (Policies need no signal: they
        // are API objects, reloaded as they change.)
        #[cfg(unix)]
        if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            let pki = Arc::clone(&pki);
            let reload_log = audit_log.clone();
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    let pki = Arc::clone(&pki);
                    let outcome = match tokio::task::spawn_blocking(move || {
                        pki.reload_serving_from_disk()
                    })
                    .await
                    {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => {
                            tracing::error!(error = %e, "SIGHUP: serving certificate not reloaded; keeping the current one");
                            Err(e.to_string())
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "SIGHUP: reload task failed");
                            Err(e.to_string())
                        }
                    };
                    reload_log
                        .record(serving_cert_event("reload", outcome))
                        .await;
                }
            });
        }

        let kubeconfig = bulwark_pki::bootstrap::admin_kubeconfig_path(&args.storage.data_dir);
        println!("Bulwark API server listening on {url}");
        println!("Admin credentials: {}", kubeconfig.display());
        println!(
            "Try: kubectl --kubeconfig {} get namespaces",
            kubeconfig.display()
        );
        tracing::info!(%url, engine = store.engine().name(), "serving");
        bulwark_apiserver::http::server::serve(listener, tls, state, shutdown_signal()).await;
        tracing::info!("shutting down");
        // The posture scanner records audit events of its own: it stops (finishing a scan
        // under way) before the log's last flush and the webhook's drain, so that every
        // event in the log also reaches the webhook.
        posture.stop();
        if tokio::time::timeout(POSTURE_STOP, posture_task)
            .await
            .is_err()
        {
            tracing::warn!(
                "the posture scanner did not stop in {POSTURE_STOP:?}; its later events may miss the webhook"
            );
        }
        // Everything recorded is written, fsynced and signed before the process exits.
        audit_log.flush().await;
        if !audit_log.drain_webhook(WEBHOOK_DRAIN).await {
            tracing::warn!(
                "the audit webhook did not take every event before shutdown; they are in the log"
            );
        }
        // A drop the webhook recorded while draining is written too.
        audit_log.flush().await;
        // Background consumers (mirrors, policy sync) end when the store closes their watches.
        store.close().await.context("closing the store")?;
        Ok(())
    }
}
