//! rustls configurations: TLS 1.2+ with the ring provider only, a serving certificate that can
//! be swapped while connections are being accepted, and client-certificate verification
//! against the cluster CA (optional at the TLS layer so bearer tokens still work; the
//! apiserver rejects requests that carry neither).

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::{PkiError, SecretPem, files};

/// The only crypto provider Bulwark uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// TLS 1.3 and 1.2; nothing older is ever negotiated.
const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

fn parse_err(what: &'static str, reason: impl ToString) -> PkiError {
    PkiError::Parse {
        what,
        reason: reason.to_string(),
    }
}

/// All certificates in a PEM bundle.
pub fn certs_from_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| parse_err("certificate PEM", e))?;
    if certs.is_empty() {
        return Err(parse_err("certificate PEM", "no certificate found"));
    }
    Ok(certs)
}

/// The private key in a PEM text.
pub fn key_from_pem(pem: &SecretPem) -> Result<PrivateKeyDer<'static>, PkiError> {
    rustls_pemfile::private_key(&mut pem.expose().as_bytes())
        .map_err(|e| parse_err("private key PEM", e))?
        .ok_or_else(|| parse_err("private key PEM", "no private key found"))
}

/// A root store holding every certificate of a PEM bundle.
pub fn roots_from_pem(pem: &str) -> Result<RootCertStore, PkiError> {
    let mut roots = RootCertStore::empty();
    for cert in certs_from_pem(pem)? {
        roots.add(cert)?;
    }
    Ok(roots)
}

fn certified_key(cert_pem: &str, key_pem: &SecretPem) -> Result<CertifiedKey, PkiError> {
    let chain = certs_from_pem(cert_pem)?;
    let key = rustls::crypto::ring::sign::any_supported_type(&key_from_pem(key_pem)?)?;
    let certified = CertifiedKey::new(chain, key);
    // Refuses a key that does not belong to the certificate.
    certified.keys_match()?;
    Ok(certified)
}

/// The serving certificate, swappable at any time: new handshakes use the new one, open
/// connections keep theirs. Rotation therefore never needs a restart.
#[derive(Debug)]
pub struct ReloadableCert {
    current: ArcSwap<CertifiedKey>,
}

impl ReloadableCert {
    /// Starts with a certificate chain and key.
    pub fn new(cert_pem: &str, key_pem: &SecretPem) -> Result<Self, PkiError> {
        Ok(Self {
            current: ArcSwap::from_pointee(certified_key(cert_pem, key_pem)?),
        })
    }

    /// Loads from a certificate file and a `0600` key file.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, PkiError> {
        Self::new(
            &files::read_public(cert_path)?,
            &files::read_private(key_path)?,
        )
    }

    /// Replaces the certificate; a bad pair leaves the current one in place.
    pub fn replace(&self, cert_pem: &str, key_pem: &SecretPem) -> Result<(), PkiError> {
        self.current
            .store(Arc::new(certified_key(cert_pem, key_pem)?));
        Ok(())
    }

    /// The leaf certificate now being served, DER.
    pub fn current_leaf(&self) -> Option<CertificateDer<'static>> {
        self.current.load().cert.first().cloned()
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The apiserver's TLS config: TLS 1.2+, HTTP/2 and HTTP/1.1 by ALPN, the swappable serving
/// certificate, and client certificates verified against `client_ca_pem` when offered.
pub fn server_config(
    cert: Arc<ReloadableCert>,
    client_ca_pem: &str,
) -> Result<ServerConfig, PkiError> {
    let roots = Arc::new(roots_from_pem(client_ca_pem)?);
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
        .allow_unauthenticated()
        .build()?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// What a server config offers: protocol versions (`TLSv1.3`) and cipher suites (IANA
/// names), as the posture scanner reports them.
pub fn offered(config: &ServerConfig) -> (Vec<String>, Vec<String>) {
    let suites = &config.crypto_provider().cipher_suites;
    let versions = VERSIONS
        .iter()
        .filter(|v| suites.iter().any(|s| s.version() == **v))
        .map(|v| format!("{:?}", v.version).replace('_', "."))
        .collect();
    let names = suites.iter().map(|s| format!("{:?}", s.suite())).collect();
    (versions, names)
}

/// A client config trusting `ca_pem`, optionally presenting a client certificate; ALPN offers
/// HTTP/2 first. Used by Bulwark's own clients (tests, benchmarks, components).
pub fn client_config(
    ca_pem: &str,
    client: Option<(&str, &SecretPem)>,
) -> Result<ClientConfig, PkiError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)?
        .with_root_certificates(roots_from_pem(ca_pem)?);
    let mut config = match client {
        Some((cert_pem, key_pem)) => {
            builder.with_client_auth_cert(certs_from_pem(cert_pem)?, key_from_pem(key_pem)?)?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
