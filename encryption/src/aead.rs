//! AES-256-GCM (ring) in the two forms stored values use: a static key with a random nonce
//! (`nonce ‖ ciphertext ‖ tag`), and upstream KMS v2's extended-nonce form, where each
//! write derives its own key from a seed (`info ‖ nonce ‖ ciphertext ‖ tag`, key =
//! HKDF-SHA256-Expand(seed, info), info 32 random bytes), so one seed never wears out.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

/// Length of keys and seeds.
pub const KEY_LEN: usize = 32;
/// Length of the random KDF input in the extended-nonce form.
pub const INFO_LEN: usize = 32;
/// Bytes AES-GCM adds to a plaintext (the tag).
const TAG_LEN: usize = 16;

/// Why a seal or open failed. Never carries key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AeadError {
    /// The system random source failed.
    #[error("the system random number generator failed")]
    Random,
    /// Authentication failed: wrong key, wrong associated data, or tampered bytes.
    #[error(
        "decryption failed: the value was altered, moved to another key, or encrypted under another key"
    )]
    Authentication,
    /// Too short to hold nonce and tag.
    #[error("the ciphertext is truncated")]
    Truncated,
    /// The key has the wrong length.
    #[error("the key is not {KEY_LEN} bytes")]
    KeyLength,
}

/// A 32-byte secret (KEK, DEK seed or static key): zeroized when dropped, redacted in
/// `Debug`.
#[derive(Clone)]
pub struct SecretKey(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl SecretKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, AeadError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        SystemRandom::new()
            .fill(bytes.as_mut())
            .map_err(|_| AeadError::Random)?;
        Ok(Self(bytes))
    }

    /// A key from its bytes (which must be [`KEY_LEN`] long).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, AeadError> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        if bytes.len() != KEY_LEN {
            return Err(AeadError::KeyLength);
        }
        key.copy_from_slice(bytes);
        Ok(Self(key))
    }

    /// The raw bytes (to wrap with a KEK or write to a 0600 key file).
    pub fn expose(&self) -> &[u8] {
        self.0.as_ref()
    }

    fn gcm(&self) -> Result<LessSafeKey, AeadError> {
        UnboundKey::new(&AES_256_GCM, self.expose())
            .map(LessSafeKey::new)
            .map_err(|_| AeadError::KeyLength)
    }

    /// `nonce ‖ ciphertext ‖ tag` of `plain` under this key, bound to `aad`.
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, AeadError> {
        seal_with(&self.gcm()?, aad, plain, &[])
    }

    /// The plaintext of [`SecretKey::seal`]'s output.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, AeadError> {
        open_with(&self.gcm()?, aad, sealed)
    }

    /// The extended-nonce form: a key derived for this write only.
    pub fn seal_derived(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, AeadError> {
        let mut info = [0u8; INFO_LEN];
        SystemRandom::new()
            .fill(&mut info)
            .map_err(|_| AeadError::Random)?;
        seal_with(&self.derive(&info)?, aad, plain, &info)
    }

    /// The plaintext of [`SecretKey::seal_derived`]'s output.
    pub fn open_derived(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, AeadError> {
        let (info, rest) = sealed
            .split_at_checked(INFO_LEN)
            .ok_or(AeadError::Truncated)?;
        open_with(&self.derive(info)?, aad, rest)
    }

    fn derive(&self, info: &[u8]) -> Result<LessSafeKey, AeadError> {
        // Expand only, as upstream: the seed is already uniformly random.
        let prk = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, self.expose());
        let info = [info];
        let okm = prk
            .expand(&info, &AES_256_GCM)
            .map_err(|_| AeadError::KeyLength)?;
        Ok(LessSafeKey::new(UnboundKey::from(okm)))
    }
}

fn seal_with(
    key: &LessSafeKey,
    aad: &[u8],
    plain: &[u8],
    prefix: &[u8],
) -> Result<Vec<u8>, AeadError> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| AeadError::Random)?;
    let mut out = Vec::with_capacity(prefix.len() + NONCE_LEN + plain.len() + TAG_LEN);
    out.extend_from_slice(prefix);
    out.extend_from_slice(&nonce);
    let body_at = out.len();
    out.extend_from_slice(plain);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            out.get_mut(body_at..).ok_or(AeadError::Truncated)?,
        )
        .map_err(|_| AeadError::Authentication)?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

fn open_with(key: &LessSafeKey, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, AeadError> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(AeadError::Truncated);
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| AeadError::Truncated)?;
    let mut body = body.to_vec();
    let plain = key
        .open_in_place(nonce, Aad::from(aad), &mut body)
        .map_err(|_| AeadError::Authentication)?;
    let len = plain.len();
    body.truncate(len);
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_round_trip_and_bind_the_associated_data() {
        let key = SecretKey::generate().unwrap();
        for (seal, open) in [
            (
                SecretKey::seal as fn(&SecretKey, &[u8], &[u8]) -> Result<Vec<u8>, AeadError>,
                SecretKey::open as fn(&SecretKey, &[u8], &[u8]) -> Result<Vec<u8>, AeadError>,
            ),
            (SecretKey::seal_derived, SecretKey::open_derived),
        ] {
            let sealed = seal(&key, b"/registry/core/secrets/a/b", b"hunter2").unwrap();
            assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
            assert_eq!(
                open(&key, b"/registry/core/secrets/a/b", &sealed).unwrap(),
                b"hunter2"
            );
            // Moved to another key: refused.
            assert_eq!(
                open(&key, b"/registry/core/secrets/a/c", &sealed),
                Err(AeadError::Authentication)
            );
            // Any flipped bit: refused.
            for i in 0..sealed.len() {
                let mut bad = sealed.clone();
                bad[i] ^= 1;
                assert!(open(&key, b"/registry/core/secrets/a/b", &bad).is_err());
            }
            // Truncated: refused.
            assert!(open(&key, b"/registry/core/secrets/a/b", &sealed[..10]).is_err());
            // Another key: refused.
            let other = SecretKey::generate().unwrap();
            assert_eq!(
                open(&other, b"/registry/core/secrets/a/b", &sealed),
                Err(AeadError::Authentication)
            );
        }
    }

    #[test]
    fn two_seals_of_one_value_differ() {
        let key = SecretKey::generate().unwrap();
        let a = key.seal_derived(b"k", b"same").unwrap();
        let b = key.seal_derived(b"k", b"same").unwrap();
        assert_ne!(a, b);
        assert_ne!(a[..INFO_LEN], b[..INFO_LEN]);
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let key = SecretKey::from_slice(&[0x41; KEY_LEN]).unwrap();
        let text = format!("{key:?}");
        assert!(!text.contains("65") && !text.contains("AAAA") && text.contains("redacted"));
        assert_eq!(
            SecretKey::from_slice(&[1; 5]).unwrap_err(),
            AeadError::KeyLength
        );
    }
}
