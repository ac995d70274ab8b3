//! The record format. One JSON object per line:
//!
//! ```text
//! {"seq":1,"prev":"000…000","event":{…audit.k8s.io/v1 Event…}}
//! {"seq":2,"prev":"<sha256 of line 1>","event":{…}}
//! {"seq":3,"prev":"<sha256 of line 2>","checkpoint":{"time":"…","key":"<key id>","signature":"<base64>"}}
//! {"seq":4,"prev":"<sha256 of line 3>","recovery":{"file":"…","offset":123,"bytes":45}}
//! ```
//!
//! `prev` is the SHA-256 (hex) of the previous line's exact bytes, so changing, removing,
//! inserting or reordering a line breaks the chain at the next one. A checkpoint signs
//! `bulwark-audit-checkpoint:<seq>:<prev>` with the Ed25519 audit key, committing to every
//! line before it; the latest one is also exported, so cutting lines off the end is detectable
//! too. A recovery line records that the previous segment ended in a torn (partly written)
//! line after a crash.

use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::AuditError;

/// `prev` of the very first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410); the 32-byte key follows.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// A checkpoint's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// When it was signed.
    pub time: String,
    /// Which key signed it ([`key_id`]).
    pub key: String,
    /// Base64 Ed25519 signature over [`checkpoint_message`].
    pub signature: String,
}

/// A recovery note: the previous segment ended in a torn line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovery {
    /// The segment file name.
    pub file: String,
    /// Byte offset of the torn line.
    pub offset: u64,
    /// Its length.
    pub bytes: u64,
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// SHA-256 (hex) of the previous line.
    pub prev: String,
    /// An audit event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Value>,
    /// A signed checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
    /// A torn-tail recovery note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<Recovery>,
}

/// SHA-256 of a line (without its newline), hex.
pub fn line_hash(line: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, line).as_ref())
}

/// Lowercase hex, without a formatter per byte (this runs for every record).
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        for nibble in [b >> 4, b & 0x0f] {
            out.push(char::from(
                DIGITS.get(usize::from(nibble)).copied().unwrap_or(b'0'),
            ));
        }
    }
    out
}

/// One event record line (without its newline) around an event serialized as JSON, framed by
/// hand so the event is serialized once (by the caller, off the writer's thread).
pub fn event_line(seq: u64, prev: &str, event_json: &[u8]) -> Vec<u8> {
    let mut line = Vec::with_capacity(event_json.len() + 120);
    push_event_line(&mut line, seq, prev, event_json);
    line
}

/// Appends the line of [`event_line`] to `out` (the writer builds its batch in place).
pub fn push_event_line(out: &mut Vec<u8>, seq: u64, prev: &str, event_json: &[u8]) {
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{{\"seq\":{seq},\"prev\":\"{prev}\",\"event\":");
    out.extend_from_slice(event_json);
    out.push(b'}');
}

/// What a checkpoint at `seq` with `prev` signs.
pub fn checkpoint_message(seq: u64, prev: &str) -> String {
    format!("bulwark-audit-checkpoint:{seq}:{prev}")
}

/// The public key as a SubjectPublicKeyInfo PEM (what auditors are given).
pub fn public_key_pem(public: &[u8]) -> String {
    let mut der = SPKI_PREFIX.to_vec();
    der.extend_from_slice(public);
    pem("PUBLIC KEY", &der)
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn unpem(label: &str, text: &str) -> Result<Vec<u8>, AuditError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let body: String = text
        .lines()
        .skip_while(|l| l.trim() != begin)
        .skip(1)
        .take_while(|l| l.trim() != end)
        .collect();
    if body.is_empty() {
        return Err(AuditError::Key(format!("no {label} PEM block")));
    }
    STANDARD
        .decode(body.trim())
        .map_err(|e| AuditError::Key(format!("{label}: {e}")))
}

/// A short id of a public key: the first 16 hex digits of its SHA-256.
pub fn key_id(public: &[u8]) -> String {
    line_hash(public).chars().take(16).collect()
}

/// The audit signing key (Ed25519), created once and kept in a 0600 file.
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("key", &key_id(self.public()))
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Loads the key at `path`, creating it (and `<path>.pub`, the public key for auditors)
    /// if it does not exist. A key file others can read is refused.
    pub fn load_or_create(path: &Path) -> Result<Self, AuditError> {
        if !path.exists() {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                .map_err(|_| AuditError::Key("could not generate a key".into()))?;
            if let Some(dir) = path.parent() {
                bulwark_pki::files::ensure_private_dir(dir)
                    .map_err(|e| AuditError::Key(e.to_string()))?;
            }
            bulwark_pki::files::write_private(path, pem("PRIVATE KEY", pkcs8.as_ref()).as_bytes())
                .map_err(|e| AuditError::Key(e.to_string()))?;
        }
        let text =
            bulwark_pki::files::read_private(path).map_err(|e| AuditError::Key(e.to_string()))?;
        let der = unpem("PRIVATE KEY", text.expose())?;
        let pair = Ed25519KeyPair::from_pkcs8(&der).map_err(|e| AuditError::Key(e.to_string()))?;
        let key = Self { pair };
        let public_path = public_key_path(path);
        let public = public_key_pem(key.public());
        if std::fs::read_to_string(&public_path).ok().as_deref() != Some(public.as_str()) {
            bulwark_pki::files::write_public(&public_path, public.as_bytes())
                .map_err(|e| AuditError::Key(e.to_string()))?;
        }
        Ok(key)
    }

    /// The raw 32-byte public key.
    pub fn public(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// A checkpoint for the record at `seq` following a line hashing to `prev`.
    pub fn checkpoint(&self, seq: u64, prev: &str, time: String) -> Checkpoint {
        let signature = self.pair.sign(checkpoint_message(seq, prev).as_bytes());
        Checkpoint {
            time,
            key: key_id(self.public()),
            signature: STANDARD.encode(signature.as_ref()),
        }
    }
}

/// Where the public key of the key at `path` is written.
pub fn public_key_path(path: &Path) -> std::path::PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".pub");
    path.with_file_name(name)
}

/// A public key read from a PEM file, to check checkpoints with.
#[derive(Debug, Clone)]
pub struct VerifyingKey {
    raw: Vec<u8>,
}

impl VerifyingKey {
    /// Parses a SubjectPublicKeyInfo PEM of an Ed25519 key.
    pub fn from_pem(text: &str) -> Result<Self, AuditError> {
        let der = unpem("PUBLIC KEY", text)?;
        match der.strip_prefix(&SPKI_PREFIX[..]) {
            Some(raw) if raw.len() == 32 => Ok(Self { raw: raw.to_vec() }),
            _ => Err(AuditError::Key("not an Ed25519 public key".into())),
        }
    }

    /// Its id.
    pub fn id(&self) -> String {
        key_id(&self.raw)
    }

    /// Whether `checkpoint` at `seq` after `prev` was signed by this key.
    pub fn verifies(&self, seq: u64, prev: &str, checkpoint: &Checkpoint) -> bool {
        let Ok(signature) = STANDARD.decode(&checkpoint.signature) else {
            return false;
        };
        UnparsedPublicKey::new(&ED25519, &self.raw)
            .verify(checkpoint_message(seq, prev).as_bytes(), &signature)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn keys_sign_and_verify_and_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys").join("audit-signing.key");
        let key = SigningKey::load_or_create(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let again = SigningKey::load_or_create(&path).unwrap();
        assert_eq!(key.public(), again.public());
        let public =
            VerifyingKey::from_pem(&std::fs::read_to_string(public_key_path(&path)).unwrap())
                .unwrap();
        let cp = key.checkpoint(7, "ab", "t".into());
        assert_eq!(cp.key, public.id());
        assert!(public.verifies(7, "ab", &cp));
        assert!(!public.verifies(8, "ab", &cp));
        assert!(!public.verifies(7, "ac", &cp));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(SigningKey::load_or_create(&path).is_err());
    }
}
