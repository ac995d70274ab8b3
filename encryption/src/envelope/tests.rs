use std::sync::atomic::AtomicBool;

use futures::future::BoxFuture;

use super::*;
use crate::local::LocalKeyring;

/// A key service that can be switched off, counting its calls.
#[derive(Debug)]
struct Switchable {
    inner: LocalKeyring,
    down: AtomicBool,
}

impl KeyService for Switchable {
    fn status(&self) -> BoxFuture<'_, Result<KmsStatus, KmsError>> {
        if self.down.load(Ordering::SeqCst) {
            return Box::pin(async { Err(KmsError::Unavailable("down".into())) });
        }
        self.inner.status()
    }
    fn encrypt<'a>(
        &'a self,
        uid: &'a str,
        p: &'a [u8],
    ) -> BoxFuture<'a, Result<Wrapped, KmsError>> {
        if self.down.load(Ordering::SeqCst) {
            return Box::pin(async { Err(KmsError::Unavailable("down".into())) });
        }
        self.inner.encrypt(uid, p)
    }
    fn decrypt<'a>(
        &'a self,
        uid: &'a str,
        w: &'a Wrapped,
    ) -> BoxFuture<'a, Result<Vec<u8>, KmsError>> {
        if self.down.load(Ordering::SeqCst) {
            return Box::pin(async { Err(KmsError::Unavailable("down".into())) });
        }
        self.inner.decrypt(uid, w)
    }
}

fn service(dir: &std::path::Path) -> Arc<Switchable> {
    Arc::new(Switchable {
        inner: LocalKeyring::open_or_create(dir).unwrap(),
        down: AtomicBool::new(false),
    })
}

const KEY: &str = "/registry/core/secrets/default/db";

#[tokio::test]
async fn values_round_trip_in_upstreams_format_and_name_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    let p = EnvelopeProvider::new("bulwark-local", svc.clone(), SeedLimits::default());
    let stored = p.seal(KEY, b"{\"data\":\"marker-123\"}").await.unwrap();
    assert!(stored.starts_with(b"k8s:enc:kms:v2:bulwark-local:"));
    assert!(!stored.windows(10).any(|w| w == b"marker-123"));
    assert_eq!(
        p.open(KEY, &stored).await.unwrap(),
        b"{\"data\":\"marker-123\"}"
    );
    let (name, key_id) = stored_key(&stored).unwrap();
    assert_eq!(name, "bulwark-local");
    assert_eq!(key_id, svc.inner.primary());
    assert_eq!(stored_key(b"{\"plain\":1}"), None);
}

#[tokio::test]
async fn the_hot_path_makes_no_kms_call() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    let p = EnvelopeProvider::new("local", svc.clone(), SeedLimits::default());
    let mut stored = Vec::new();
    for i in 0..1000 {
        stored.push(p.seal(&format!("{KEY}{i}"), b"v").await.unwrap());
    }
    for (i, s) in stored.iter().enumerate() {
        assert_eq!(p.open(&format!("{KEY}{i}"), s).await.unwrap(), b"v");
    }
    assert_eq!(p.stats().kms_encrypts.load(Ordering::Relaxed), 1);
    assert_eq!(p.stats().kms_decrypts.load(Ordering::Relaxed), 0);

    // After a restart: one unwrap per seed, then cached.
    let restarted = EnvelopeProvider::new("local", svc, SeedLimits::default());
    for (i, s) in stored.iter().enumerate() {
        assert_eq!(restarted.open(&format!("{KEY}{i}"), s).await.unwrap(), b"v");
    }
    assert_eq!(restarted.stats().kms_decrypts.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_seed_is_replaced_after_its_bounded_writes_and_age() {
    let dir = tempfile::tempdir().unwrap();
    let limits = SeedLimits {
        max_writes: 10,
        ..SeedLimits::default()
    };
    let p = EnvelopeProvider::new("local", service(dir.path()), limits);
    let mut sources = std::collections::HashSet::new();
    for _ in 0..25 {
        let stored = p.seal(KEY, b"v").await.unwrap();
        let object = EncryptedObject::decode(&stored[p.prefix().len()..]).unwrap();
        sources.insert(object.encrypted_dek_source);
    }
    assert_eq!(sources.len(), 3);
    assert_eq!(p.stats().kms_encrypts.load(Ordering::Relaxed), 3);

    let aged = EnvelopeProvider::new(
        "local",
        service(dir.path()),
        SeedLimits {
            max_age: Duration::ZERO,
            ..SeedLimits::default()
        },
    );
    aged.seal(KEY, b"v").await.unwrap();
    aged.seal(KEY, b"v").await.unwrap();
    assert_eq!(aged.stats().kms_encrypts.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn a_kms_that_is_down_keeps_cached_reads_and_fails_new_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    let p = EnvelopeProvider::new("local", svc.clone(), SeedLimits::default());
    let stored = p.seal(KEY, b"v").await.unwrap();
    svc.down.store(true, Ordering::SeqCst);
    // Cached seed: reads and writes go on.
    assert_eq!(p.open(KEY, &stored).await.unwrap(), b"v");
    p.seal(KEY, b"w").await.unwrap();
    assert!(p.refresh().await.is_err());
    // A server that has no seed yet cannot write, and says so.
    let cold = EnvelopeProvider::new("local", svc.clone(), SeedLimits::default());
    let err = cold.seal(KEY, b"v").await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert!(err.to_string().contains("unavailable"), "{err}");
    assert!(cold.open(KEY, &stored).await.is_err());
    // Back up: both recover.
    svc.down.store(false, Ordering::SeqCst);
    cold.seal(KEY, b"v").await.unwrap();
    assert_eq!(cold.open(KEY, &stored).await.unwrap(), b"v");
}

#[tokio::test]
async fn a_new_key_id_makes_the_next_write_use_a_new_seed() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    let p = EnvelopeProvider::new("local", svc.clone(), SeedLimits::default());
    let old = p.seal(KEY, b"old").await.unwrap();
    let old_key = svc.inner.primary();
    let new_key = svc.inner.rotate().unwrap();
    // Until the status poll, the cached seed stays in use.
    assert_eq!(
        stored_key(&p.seal(KEY, b"x").await.unwrap()).unwrap().1,
        old_key
    );
    assert_eq!(p.refresh().await.unwrap().key_id, new_key);
    let new = p.seal(KEY, b"new").await.unwrap();
    assert_eq!(stored_key(&new).unwrap().1, new_key);
    assert_eq!(p.write_key_id().unwrap(), new_key);
    assert_eq!(p.open(KEY, &old).await.unwrap(), b"old");
    assert_eq!(p.open(KEY, &new).await.unwrap(), b"new");
}

#[tokio::test]
async fn tampered_moved_or_foreign_values_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = EnvelopeProvider::new("local", service(dir.path()), SeedLimits::default());
    let stored = p.seal(KEY, b"secret").await.unwrap();
    // Moved under another key.
    assert!(
        p.open("/registry/core/secrets/default/other", &stored)
            .await
            .is_err()
    );
    // Any flipped byte of the body.
    for i in p.prefix().len()..stored.len() {
        let mut bad = stored.clone();
        bad[i] ^= 0x20;
        assert!(p.open(KEY, &bad).await.is_err(), "byte {i}");
    }
    // Garbage, truncation, another provider's name.
    assert!(
        p.open(KEY, b"k8s:enc:kms:v2:local:\xff\xff\xff")
            .await
            .is_err()
    );
    assert!(p.open(KEY, &stored[..stored.len() - 5]).await.is_err());
    let other = EnvelopeProvider::new("other", service(dir.path()), SeedLimits::default());
    assert!(other.open(KEY, &stored).await.is_err());
    // Another keyring's provider of the same name: its KEK cannot unwrap the seed.
    let elsewhere = tempfile::tempdir().unwrap();
    let foreign = EnvelopeProvider::new("local", service(elsewhere.path()), SeedLimits::default());
    let err = foreign.open(KEY, &stored).await.unwrap_err();
    assert!(err.to_string().contains("unknown or retired"), "{err}");
    // No message carries the plaintext.
    assert!(!err.to_string().contains("secret\""));
}
