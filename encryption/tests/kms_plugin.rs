//! The KMS v2 gRPC client against the test plugin (a real gRPC server on a unix socket):
//! the key service conformance suite, and envelope encryption through it when the plugin is
//! healthy, down, slow, answering garbage, or rotated.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation must abort the test"
)]

use std::sync::Arc;
use std::time::Duration;

use bulwark_encryption::envelope::{EnvelopeProvider, SeedLimits, stored_key};
use bulwark_encryption::kms::grpc::{KmsPluginClient, socket_path};
use bulwark_encryption::kms::test_plugin::{Behaviour, TestPlugin};
use bulwark_encryption::kms::{KeyService, conformance};

const KEY: &str = "/registry/core/secrets/default/db";

async fn plugin(dir: &tempfile::TempDir) -> (TestPlugin, Arc<KmsPluginClient>) {
    let plugin = TestPlugin::start(&dir.path().join("kms.sock"))
        .await
        .unwrap();
    let socket = socket_path(&plugin.endpoint()).unwrap();
    let client = KmsPluginClient::new(&socket, Duration::from_secs(2)).unwrap();
    (plugin, Arc::new(client))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_grpc_client_and_test_plugin_conform() {
    let dir = tempfile::tempdir().unwrap();
    let (_plugin, client) = plugin(&dir).await;
    conformance::run(client.as_ref()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn envelope_through_the_plugin_caches_seeds_and_survives_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let (plugin, client) = plugin(&dir).await;
    let envelope = EnvelopeProvider::new("kms-test", client.clone(), SeedLimits::default());
    envelope.refresh().await.unwrap();
    let mut stored = Vec::new();
    for i in 0..1000 {
        stored.push(envelope.seal(&format!("{KEY}{i}"), b"v").await.unwrap());
    }
    assert_eq!(
        plugin.calls("encrypt"),
        1,
        "one KMS call per seed, not per write"
    );
    for (i, s) in stored.iter().enumerate() {
        assert_eq!(envelope.open(&format!("{KEY}{i}"), s).await.unwrap(), b"v");
    }
    assert_eq!(plugin.calls("decrypt"), 0);
    let (_, key_id) = stored_key(&stored[0]).unwrap();
    assert_eq!(key_id, "test-key-1");

    // Down: cached seeds keep reads and writes going; a cold server cannot write.
    plugin.set(Behaviour::Down);
    assert_eq!(
        envelope.open(&format!("{KEY}0"), &stored[0]).await.unwrap(),
        b"v"
    );
    envelope.seal(KEY, b"w").await.unwrap();
    let cold = EnvelopeProvider::new("kms-test", client.clone(), SeedLimits::default());
    let err = cold.seal(KEY, b"v").await.unwrap_err();
    assert!(
        err.is_unavailable() && err.to_string().contains("unavailable"),
        "{err}"
    );
    assert!(cold.open(&format!("{KEY}0"), &stored[0]).await.is_err());

    // Slow beyond the deadline: the same, after the deadline, not a hang.
    plugin.set(Behaviour::Slow(Duration::from_secs(5)));
    let started = std::time::Instant::now();
    assert!(cold.seal(KEY, b"v").await.is_err());
    assert!(started.elapsed() < Duration::from_secs(5));

    // Garbage: refused, nothing written.
    plugin.set(Behaviour::Garbage);
    let err = cold.seal(KEY, b"v").await.unwrap_err();
    assert!(err.to_string().contains("answered badly"), "{err}");
    assert!(cold.refresh().await.is_err());

    // Back: the cold server recovers, and reads the old values (one unwrap per seed).
    plugin.set(Behaviour::Healthy);
    cold.seal(KEY, b"v").await.unwrap();
    let before = plugin.calls("decrypt");
    for (i, s) in stored.iter().enumerate().take(10) {
        assert_eq!(cold.open(&format!("{KEY}{i}"), s).await.unwrap(), b"v");
    }
    assert_eq!(plugin.calls("decrypt") - before, 1);

    // A rotated plugin key: after the status poll, writes use it; old values still read.
    let new_key = plugin.rotate();
    assert_eq!(envelope.refresh().await.unwrap().key_id, new_key);
    let fresh = envelope.seal(KEY, b"new").await.unwrap();
    assert_eq!(stored_key(&fresh).unwrap().1, new_key);
    assert_eq!(envelope.open(KEY, &fresh).await.unwrap(), b"new");
    assert_eq!(
        envelope.open(&format!("{KEY}1"), &stored[1]).await.unwrap(),
        b"v"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_that_never_started_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let client =
        KmsPluginClient::new(&dir.path().join("nothing.sock"), Duration::from_secs(1)).unwrap();
    let err = client.status().await.unwrap_err();
    assert!(err.to_string().contains("unavailable"), "{err}");
}
