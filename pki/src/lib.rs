//! Bulwark's PKI: the cluster CA, certificate issuance and parsing, kubeconfigs, and rustls
//! configs whose certificates can be swapped while the server runs.
//!
//! Decisions (DESIGN.md "Crypto"): ECDSA P-256 keys, issued with rcgen and parsed with
//! x509-parser; rustls with the ring provider only, TLS 1.2 and 1.3; private keys live in
//! [`SecretPem`] (redacted `Debug`, zeroized on drop) and are written `0600` into `0700`
//! directories, atomically and fsynced. Key files that other users can read are refused.
//!
//! - [`ca`]: a certificate authority that issues server and client leaf certificates.
//! - [`bootstrap`]: the files `bulwark server` creates on first start and reuses later.
//! - [`identity`]: user and groups (CN and O) of a client certificate, and validity windows.
//! - [`tls`]: the hot-swappable serving certificate and the server/client TLS configs.
//! - [`kubeconfig`]: kubeconfig files with embedded credentials.
//! - [`signing`]: Ed25519 document-signing keys with CA-issued certificates, renewed in turn.
//! - [`files`]: private-file hygiene shared by all of the above.

pub mod bootstrap;
pub mod ca;
mod client_cert;
pub mod files;
pub mod identity;
pub mod kubeconfig;
pub mod signing;
pub mod tls;

pub use bootstrap::{ADMIN_GROUP, BootstrapOptions, ClusterPki};
pub use ca::{CertificateAuthority, IssuedCert, LeafSpec, Usage};
pub use identity::{CertIdentity, CertValidity};
pub use tls::ReloadableCert;

use std::fmt;
use std::path::PathBuf;

use zeroize::Zeroizing;

/// Why a PKI operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A private key file can be read by users other than its owner.
    #[error(
        "{path}: private key file has mode {mode:o}; it must not be readable by group or others (chmod 600)"
    )]
    InsecurePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// rcgen could not build or sign a certificate.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// A PEM or DER input does not parse.
    #[error("invalid {what}: {reason}")]
    Parse {
        /// What was being parsed.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// rustls rejected a configuration.
    #[error("tls configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The client verifier could not be built from the CA bundle.
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// A requested name cannot go into a certificate.
    #[error("invalid certificate request: {0}")]
    InvalidRequest(String),
    /// A kubeconfig does not parse, or names what it does not define.
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
}

/// PEM text of a private key: never printed, zeroized when dropped.
#[derive(Clone)]
pub struct SecretPem(Zeroizing<String>);

impl SecretPem {
    /// Wraps PEM text.
    pub fn new(pem: String) -> Self {
        Self(Zeroizing::new(pem))
    }

    /// The PEM text, for writing to a 0600 file or a kubeconfig.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretPem(<redacted>)")
    }
}
