//! A certificate authority that issues server and client leaf certificates (ECDSA P-256).

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType, SerialNumber,
};
use time::OffsetDateTime;

use crate::{PkiError, SecretPem};

/// Certificates start this far in the past, so a peer with a slightly slow clock accepts them.
const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// What a leaf certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// TLS server authentication (the apiserver's serving certificate).
    Server,
    /// TLS client authentication (users, components, nodes).
    Client,
}

/// A leaf certificate request.
#[derive(Debug, Clone)]
pub struct LeafSpec {
    /// Subject CN: the user name for client certs.
    pub common_name: String,
    /// Subject O entries: the groups for client certs (one attribute per group).
    pub organizations: Vec<String>,
    /// DNS names and IP addresses (server certs).
    pub sans: Vec<String>,
    /// Server or client.
    pub usage: Usage,
    /// How long the certificate is valid.
    pub validity: Duration,
}

/// A freshly issued certificate and its private key.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key (PKCS#8), PEM.
    pub key_pem: SecretPem,
}

/// The cluster CA: its certificate and signing key.
pub struct CertificateAuthority {
    cert_pem: String,
    key: KeyPair,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

fn random_serial() -> Result<SerialNumber, PkiError> {
    Ok(SerialNumber::from_slice(
        &crate::client_cert::random_serial()?,
    ))
}

fn validity_window(params: &mut CertificateParams, validity: Duration) -> Result<(), PkiError> {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now
        .checked_add(
            time::Duration::try_from(validity)
                .map_err(|_| PkiError::InvalidRequest("validity period is too long".into()))?,
        )
        .ok_or_else(|| PkiError::InvalidRequest("validity period is too long".into()))?;
    Ok(())
}

impl CertificateAuthority {
    /// Creates a new self-signed CA with a fresh P-256 key.
    pub fn generate(common_name: &str, validity: Duration) -> Result<Self, PkiError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(random_serial()?);
        validity_window(&mut params, validity)?;
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            key,
        })
    }

    /// Loads a CA from its certificate and key PEM.
    pub fn from_pem(cert_pem: &str, key_pem: &SecretPem) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(key_pem.expose())?;
        // Parse once now so a broken CA certificate fails at load, not at first issuance.
        Issuer::from_ca_cert_pem(cert_pem, &key)?;
        Ok(Self {
            cert_pem: cert_pem.to_owned(),
            key,
        })
    }

    /// The CA certificate, PEM (the trust bundle clients need).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key, PEM.
    pub fn key_pem(&self) -> SecretPem {
        SecretPem::new(self.key.serialize_pem())
    }

    /// Issues a leaf certificate with a fresh P-256 key.
    pub fn issue(&self, spec: &LeafSpec) -> Result<IssuedCert, PkiError> {
        if spec.common_name.is_empty() {
            return Err(PkiError::InvalidRequest(
                "common name must not be empty".into(),
            ));
        }
        if spec.usage == Usage::Client {
            if !spec.sans.is_empty() {
                return Err(PkiError::InvalidRequest(
                    "client certificates carry no SANs".into(),
                ));
            }
            let ca_der = crate::identity::first_cert_der(&self.cert_pem)?;
            return crate::client_cert::issue(
                &ca_der,
                self.key.serialized_der(),
                &spec.common_name,
                &spec.organizations,
                spec.validity,
                &crate::client_cert::random_serial()?,
            );
        }
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(spec.sans.clone())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, spec.common_name.as_str());
        for org in &spec.organizations {
            dn.push(DnType::OrganizationName, org.as_str());
        }
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial()?);
        if spec.usage == Usage::Client && !params.subject_alt_names.is_empty() {
            return Err(PkiError::InvalidRequest(
                "client certificates carry no SANs".into(),
            ));
        }
        if spec.usage == Usage::Server
            && !params
                .subject_alt_names
                .iter()
                .any(|s| matches!(s, SanType::DnsName(_) | SanType::IpAddress(_)))
        {
            return Err(PkiError::InvalidRequest(
                "server certificates need a SAN".into(),
            ));
        }
        validity_window(&mut params, spec.validity)?;
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, &self.key)?;
        let cert = params.signed_by(&key, &issuer)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: SecretPem::new(key.serialize_pem()),
        })
    }
}

impl CertificateAuthority {
    /// Issues a document-signing certificate for a fresh Ed25519 key (key usage
    /// digitalSignature and contentCommitment, no TLS purpose): what signs posture reports,
    /// verifiable offline against this CA.
    pub fn issue_signing(
        &self,
        common_name: &str,
        validity: Duration,
    ) -> Result<IssuedCert, PkiError> {
        if common_name.is_empty() {
            return Err(PkiError::InvalidRequest(
                "common name must not be empty".into(),
            ));
        }
        let key = KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::ContentCommitment,
        ];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial()?);
        validity_window(&mut params, validity)?;
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, &self.key)?;
        let cert = params.signed_by(&key, &issuer)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: SecretPem::new(key.serialize_pem()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{CertIdentity, CertValidity};

    fn key_ids(pem: &str) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        use x509_parser::extensions::ParsedExtension;
        use x509_parser::prelude::FromDer;
        let der = crate::identity::first_cert_der(pem).unwrap();
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&der).unwrap();
        let (mut ski, mut aki) = (None, None);
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => ski = Some(id.0.to_vec()),
                ParsedExtension::AuthorityKeyIdentifier(a) => {
                    aki = a.key_identifier.as_ref().map(|k| k.0.to_vec());
                }
                _ => {}
            }
        }
        (ski, aki)
    }

    /// Every leaf names its CA by the CA's own subject key identifier (client certificates
    /// did not, so `openssl verify -CAfile ca.crt` could not find their issuer).
    #[test]
    fn leaves_carry_the_cas_key_identifier() {
        let ca = CertificateAuthority::generate("test-ca", Duration::from_secs(3600)).unwrap();
        let (ca_ski, _) = key_ids(ca.cert_pem());
        let ca_ski = ca_ski.expect("the CA has a subject key identifier");
        for (usage, sans) in [
            (Usage::Client, vec![]),
            (Usage::Server, vec!["localhost".to_owned()]),
        ] {
            let leaf = ca
                .issue(&LeafSpec {
                    common_name: "x".into(),
                    organizations: vec!["g".into()],
                    sans,
                    usage,
                    validity: Duration::from_secs(600),
                })
                .unwrap();
            let (ski, aki) = key_ids(&leaf.cert_pem);
            assert_eq!(aki.as_deref(), Some(ca_ski.as_slice()), "{usage:?}");
            assert!(ski.is_some_and(|s| s != ca_ski), "{usage:?}");
        }
    }

    #[test]
    fn issues_client_and_server_certs() {
        let ca = CertificateAuthority::generate("test-ca", Duration::from_secs(3600)).unwrap();
        let client = ca
            .issue(&LeafSpec {
                common_name: "alice".into(),
                organizations: vec![
                    "dev".into(),
                    "ops".into(),
                    "system:authenticated-extra".into(),
                ],
                sans: vec![],
                usage: Usage::Client,
                validity: Duration::from_secs(600),
            })
            .unwrap();
        let id = CertIdentity::from_pem(&client.cert_pem).unwrap();
        assert_eq!(id.user, "alice");
        assert_eq!(id.groups, ["dev", "ops", "system:authenticated-extra"]);
        assert_eq!(id.fingerprint.len(), 64);
        let validity = CertValidity::from_pem(&client.cert_pem).unwrap();
        assert!(validity.not_after > validity.not_before);

        let server = ca
            .issue(&LeafSpec {
                common_name: "apiserver".into(),
                organizations: vec![],
                sans: vec!["localhost".into(), "127.0.0.1".into()],
                usage: Usage::Server,
                validity: Duration::from_secs(600),
            })
            .unwrap();
        let v = CertValidity::from_pem(&server.cert_pem).unwrap();
        assert_eq!(v.sans, ["localhost", "127.0.0.1"]);
        assert!(format!("{:?}", server.key_pem).contains("redacted"));

        let reloaded = CertificateAuthority::from_pem(ca.cert_pem(), &ca.key_pem()).unwrap();
        let two_groups = LeafSpec {
            common_name: "bob".into(),
            organizations: vec!["a".into(), "b".into()],
            sans: vec![],
            usage: Usage::Client,
            validity: Duration::from_secs(1),
        };
        let two = CertIdentity::from_pem(&reloaded.issue(&two_groups).unwrap().cert_pem).unwrap();
        assert_eq!(two.groups, ["a", "b"]);
        assert!(
            reloaded
                .issue(&LeafSpec {
                    common_name: String::new(),
                    organizations: vec![],
                    sans: vec![],
                    usage: Usage::Client,
                    validity: Duration::from_secs(1),
                })
                .is_err()
        );
    }
}
