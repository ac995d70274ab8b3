//! The value transformer: what happens to an object's bytes between the server and the
//! store. Identity today; envelope encryption (AES-GCM data keys wrapped by a local key or a
//! KMS plugin) plugs in here, per resource, without any handler knowing.

use std::borrow::Cow;

use bytes::Bytes;

/// Why a stored value could not be transformed.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    /// The stored value is not in a form this transformer reads (the message says which
    /// form, never the value).
    #[error("stored value of {key} cannot be read: {reason}")]
    Unreadable {
        /// The store key.
        key: String,
        /// Why.
        reason: String,
    },
    /// The value could not be written (a key provider is unavailable, say).
    #[error("value for {key} cannot be stored: {reason}")]
    Unwritable {
        /// The store key.
        key: String,
        /// Why.
        reason: String,
    },
}

/// Transforms values on their way to and from the store. `key` is the store key, for use
/// as associated data: a value copied under another key must not read back.
pub trait ValueTransformer: std::fmt::Debug + Send + Sync {
    /// The stored form of `plain`, written under `key`.
    fn stored_form<'a>(&self, key: &str, plain: &'a [u8]) -> Result<Cow<'a, [u8]>, TransformError>;

    /// The plain form of the value stored under `key`.
    fn plain_form(&self, key: &str, stored: Bytes) -> Result<Bytes, TransformError>;

    /// Whether values are stored as they are (lets readers skip work).
    fn is_identity(&self) -> bool {
        false
    }
}

/// Values are stored as they are.
#[derive(Debug, Default, Clone, Copy)]
pub struct Identity;

impl ValueTransformer for Identity {
    fn stored_form<'a>(
        &self,
        _key: &str,
        plain: &'a [u8],
    ) -> Result<Cow<'a, [u8]>, TransformError> {
        Ok(Cow::Borrowed(plain))
    }

    fn plain_form(&self, _key: &str, stored: Bytes) -> Result<Bytes, TransformError> {
        Ok(stored)
    }

    fn is_identity(&self) -> bool {
        true
    }
}
