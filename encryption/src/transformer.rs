//! The value transformer: what happens to an object's bytes between the server and the
//! store, per store key, without any handler knowing.

use bytes::Bytes;
use futures::future::BoxFuture;

/// The prefix every encrypted stored value starts with (upstream's); a plain object is JSON
/// and starts with `{`.
pub const ENCRYPTED_PREFIX: &[u8] = b"k8s:enc:";

/// Whether a stored value is in an encrypted form.
pub fn is_encrypted(stored: &[u8]) -> bool {
    stored.starts_with(ENCRYPTED_PREFIX)
}

/// Why a value could not be transformed. Messages name the key and the reason, never a
/// value or key material.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransformError {
    /// The stored value cannot be read (tampered, moved, unknown provider or key).
    #[error("stored value of {key} cannot be read: {reason}")]
    Unreadable {
        /// The store key.
        key: String,
        /// Why.
        reason: String,
    },
    /// The value cannot be written: nothing was stored (a KMS plugin is unavailable, say).
    #[error("value for {key} cannot be stored: {reason}")]
    Unwritable {
        /// The store key.
        key: String,
        /// Why.
        reason: String,
    },
}

impl TransformError {
    /// Whether the failure is a key service being unavailable (a 503, worth a retry) rather
    /// than bad stored data.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unwritable { .. })
    }
}

/// Transforms values on their way to and from the store. `key` is the store key, used as
/// associated data: a value copied under another key does not read back. A stored form that
/// differs from the plain one starts with [`ENCRYPTED_PREFIX`] (as upstream's do): readers
/// pass other values on as they are without asking.
pub trait ValueTransformer: std::fmt::Debug + Send + Sync {
    /// The stored form of `plain`, to be written under `key`.
    fn stored_form<'a>(
        &'a self,
        key: &'a str,
        plain: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, TransformError>>;

    /// The plain form of the value stored under `key` (the same `Bytes` back when it is
    /// stored as it is).
    fn plain_form<'a>(
        &'a self,
        key: &'a str,
        stored: Bytes,
    ) -> BoxFuture<'a, Result<Bytes, TransformError>>;

    /// Whether every value is stored as it is (lets readers skip work).
    fn is_identity(&self) -> bool {
        false
    }

    /// Whether every value under the key prefix `prefix` (a collection's keys) that does not
    /// start with [`ENCRYPTED_PREFIX`] reads back as it is, so that a list can pass such
    /// values on without asking for each. `false` tells the reader to ask per value.
    fn reads_plaintext_under(&self, _prefix: &str) -> bool {
        self.is_identity()
    }
}

/// Values are stored as they are.
#[derive(Debug, Default, Clone, Copy)]
pub struct Identity;

impl ValueTransformer for Identity {
    fn stored_form<'a>(
        &'a self,
        _key: &'a str,
        plain: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, TransformError>> {
        Box::pin(std::future::ready(Ok(plain.to_vec())))
    }

    fn plain_form<'a>(
        &'a self,
        _key: &'a str,
        stored: Bytes,
    ) -> BoxFuture<'a, Result<Bytes, TransformError>> {
        Box::pin(std::future::ready(Ok(stored)))
    }

    fn is_identity(&self) -> bool {
        true
    }
}
