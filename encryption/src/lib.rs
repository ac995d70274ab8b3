//! Encryption at rest for stored objects.
//!
//! - [`ValueTransformer`]: the seam object storage writes and reads values through.
//! - [`envelope::EnvelopeProvider`]: envelope encryption in upstream's KMS v2 format
//!   (`k8s:enc:kms:v2:<provider>:` + `EncryptedObject`): a 32-byte DEK seed, wrapped by a key
//!   encryption key (KEK) held by a [`kms::KeyService`], derives a fresh AES-256-GCM key per
//!   write (HKDF-SHA256 over 32 random bytes) with a random nonce and the store key as
//!   associated data. The seed is reused for a bounded number of writes and time and cached
//!   unwrapped, so the hot path makes no KMS call.
//! - KEK holders: [`local::LocalKeyring`] (key files created at bootstrap, 0600, zeroized)
//!   and [`kms::grpc::KmsPluginClient`] (the Kubernetes KMS v2 plugin API over a unix socket).
//! - [`resources::ResourceTransformers`]: which resources are encrypted with which provider
//!   (write with the first, read any), Bulwark's default (Secrets) or an upstream
//!   `EncryptionConfiguration` ([`config`]).

pub mod aead;
pub mod config;
pub mod envelope;
pub mod kms;
pub mod local;
pub mod resources;
pub mod static_keys;
pub mod transformer;

pub use transformer::{Identity, TransformError, ValueTransformer, is_encrypted};
