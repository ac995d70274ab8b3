//! Signed reports: an Ed25519 signature over a report file's SHA-256, its format and signing
//! time, in a detached `ReportSignature` (JSON, written beside the report as `<file>.sig`).
//! The signature carries the signer's certificate, issued by the cluster CA and rotated by
//! the PKI, so [`verify`] needs only the CA certificate (or a pinned public key) — offline,
//! with no access to the cluster. Verification fails closed and says which check failed.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use x509_parser::prelude::{FromDer, X509Certificate};

/// The signed statement's prefix (domain separation: this key signs nothing else).
const CONTEXT: &str = "bulwark-posture-report/v1";

/// A detached report signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReportSignature {
    /// `posture.bulwark.dev/v1`.
    pub api_version: String,
    /// `ReportSignature`.
    pub kind: String,
    /// `Ed25519`.
    pub algorithm: String,
    /// The report's format (`sarif`).
    pub format: String,
    /// SHA-256 of the report file, hex.
    pub sha256: String,
    /// When it was signed (RFC 3339).
    pub signed_at: String,
    /// SHA-256 of the public key, hex (first 16 bytes).
    pub key_id: String,
    /// The public key, base64 (32 bytes).
    pub public_key: String,
    /// The signer's certificate (PEM), issued by the cluster CA.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub certificate: String,
    /// The signature, base64.
    pub signature: String,
}

/// Why a signature does not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// The signature file is not a ReportSignature.
    #[error("the signature file is malformed: {0}")]
    Malformed(String),
    /// The report's bytes are not the ones signed.
    #[error(
        "the report was changed after signing: its SHA-256 is {actual}, the signature is over {signed}"
    )]
    ContentChanged {
        /// The digest signed.
        signed: String,
        /// The digest of the file given.
        actual: String,
    },
    /// The Ed25519 signature does not match the statement.
    #[error(
        "the signature does not match the report's digest, format and time (the signature file was edited)"
    )]
    BadSignature,
    /// The signer is not the pinned key.
    #[error("the report was signed by key {key_id}, not the pinned public key")]
    WrongKey {
        /// The signer's key id.
        key_id: String,
    },
    /// The signer's certificate was not issued by the given CA.
    #[error("the signer's certificate was not issued by the given CA: {0}")]
    UntrustedSigner(String),
    /// The certificate was not valid when the report was signed.
    #[error("the signer's certificate was not valid at the signing time {signed_at}")]
    CertificateNotValid {
        /// The claimed signing time.
        signed_at: String,
    },
}

/// What a report can be verified against.
pub enum Trust<'a> {
    /// The cluster CA certificate (PEM): the signer's certificate must chain to it.
    Ca(&'a str),
    /// A pinned Ed25519 public key (32 bytes).
    PublicKey(&'a [u8]),
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

fn statement(format: &str, digest: &str, signed_at: &str) -> String {
    format!("{CONTEXT}\n{format}\n{digest}\n{signed_at}\n")
}

/// The key id of a public key.
pub fn key_id(public_key: &[u8]) -> String {
    sha256(public_key).chars().take(32).collect()
}

/// Signs `content` (a rendered report of `format`) at `signed_at`.
pub fn sign(
    content: &[u8],
    format: &str,
    signed_at: &str,
    key: &ring::signature::Ed25519KeyPair,
    certificate_pem: &str,
) -> ReportSignature {
    use ring::signature::KeyPair as _;
    let digest = sha256(content);
    let signature = key.sign(statement(format, &digest, signed_at).as_bytes());
    let public = key.public_key().as_ref();
    let b64 = base64::engine::general_purpose::STANDARD;
    ReportSignature {
        api_version: bulwark_api::posture::API_VERSION.to_owned(),
        kind: "ReportSignature".to_owned(),
        algorithm: "Ed25519".to_owned(),
        format: format.to_owned(),
        sha256: digest,
        signed_at: signed_at.to_owned(),
        key_id: key_id(public),
        public_key: b64.encode(public),
        certificate: certificate_pem.to_owned(),
        signature: b64.encode(signature.as_ref()),
    }
}

fn pem_der(pem: &str) -> Result<Vec<u8>, String> {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    if body.is_empty() {
        return Err("no PEM certificate".to_owned());
    }
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .map_err(|e| e.to_string())
}

/// Verifies `content` against `signature` and `trust`; on success, the signer's subject
/// (or key id).
pub fn verify(
    content: &[u8],
    signature: &ReportSignature,
    trust: &Trust<'_>,
) -> Result<String, VerifyError> {
    let malformed = |why: &str| VerifyError::Malformed(why.to_owned());
    if signature.kind != "ReportSignature" || signature.algorithm != "Ed25519" {
        return Err(malformed("not an Ed25519 ReportSignature"));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let public = b64
        .decode(&signature.public_key)
        .map_err(|_| malformed("publicKey is not base64"))?;
    let sig = b64
        .decode(&signature.signature)
        .map_err(|_| malformed("signature is not base64"))?;
    let actual = sha256(content);
    if actual != signature.sha256 {
        return Err(VerifyError::ContentChanged {
            signed: signature.sha256.clone(),
            actual,
        });
    }
    let key = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &public);
    key.verify(
        statement(&signature.format, &signature.sha256, &signature.signed_at).as_bytes(),
        &sig,
    )
    .map_err(|_| VerifyError::BadSignature)?;
    let signed_at = time::OffsetDateTime::parse(
        &signature.signed_at,
        &time::format_description::well_known::Rfc3339,
    )
    .map_err(|_| malformed("signedAt is not an RFC 3339 time"))?
    .unix_timestamp();
    match trust {
        Trust::PublicKey(pinned) => {
            // Public keys are not secret: a plain comparison is fine.
            if *pinned != public.as_slice() {
                return Err(VerifyError::WrongKey {
                    key_id: signature.key_id.clone(),
                });
            }
            Ok(format!("key {}", key_id(&public)))
        }
        Trust::Ca(ca_pem) => {
            let untrusted = |why: &str| VerifyError::UntrustedSigner(why.to_owned());
            let cert_der = pem_der(&signature.certificate)
                .map_err(|e| untrusted(&format!("certificate: {e}")))?;
            let ca_der = pem_der(ca_pem).map_err(|e| untrusted(&format!("CA: {e}")))?;
            let (_, cert) =
                X509Certificate::from_der(&cert_der).map_err(|e| untrusted(&e.to_string()))?;
            let (_, ca) =
                X509Certificate::from_der(&ca_der).map_err(|e| untrusted(&e.to_string()))?;
            cert.verify_signature(Some(ca.public_key()))
                .map_err(|_| untrusted("its signature does not verify with the CA's key"))?;
            if cert.issuer() != ca.subject() {
                return Err(untrusted("its issuer is not the CA's subject"));
            }
            if cert.public_key().subject_public_key.data.as_ref() != public.as_slice() {
                return Err(untrusted(
                    "the certificate is for another key than the one that signed",
                ));
            }
            let validity = cert.validity();
            if signed_at < validity.not_before.timestamp()
                || signed_at > validity.not_after.timestamp()
            {
                return Err(VerifyError::CertificateNotValid {
                    signed_at: signature.signed_at.clone(),
                });
            }
            Ok(cert.subject().to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_key_verifies_and_every_tampering_is_named() {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let key = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        use ring::signature::KeyPair as _;
        let public = key.public_key().as_ref().to_vec();
        let report = b"{\"kind\":\"PostureReport\"}";
        let sig = sign(report, "json", "2026-12-01T00:00:00Z", &key, "");
        assert!(verify(report, &sig, &Trust::PublicKey(&public)).is_ok());
        assert!(matches!(
            verify(
                b"{\"kind\":\"PostureReport\",\"x\":1}",
                &sig,
                &Trust::PublicKey(&public)
            ),
            Err(VerifyError::ContentChanged { .. })
        ));
        let mut later = sig.clone();
        later.signed_at = "2027-01-01T00:00:00Z".into();
        assert_eq!(
            verify(report, &later, &Trust::PublicKey(&public)),
            Err(VerifyError::BadSignature)
        );
        let other = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let other = ring::signature::Ed25519KeyPair::from_pkcs8(other.as_ref()).unwrap();
        assert!(matches!(
            verify(report, &sig, &Trust::PublicKey(other.public_key().as_ref())),
            Err(VerifyError::WrongKey { .. })
        ));
        let mut garbage = sig.clone();
        garbage.signature = "!!".into();
        assert!(matches!(
            verify(report, &garbage, &Trust::PublicKey(&public)),
            Err(VerifyError::Malformed(_))
        ));
    }
}
