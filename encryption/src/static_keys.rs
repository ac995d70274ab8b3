//! Upstream's static-key providers, read and written as upstream does, for operators who
//! bring an existing `EncryptionConfiguration`: `aesgcm` (AES-GCM, random 12-byte nonce, the
//! store key as associated data), `aescbc` (AES-CBC with PKCS#7 padding and a random IV, no
//! integrity: upstream no longer recommends it) and `secretbox` (XSalsa20-Poly1305, random
//! 24-byte nonce). Each key has its own prefix (`k8s:enc:<kind>:v1:<key name>:`).

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use crypto_secretbox::aead::{Aead, KeyInit};
use futures::future::BoxFuture;
use ring::aead::{AES_128_GCM, AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::resources::StorageProvider;
use crate::transformer::TransformError;

/// Which static-key algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaticKind {
    /// AES-GCM.
    Aesgcm,
    /// AES-CBC, PKCS#7.
    Aescbc,
    /// XSalsa20-Poly1305.
    Secretbox,
}

impl StaticKind {
    /// The name in a configuration and a stored prefix.
    pub fn name(self) -> &'static str {
        match self {
            Self::Aesgcm => "aesgcm",
            Self::Aescbc => "aescbc",
            Self::Secretbox => "secretbox",
        }
    }
}

/// Why a static key is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} key {name:?}: {reason}")]
pub struct BadStaticKey {
    /// The algorithm.
    pub kind: &'static str,
    /// The key's name.
    pub name: String,
    /// Why.
    pub reason: String,
}

/// One static key.
pub struct StaticKeyProvider {
    kind: StaticKind,
    label: String,
    prefix: Vec<u8>,
    key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for StaticKeyProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticKeyProvider")
            .field("kind", &self.kind)
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl StaticKeyProvider {
    /// Key `name` of `kind` with `key` bytes (16 or 32 for aesgcm, 16, 24 or 32 for aescbc,
    /// 32 for secretbox).
    pub fn new(kind: StaticKind, name: &str, key: &[u8]) -> Result<Self, BadStaticKey> {
        let bad = |reason: &str| BadStaticKey {
            kind: kind.name(),
            name: name.to_owned(),
            reason: reason.to_owned(),
        };
        let ok = match kind {
            StaticKind::Aesgcm => matches!(key.len(), 16 | 32),
            StaticKind::Aescbc => matches!(key.len(), 16 | 24 | 32),
            StaticKind::Secretbox => key.len() == 32,
        };
        if !ok {
            return Err(bad(match kind {
                StaticKind::Aesgcm => "must be 16 or 32 bytes (24-byte AES-192 is not supported)",
                StaticKind::Aescbc => "must be 16, 24 or 32 bytes",
                StaticKind::Secretbox => "must be 32 bytes",
            }));
        }
        if name.is_empty() || name.contains(':') {
            return Err(bad("a key name is non-empty and has no ':'"));
        }
        Ok(Self {
            kind,
            label: format!("{}/{name}", kind.name()),
            prefix: format!("k8s:enc:{}:v1:{name}:", kind.name()).into_bytes(),
            key: Zeroizing::new(key.to_vec()),
        })
    }

    fn random(len: usize) -> Result<Vec<u8>, &'static str> {
        let mut out = vec![0u8; len];
        SystemRandom::new()
            .fill(&mut out)
            .map_err(|_| "the system random number generator failed")?;
        Ok(out)
    }

    fn gcm(&self) -> Result<LessSafeKey, &'static str> {
        let algorithm = if self.key.len() == 16 {
            &AES_128_GCM
        } else {
            &AES_256_GCM
        };
        UnboundKey::new(algorithm, &self.key)
            .map(LessSafeKey::new)
            .map_err(|_| "bad key")
    }

    fn seal_body(&self, key: &str, plain: &[u8]) -> Result<Vec<u8>, &'static str> {
        match self.kind {
            StaticKind::Aesgcm => {
                let nonce = Self::random(NONCE_LEN)?;
                let mut body = plain.to_vec();
                let n = Nonce::try_assume_unique_for_key(&nonce).map_err(|_| "bad nonce")?;
                self.gcm()?
                    .seal_in_place_append_tag(n, Aad::from(key.as_bytes()), &mut body)
                    .map_err(|_| "encryption failed")?;
                Ok([nonce, body].concat())
            }
            StaticKind::Aescbc => {
                let iv = Self::random(16)?;
                let body = match self.key.len() {
                    16 => cbc::Encryptor::<aes::Aes128>::new_from_slices(&self.key, &iv)
                        .map_err(|_| "bad key")?
                        .encrypt_padded_vec_mut::<Pkcs7>(plain),
                    24 => cbc::Encryptor::<aes::Aes192>::new_from_slices(&self.key, &iv)
                        .map_err(|_| "bad key")?
                        .encrypt_padded_vec_mut::<Pkcs7>(plain),
                    _ => cbc::Encryptor::<aes::Aes256>::new_from_slices(&self.key, &iv)
                        .map_err(|_| "bad key")?
                        .encrypt_padded_vec_mut::<Pkcs7>(plain),
                };
                Ok([iv, body].concat())
            }
            StaticKind::Secretbox => {
                let nonce = Self::random(24)?;
                let cipher = crypto_secretbox::XSalsa20Poly1305::new_from_slice(&self.key)
                    .map_err(|_| "bad key")?;
                let n: [u8; 24] = nonce.as_slice().try_into().map_err(|_| "bad nonce")?;
                let body = cipher
                    .encrypt(&crypto_secretbox::Nonce::from(n), plain)
                    .map_err(|_| "encryption failed")?;
                Ok([nonce, body].concat())
            }
        }
    }

    fn open_body(&self, key: &str, body: &[u8]) -> Result<Vec<u8>, &'static str> {
        const FAILED: &str =
            "decryption failed: the value was altered, moved, or written under another key";
        match self.kind {
            StaticKind::Aesgcm => {
                let (nonce, sealed) = body.split_at_checked(NONCE_LEN).ok_or("truncated")?;
                let n = Nonce::try_assume_unique_for_key(nonce).map_err(|_| "truncated")?;
                let mut sealed = sealed.to_vec();
                let len = self
                    .gcm()?
                    .open_in_place(n, Aad::from(key.as_bytes()), &mut sealed)
                    .map_err(|_| FAILED)?
                    .len();
                sealed.truncate(len);
                Ok(sealed)
            }
            StaticKind::Aescbc => {
                let (iv, sealed) = body.split_at_checked(16).ok_or("truncated")?;
                if sealed.is_empty() || sealed.len() % 16 != 0 {
                    return Err("the ciphertext is not whole blocks");
                }
                let plain = match self.key.len() {
                    16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(&self.key, iv)
                        .map_err(|_| "bad key")?
                        .decrypt_padded_vec_mut::<Pkcs7>(sealed),
                    24 => cbc::Decryptor::<aes::Aes192>::new_from_slices(&self.key, iv)
                        .map_err(|_| "bad key")?
                        .decrypt_padded_vec_mut::<Pkcs7>(sealed),
                    _ => cbc::Decryptor::<aes::Aes256>::new_from_slices(&self.key, iv)
                        .map_err(|_| "bad key")?
                        .decrypt_padded_vec_mut::<Pkcs7>(sealed),
                };
                plain.map_err(|_| FAILED)
            }
            StaticKind::Secretbox => {
                let (nonce, sealed) = body.split_at_checked(24).ok_or("truncated")?;
                let cipher = crypto_secretbox::XSalsa20Poly1305::new_from_slice(&self.key)
                    .map_err(|_| "bad key")?;
                let n: [u8; 24] = nonce.try_into().map_err(|_| "truncated")?;
                cipher
                    .decrypt(&crypto_secretbox::Nonce::from(n), sealed)
                    .map_err(|_| FAILED)
            }
        }
    }
}

impl StorageProvider for StaticKeyProvider {
    fn name(&self) -> &str {
        &self.label
    }

    fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    fn seal<'a>(
        &'a self,
        key: &'a str,
        plain: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, TransformError>> {
        let sealed = self
            .seal_body(key, plain)
            .map(|body| [self.prefix.as_slice(), &body].concat())
            .map_err(|reason| TransformError::Unwritable {
                key: key.to_owned(),
                reason: format!("{}: {reason}", self.label),
            });
        Box::pin(std::future::ready(sealed))
    }

    fn open<'a>(
        &'a self,
        key: &'a str,
        stored: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, TransformError>> {
        let plain = stored
            .strip_prefix(self.prefix.as_slice())
            .ok_or("not written with this key")
            .and_then(|body| self.open_body(key, body))
            .map_err(|reason| TransformError::Unreadable {
                key: key.to_owned(),
                reason: format!("{}: {reason}", self.label),
            });
        Box::pin(std::future::ready(plain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "/registry/core/secrets/a/b";

    #[tokio::test]
    async fn every_kind_round_trips_and_refuses_tampering() {
        for (kind, len) in [
            (StaticKind::Aesgcm, 32),
            (StaticKind::Aesgcm, 16),
            (StaticKind::Aescbc, 32),
            (StaticKind::Aescbc, 24),
            (StaticKind::Secretbox, 32),
        ] {
            let p = StaticKeyProvider::new(kind, "key1", &vec![7u8; len]).unwrap();
            let stored = p.seal(KEY, b"{\"marker\":\"xyz\"}").await.unwrap();
            let prefix = format!("k8s:enc:{}:v1:key1:", kind.name());
            assert!(stored.starts_with(prefix.as_bytes()));
            assert!(!stored.windows(3).any(|w| w == b"xyz"));
            assert_eq!(p.open(KEY, &stored).await.unwrap(), b"{\"marker\":\"xyz\"}");
            let other = StaticKeyProvider::new(kind, "key1", &vec![8u8; len]).unwrap();
            // CBC has no integrity: a wrong key most often fails the padding, not always.
            if kind != StaticKind::Aescbc {
                assert!(other.open(KEY, &stored).await.is_err(), "{kind:?}");
                let mut bad = stored.clone();
                let last = bad.len() - 1;
                bad[last] ^= 1;
                assert!(p.open(KEY, &bad).await.is_err(), "{kind:?}");
            }
            assert!(p.open(KEY, &stored[..prefix.len() + 3]).await.is_err());
        }
        // GCM binds the store key.
        let p = StaticKeyProvider::new(StaticKind::Aesgcm, "k", &[1; 32]).unwrap();
        let stored = p.seal(KEY, b"v").await.unwrap();
        assert!(p.open("/registry/core/secrets/a/c", &stored).await.is_err());
    }

    #[test]
    fn bad_keys_are_refused_by_name() {
        assert!(StaticKeyProvider::new(StaticKind::Aesgcm, "k", &[0; 24]).is_err());
        assert!(StaticKeyProvider::new(StaticKind::Secretbox, "k", &[0; 16]).is_err());
        assert!(StaticKeyProvider::new(StaticKind::Aescbc, "a:b", &[0; 32]).is_err());
        let err = StaticKeyProvider::new(StaticKind::Aescbc, "k", &[0; 7]).unwrap_err();
        assert!(err.to_string().contains("aescbc key \"k\""));
        let p = StaticKeyProvider::new(StaticKind::Aescbc, "k", &[9; 32]).unwrap();
        assert!(!format!("{p:?}").contains('9'));
    }

    /// The framing is upstream's: prefix, then the IV, then the CBC blocks of the
    /// PKCS#7-padded plaintext (built here by hand with a fixed IV).
    #[tokio::test]
    async fn aescbc_framing_is_iv_then_blocks() {
        let key = [3u8; 32];
        let iv = [5u8; 16];
        let body = cbc::Encryptor::<aes::Aes256>::new_from_slices(&key, &iv)
            .unwrap()
            .encrypt_padded_vec_mut::<Pkcs7>(b"hello");
        let stored = [b"k8s:enc:aescbc:v1:key1:".as_slice(), &iv, &body].concat();
        let p = StaticKeyProvider::new(StaticKind::Aescbc, "key1", &key).unwrap();
        assert_eq!(p.open(KEY, &stored).await.unwrap(), b"hello");
    }
}
