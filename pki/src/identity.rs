//! Reading what a certificate says: the identity of a client certificate (CN = user,
//! O = groups, as upstream) and the validity window and SANs that renewal decisions need.

use std::net::IpAddr;

use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use crate::PkiError;

/// Who a verified client certificate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    /// Subject CN.
    pub user: String,
    /// Subject O entries, in order.
    pub groups: Vec<String>,
    /// Lowercase hex SHA-256 of the certificate DER (for audit and policy context).
    pub fingerprint: String,
}

fn parse_err(what: &'static str) -> impl FnOnce(String) -> PkiError {
    move |reason| PkiError::Parse { what, reason }
}

/// The DER of the first certificate in a PEM bundle.
pub fn first_cert_der(pem: &str) -> Result<Vec<u8>, PkiError> {
    let mut reader = pem.as_bytes();
    match rustls_pemfile::certs(&mut reader).next() {
        Some(Ok(der)) => Ok(der.as_ref().to_vec()),
        Some(Err(e)) => Err(parse_err("certificate PEM")(e.to_string())),
        None => Err(parse_err("certificate PEM")("no certificate found".into())),
    }
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, PkiError> {
    X509Certificate::from_der(der)
        .map(|(_, cert)| cert)
        .map_err(|e| parse_err("certificate")(e.to_string()))
}

impl CertIdentity {
    /// The identity of a DER certificate (already verified by the TLS layer).
    pub fn from_der(der: &[u8]) -> Result<Self, PkiError> {
        let cert = parse(der)?;
        let subject = cert.subject();
        let user = subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| parse_err("certificate")("subject has no common name".into()))?;
        let groups = subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok().map(str::to_owned))
            .collect();
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let fingerprint = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self {
            user,
            groups,
            fingerprint,
        })
    }

    /// The identity of the first certificate in a PEM bundle.
    pub fn from_pem(pem: &str) -> Result<Self, PkiError> {
        Self::from_der(&first_cert_der(pem)?)
    }
}

/// When a certificate is valid and which names it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertValidity {
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// DNS names and IP addresses, as strings, in certificate order.
    pub sans: Vec<String>,
}

impl CertValidity {
    /// Reads the first certificate in a PEM bundle.
    pub fn from_pem(pem: &str) -> Result<Self, PkiError> {
        let der = first_cert_der(pem)?;
        let cert = parse(&der)?;
        let validity = cert.validity();
        let mut sans = Vec::new();
        if let Ok(Some(ext)) = cert.subject_alternative_name() {
            for name in &ext.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => sans.push((*dns).to_owned()),
                    GeneralName::IPAddress(bytes) => {
                        let ip = match bytes.len() {
                            4 => <[u8; 4]>::try_from(*bytes).ok().map(IpAddr::from),
                            16 => <[u8; 16]>::try_from(*bytes).ok().map(IpAddr::from),
                            _ => None,
                        };
                        if let Some(ip) = ip {
                            sans.push(ip.to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(Self {
            not_before: validity.not_before.to_datetime(),
            not_after: validity.not_after.to_datetime(),
            sans,
        })
    }

    /// True once less than a third of the lifetime is left (the usual renewal point).
    pub fn needs_renewal(&self, now: OffsetDateTime) -> bool {
        let lifetime = self.not_after - self.not_before;
        self.not_after - now < lifetime / 3
    }
}
