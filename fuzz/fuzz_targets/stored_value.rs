//! Stored values as read back from the store or FoundationDB (a tampered or corrupt disk):
//! whatever the bytes, reading them through the encryption transformer is an error or a
//! value, never a panic; a value that decrypts was written by the keyring's own key.
#![no_main]
use std::sync::{Arc, OnceLock};

use bulwark_encryption::ValueTransformer;
use bulwark_encryption::envelope::{EnvelopeProvider, SeedLimits, stored_key};
use bulwark_encryption::local::LocalKeyring;
use bulwark_encryption::resources::ResourceTransformers;
use libfuzzer_sys::fuzz_target;

const KEY: &str = "/registry/core/secrets/default/db";

fn setup() -> &'static (ResourceTransformers, Vec<u8>, tempfile::TempDir) {
    static SETUP: OnceLock<(ResourceTransformers, Vec<u8>, tempfile::TempDir)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let keyring = Arc::new(LocalKeyring::open_or_create(dir.path()).unwrap());
        let envelope = Arc::new(EnvelopeProvider::new(
            "bulwark-local",
            keyring,
            SeedLimits::default(),
        ));
        let transformers = ResourceTransformers::bulwark_default(envelope);
        // One genuine value, for the fuzzer to mutate from.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let genuine = runtime
            .block_on(transformers.stored_form(KEY, b"{\"data\":{\"k\":\"dg==\"}}"))
            .unwrap();
        (transformers, genuine, dir)
    })
}

fuzz_target!(|data: &[u8]| {
    let (transformers, genuine, _) = setup();
    let _ = stored_key(data);
    let stored = if data.first() == Some(&0) {
        // Mutations of a real value: flip, cut and extend it.
        let mut v = genuine.clone();
        for (i, b) in data.iter().enumerate().skip(1) {
            if let Some(slot) = v.get_mut((*b as usize * 7 + i) % genuine.len()) {
                *slot ^= b.wrapping_add(1);
            }
        }
        v.truncate(genuine.len().saturating_sub(data.len() % 4));
        v
    } else {
        data.to_vec()
    };
    let read = futures::executor::block_on(transformers.plain_form(KEY, stored.clone().into()));
    if let Ok(plain) = read
        && stored.starts_with(b"k8s:enc:")
    {
        assert_eq!(
            &plain[..],
            b"{\"data\":{\"k\":\"dg==\"}}",
            "a forged value decrypted"
        );
    }
});
