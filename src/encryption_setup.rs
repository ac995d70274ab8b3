//! Encryption at rest for `bulwark server`: Bulwark's default (Secrets envelope-encrypted
//! under a local key created at the first start) or an upstream `EncryptionConfiguration`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bulwark_apiserver::encryption::Encryption;
use bulwark_encryption::envelope::{EnvelopeProvider, SeedLimits};
use bulwark_encryption::local::LocalKeyring;
use bulwark_encryption::resources::{ResourceMatch, ResourceTransformers};

/// The name of Bulwark's own envelope provider (part of every value it stores: fixed).
pub(crate) const LOCAL_PROVIDER: &str = "bulwark-local";

/// How often providers are asked for their status (upstream polls KMS plugins each minute).
pub(crate) const STATUS_POLL: Duration = Duration::from_secs(60);

/// The keyring directory under the data directory.
pub(crate) fn keyring_dir(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("encryption").join("local")
}

/// Bulwark's own configuration: `resources` (upstream's names: `secrets`, `configmaps`,
/// `cedarpolicies.policy.bulwark.dev`, `*.apps` …) written under the local keyring, created
/// on first use. Secrets are always among them.
pub(crate) fn default_encryption(
    data_dir: &Path,
    resources: &[String],
) -> anyhow::Result<Encryption> {
    let mut matchers = vec![ResourceMatch::exact("", "secrets")];
    for name in resources {
        matchers.push(
            ResourceMatch::parse(name).with_context(|| format!("--encrypt-resource {name}"))?,
        );
    }
    let dir = keyring_dir(data_dir);
    // Private even where an older release created it 0755.
    if data_dir.join("encryption").exists() {
        bulwark_pki::files::ensure_private_dir(&data_dir.join("encryption"))?;
    }
    let keyring = Arc::new(
        LocalKeyring::open_or_create(&dir)
            .with_context(|| format!("opening the encryption keyring in {}", dir.display()))?,
    );
    let envelope = Arc::new(EnvelopeProvider::new(
        LOCAL_PROVIDER,
        Arc::clone(&keyring) as Arc<dyn bulwark_encryption::kms::KeyService>,
        SeedLimits::default(),
    ));
    Ok(Encryption::new(
        ResourceTransformers::with_envelope(envelope, &matchers),
        Some((LOCAL_PROVIDER.to_owned(), keyring)),
        if resources.is_empty() {
            "built-in default: secrets encrypted with the local keyring".to_owned()
        } else {
            format!(
                "built-in: secrets, {} encrypted with the local keyring",
                resources.join(", ")
            )
        },
    ))
}

/// An upstream `EncryptionConfiguration` file (it holds keys: it must not be readable by
/// group or others).
pub(crate) fn from_config_file(path: &Path) -> anyhow::Result<Encryption> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .with_context(|| format!("reading {}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            anyhow::bail!(
                "{}: mode {:o} lets group or others read the keys it holds; chmod 600 it",
                path.display(),
                mode & 0o777
            );
        }
    }
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
    );
    let loaded = bulwark_encryption::config::load(&text)
        .with_context(|| format!("loading {}", path.display()))?;
    Ok(Encryption::new(
        loaded.transformers,
        None,
        format!("EncryptionConfiguration {}", path.display()),
    ))
}
