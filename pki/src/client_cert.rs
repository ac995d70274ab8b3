//! Client certificates with any number of groups.
//!
//! Kubernetes reads a client certificate's groups from its subject O attributes, one group
//! per attribute. rcgen keeps one attribute per type, so client certificates are built with
//! RustCrypto's `x509-cert` builder instead, and signed by the CA key through ring (the only
//! signing code, as for every other certificate). The profile is a plain TLS client leaf:
//! not a CA, key usage digitalSignature, extended key usage clientAuth, key identifiers. The
//! authority key identifier is the CA certificate's own subject key identifier, copied from
//! it (x509-cert's leaf profile derives one from the CA key by another method than the one
//! the CA was made with, and chain builders such as `openssl verify` then fail to find the
//! issuer).

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use p256::ecdsa::{DerSignature, VerifyingKey};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use x509_cert::Certificate;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::der::asn1::{Any, SetOfVec, Utf8StringRef};
use x509_cert::der::oid::db::{rfc4519, rfc5280};
use x509_cert::der::referenced::OwnedToRef;
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectKeyIdentifier,
};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{
    AlgorithmIdentifier, SignatureAlgorithmIdentifier, SubjectPublicKeyInfoOwned,
};
use x509_cert::time::{Time, Validity};

use crate::{PkiError, SecretPem};

/// Certificates start this far in the past, so a peer with a slightly slow clock accepts them.
const BACKDATE: Duration = Duration::from_secs(5 * 60);

fn err(what: &'static str) -> impl FnOnce(String) -> PkiError {
    move |reason| PkiError::Parse { what, reason }
}

/// The CA key as an x509-cert signer that signs with ring.
struct RingSigner {
    key: EcdsaKeyPair,
    verifying: VerifyingKey,
    rng: SystemRandom,
}

impl signature::Keypair for RingSigner {
    type VerifyingKey = VerifyingKey;
    fn verifying_key(&self) -> VerifyingKey {
        self.verifying
    }
}

impl SignatureAlgorithmIdentifier for RingSigner {
    type Params = <VerifyingKey as SignatureAlgorithmIdentifier>::Params;
    const SIGNATURE_ALGORITHM_IDENTIFIER: AlgorithmIdentifier<Self::Params> =
        <VerifyingKey as SignatureAlgorithmIdentifier>::SIGNATURE_ALGORITHM_IDENTIFIER;
}

impl signature::Signer<DerSignature> for RingSigner {
    fn try_sign(&self, msg: &[u8]) -> Result<DerSignature, signature::Error> {
        let sig = self
            .key
            .sign(&self.rng, msg)
            .map_err(|_| signature::Error::new())?;
        DerSignature::from_bytes(sig.as_ref())
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn rdn(
    oid: x509_cert::der::oid::ObjectIdentifier,
    value: &str,
) -> Result<RelativeDistinguishedName, PkiError> {
    let value = Any::from(Utf8StringRef::new(value).map_err(|e| err("subject")(e.to_string()))?);
    let set = SetOfVec::try_from(vec![AttributeTypeAndValue { oid, value }])
        .map_err(|e| err("subject")(e.to_string()))?;
    Ok(RelativeDistinguishedName(set))
}

fn verifying_key(key: &EcdsaKeyPair) -> Result<VerifyingKey, PkiError> {
    VerifyingKey::from_sec1_bytes(key.public_key().as_ref())
        .map_err(|e| err("public key")(e.to_string()))
}

/// Issues a client certificate: CN = `user`, one O per group, signed by the CA.
pub(crate) fn issue(
    ca_cert_der: &[u8],
    ca_key_pkcs8: &[u8],
    user: &str,
    groups: &[String],
    validity: Duration,
    serial: &[u8],
) -> Result<crate::IssuedCert, PkiError> {
    let rng = SystemRandom::new();
    let ca_key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, ca_key_pkcs8, &rng)
        .map_err(|e| err("CA key")(e.to_string()))?;
    let signer = RingSigner {
        verifying: verifying_key(&ca_key)?,
        key: ca_key,
        rng: rng.clone(),
    };
    let ca =
        Certificate::from_der(ca_cert_der).map_err(|e| err("CA certificate")(e.to_string()))?;
    let issuer: Name = ca.tbs_certificate.subject.clone();

    let leaf_pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|e| err("new key")(e.to_string()))?;
    let leaf = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, leaf_pkcs8.as_ref(), &rng)
        .map_err(|e| err("new key")(e.to_string()))?;
    let spki = SubjectPublicKeyInfoOwned::from_key(verifying_key(&leaf)?)
        .map_err(|e| err("public key")(e.to_string()))?;

    let mut subject = vec![rdn(rfc4519::CN, user)?];
    for group in groups {
        subject.push(rdn(rfc4519::O, group)?);
    }
    let now = SystemTime::now();
    let not_after = now
        .checked_add(validity)
        .ok_or_else(|| PkiError::InvalidRequest("validity period is too long".into()))?;
    let to_time = |t: SystemTime| Time::try_from(t).map_err(|e| err("validity")(e.to_string()));
    let validity = Validity {
        not_before: to_time(now - BACKDATE)?,
        not_after: to_time(not_after)?,
    };
    let serial = SerialNumber::new(serial).map_err(|e| err("serial")(e.to_string()))?;
    let authority_key_id = match ca_key_identifier(&ca)? {
        Some(id) => AuthorityKeyIdentifier {
            key_identifier: Some(id),
            authority_cert_issuer: None,
            authority_cert_serial_number: None,
        },
        None => AuthorityKeyIdentifier::try_from(
            ca.tbs_certificate.subject_public_key_info.owned_to_ref(),
        )
        .map_err(|e| err("CA key identifier")(e.to_string()))?,
    };
    let subject_key_id = SubjectKeyIdentifier::try_from(spki.owned_to_ref())
        .map_err(|e| err("key identifier")(e.to_string()))?;
    let profile = Profile::Manual {
        issuer: Some(issuer),
    };
    let mut builder = CertificateBuilder::new(
        profile,
        serial,
        validity,
        RdnSequence(subject),
        spki,
        &signer,
    )
    .map_err(|e| err("certificate")(e.to_string()))?;
    let extension = |e: x509_cert::builder::Error| err("certificate")(e.to_string());
    builder.add_extension(&subject_key_id).map_err(extension)?;
    builder
        .add_extension(&authority_key_id)
        .map_err(extension)?;
    builder
        .add_extension(&BasicConstraints {
            ca: false,
            path_len_constraint: None,
        })
        .map_err(extension)?;
    builder
        .add_extension(&KeyUsage(KeyUsages::DigitalSignature.into()))
        .map_err(extension)?;
    builder
        .add_extension(&ExtendedKeyUsage(vec![rfc5280::ID_KP_CLIENT_AUTH]))
        .map_err(extension)?;
    let cert = builder
        .build::<DerSignature>()
        .map_err(|e| err("certificate")(e.to_string()))?;
    let der = cert
        .to_der()
        .map_err(|e| err("certificate")(e.to_string()))?;
    Ok(crate::IssuedCert {
        cert_pem: pem("CERTIFICATE", &der),
        key_pem: SecretPem::new(pem("PRIVATE KEY", leaf_pkcs8.as_ref())),
    })
}

/// The subject key identifier of a CA certificate, if it has one.
fn ca_key_identifier(
    ca: &Certificate,
) -> Result<Option<x509_cert::der::asn1::OctetString>, PkiError> {
    let Some(extensions) = &ca.tbs_certificate.extensions else {
        return Ok(None);
    };
    let Some(ski) = extensions
        .iter()
        .find(|e| e.extn_id == rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER)
    else {
        return Ok(None);
    };
    let id = SubjectKeyIdentifier::from_der(ski.extn_value.as_bytes())
        .map_err(|e| err("CA key identifier")(e.to_string()))?;
    Ok(Some(id.0))
}

/// 16 random bytes for a serial number: positive, no leading zero byte (RFC 5280).
pub(crate) fn random_serial() -> Result<[u8; 16], PkiError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| PkiError::InvalidRequest("system random source failed".into()))?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(bytes)
}
