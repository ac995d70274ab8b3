//! Document-signing identities under the PKI's rotation: an Ed25519 key (`<name>.key`, 0600)
//! and a certificate for it issued by the cluster CA (`<name>.crt`), renewed — a new key and
//! certificate — once a third of its lifetime is left. Signatures made with an old key stay
//! verifiable: each carries the certificate it was made under, checked against the CA at
//! its signing time.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::ca::CertificateAuthority;
use crate::identity::CertValidity;
use crate::{PkiError, SecretPem, files};

/// A signing key and its certificate.
#[derive(Debug, Clone)]
pub struct SigningIdentity {
    /// The private key (PKCS#8 PEM).
    pub key_pem: SecretPem,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The key file.
    pub key_path: PathBuf,
    /// The certificate file.
    pub cert_path: PathBuf,
}

/// How long a signing certificate is valid.
pub const SIGNING_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);

impl SigningIdentity {
    /// Loads `<dir>/<name>.key` and `.crt`, creating (or renewing, when a third of the
    /// lifetime or less is left, or the pair is unreadable) them from `ca`.
    pub fn load_or_renew(
        dir: &Path,
        name: &str,
        ca: &CertificateAuthority,
        common_name: &str,
        now: i64,
    ) -> Result<(Self, bool), PkiError> {
        let key_path = dir.join(format!("{name}.key"));
        let cert_path = dir.join(format!("{name}.crt"));
        if let (Ok(key_pem), Ok(cert_pem)) = (
            files::read_private(&key_path),
            files::read_public(&cert_path),
        ) {
            let due = CertValidity::from_pem(&cert_pem)
                .map(|v| {
                    let (start, end) =
                        (v.not_before.unix_timestamp(), v.not_after.unix_timestamp());
                    end.saturating_sub(now) < end.saturating_sub(start) / 3
                })
                .unwrap_or(true);
            if !due {
                return Ok((
                    Self {
                        key_pem,
                        cert_pem,
                        key_path,
                        cert_path,
                    },
                    false,
                ));
            }
        }
        files::ensure_private_dir(dir)?;
        let issued = ca.issue_signing(common_name, SIGNING_VALIDITY)?;
        files::write_private(&key_path, issued.key_pem.expose().as_bytes())?;
        files::write_public(&cert_path, issued.cert_pem.as_bytes())?;
        Ok((
            Self {
                key_pem: issued.key_pem,
                cert_pem: issued.cert_pem,
                key_path,
                cert_path,
            },
            true,
        ))
    }

    /// The key as PKCS#8 DER.
    pub fn key_der(&self) -> Result<Vec<u8>, PkiError> {
        let pem = self.key_pem.expose();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(body.trim())
            .map_err(|e| PkiError::Parse {
                what: "signing key",
                reason: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signing_identity_is_created_reused_and_renewed_when_due() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::generate("test-ca", Duration::from_secs(3600 * 24 * 365))
            .unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let (first, created) =
            SigningIdentity::load_or_renew(dir.path(), "posture-signing", &ca, "posture", now)
                .unwrap();
        assert!(created);
        let (again, created) =
            SigningIdentity::load_or_renew(dir.path(), "posture-signing", &ca, "posture", now)
                .unwrap();
        assert!(!created);
        assert_eq!(first.cert_pem, again.cert_pem);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&first.key_path)
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        // Two thirds of the way through its life it is renewed with a new key.
        let later = now + (SIGNING_VALIDITY.as_secs() as i64) * 2 / 3 + 3600;
        let (renewed, created) =
            SigningIdentity::load_or_renew(dir.path(), "posture-signing", &ca, "posture", later)
                .unwrap();
        assert!(created);
        assert_ne!(renewed.cert_pem, first.cert_pem);
        assert!(ring::signature::Ed25519KeyPair::from_pkcs8(&renewed.key_der().unwrap()).is_ok());
    }
}
