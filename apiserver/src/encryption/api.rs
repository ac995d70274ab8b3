//! `encryption.bulwark.dev/v1`: encryption at rest through the API, authorized by Cedar and
//! audited like every request.
//!
//! - `EncryptionStatus` `cluster` (get, list): providers and their health, keys with age,
//!   primary flag and objects per key, per resource the values encrypted and in plaintext,
//!   and the latest rotation.
//! - `EncryptionKey` (get, list, delete): the keys; deleting a local key retires it, refused
//!   while it is the primary key, a value uses it, or a rotation is still under way.
//! - `KeyRotation` (create, get, list): create starts a rotation (409 while one runs); get
//!   follows its progress.
//! - `EncryptionVerification` (create): reads every stored value of the encrypted resources
//!   and answers whether each is ciphertext that decrypts under a live key.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::response::Response;
use bulwark_api::StatusReason;
use futures::future::BoxFuture;
use http::StatusCode;
use serde_json::{Value, json};

use super::rotation::{self, Phase};
use super::scan;
use super::{Backing, Encryption, now};
use crate::codec::request::RequestBody;
use crate::http::error::ApiError;
use crate::http::request_info::Verb;
use crate::http::respond;
use crate::rest::handler::{RestHandler, answer, ok};

fn list_of(kind: &str, items: Vec<Value>) -> Value {
    crate::rest::handler::list_of(API_VERSION, kind, items)
}
use crate::rest::resource::Ctx;

/// The API group.
pub(crate) const GROUP: &str = "encryption.bulwark.dev";
const API_VERSION: &str = "encryption.bulwark.dev/v1";
/// The one `EncryptionStatus` object's name.
const STATUS_NAME: &str = "cluster";

fn encryption(ctx: &Ctx<'_>) -> Result<Arc<Encryption>, ApiError> {
    ctx.state.encryption.clone().ok_or_else(|| {
        ApiError::new(
            StatusReason::NotFound,
            "this server has no encryption at rest configured",
        )
    })
}

fn not_found(resource: &str, name: &str) -> ApiError {
    bulwark_api::Status::not_found(GROUP, resource, name).into()
}

/// Each encrypted collection's counts.
pub(crate) async fn counts(
    backing: &Backing,
    enc: &Encryption,
) -> Result<Vec<(scan::Target, scan::Counts)>, ApiError> {
    let mut out = Vec::new();
    for target in scan::targets(backing, enc) {
        let counts = scan::count(backing, &target).await?;
        out.push((target, counts));
    }
    Ok(out)
}

/// Every key, with the values that use it.
pub(crate) fn keys(enc: &Encryption, counts: &[(scan::Target, scan::Counts)]) -> Vec<Value> {
    let mut by_label: BTreeMap<String, u64> = BTreeMap::new();
    for (_, c) in counts {
        for (label, n) in &c.by_form {
            *by_label.entry(label.clone()).or_default() += n;
        }
    }
    let health = enc.health();
    let mut items = Vec::new();
    let mut listed = std::collections::BTreeSet::new();
    if let Some((provider, keyring)) = enc.keyring() {
        let primary = keyring.primary();
        for key in keyring.keys() {
            let label = format!("{provider}/{}", key.id);
            listed.insert(label.clone());
            items.push(json!({
                "apiVersion": API_VERSION,
                "kind": "EncryptionKey",
                "metadata": {"name": key.id, "creationTimestamp": key.created},
                "status": {
                    "provider": provider,
                    "type": "local",
                    "keyID": key.id,
                    "primary": key.id == primary,
                    "created": key.created,
                    "retired": key.retired,
                    "objects": by_label.get(&label).copied().unwrap_or(0),
                },
            }));
        }
    }
    // Keys of KMS plugins: the current one and every one a value names.
    for envelope in enc.envelopes() {
        let current = health.get(envelope.name()).and_then(|h| h.key_id.clone());
        let prefix = format!("{}/", envelope.name());
        let mut ids: Vec<String> = by_label
            .keys()
            .filter_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
            .collect();
        if let Some(c) = &current
            && !ids.contains(c)
        {
            ids.push(c.clone());
        }
        for id in ids {
            let label = format!("{prefix}{id}");
            if !listed.insert(label.clone()) {
                continue;
            }
            items.push(json!({
                "apiVersion": API_VERSION,
                "kind": "EncryptionKey",
                "metadata": {"name": id},
                "status": {
                    "provider": envelope.name(),
                    "type": "kms",
                    "keyID": id,
                    "primary": current.as_deref() == Some(id.as_str()),
                    "objects": by_label.get(&label).copied().unwrap_or(0),
                },
            }));
        }
    }
    items
}

async fn status_object(ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    let enc = encryption(ctx)?;
    let backing = Backing::of(ctx.state);
    let counts = counts(&backing, &enc).await?;
    let health = enc.health();
    let providers: Vec<Value> = enc
        .transformers()
        .readers()
        .iter()
        .map(|p| {
            let h = health.get(p.name());
            let mut v = json!({
                "name": p.name(),
                "type": match (p.envelope(), enc.keyring()) {
                    (Some(_), Some((local, _))) if local == p.name() => "local",
                    (Some(_), _) => "kms",
                    _ => "static",
                },
                "healthy": h.is_none_or(|h| h.healthy),
                "keyID": h.and_then(|h| h.key_id.clone()),
                "message": h.map(|h| h.message.clone()).unwrap_or_default(),
            });
            if let (Some(envelope), Some(map)) = (p.envelope(), v.as_object_mut()) {
                let stats = envelope.stats();
                let load =
                    |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
                map.insert("writeKeyID".into(), json!(envelope.write_key_id()));
                map.insert(
                    "stats".into(),
                    json!({
                        "writes": load(&stats.writes),
                        "reads": load(&stats.reads),
                        "kmsEncryptCalls": load(&stats.kms_encrypts),
                        "kmsDecryptCalls": load(&stats.kms_decrypts),
                    }),
                );
            }
            v
        })
        .collect();
    let resources: Vec<Value> = counts
        .iter()
        .map(|(t, c)| {
            json!({
                "group": t.group, "resource": t.resource, "writer": t.writer.name(),
                "encrypted": c.encrypted, "plaintext": c.plaintext, "byKey": c.by_form,
            })
        })
        .collect();
    let (encrypted, plaintext) = counts
        .iter()
        .fold((0, 0), |(e, p), (_, c)| (e + c.encrypted, p + c.plaintext));
    let rotation = rotation::latest(&backing, &enc)
        .await?
        .and_then(|r| r.to_object().get("status").cloned());
    Ok(json!({
        "apiVersion": API_VERSION,
        "kind": "EncryptionStatus",
        "metadata": {"name": STATUS_NAME},
        "status": {
            "configuration": enc.source(),
            "providers": providers,
            "keys": keys(&enc, &counts).into_iter().filter_map(|k| k.get("status").cloned()).collect::<Vec<_>>(),
            "resources": resources,
            "encrypted": encrypted,
            "plaintext": plaintext,
            "rotation": rotation,
        },
    }))
}

/// `encryptionstatuses`.
#[derive(Debug)]
pub struct StatusApi;

impl RestHandler for StatusApi {
    fn verbs(&self) -> &'static [&'static str] {
        &["get", "list"]
    }

    fn handle<'a>(
        &'a self,
        ctx: &'a Ctx<'a>,
        _body: &'a RequestBody,
    ) -> BoxFuture<'a, Result<Response, ApiError>> {
        Box::pin(async move {
            match (ctx.req.verb, ctx.req.name.as_deref()) {
                (Verb::Get, Some(STATUS_NAME)) => Ok(answer(ctx, &status_object(ctx).await?)),
                (Verb::Get, name) => Err(not_found("encryptionstatuses", name.unwrap_or_default())),
                _ => Ok(answer(
                    ctx,
                    &list_of("EncryptionStatus", vec![status_object(ctx).await?]),
                )),
            }
        })
    }
}

/// `encryptionkeys`.
#[derive(Debug)]
pub struct KeysApi;

impl RestHandler for KeysApi {
    fn verbs(&self) -> &'static [&'static str] {
        &["get", "list", "delete"]
    }

    fn handle<'a>(
        &'a self,
        ctx: &'a Ctx<'a>,
        _body: &'a RequestBody,
    ) -> BoxFuture<'a, Result<Response, ApiError>> {
        Box::pin(async move {
            let enc = encryption(ctx)?;
            let backing = Backing::of(ctx.state);
            let counts = counts(&backing, &enc).await?;
            let items = keys(&enc, &counts);
            let name = ctx.req.name.as_deref();
            let find = |name: &str| {
                items
                    .iter()
                    .find(|k| k.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
                    .cloned()
                    .ok_or_else(|| not_found("encryptionkeys", name))
            };
            match (ctx.req.verb, name) {
                (Verb::Get, Some(name)) => Ok(answer(ctx, &find(name)?)),
                (Verb::Delete, Some(name)) => {
                    let key = find(name)?;
                    retire(&backing, &enc, name, &key).await?;
                    let details = bulwark_api::status::StatusDetails {
                        name: name.to_owned(),
                        group: GROUP.into(),
                        kind: "encryptionkeys".into(),
                        ..Default::default()
                    };
                    Ok(ok(&serde_json::to_value(bulwark_api::Status::success(
                        Some(details),
                    ))
                    .unwrap_or_default()))
                }
                _ => Ok(answer(ctx, &list_of("EncryptionKey", items))),
            }
        })
    }
}

/// Retires a local key, unless something still needs it.
async fn retire(
    backing: &Backing,
    enc: &Encryption,
    name: &str,
    key: &Value,
) -> Result<(), ApiError> {
    let conflict = |why: String| {
        ApiError::new(
            StatusReason::Conflict,
            format!("key {name} cannot be retired: {why}"),
        )
    };
    let field = |name: &str| {
        key.pointer(&format!("/status/{name}"))
            .cloned()
            .unwrap_or_default()
    };
    if field("retired").is_string() {
        return Err(conflict("it is already retired".into()));
    }
    let Some((provider, keyring)) = enc
        .keyring()
        .filter(|(p, _)| field("provider").as_str() == Some(p.as_str()))
    else {
        return Err(conflict(
            "it is held by a KMS plugin; retire it in the KMS".into(),
        ));
    };
    if field("primary") == Value::Bool(true) {
        return Err(conflict("it is the primary key; rotate first".into()));
    }
    let objects = field("objects").as_u64().unwrap_or(0);
    if objects > 0 {
        return Err(conflict(format!(
            "{objects} stored values still use it; run `bulwark secrets rotate` first"
        )));
    }
    if let Some(r) = rotation::latest(backing, enc).await?
        && matches!(r.phase, Phase::Running | Phase::Retiring)
        && r.provider == *provider
    {
        return Err(conflict(format!(
            "rotation {} is still {:?}",
            r.name, r.phase
        )));
    }
    let keyring = Arc::clone(keyring);
    let id = name.to_owned();
    tokio::task::spawn_blocking(move || keyring.retire(&id))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| conflict(e.to_string()))?;
    tracing::info!(key_id = %name, "encryption key retired: its file is destroyed");
    Ok(())
}

/// `keyrotations`.
#[derive(Debug)]
pub struct RotationsApi;

impl RestHandler for RotationsApi {
    fn verbs(&self) -> &'static [&'static str] {
        &["create", "get", "list"]
    }

    fn handle<'a>(
        &'a self,
        ctx: &'a Ctx<'a>,
        _body: &'a RequestBody,
    ) -> BoxFuture<'a, Result<Response, ApiError>> {
        Box::pin(async move {
            let enc = encryption(ctx)?;
            let backing = Backing::of(ctx.state);
            match ctx.req.verb {
                Verb::Create => {
                    let record = rotation::start(backing, enc).await?;
                    Ok(respond::json(StatusCode::CREATED, &record.to_object(), &[]))
                }
                Verb::Get => {
                    let name = ctx.req.name.as_deref().unwrap_or_default();
                    match rotation::latest(&backing, &enc).await? {
                        Some(r) if r.name == name || name == "latest" => {
                            Ok(answer(ctx, &r.to_object()))
                        }
                        _ => Err(not_found("keyrotations", name)),
                    }
                }
                _ => {
                    let items = rotation::latest(&backing, &enc)
                        .await?
                        .map(|r| r.to_object())
                        .into_iter()
                        .collect();
                    Ok(answer(ctx, &list_of("KeyRotation", items)))
                }
            }
        })
    }
}

/// `encryptionverifications`.
#[derive(Debug)]
pub struct VerificationsApi;

impl RestHandler for VerificationsApi {
    fn verbs(&self) -> &'static [&'static str] {
        &["create"]
    }

    fn handle<'a>(
        &'a self,
        ctx: &'a Ctx<'a>,
        _body: &'a RequestBody,
    ) -> BoxFuture<'a, Result<Response, ApiError>> {
        Box::pin(async move {
            let enc = encryption(ctx)?;
            let backing = Backing::of(ctx.state);
            let mut resources = Vec::new();
            let (mut checked, mut ok_count, mut plaintext, mut failed) = (0, 0, 0, 0);
            for target in scan::targets(&backing, &enc) {
                if target.writer.prefix().is_empty() {
                    continue;
                }
                let v = scan::verify(&backing, &target).await?;
                checked += v.checked;
                ok_count += v.ok;
                plaintext += v.plaintext_count;
                failed += v.failed_count;
                resources.push(json!({
                    "group": target.group, "resource": target.resource,
                    "checked": v.checked, "encrypted": v.ok,
                    "plaintext": v.plaintext_count, "failed": v.failed_count,
                    "plaintextKeys": v.plaintext,
                    "failures": v.failed.iter().map(|(k, why)| json!({"key": k, "reason": why})).collect::<Vec<_>>(),
                }));
            }
            let passed = plaintext == 0 && failed == 0;
            let body = json!({
                "apiVersion": API_VERSION,
                "kind": "EncryptionVerification",
                "metadata": {"name": "verification", "creationTimestamp": now()},
                "status": {
                    "passed": passed, "checked": checked, "encrypted": ok_count,
                    "plaintext": plaintext, "failed": failed, "resources": resources,
                },
            });
            Ok(respond::json(StatusCode::CREATED, &body, &[]))
        })
    }
}
