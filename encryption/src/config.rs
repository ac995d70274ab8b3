//! Upstream's `EncryptionConfiguration` (`apiserver.config.k8s.io/v1`, the file of
//! `--encryption-provider-config`), read as upstream reads it: per rule, the first provider
//! writes and every provider reads; providers `kms` (API v2 only), `aesgcm`, `aescbc`,
//! `secretbox` and `identity`. A `kms` provider named in several rules is one provider.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;

use crate::envelope::{EnvelopeProvider, SeedLimits};
use crate::kms::grpc::{KmsPluginClient, socket_path};
use crate::resources::{
    IdentityProvider, ProviderChain, ResourceMatch, ResourceTransformers, StorageProvider,
};
use crate::static_keys::{StaticKeyProvider, StaticKind};

/// The KMS call deadline when a provider sets none (upstream's default).
pub const DEFAULT_KMS_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a configuration was refused. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not YAML or JSON of the expected shape.
    #[error("not an EncryptionConfiguration: {0}")]
    Parse(String),
    /// Well-formed but not acceptable.
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct File {
    api_version: String,
    kind: String,
    #[serde(default)]
    resources: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Rule {
    resources: Vec<String>,
    providers: Vec<Provider>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Provider {
    kms: Option<Kms>,
    aesgcm: Option<Keys>,
    aescbc: Option<Keys>,
    secretbox: Option<Keys>,
    identity: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Kms {
    #[serde(default)]
    api_version: Option<String>,
    name: String,
    endpoint: String,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    cachesize: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    keys: Vec<Key>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Key {
    name: String,
    secret: String,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A loaded configuration: the transformers and the KMS providers it starts.
#[derive(Debug)]
pub struct Loaded {
    /// The resource rules.
    pub transformers: ResourceTransformers,
    /// Every `kms` provider, by name.
    pub kms: BTreeMap<String, Arc<EnvelopeProvider>>,
}

/// A Go duration as upstream writes timeouts (`3s`, `500ms`, `1m30s`).
fn go_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let (number, tail) = rest.split_at(digits);
        let n: u64 = number.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        total += match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "h" => Duration::from_secs(n.checked_mul(3600)?),
            _ => return None,
        };
        rest = next;
    }
    Some(total)
}

/// Parses and builds a configuration. `kms` providers connect lazily, so a plugin that is
/// not up yet does not stop the server (writes fail until it is).
pub fn load(text: &str) -> Result<Loaded, ConfigError> {
    let file: File =
        serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
    let invalid = |m: String| ConfigError::Invalid(m);
    if file.api_version != "apiserver.config.k8s.io/v1" || file.kind != "EncryptionConfiguration" {
        return Err(invalid(format!(
            "expected apiVersion apiserver.config.k8s.io/v1, kind EncryptionConfiguration; got {}, {}",
            file.api_version, file.kind
        )));
    }
    let mut kms: BTreeMap<String, Arc<EnvelopeProvider>> = BTreeMap::new();
    let mut transformers = ResourceTransformers::new();
    let mut seen_resources = std::collections::BTreeSet::new();
    for (i, rule) in file.resources.into_iter().enumerate() {
        if rule.resources.is_empty() || rule.providers.is_empty() {
            return Err(invalid(format!(
                "resources[{i}]: needs at least one resource and one provider"
            )));
        }
        let mut chain: Vec<Arc<dyn StorageProvider>> = Vec::new();
        for (j, provider) in rule.providers.into_iter().enumerate() {
            let at = format!("resources[{i}].providers[{j}]");
            let set = [
                provider.kms.is_some(),
                provider.aesgcm.is_some(),
                provider.aescbc.is_some(),
                provider.secretbox.is_some(),
                provider.identity.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if set != 1 {
                return Err(invalid(format!(
                    "{at}: exactly one provider type per entry"
                )));
            }
            if let Some(k) = provider.kms {
                chain.push(kms_provider(&at, k, &mut kms)?);
            } else if provider.identity.is_some() {
                chain.push(Arc::new(IdentityProvider));
            } else {
                let (kind, keys) = match (provider.aesgcm, provider.aescbc, provider.secretbox) {
                    (Some(k), _, _) => (StaticKind::Aesgcm, k),
                    (_, Some(k), _) => (StaticKind::Aescbc, k),
                    (_, _, Some(k)) => (StaticKind::Secretbox, k),
                    _ => return Err(invalid(format!("{at}: no provider"))),
                };
                if keys.keys.is_empty() {
                    return Err(invalid(format!(
                        "{at}: {} needs at least one key",
                        kind.name()
                    )));
                }
                for key in keys.keys {
                    let bytes = zeroize::Zeroizing::new(
                        base64::engine::general_purpose::STANDARD
                            .decode(key.secret.trim())
                            .map_err(|_| {
                                invalid(format!("{at}: key {:?}: secret is not base64", key.name))
                            })?,
                    );
                    let provider = StaticKeyProvider::new(kind, &key.name, &bytes)
                        .map_err(|e| invalid(format!("{at}: {e}")))?;
                    chain.push(Arc::new(provider));
                }
            }
        }
        let chain = ProviderChain::new(chain)
            .ok_or_else(|| invalid(format!("resources[{i}]: no provider")))?;
        for name in rule.resources {
            let matcher =
                ResourceMatch::parse(&name).map_err(|e| invalid(format!("resources[{i}]: {e}")))?;
            if !seen_resources.insert(name.clone()) {
                return Err(invalid(format!(
                    "resources[{i}]: {name:?} is named by an earlier rule"
                )));
            }
            transformers = transformers.rule(matcher, chain.clone());
        }
    }
    Ok(Loaded { transformers, kms })
}

fn kms_provider(
    at: &str,
    k: Kms,
    kms: &mut BTreeMap<String, Arc<EnvelopeProvider>>,
) -> Result<Arc<dyn StorageProvider>, ConfigError> {
    let invalid = |m: String| ConfigError::Invalid(m);
    match k.api_version.as_deref() {
        Some("v2") => {}
        Some("v1") | None => {
            return Err(invalid(format!(
                "{at}: KMS v1 is not supported (upstream deprecated and disabled it); use apiVersion: v2"
            )));
        }
        Some(other) => return Err(invalid(format!("{at}: unknown KMS apiVersion {other:?}"))),
    }
    if k.cachesize.is_some() {
        return Err(invalid(format!(
            "{at}: cachesize is a KMS v1 setting; v2 caches seeds itself"
        )));
    }
    if k.name.is_empty() || k.name.contains(':') {
        return Err(invalid(format!(
            "{at}: a KMS provider name is non-empty and has no ':'"
        )));
    }
    if let Some(existing) = kms.get(&k.name) {
        return Ok(Arc::clone(existing) as Arc<dyn StorageProvider>);
    }
    let timeout = match k.timeout.as_deref() {
        None => DEFAULT_KMS_TIMEOUT,
        Some(t) => go_duration(t)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| invalid(format!("{at}: timeout {t:?} is not a duration like 3s")))?,
    };
    let socket = socket_path(&k.endpoint).map_err(|e| invalid(format!("{at}: {e}")))?;
    let client =
        KmsPluginClient::new(&socket, timeout).map_err(|e| invalid(format!("{at}: {e}")))?;
    let envelope = Arc::new(EnvelopeProvider::new(
        &k.name,
        Arc::new(client),
        SeedLimits::default(),
    ));
    kms.insert(k.name, Arc::clone(&envelope));
    Ok(envelope)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ValueTransformer;
    use bytes::Bytes;

    const SECRET32: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    #[test]
    fn durations_read_as_go() {
        assert_eq!(go_duration("3s"), Some(Duration::from_secs(3)));
        assert_eq!(go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(go_duration("3"), None);
        assert_eq!(go_duration(""), None);
    }

    #[tokio::test]
    async fn an_upstream_file_writes_with_the_first_and_reads_any() {
        let yaml = format!(
            r#"
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets, configmaps]
    providers:
      - aesgcm:
          keys: [{{name: key1, secret: "{key}"}}]
      - aescbc:
          keys: [{{name: old, secret: "{key}"}}]
      - identity: {{}}
  - resources: ["*.apps"]
    providers:
      - secretbox:
          keys: [{{name: sb, secret: "{key}"}}]
"#,
            key = SECRET32
        );
        let loaded = load(&yaml).unwrap();
        let t = &loaded.transformers;
        let secret = "/registry/core/secrets/a/b";
        let stored = t.stored_form(secret, b"{}").await.unwrap();
        assert!(stored.starts_with(b"k8s:enc:aesgcm:v1:key1:"));
        // A value the second provider wrote reads.
        let old = crate::static_keys::StaticKeyProvider::new(
            StaticKind::Aescbc,
            "old",
            &base64::engine::general_purpose::STANDARD
                .decode(SECRET32)
                .unwrap(),
        )
        .unwrap();
        let older = old.seal(secret, b"{\"old\":1}").await.unwrap();
        assert_eq!(
            t.plain_form(secret, Bytes::from(older)).await.unwrap(),
            &b"{\"old\":1}"[..]
        );
        // Identity is in the chain: plaintext reads.
        assert!(
            t.plain_form(secret, Bytes::from_static(b"{}"))
                .await
                .is_ok()
        );
        let d = t
            .stored_form("/registry/apps/deployments/a/b", b"{}")
            .await
            .unwrap();
        assert!(d.starts_with(b"k8s:enc:secretbox:v1:sb:"));
        let pod = t
            .stored_form("/registry/core/pods/a/b", b"{}")
            .await
            .unwrap();
        assert_eq!(pod, b"{}");
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let cases = [
            ("kind: Nope\napiVersion: v1\n", "expected apiVersion"),
            (
                "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - kms: {name: k, endpoint: unix:///x}\n",
                "KMS v1 is not supported",
            ),
            (
                "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - aesgcm: {keys: [{name: k, secret: \"AAAA\"}]}\n",
                "must be 16 or 32 bytes",
            ),
            (
                "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - kms: {apiVersion: v2, name: k, endpoint: \"tcp://1.2.3.4:1\"}\n",
                "not unix://",
            ),
            (
                "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers: []\n",
                "at least one",
            ),
            (
                "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers: [{identity: {}}]\n- resources: [secrets]\n  providers: [{identity: {}}]\n",
                "named by an earlier rule",
            ),
            ("{", "not an EncryptionConfiguration"),
        ];
        for (text, needle) in cases {
            let err = load(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{needle:?} not in {err:?}");
            assert!(!err.contains("AAAA"));
        }
    }
}
