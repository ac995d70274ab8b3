//! The local KEK holder: 32-byte keys in files under the data directory (directory 0700,
//! files 0600, written with fsync and an atomic rename), a keyring file naming the primary
//! key, and retirement that destroys a key's file. Key bytes are zeroized in memory and
//! never printed. It answers as a KMS v2 plugin would ([`KeyService`]), so the envelope does
//! not know which holder it has.
//!
//! Meant for single-server clusters: every server of a shared (FoundationDB) store needs
//! the same keys, which is what a KMS plugin is for.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::aead::SecretKey;
use crate::kms::{KeyService, KmsError, KmsStatus, Wrapped};

/// The keyring file's name.
const KEYRING_FILE: &str = "keyring.json";

/// Why the keyring could not be opened or changed.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// Which file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The keyring file is not what this version writes.
    #[error("{path}: not a keyring: {reason}")]
    Corrupt {
        /// Which file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A key file is missing or has the wrong length.
    #[error("key {id}: {reason}")]
    BadKey {
        /// Which key.
        id: String,
        /// Why.
        reason: String,
    },
    /// The request does not fit the keyring's state (retiring the primary key, say).
    #[error("{0}")]
    Refused(String),
    /// No randomness.
    #[error("the system random number generator failed")]
    Random,
}

/// One key as the keyring file records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyInfo {
    /// The key id stored next to every DEK it wraps.
    pub id: String,
    /// When it was created (RFC 3339).
    pub created: String,
    /// When it was retired and its file destroyed (RFC 3339), if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyringFile {
    version: u32,
    primary: String,
    keys: Vec<KeyInfo>,
}

#[derive(Debug)]
struct Keys {
    file: KeyringFile,
    material: BTreeMap<String, SecretKey>,
}

/// Local key encryption keys.
#[derive(Debug)]
pub struct LocalKeyring {
    dir: PathBuf,
    keys: RwLock<Keys>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyringError + '_ {
    move |source| KeyringError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn now() -> String {
    OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Writes `bytes` to `path` durably: a 0600 temporary file, fsync, rename, fsync of the
/// directory.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), KeyringError> {
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(io(&tmp))?;
    file.write_all(bytes).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io(path))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    Ok(())
}

impl LocalKeyring {
    /// Opens the keyring in `dir`, creating the directory (0700) and a first key when there
    /// is none.
    pub fn open_or_create(dir: &Path) -> Result<Self, KeyringError> {
        let path = dir.join(KEYRING_FILE);
        if !path.exists() {
            // Missing parents are created private too (DIR/encryption holds only keys).
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(io(dir))?;
            }
            #[cfg(not(unix))]
            std::fs::create_dir_all(dir).map_err(io(dir))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                    .map_err(io(dir))?;
            }
            let ring = Self {
                dir: dir.to_path_buf(),
                keys: RwLock::new(Keys {
                    file: KeyringFile {
                        version: 1,
                        primary: String::new(),
                        keys: Vec::new(),
                    },
                    material: BTreeMap::new(),
                }),
            };
            ring.rotate()?;
            return Ok(ring);
        }
        let text = std::fs::read(&path).map_err(io(&path))?;
        let file: KeyringFile =
            serde_json::from_slice(&text).map_err(|e| KeyringError::Corrupt {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if file.version != 1 {
            return Err(KeyringError::Corrupt {
                path,
                reason: format!("version {} is not 1", file.version),
            });
        }
        let mut material = BTreeMap::new();
        for key in file.keys.iter().filter(|k| k.retired.is_none()) {
            let key_path = key_file(dir, &key.id)?;
            let bytes = zeroize::Zeroizing::new(std::fs::read(&key_path).map_err(io(&key_path))?);
            let secret = SecretKey::from_slice(&bytes).map_err(|_| KeyringError::BadKey {
                id: key.id.clone(),
                reason: "the key file is not 32 bytes".into(),
            })?;
            material.insert(key.id.clone(), secret);
        }
        if !material.contains_key(&file.primary) {
            return Err(KeyringError::BadKey {
                id: file.primary.clone(),
                reason: "the primary key is missing or retired".into(),
            });
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            keys: RwLock::new(Keys { file, material }),
        })
    }

    /// Every key the keyring has had, oldest first.
    pub fn keys(&self) -> Vec<KeyInfo> {
        self.read().file.keys.clone()
    }

    /// The id of the key new DEKs are wrapped with.
    pub fn primary(&self) -> String {
        self.read().file.primary.clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Keys> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Keys> {
        self.keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Creates a key and makes it the primary one: its file first, then the keyring that
    /// names it, so a crash in between leaves the old primary in force. Returns its id.
    pub fn rotate(&self) -> Result<String, KeyringError> {
        let mut keys = self.write();
        let random = uuid::Uuid::new_v4().simple().to_string();
        let id = format!(
            "local-{}-{}",
            OffsetDateTime::now_utc().unix_timestamp(),
            random.get(..8).unwrap_or_default()
        );
        let secret = SecretKey::generate().map_err(|_| KeyringError::Random)?;
        write_durably(&key_file(&self.dir, &id)?, secret.expose())?;
        let mut file = keys.file.clone();
        file.keys.push(KeyInfo {
            id: id.clone(),
            created: now(),
            retired: None,
        });
        file.primary = id.clone();
        self.save(&file)?;
        keys.file = file;
        keys.material.insert(id.clone(), secret);
        Ok(id)
    }

    /// Retires a key: no DEK it wrapped can be read afterwards, so the caller first proves
    /// nothing uses it. The primary key cannot be retired.
    pub fn retire(&self, id: &str) -> Result<(), KeyringError> {
        let mut keys = self.write();
        if keys.file.primary == id {
            return Err(KeyringError::Refused(format!(
                "key {id} is the primary key; rotate first"
            )));
        }
        let mut file = keys.file.clone();
        let Some(info) = file
            .keys
            .iter_mut()
            .find(|k| k.id == id && k.retired.is_none())
        else {
            return Err(KeyringError::Refused(format!("no live key {id}")));
        };
        info.retired = Some(now());
        self.save(&file)?;
        keys.file = file;
        keys.material.remove(id);
        let path = key_file(&self.dir, id)?;
        // Overwrite the key's blocks in place before unlinking (best effort: journaling and
        // copy-on-write file systems may keep old blocks; the KMS is the answer there).
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        file.write_all(&[0u8; crate::aead::KEY_LEN])
            .and_then(|()| file.sync_all())
            .map_err(io(&path))?;
        drop(file);
        std::fs::remove_file(&path).map_err(io(&path))?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io(dir))?;
        }
        Ok(())
    }

    fn save(&self, file: &KeyringFile) -> Result<(), KeyringError> {
        let path = self.dir.join(KEYRING_FILE);
        let bytes = serde_json::to_vec_pretty(file).map_err(|e| KeyringError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        write_durably(&path, &bytes)
    }

    fn key(&self, id: &str) -> Option<SecretKey> {
        self.read().material.get(id).cloned()
    }
}

/// The file of key `id` (ids are generated here; anything else is refused).
fn key_file(dir: &Path, id: &str) -> Result<PathBuf, KeyringError> {
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(KeyringError::BadKey {
            id: id.to_owned(),
            reason: "not a key id this keyring writes".into(),
        });
    }
    Ok(dir.join(format!("{id}.key")))
}

/// Associated data of a wrapped seed: which keyring key wrapped it.
fn wrap_aad(id: &str) -> Vec<u8> {
    [b"bulwark-local-kek:".as_slice(), id.as_bytes()].concat()
}

impl KeyService for LocalKeyring {
    fn status(&self) -> BoxFuture<'_, Result<KmsStatus, KmsError>> {
        Box::pin(std::future::ready(Ok(KmsStatus {
            version: "v2".into(),
            healthz: "ok".into(),
            key_id: self.primary(),
        })))
    }

    fn encrypt<'a>(
        &'a self,
        _uid: &'a str,
        plaintext: &'a [u8],
    ) -> BoxFuture<'a, Result<Wrapped, KmsError>> {
        let id = self.primary();
        let answer = match self.key(&id) {
            Some(kek) => kek
                .seal(&wrap_aad(&id), plaintext)
                .map(|ciphertext| Wrapped {
                    ciphertext,
                    key_id: id,
                    annotations: BTreeMap::new(),
                })
                .map_err(|e| KmsError::Refused(e.to_string())),
            None => Err(KmsError::Unavailable(format!(
                "primary key {id} is missing"
            ))),
        };
        Box::pin(std::future::ready(answer))
    }

    fn decrypt<'a>(
        &'a self,
        _uid: &'a str,
        wrapped: &'a Wrapped,
    ) -> BoxFuture<'a, Result<Vec<u8>, KmsError>> {
        let answer = match self.key(&wrapped.key_id) {
            Some(kek) => kek
                .open(&wrap_aad(&wrapped.key_id), &wrapped.ciphertext)
                .map_err(|e| KmsError::Refused(e.to_string())),
            None => Err(KmsError::Refused(format!(
                "key {:?} is unknown or retired",
                wrapped.key_id
            ))),
        };
        Box::pin(std::future::ready(answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_persist_rotate_and_retire() {
        let dir = tempfile::tempdir().unwrap();
        let ring_dir = dir.path().join("keys");
        let ring = LocalKeyring::open_or_create(&ring_dir).unwrap();
        let first = ring.primary();
        let wrapped = ring.encrypt("u", b"seed").await.unwrap();
        assert_eq!(wrapped.key_id, first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&ring_dir), 0o700);
            assert_eq!(mode(&ring_dir.join(format!("{first}.key"))), 0o600);
            assert_eq!(mode(&ring_dir.join(KEYRING_FILE)), 0o600);
        }
        let second = ring.rotate().unwrap();
        assert_ne!(first, second);
        drop(ring);

        let ring = LocalKeyring::open_or_create(&ring_dir).unwrap();
        assert_eq!(ring.primary(), second);
        assert_eq!(ring.decrypt("u", &wrapped).await.unwrap(), b"seed");
        assert!(matches!(
            ring.retire(&second),
            Err(KeyringError::Refused(_))
        ));
        ring.retire(&first).unwrap();
        assert!(!ring_dir.join(format!("{first}.key")).exists());
        assert!(matches!(
            ring.decrypt("u", &wrapped).await,
            Err(KmsError::Refused(_))
        ));
        drop(ring);
        let ring = LocalKeyring::open_or_create(&ring_dir).unwrap();
        assert_eq!(ring.keys().len(), 2);
        assert!(ring.keys()[0].retired.is_some());
    }

    #[test]
    fn a_broken_keyring_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let ring = LocalKeyring::open_or_create(dir.path()).unwrap();
        let primary = ring.primary();
        drop(ring);
        std::fs::write(dir.path().join(format!("{primary}.key")), b"short").unwrap();
        assert!(matches!(
            LocalKeyring::open_or_create(dir.path()),
            Err(KeyringError::BadKey { .. })
        ));
        std::fs::write(dir.path().join(KEYRING_FILE), b"{").unwrap();
        assert!(matches!(
            LocalKeyring::open_or_create(dir.path()),
            Err(KeyringError::Corrupt { .. })
        ));
    }
}
