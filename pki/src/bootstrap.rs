//! What `bulwark server` creates in its data directory on first start, and reuses (renewing
//! what is due) on every later start:
//!
//! ```text
//! DIR/                    0700
//!   admin.kubeconfig      0600  bootstrap admin (group system:masters), embedded credentials
//!   pki/                  0700
//!     ca.crt  ca.key      cluster CA, ECDSA P-256, 10 years          (key 0600)
//!     apiserver.crt/.key  serving cert, 90 days, renewed at 1/3 left  (key 0600)
//!     admin.crt/.key      bootstrap admin client cert, 1 year         (key 0600)
//!     sa.key  sa.pub      service-account token signing key, P-256    (key 0600)
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};
use time::OffsetDateTime;

use crate::ca::{CertificateAuthority, LeafSpec, Usage};
use crate::identity::CertValidity;
use crate::kubeconfig::Kubeconfig;
use crate::tls::ReloadableCert;
use crate::{PkiError, SecretPem, files};

/// The group whose members the bootstrap authorizer allows everything (upstream's name).
pub const ADMIN_GROUP: &str = "system:masters";
/// The bootstrap admin's user name.
pub const ADMIN_USER: &str = "bulwark-admin";
/// The cluster's name in kubeconfigs.
pub const CLUSTER_NAME: &str = "bulwark";

const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
const SERVING_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);
const ADMIN_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

/// Inputs to bootstrap that come from flags.
#[derive(Debug, Clone)]
pub struct BootstrapOptions {
    /// Extra SANs for the serving certificate (`--san`), added to [`default_sans`].
    pub extra_sans: Vec<String>,
    /// The URL kubeconfigs point at, e.g. `https://127.0.0.1:6443`.
    pub server_url: String,
}

/// The SANs every serving certificate carries: localhost, loopback addresses, the hostname.
pub fn default_sans() -> Vec<String> {
    let mut sans = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let host = host.trim();
        if !host.is_empty() && !sans.iter().any(|s| s == host) {
            sans.push(host.to_owned());
        }
    }
    sans
}

/// The cluster's credentials, loaded or created.
#[derive(Debug)]
pub struct ClusterPki {
    data_dir: PathBuf,
    ca: CertificateAuthority,
    serving: Arc<ReloadableCert>,
    serving_sans: Vec<String>,
    sa_key: SecretPem,
    sa_public_pem: String,
    created: Vec<&'static str>,
}

/// Paths inside the data directory.
fn pki_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("pki")
}

/// Where the bootstrap admin kubeconfig is written.
pub fn admin_kubeconfig_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.kubeconfig")
}

/// Loads the cluster CA of a data directory (for issuing user certificates offline).
pub fn load_ca(data_dir: &Path) -> Result<CertificateAuthority, PkiError> {
    let dir = pki_dir(data_dir);
    CertificateAuthority::from_pem(
        &files::read_public(&dir.join("ca.crt"))?,
        &files::read_private(&dir.join("ca.key"))?,
    )
}

/// Issues a client certificate for `user` in `groups` and renders a kubeconfig for it.
pub fn user_kubeconfig(
    ca: &CertificateAuthority,
    server_url: &str,
    user: &str,
    groups: &[String],
    ttl: Duration,
) -> Result<SecretPem, PkiError> {
    let issued = ca.issue(&LeafSpec {
        common_name: user.to_owned(),
        organizations: groups.to_vec(),
        sans: Vec::new(),
        usage: Usage::Client,
        validity: ttl,
    })?;
    Ok(Kubeconfig {
        cluster: CLUSTER_NAME,
        server: server_url,
        ca_pem: ca.cert_pem(),
        user,
        client_cert_pem: &issued.cert_pem,
        client_key_pem: &issued.key_pem,
    }
    .render())
}

fn exists(path: &Path) -> bool {
    path.try_exists().unwrap_or(false)
}

impl ClusterPki {
    /// Loads the credentials in `data_dir`, creating whatever is missing and renewing the
    /// serving and admin certificates when due (or when the serving SANs changed).
    pub fn load_or_bootstrap(
        data_dir: &Path,
        options: &BootstrapOptions,
    ) -> Result<Self, PkiError> {
        files::ensure_private_dir(data_dir)?;
        let dir = pki_dir(data_dir);
        files::ensure_private_dir(&dir)?;
        let mut created = Vec::new();

        let (ca_crt, ca_key) = (dir.join("ca.crt"), dir.join("ca.key"));
        let ca = if exists(&ca_crt) {
            load_ca(data_dir)?
        } else {
            let ca = CertificateAuthority::generate("bulwark-ca", CA_VALIDITY)?;
            files::write_private(&ca_key, ca.key_pem().expose().as_bytes())?;
            files::write_public(&ca_crt, ca.cert_pem().as_bytes())?;
            created.push("cluster CA");
            ca
        };

        let (sa_key_path, sa_pub_path) = (dir.join("sa.key"), dir.join("sa.pub"));
        if !exists(&sa_key_path) {
            let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
            files::write_private(&sa_key_path, key.serialize_pem().as_bytes())?;
            files::write_public(&sa_pub_path, key.public_key_pem().as_bytes())?;
            created.push("service-account signing key");
        }
        let sa_key = files::read_private(&sa_key_path)?;
        let sa_public_pem = files::read_public(&sa_pub_path)?;

        let mut sans = default_sans();
        for san in &options.extra_sans {
            if !sans.contains(san) {
                sans.push(san.clone());
            }
        }
        let (srv_crt, srv_key) = (dir.join("apiserver.crt"), dir.join("apiserver.key"));
        let current = if exists(&srv_crt) {
            Some(CertValidity::from_pem(&files::read_public(&srv_crt)?)?)
        } else {
            None
        };
        let now = OffsetDateTime::now_utc();
        if current
            .as_ref()
            .is_none_or(|v| v.needs_renewal(now) || v.sans != sans)
        {
            let issued = issue_serving(&ca, &sans)?;
            files::write_private(&srv_key, issued.key_pem.expose().as_bytes())?;
            files::write_public(&srv_crt, issued.cert_pem.as_bytes())?;
            created.push("apiserver serving certificate");
        }
        let serving = Arc::new(ReloadableCert::load(&srv_crt, &srv_key)?);

        let (admin_crt, admin_key) = (dir.join("admin.crt"), dir.join("admin.key"));
        let admin_due = if exists(&admin_crt) && exists(&admin_key) {
            CertValidity::from_pem(&files::read_public(&admin_crt)?)?.needs_renewal(now)
        } else {
            true
        };
        if admin_due {
            let issued = ca.issue(&LeafSpec {
                common_name: ADMIN_USER.to_owned(),
                organizations: vec![ADMIN_GROUP.to_owned()],
                sans: Vec::new(),
                usage: Usage::Client,
                validity: ADMIN_VALIDITY,
            })?;
            files::write_private(&admin_key, issued.key_pem.expose().as_bytes())?;
            files::write_public(&admin_crt, issued.cert_pem.as_bytes())?;
            created.push("admin client certificate");
        }
        // Always re-rendered: the server URL may have changed with --listen.
        let kubeconfig = Kubeconfig {
            cluster: CLUSTER_NAME,
            server: &options.server_url,
            ca_pem: ca.cert_pem(),
            user: ADMIN_USER,
            client_cert_pem: &files::read_public(&admin_crt)?,
            client_key_pem: &files::read_private(&admin_key)?,
        }
        .render();
        files::write_private(
            &admin_kubeconfig_path(data_dir),
            kubeconfig.expose().as_bytes(),
        )?;

        Ok(Self {
            data_dir: data_dir.to_owned(),
            ca,
            serving,
            serving_sans: sans,
            sa_key,
            sa_public_pem,
            created,
        })
    }

    /// What this start created or renewed (for the startup log).
    pub fn created(&self) -> &[&'static str] {
        &self.created
    }

    /// The cluster CA.
    pub fn ca(&self) -> &CertificateAuthority {
        &self.ca
    }

    /// The swappable serving certificate the TLS config resolves through.
    pub fn serving(&self) -> Arc<ReloadableCert> {
        Arc::clone(&self.serving)
    }

    /// The service-account token signing key (PKCS#8 PEM, P-256).
    pub fn sa_signing_key(&self) -> &SecretPem {
        &self.sa_key
    }

    /// The service-account token verification key (SPKI PEM).
    pub fn sa_public_pem(&self) -> &str {
        &self.sa_public_pem
    }

    /// Renews the serving certificate if a third or less of its life is left: writes the new
    /// pair and swaps it into the running TLS config. Returns whether it renewed.
    pub fn renew_serving_if_due(&self) -> Result<bool, PkiError> {
        let dir = pki_dir(&self.data_dir);
        let current = CertValidity::from_pem(&files::read_public(&dir.join("apiserver.crt"))?)?;
        if !current.needs_renewal(OffsetDateTime::now_utc()) {
            return Ok(false);
        }
        self.rotate_serving()?;
        Ok(true)
    }

    /// Reloads the serving certificate and key from disk (an operator replaced them) and swaps
    /// them in; a broken pair is refused and the current one stays.
    pub fn reload_serving_from_disk(&self) -> Result<(), PkiError> {
        let dir = pki_dir(&self.data_dir);
        let cert = files::read_public(&dir.join("apiserver.crt"))?;
        let key = files::read_private(&dir.join("apiserver.key"))?;
        self.serving.replace(&cert, &key)?;
        tracing::info!("reloaded the apiserver serving certificate from disk");
        Ok(())
    }

    /// Issues a new serving certificate now, persists it and swaps it in without a restart.
    pub fn rotate_serving(&self) -> Result<(), PkiError> {
        let dir = pki_dir(&self.data_dir);
        let issued = issue_serving(&self.ca, &self.serving_sans)?;
        // Swap first: if the new pair is unusable, nothing on disk changes either.
        self.serving.replace(&issued.cert_pem, &issued.key_pem)?;
        files::write_private(
            &dir.join("apiserver.key"),
            issued.key_pem.expose().as_bytes(),
        )?;
        files::write_public(&dir.join("apiserver.crt"), issued.cert_pem.as_bytes())?;
        tracing::info!("rotated the apiserver serving certificate");
        Ok(())
    }
}

fn issue_serving(
    ca: &CertificateAuthority,
    sans: &[String],
) -> Result<crate::ca::IssuedCert, PkiError> {
    ca.issue(&LeafSpec {
        common_name: "bulwark-apiserver".to_owned(),
        organizations: Vec::new(),
        sans: sans.to_vec(),
        usage: Usage::Server,
        validity: SERVING_VALIDITY,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn bootstrap_then_reuse() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let opts = BootstrapOptions {
            extra_sans: vec!["api.example.test".into()],
            server_url: "https://127.0.0.1:6443".into(),
        };
        let first = ClusterPki::load_or_bootstrap(&data, &opts).unwrap();
        assert_eq!(first.created().len(), 4);
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("pki")), 0o700);
        for key in ["ca.key", "apiserver.key", "admin.key", "sa.key"] {
            assert_eq!(mode(&data.join("pki").join(key)), 0o600, "{key}");
        }
        assert_eq!(mode(&admin_kubeconfig_path(&data)), 0o600);
        let served = first.serving().current_leaf().unwrap();
        let sans =
            CertValidity::from_pem(&files::read_public(&data.join("pki/apiserver.crt")).unwrap())
                .unwrap()
                .sans;
        assert!(sans.contains(&"api.example.test".to_owned()));
        assert!(sans.contains(&"127.0.0.1".to_owned()));

        let second = ClusterPki::load_or_bootstrap(&data, &opts).unwrap();
        assert!(second.created().is_empty(), "{:?}", second.created());
        assert_eq!(second.serving().current_leaf().unwrap(), served);
        assert_eq!(second.ca().cert_pem(), first.ca().cert_pem());

        second.rotate_serving().unwrap();
        assert_ne!(second.serving().current_leaf().unwrap(), served);

        let more = BootstrapOptions {
            extra_sans: vec!["other.example.test".into()],
            ..opts
        };
        let third = ClusterPki::load_or_bootstrap(&data, &more).unwrap();
        assert_eq!(third.created(), ["apiserver serving certificate"]);
    }
}
