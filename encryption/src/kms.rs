//! Key encryption key (KEK) holders, in the Kubernetes KMS v2 plugin API's terms: `Status`
//! (health and the current key id), `Encrypt` and `Decrypt` of a DEK seed. The local keyring
//! and a remote KMS plugin both implement [`KeyService`]; [`conformance`] is the suite both
//! pass.

pub mod conformance;
pub mod grpc;
#[cfg(feature = "test-plugin")]
pub mod test_plugin;

use std::collections::BTreeMap;

use futures::future::BoxFuture;

/// Largest key id accepted from a KMS (upstream's limit).
pub const MAX_KEY_ID_LEN: usize = 1024;
/// Largest wrapped DEK accepted from a KMS (upstream's limit).
pub const MAX_WRAPPED_LEN: usize = 1024;
/// Largest total size of annotation keys and values (upstream's limit).
pub const MAX_ANNOTATIONS_LEN: usize = 32 * 1024;

/// What `Status` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsStatus {
    /// The plugin API version (`v2`, or upstream's earlier `v2beta1`).
    pub version: String,
    /// `ok`, or why the service is unhealthy.
    pub healthz: String,
    /// The key id new encryptions use.
    pub key_id: String,
}

/// A wrapped DEK seed and what is stored next to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wrapped {
    /// The DEK seed encrypted under the KEK.
    pub ciphertext: Vec<u8>,
    /// The KEK that wrapped it.
    pub key_id: String,
    /// Plugin metadata stored in the clear next to the value.
    pub annotations: BTreeMap<String, Vec<u8>>,
}

/// Why a key service call failed. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KmsError {
    /// The service cannot be reached or did not answer in time.
    #[error("the key service is unavailable: {0}")]
    Unavailable(String),
    /// The service answered with an error (an unknown key id, a failed decryption).
    #[error("the key service refused: {0}")]
    Refused(String),
    /// The service answered with something that breaks the API's rules.
    #[error("the key service answered badly: {0}")]
    BadAnswer(String),
}

/// A holder of key encryption keys.
pub trait KeyService: std::fmt::Debug + Send + Sync {
    /// Health and the key id new encryptions use.
    fn status(&self) -> BoxFuture<'_, Result<KmsStatus, KmsError>>;

    /// Wraps `plaintext` (a DEK seed) under the current KEK. `uid` names the call in logs.
    fn encrypt<'a>(
        &'a self,
        uid: &'a str,
        plaintext: &'a [u8],
    ) -> BoxFuture<'a, Result<Wrapped, KmsError>>;

    /// Unwraps a seed [`KeyService::encrypt`] wrapped.
    fn decrypt<'a>(
        &'a self,
        uid: &'a str,
        wrapped: &'a Wrapped,
    ) -> BoxFuture<'a, Result<Vec<u8>, KmsError>>;
}

/// Checks what a service returned from `Encrypt` against the API's limits (upstream's
/// rules: a key id, a wrapped DEK of at most 1 KiB, annotations named by DNS names and at
/// most 32 KiB).
pub fn validate_wrapped(wrapped: &Wrapped) -> Result<(), KmsError> {
    if wrapped.key_id.is_empty() || wrapped.key_id.len() > MAX_KEY_ID_LEN {
        return Err(KmsError::BadAnswer(format!(
            "key id must be 1 to {MAX_KEY_ID_LEN} bytes"
        )));
    }
    if wrapped.ciphertext.is_empty() || wrapped.ciphertext.len() > MAX_WRAPPED_LEN {
        return Err(KmsError::BadAnswer(format!(
            "wrapped key must be 1 to {MAX_WRAPPED_LEN} bytes"
        )));
    }
    let mut total = 0usize;
    for (name, value) in &wrapped.annotations {
        if !is_dns_name(name) {
            return Err(KmsError::BadAnswer(
                "annotation names must be fully qualified DNS names".into(),
            ));
        }
        total = total.saturating_add(name.len()).saturating_add(value.len());
    }
    if total > MAX_ANNOTATIONS_LEN {
        return Err(KmsError::BadAnswer(format!(
            "annotations exceed {MAX_ANNOTATIONS_LEN} bytes"
        )));
    }
    Ok(())
}

/// A fully qualified DNS name (RFC 1123 labels, at least two).
fn is_dns_name(name: &str) -> bool {
    let labels: Vec<&str> = name.split('.').collect();
    name.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrapped() -> Wrapped {
        Wrapped {
            ciphertext: vec![1; 60],
            key_id: "k1".into(),
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn answers_outside_the_api_limits_are_refused() {
        assert!(validate_wrapped(&wrapped()).is_ok());
        let mut w = wrapped();
        w.key_id = String::new();
        assert!(validate_wrapped(&w).is_err());
        let mut w = wrapped();
        w.key_id = "k".repeat(1025);
        assert!(validate_wrapped(&w).is_err());
        let mut w = wrapped();
        w.ciphertext = vec![0; 1025];
        assert!(validate_wrapped(&w).is_err());
        let mut w = wrapped();
        w.annotations
            .insert("version.kms.example.com".into(), b"1".to_vec());
        assert!(validate_wrapped(&w).is_ok());
        w.annotations.insert("NotADnsName".into(), b"1".to_vec());
        assert!(validate_wrapped(&w).is_err());
        let mut w = wrapped();
        w.annotations
            .insert("big.example.com".into(), vec![0; MAX_ANNOTATIONS_LEN]);
        assert!(validate_wrapped(&w).is_err());
    }
}
