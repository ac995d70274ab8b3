//! Envelope encryption in upstream's KMS v2 storage format: `k8s:enc:kms:v2:<provider>:`
//! followed by an `EncryptedObject` message (encrypted data, key id, wrapped DEK seed,
//! annotations, seed type). Each write derives its own AES-256-GCM key from the current seed
//! ([`SecretKey::seal_derived`]) with the store key as associated data.
//!
//! The write seed is generated here and wrapped by the [`KeyService`] once, then reused for
//! at most [`SeedLimits::max_writes`] writes and [`SeedLimits::max_age`], and replaced as
//! soon as the service reports another key id: the hot path makes no KMS call. Unwrapped
//! seeds are cached by their wrapped form (at most [`SeedLimits::cache_size`]), so reads of
//! recent values make none either. When the service is down, reads under cached seeds keep
//! working and writes that need a new seed fail: nothing is ever written in plaintext.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use prost::Message;

use crate::aead::SecretKey;
use crate::kms::{KeyService, KmsError, KmsStatus, Wrapped, validate_wrapped};
use crate::transformer::TransformError;

/// The prefix of every value this format stores, before the provider name.
pub const KMS_V2_PREFIX: &str = "k8s:enc:kms:v2:";

/// How a stored value's DEK source is used (upstream's `EncryptedDEKSourceType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum DekSourceType {
    /// The source is an AES-256-GCM key used directly (upstream before 1.29).
    AesGcmKey = 0,
    /// The source is a seed; each value's key is HKDF-SHA256(seed, info).
    HkdfSha256XnonceAesGcmSeed = 1,
}

/// A stored value (upstream's `EncryptedObject`, same field numbers).
#[derive(Clone, PartialEq, prost::Message)]
pub struct EncryptedObject {
    /// The value, encrypted.
    #[prost(bytes = "vec", tag = "1")]
    pub encrypted_data: Vec<u8>,
    /// The KEK that wrapped the DEK source.
    #[prost(string, tag = "2")]
    pub key_id: String,
    /// The DEK source, wrapped.
    #[prost(bytes = "vec", tag = "3")]
    pub encrypted_dek_source: Vec<u8>,
    /// Plugin metadata.
    #[prost(map = "string, bytes", tag = "4")]
    pub annotations: HashMap<String, Vec<u8>>,
    /// How the DEK source is used.
    #[prost(enumeration = "DekSourceType", tag = "5")]
    pub encrypted_dek_source_type: i32,
}

/// The provider name and key id a stored value names, read without decrypting it (for
/// status counts and verification). `None` when it is not in this format.
pub fn stored_key(stored: &[u8]) -> Option<(String, String)> {
    let rest = stored.strip_prefix(KMS_V2_PREFIX.as_bytes())?;
    let colon = rest.iter().position(|b| *b == b':')?;
    let (name, body) = rest.split_at(colon);
    let object = EncryptedObject::decode(body.get(1..)?).ok()?;
    Some((String::from_utf8(name.to_vec()).ok()?, object.key_id))
}

/// Bounds on one write seed and on the cache of unwrapped seeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedLimits {
    /// Writes under one seed before a new one is made.
    pub max_writes: u64,
    /// Age of a seed after which a new one is made.
    pub max_age: Duration,
    /// Unwrapped seeds kept for reads.
    pub cache_size: usize,
}

impl Default for SeedLimits {
    fn default() -> Self {
        Self {
            max_writes: 1 << 20,
            max_age: Duration::from_secs(3600),
            cache_size: 1000,
        }
    }
}

/// Counters of what the provider did (for status, metrics and the benchmark).
#[derive(Debug, Default)]
pub struct EnvelopeStats {
    /// Values sealed.
    pub writes: AtomicU64,
    /// Values opened.
    pub reads: AtomicU64,
    /// `Encrypt` calls to the key service (one per new seed).
    pub kms_encrypts: AtomicU64,
    /// `Decrypt` calls to the key service (one per seed not in the cache).
    pub kms_decrypts: AtomicU64,
}

#[derive(Debug)]
struct WriteSeed {
    seed: SecretKey,
    wrapped: Wrapped,
    created: Instant,
    uses: AtomicU64,
}

/// The cache identity of a wrapped seed: its key id, ciphertext and annotations, so a value
/// whose stored key id or annotations were altered goes back to the key service (which
/// refuses it) instead of being read under a cached seed.
fn cache_key(wrapped: &Wrapped) -> Vec<u8> {
    let mut out = Vec::with_capacity(wrapped.ciphertext.len() + wrapped.key_id.len() + 16);
    let mut put = |bytes: &[u8]| {
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(bytes);
    };
    put(wrapped.key_id.as_bytes());
    put(&wrapped.ciphertext);
    for (name, value) in &wrapped.annotations {
        put(name.as_bytes());
        put(value);
    }
    out
}

/// Unwrapped seeds by [`cache_key`], oldest evicted first.
#[derive(Debug, Default)]
struct SeedCache {
    seeds: HashMap<Vec<u8>, SecretKey>,
    order: VecDeque<Vec<u8>>,
}

impl SeedCache {
    fn get(&self, wrapped: &[u8]) -> Option<SecretKey> {
        self.seeds.get(wrapped).cloned()
    }

    fn insert(&mut self, wrapped: Vec<u8>, seed: SecretKey, capacity: usize) {
        if self.seeds.contains_key(&wrapped) {
            return;
        }
        while self.seeds.len() >= capacity.max(1) {
            match self.order.pop_front() {
                Some(old) => {
                    self.seeds.remove(&old);
                }
                None => break,
            }
        }
        self.order.push_back(wrapped.clone());
        self.seeds.insert(wrapped, seed);
    }
}

/// Envelope encryption under one key service, named `name` in the stored prefix.
#[derive(Debug)]
pub struct EnvelopeProvider {
    name: String,
    prefix: Vec<u8>,
    service: Arc<dyn KeyService>,
    limits: SeedLimits,
    write: Mutex<Option<Arc<WriteSeed>>>,
    renewing: tokio::sync::Mutex<()>,
    current_key: RwLock<Option<String>>,
    cache: Mutex<SeedCache>,
    stats: EnvelopeStats,
}

fn unwritable(key: &str, reason: impl std::fmt::Display) -> TransformError {
    TransformError::Unwritable {
        key: key.to_owned(),
        reason: reason.to_string(),
    }
}

fn unreadable(key: &str, reason: impl std::fmt::Display) -> TransformError {
    TransformError::Unreadable {
        key: key.to_owned(),
        reason: reason.to_string(),
    }
}

impl EnvelopeProvider {
    /// A provider named `name` (a config's provider name; it is part of every stored
    /// value, so it must not change) over `service`.
    pub fn new(name: &str, service: Arc<dyn KeyService>, limits: SeedLimits) -> Self {
        Self {
            name: name.to_owned(),
            prefix: format!("{KMS_V2_PREFIX}{name}:").into_bytes(),
            service,
            limits,
            write: Mutex::new(None),
            renewing: tokio::sync::Mutex::new(()),
            current_key: RwLock::new(None),
            cache: Mutex::new(SeedCache::default()),
            stats: EnvelopeStats::default(),
        }
    }

    /// The provider's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The prefix of the values it writes.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// What it has done.
    pub fn stats(&self) -> &EnvelopeStats {
        &self.stats
    }

    /// The key service behind it.
    pub fn service(&self) -> &Arc<dyn KeyService> {
        &self.service
    }

    /// Asks the service for its status and, when it names another key id, makes the next
    /// write use a new seed wrapped under it (the poll upstream makes every minute; also
    /// called right after a rotation).
    pub async fn refresh(&self) -> Result<KmsStatus, KmsError> {
        let status = self.service.status().await?;
        if status.version != "v2" && status.version != "v2beta1" {
            return Err(KmsError::BadAnswer(format!(
                "plugin API version {:?} is not v2",
                status.version
            )));
        }
        if status.key_id.is_empty() {
            return Err(KmsError::BadAnswer("status names no key id".into()));
        }
        *self
            .current_key
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(status.key_id.clone());
        if status.healthz != "ok" {
            return Err(KmsError::Unavailable(format!(
                "plugin reports {:?}",
                status.healthz
            )));
        }
        Ok(status)
    }

    /// Drops the write seed: the next write makes a new one (a rotation's fresh DEK).
    pub fn renew_seed(&self) {
        *self.write.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// The key id the current write seed is wrapped with, if there is one.
    pub fn write_key_id(&self) -> Option<String> {
        self.write
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|w| w.wrapped.key_id.clone())
    }

    fn usable_seed(&self) -> Option<Arc<WriteSeed>> {
        let guard = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        let seed = guard.as_ref()?;
        if seed.created.elapsed() >= self.limits.max_age {
            return None;
        }
        let current = self
            .current_key
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        if current.as_deref().is_some_and(|k| k != seed.wrapped.key_id) {
            return None;
        }
        if seed.uses.fetch_add(1, Ordering::Relaxed) >= self.limits.max_writes {
            return None;
        }
        Some(Arc::clone(seed))
    }

    async fn write_seed(&self) -> Result<Arc<WriteSeed>, KmsError> {
        if let Some(seed) = self.usable_seed() {
            return Ok(seed);
        }
        let _one_renewal = self.renewing.lock().await;
        if let Some(seed) = self.usable_seed() {
            return Ok(seed);
        }
        let seed = SecretKey::generate().map_err(|e| KmsError::Unavailable(e.to_string()))?;
        let uid = uuid::Uuid::new_v4().to_string();
        self.stats.kms_encrypts.fetch_add(1, Ordering::Relaxed);
        let wrapped = self.service.encrypt(&uid, seed.expose()).await?;
        validate_wrapped(&wrapped)?;
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(cache_key(&wrapped), seed.clone(), self.limits.cache_size);
        // The key the service just used is the freshest word on its current key (a status
        // poll that raced a rotation may have named the one before).
        *self
            .current_key
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(wrapped.key_id.clone());
        let fresh = Arc::new(WriteSeed {
            seed,
            wrapped,
            created: Instant::now(),
            uses: AtomicU64::new(1),
        });
        *self.write.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&fresh));
        tracing::info!(provider = %self.name, key_id = %fresh.wrapped.key_id, "new data encryption key seed");
        Ok(fresh)
    }

    /// The stored form of `plain` under store key `key`.
    pub async fn seal(&self, key: &str, plain: &[u8]) -> Result<Vec<u8>, TransformError> {
        let seed = self.write_seed().await.map_err(|e| unwritable(key, e))?;
        let data = seed
            .seed
            .seal_derived(key.as_bytes(), plain)
            .map_err(|e| unwritable(key, e))?;
        let object = EncryptedObject {
            encrypted_data: data,
            key_id: seed.wrapped.key_id.clone(),
            encrypted_dek_source: seed.wrapped.ciphertext.clone(),
            annotations: seed
                .wrapped
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            encrypted_dek_source_type: DekSourceType::HkdfSha256XnonceAesGcmSeed as i32,
        };
        let mut out = Vec::with_capacity(self.prefix.len() + object.encoded_len());
        out.extend_from_slice(&self.prefix);
        object.encode(&mut out).map_err(|e| unwritable(key, e))?;
        self.stats.writes.fetch_add(1, Ordering::Relaxed);
        Ok(out)
    }

    /// The plaintext of a value this provider stored under `key` (`stored` with its
    /// prefix).
    pub async fn open(&self, key: &str, stored: &[u8]) -> Result<Vec<u8>, TransformError> {
        let body = stored
            .strip_prefix(self.prefix.as_slice())
            .ok_or_else(|| unreadable(key, format!("not written by provider {}", self.name)))?;
        let object = EncryptedObject::decode(body)
            .map_err(|_| unreadable(key, "not a KMS v2 EncryptedObject"))?;
        let wrapped = Wrapped {
            ciphertext: object.encrypted_dek_source,
            key_id: object.key_id,
            annotations: object.annotations.into_iter().collect(),
        };
        validate_wrapped(&wrapped).map_err(|e| unreadable(key, e))?;
        if object.encrypted_data.is_empty() {
            return Err(unreadable(key, "the encrypted data is empty"));
        }
        let kind = DekSourceType::try_from(object.encrypted_dek_source_type)
            .map_err(|_| unreadable(key, "unknown DEK source type"))?;
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&cache_key(&wrapped));
        let seed = match cached {
            Some(seed) => seed,
            None => {
                let uid = uuid::Uuid::new_v4().to_string();
                self.stats.kms_decrypts.fetch_add(1, Ordering::Relaxed);
                let bytes =
                    zeroize::Zeroizing::new(self.service.decrypt(&uid, &wrapped).await.map_err(
                        |e| unreadable(key, format!("DEK of key {:?}: {e}", wrapped.key_id)),
                    )?);
                let seed = SecretKey::from_slice(&bytes).map_err(|_| {
                    unreadable(key, "the key service returned a DEK of the wrong size")
                })?;
                self.cache
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(cache_key(&wrapped), seed.clone(), self.limits.cache_size);
                seed
            }
        };
        let plain = match kind {
            DekSourceType::HkdfSha256XnonceAesGcmSeed => {
                seed.open_derived(key.as_bytes(), &object.encrypted_data)
            }
            DekSourceType::AesGcmKey => seed.open(key.as_bytes(), &object.encrypted_data),
        }
        .map_err(|e| unreadable(key, e))?;
        self.stats.reads.fetch_add(1, Ordering::Relaxed);
        Ok(plain)
    }
}

#[cfg(test)]
mod tests;
