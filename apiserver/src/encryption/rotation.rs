//! Online key rotation: a new primary key (a new local key, or the KMS plugin's current key
//! with a fresh DEK seed), then every value of the provider's resources not yet under it
//! rewritten in place, a page at a time, with compare-and-swap on its revision (a racing
//! client write wins and is itself under the new key), pass after pass until one finds
//! nothing to do. Progress is a record in the store, so a rotation resumes after a crash of
//! the server and the command can be re-run. Old local keys are retired (their files
//! destroyed) only when no value uses them and the history from before the rotation has
//! been compacted away.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bulwark_store::StoreError;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::Backing;
use super::scan::{self, Target};
use super::{Encryption, now};
use crate::http::error::{ApiError, from_store};

/// Where the rotation record lives (outside `/registry`: never encrypted, holds no secret).
pub(crate) const RECORD_KEY: &str = "/bulwark/encryption/rotation";

/// Most passes over the data before a rotation gives up (each pass rewrites what raced).
const MAX_PASSES: u32 = 10;

/// How often retirement checks whether the old history is compacted.
const RETIRE_CHECK: Duration = Duration::from_secs(2);

/// A rotation's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub(crate) enum Phase {
    /// Rewriting values.
    #[default]
    Running,
    /// Every value is under the new key; old keys retire once the history is compacted.
    Retiring,
    /// Done.
    Complete,
    /// Stopped; the message says why. Starting another rotation continues the work.
    Failed,
}

/// A rotation, as stored and as the API shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RotationRecord {
    /// Its name (`rotation-<unix milliseconds>`).
    pub name: String,
    /// Its phase.
    pub phase: Phase,
    /// The provider whose key rotated.
    pub provider: String,
    /// The key everything is rewritten under.
    pub target_key_id: String,
    /// Local keys live before it, retired at the end.
    pub previous_key_ids: Vec<String>,
    /// Local keys it retired.
    pub retired_key_ids: Vec<String>,
    /// When it started (RFC 3339).
    pub started: String,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
    /// Values in the provider's resources when it started (a progress bar's total).
    pub total: u64,
    /// Values rewritten so far.
    pub rewritten: u64,
    /// Passes over the data so far.
    pub passes: u32,
    /// The revision after the last rewrite: old keys retire once history before it is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_revision: Option<u64>,
    /// What it is doing or why it stopped.
    pub message: String,
}

impl RotationRecord {
    /// The record as an API object.
    pub fn to_object(&self) -> serde_json::Value {
        let status = serde_json::to_value(self).unwrap_or_default();
        serde_json::json!({
            "apiVersion": "encryption.bulwark.dev/v1",
            "kind": "KeyRotation",
            "metadata": {"name": self.name, "creationTimestamp": self.started},
            "status": status,
        })
    }
}

/// The rotation running in this server, if any.
#[derive(Debug, Default)]
pub(crate) struct Rotator {
    running: Arc<tokio::sync::Mutex<()>>,
    latest: RwLock<Option<RotationRecord>>,
}

/// A failure whose message the rotation record keeps (it names keys, never values).
fn fail(message: impl Into<String>) -> ApiError {
    ApiError::new(bulwark_api::StatusReason::InternalError, message)
}

fn internal(e: StoreError) -> ApiError {
    from_store(e, "encryption.bulwark.dev", "keyrotations", "")
}

/// The latest rotation record (this server's progress, or the store's).
pub(crate) async fn latest(
    state: &Backing,
    encryption: &Encryption,
) -> Result<Option<RotationRecord>, ApiError> {
    if let Some(record) = encryption
        .rotation
        .latest
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
    {
        return Ok(Some(record));
    }
    load(state).await
}

async fn load(state: &Backing) -> Result<Option<RotationRecord>, ApiError> {
    match state.objects.get(RECORD_KEY).await.map_err(internal)? {
        Some(kv) => serde_json::from_slice(&kv.value)
            .map(Some)
            .map_err(ApiError::internal),
        None => Ok(None),
    }
}

async fn save(
    state: &Backing,
    encryption: &Encryption,
    record: &RotationRecord,
) -> Result<(), ApiError> {
    let bytes = serde_json::to_vec(record).map_err(ApiError::internal)?;
    match state.objects.update(RECORD_KEY, bytes.clone(), None).await {
        Ok(_) => {}
        Err(StoreError::NotFound { .. }) => {
            state
                .objects
                .create(RECORD_KEY, bytes)
                .await
                .map_err(internal)?;
        }
        Err(e) => return Err(internal(e)),
    }
    *encryption
        .rotation
        .latest
        .write()
        .unwrap_or_else(PoisonError::into_inner) = Some(record.clone());
    Ok(())
}

/// The envelope provider a rotation turns over: the writer of Secrets, else of the first
/// rule that encrypts.
fn rotated_provider(targets: &[Target]) -> Option<&Target> {
    targets
        .iter()
        .filter(|t| t.writer.envelope().is_some())
        .find(|t| t.group.is_empty() && t.resource == "secrets")
        .or_else(|| targets.iter().find(|t| t.writer.envelope().is_some()))
}

/// Starts a rotation (409 while one runs); returns its record.
pub(crate) async fn start(
    state: Backing,
    encryption: Arc<Encryption>,
) -> Result<RotationRecord, ApiError> {
    let Ok(running) = Arc::clone(&encryption.rotation.running).try_lock_owned() else {
        return Err(ApiError::new(
            bulwark_api::StatusReason::Conflict,
            "a key rotation is already running; follow it with `bulwark secrets status`",
        ));
    };
    let targets = scan::targets(&state, &encryption);
    let target = rotated_provider(&targets).ok_or_else(|| {
        ApiError::bad_request(
            "no resource is envelope-encrypted: static keys (aescbc, aesgcm, secretbox) rotate by editing the encryption configuration",
        )
    })?;
    let envelope = target
        .writer
        .envelope()
        .ok_or_else(|| ApiError::internal("the rotated provider is not an envelope"))?;
    let provider = envelope.name().to_owned();
    let mut previous = Vec::new();
    let target_key_id = match encryption.keyring() {
        Some((name, keyring)) if *name == provider => {
            previous = keyring
                .keys()
                .into_iter()
                .filter(|k| k.retired.is_none())
                .map(|k| k.id)
                .collect();
            let keyring = Arc::clone(keyring);
            tokio::task::spawn_blocking(move || keyring.rotate())
                .await
                .map_err(ApiError::internal)?
                .map_err(|e| fail(format!("creating a new key: {e}")))?
        }
        _ => {
            envelope
                .refresh()
                .await
                .map_err(|e| {
                    ApiError::new(
                        bulwark_api::StatusReason::ServiceUnavailable,
                        format!("the KMS plugin of provider {provider} is not healthy: {e}"),
                    )
                })?
                .key_id
        }
    };
    // Keys a rotation still waiting to retire them had are this one's to retire.
    if let Some(earlier) = latest(&state, &encryption).await?
        && earlier.phase == Phase::Retiring
    {
        for id in earlier.previous_key_ids {
            if !previous.contains(&id) {
                previous.push(id);
            }
        }
    }
    envelope.renew_seed();
    encryption.refresh().await;
    let mut total = 0;
    for t in targets.iter().filter(|t| t.writer.name() == provider) {
        let counts = scan::count(&state, t).await?;
        total += counts.encrypted + counts.plaintext;
    }
    let record = RotationRecord {
        // Milliseconds: two rotations never share a name (a newer one supersedes by name).
        name: format!(
            "rotation-{}",
            OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000
        ),
        phase: Phase::Running,
        provider,
        target_key_id,
        previous_key_ids: previous,
        started: now(),
        total,
        message: "rewriting values under the new key".into(),
        ..RotationRecord::default()
    };
    save(&state, &encryption, &record).await?;
    tracing::info!(rotation = %record.name, key_id = %record.target_key_id, total, "key rotation started");
    spawn(state, encryption, record.clone(), Some(running));
    Ok(record)
}

/// Resumes a rotation a previous run of the server left unfinished.
pub(crate) async fn resume(state: Backing, encryption: Arc<Encryption>) -> Result<(), ApiError> {
    if let Some(record) = load(&state).await?
        && matches!(record.phase, Phase::Running | Phase::Retiring)
    {
        tracing::info!(rotation = %record.name, "resuming key rotation");
        encryption.refresh().await;
        let running = Arc::clone(&encryption.rotation.running).lock_owned().await;
        spawn(state, encryption, record, Some(running));
    }
    Ok(())
}

fn spawn(
    state: Backing,
    encryption: Arc<Encryption>,
    record: RotationRecord,
    running: Option<tokio::sync::OwnedMutexGuard<()>>,
) {
    tokio::spawn(async move {
        let mut record = record;
        if let Err(e) = run(&state, &encryption, &mut record, running).await {
            tracing::error!(rotation = %record.name, error = %e.0.message, "key rotation stopped");
            state
                .record(
                    "rotate-failed",
                    &record.target_key_id,
                    &[
                        ("encryption.bulwark.dev/rotation", record.name.clone()),
                        ("encryption.bulwark.dev/reason", e.0.message.clone()),
                    ],
                )
                .await;
            record.phase = Phase::Failed;
            record.message = format!(
                "stopped: {}; start another rotation to continue",
                e.0.message
            );
            record.finished = Some(now());
            if let Err(e) = save(&state, &encryption, &record).await {
                tracing::error!(error = %e.0.message, "key rotation: its record could not be saved");
            }
        }
    });
}

/// Rewrites while holding `running` (one rewrite at a time), then lets go of it to wait for
/// retirement, which does not block the next rotation.
async fn run(
    state: &Backing,
    encryption: &Encryption,
    record: &mut RotationRecord,
    running: Option<tokio::sync::OwnedMutexGuard<()>>,
) -> Result<(), ApiError> {
    if record.phase == Phase::Running {
        rewrite(state, encryption, record).await?;
        let (current, _) = state.objects.revisions().await.map_err(internal)?;
        record.completed_revision = Some(current.0);
        record.phase = Phase::Retiring;
        state
            .record(
                "rotate",
                &record.target_key_id,
                &[
                    ("encryption.bulwark.dev/rotation", record.name.clone()),
                    (
                        "encryption.bulwark.dev/rewritten",
                        record.rewritten.to_string(),
                    ),
                ],
            )
            .await;
        record.message = "every value is under the new key; old keys retire once the history before the rotation is compacted".into();
        save(state, encryption, record).await?;
    }
    drop(running);
    retire(state, encryption, record).await
}

/// Rewrites every value of the rotated provider's resources that is not under the target
/// key, until a pass finds none.
async fn rewrite(
    state: &Backing,
    encryption: &Encryption,
    record: &mut RotationRecord,
) -> Result<(), ApiError> {
    loop {
        if record.passes >= MAX_PASSES {
            return Err(fail(format!(
                "values kept changing under the old key for {MAX_PASSES} passes"
            )));
        }
        record.passes += 1;
        let mut touched = 0u64;
        let provider = record.provider.clone();
        for target in scan::targets(state, encryption)
            .iter()
            .filter(|t| t.writer.name() == provider)
        {
            touched += rewrite_target(state, encryption, target, record).await?;
        }
        save(state, encryption, record).await?;
        if touched == 0 {
            return Ok(());
        }
    }
}

/// One pass over one collection: values rewritten or found changed.
async fn rewrite_target(
    state: &Backing,
    encryption: &Encryption,
    target: &Target,
    record: &mut RotationRecord,
) -> Result<u64, ApiError> {
    let mut touched = 0;
    let mut token = None;
    loop {
        let page = match scan::page(state, target, token.take()).await {
            Ok(page) => page,
            // The pass outlived the history window: the next pass starts afresh.
            Err(e) if e.code() == 410 => return Ok(touched.max(1)),
            Err(e) => return Err(e),
        };
        let stale: Vec<_> = scan::stale(
            &page.items,
            target.writer.as_ref(),
            Some(&record.target_key_id),
        )
        .cloned()
        .collect();
        for kv in stale {
            touched += 1;
            let key = kv.key.clone();
            let revision = kv.mod_revision;
            let plain = state
                .objects
                .plain_form(kv)
                .await
                .map_err(|e| fail(format!("{key} cannot be read: {e}")))?;
            match state
                .objects
                .update(&key, plain.value.to_vec(), Some(revision))
                .await
            {
                Ok(_) => record.rewritten += 1,
                // Written or deleted meanwhile: the next pass looks again.
                Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => {}
                Err(e) => return Err(internal(e)),
            }
        }
        save(state, encryption, record).await?;
        match page.continue_token {
            Some(t) => token = Some(t),
            None => return Ok(touched),
        }
    }
}

/// Waits until the history from before the rotation is compacted, then retires every old
/// local key no value uses.
async fn retire(
    state: &Backing,
    encryption: &Encryption,
    record: &mut RotationRecord,
) -> Result<(), ApiError> {
    let keyring = match encryption.keyring() {
        Some((name, keyring)) if *name == record.provider => Arc::clone(keyring),
        // A KMS plugin's keys are the KMS's to retire.
        _ => {
            return finish(
                state,
                encryption,
                record,
                "every value is under the new key",
            )
            .await;
        }
    };
    let completed = record.completed_revision.unwrap_or(0);
    loop {
        // A newer rotation took over these keys: it retires them.
        if superseded(state, encryption, record).await? {
            return Ok(());
        }
        let (_, compacted) = state.objects.revisions().await.map_err(internal)?;
        if compacted.0 >= completed {
            break;
        }
        tokio::time::sleep(RETIRE_CHECK).await;
    }
    let in_use = keys_in_use(state, encryption, &record.provider).await?;
    let live: Vec<String> = keyring
        .keys()
        .into_iter()
        .filter(|k| k.retired.is_none())
        .map(|k| k.id)
        .collect();
    for id in &record.previous_key_ids {
        if id == &record.target_key_id || !live.contains(id) || in_use.contains(id) {
            continue;
        }
        let ring = Arc::clone(&keyring);
        let key = id.clone();
        tokio::task::spawn_blocking(move || ring.retire(&key))
            .await
            .map_err(ApiError::internal)?
            .map_err(|e| fail(format!("retiring key {id}: {e}")))?;
        tracing::info!(key_id = %id, "encryption key retired: its file is destroyed");
        state
            .record(
                "retire",
                id,
                &[("encryption.bulwark.dev/rotation", record.name.clone())],
            )
            .await;
        record.retired_key_ids.push(id.clone());
    }
    let kept: Vec<&String> = record
        .previous_key_ids
        .iter()
        .filter(|id| in_use.contains(*id))
        .collect();
    let message = if kept.is_empty() {
        "every value is under the new key; old keys retired".to_owned()
    } else {
        format!(
            "old keys still in use (written meanwhile by an older server?): {kept:?}; rotate again"
        )
    };
    finish(state, encryption, record, &message).await
}

async fn superseded(
    state: &Backing,
    encryption: &Encryption,
    record: &RotationRecord,
) -> Result<bool, ApiError> {
    Ok(latest(state, encryption)
        .await?
        .is_some_and(|latest| latest.name != record.name))
}

async fn finish(
    state: &Backing,
    encryption: &Encryption,
    record: &mut RotationRecord,
    message: &str,
) -> Result<(), ApiError> {
    record.phase = Phase::Complete;
    record.message = message.to_owned();
    record.finished = Some(now());
    save(state, encryption, record).await?;
    tracing::info!(rotation = %record.name, rewritten = record.rewritten, "key rotation complete");
    Ok(())
}

/// The key ids of `provider` that stored values use now.
pub(crate) async fn keys_in_use(
    state: &Backing,
    encryption: &Encryption,
    provider: &str,
) -> Result<std::collections::BTreeSet<String>, ApiError> {
    let mut ids = std::collections::BTreeSet::new();
    for target in scan::targets(state, encryption) {
        let mut token = None;
        loop {
            let page = scan::page(state, &target, token.take()).await?;
            for kv in &page.items {
                if let scan::Form::Envelope {
                    provider: p,
                    key_id,
                } = scan::form_of(&kv.value)
                    && p == provider
                {
                    ids.insert(key_id);
                }
            }
            match page.continue_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
    }
    Ok(ids)
}
