//! Which resources are encrypted, and with what: rules from resource names (upstream's
//! `resources[].resources`: `secrets`, `deployments.apps`, `*.apps`, `*.`, `*.*`) to provider
//! chains. The first provider of a chain writes; every configured provider reads the values
//! that carry its prefix; plaintext reads only where the chain holds `identity`.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::envelope::EnvelopeProvider;
use crate::transformer::{TransformError, ValueTransformer, is_encrypted};

/// One way of storing values.
pub trait StorageProvider: std::fmt::Debug + Send + Sync {
    /// Its name (in a config and in status).
    fn name(&self) -> &str;
    /// The prefix of the values it writes (empty for identity).
    fn prefix(&self) -> &[u8];
    /// The stored form of `plain` under `key`.
    fn seal<'a>(
        &'a self,
        key: &'a str,
        plain: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, TransformError>>;
    /// The plaintext of `stored` (which starts with [`StorageProvider::prefix`]).
    fn open<'a>(
        &'a self,
        key: &'a str,
        stored: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, TransformError>>;
    /// The envelope provider it is, if it is one (status and rotation need its key service).
    fn envelope(&self) -> Option<&EnvelopeProvider> {
        None
    }
}

impl StorageProvider for EnvelopeProvider {
    fn name(&self) -> &str {
        EnvelopeProvider::name(self)
    }

    fn prefix(&self) -> &[u8] {
        EnvelopeProvider::prefix(self)
    }

    fn seal<'a>(
        &'a self,
        key: &'a str,
        plain: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, TransformError>> {
        Box::pin(EnvelopeProvider::seal(self, key, plain))
    }

    fn open<'a>(
        &'a self,
        key: &'a str,
        stored: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, TransformError>> {
        Box::pin(EnvelopeProvider::open(self, key, stored))
    }

    fn envelope(&self) -> Option<&EnvelopeProvider> {
        Some(self)
    }
}

/// Stores values as they are (upstream's `identity`): in a chain, it lets plaintext values
/// be read (a cluster from before encryption); first, it writes plaintext.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdentityProvider;

impl StorageProvider for IdentityProvider {
    fn name(&self) -> &str {
        "identity"
    }

    fn prefix(&self) -> &[u8] {
        b""
    }

    fn seal<'a>(
        &'a self,
        _key: &'a str,
        plain: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, TransformError>> {
        Box::pin(std::future::ready(Ok(plain.to_vec())))
    }

    fn open<'a>(
        &'a self,
        _key: &'a str,
        stored: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, TransformError>> {
        Box::pin(std::future::ready(Ok(stored.to_vec())))
    }
}

/// Why a resource name is not one a rule can hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("resource {name:?}: {reason}")]
pub struct BadResourceName {
    /// The name.
    pub name: String,
    /// Why.
    pub reason: &'static str,
}

/// What a rule matches: a resource (plural) in a group, either part possibly any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceMatch {
    group: Option<String>,
    resource: Option<String>,
}

impl ResourceMatch {
    /// Upstream's forms: `secrets` (core), `deployments.apps`, `*.apps` (every resource of
    /// a group), `*.` (every core resource), `*.*` (everything).
    pub fn parse(name: &str) -> Result<Self, BadResourceName> {
        let bad = |reason| BadResourceName {
            name: name.to_owned(),
            reason,
        };
        if name.is_empty() {
            return Err(bad("empty"));
        }
        if name == "*" {
            return Err(bad("use *. for every core resource or *.* for everything"));
        }
        let (resource, group) = match name.split_once('.') {
            None => (name, ""),
            Some((resource, group)) => (resource, group),
        };
        let resource = match resource {
            "*" => None,
            r if r
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !r.is_empty() =>
            {
                Some(r.to_owned())
            }
            _ => return Err(bad("not a resource name or *")),
        };
        let group = match group {
            "*" => None,
            g if g.contains('*') => return Err(bad("a group is a name, or * alone")),
            g => Some(g.to_owned()),
        };
        if resource.is_none() && group.is_none() && name != "*.*" {
            return Err(bad("not a resource name or *"));
        }
        Ok(Self { group, resource })
    }

    /// One resource of one group (`""` for core).
    pub fn exact(group: &str, resource: &str) -> Self {
        Self {
            group: Some(group.to_owned()),
            resource: Some(resource.to_owned()),
        }
    }

    /// Whether it matches `resource` of `group`.
    pub fn matches(&self, group: &str, resource: &str) -> bool {
        self.group.as_deref().is_none_or(|g| g == group)
            && self.resource.as_deref().is_none_or(|r| r == resource)
    }
}

/// The providers of one rule, in order: the first writes.
#[derive(Debug, Clone)]
pub struct ProviderChain {
    providers: Vec<Arc<dyn StorageProvider>>,
}

impl ProviderChain {
    /// A chain of `providers` (at least one).
    pub fn new(providers: Vec<Arc<dyn StorageProvider>>) -> Option<Self> {
        (!providers.is_empty()).then_some(Self { providers })
    }

    /// The provider that writes.
    pub fn writer(&self) -> Option<&Arc<dyn StorageProvider>> {
        self.providers.first()
    }

    /// Every provider, the writer first.
    pub fn providers(&self) -> &[Arc<dyn StorageProvider>] {
        &self.providers
    }

    /// Whether plaintext values are readable (the chain holds identity).
    pub fn reads_plaintext(&self) -> bool {
        self.providers.iter().any(|p| p.prefix().is_empty())
    }

    /// Whether values are written in plaintext (identity first).
    pub fn writes_plaintext(&self) -> bool {
        self.writer().is_some_and(|p| p.prefix().is_empty())
    }
}

/// The group and resource of a store key (`/registry/<group|core>/<plural>/…`).
pub fn key_resource(key: &str) -> Option<(&str, &str)> {
    let mut parts = key.strip_prefix("/registry/")?.splitn(3, '/');
    let group = parts.next()?;
    let resource = parts.next()?;
    Some((if group == "core" { "" } else { group }, resource))
}

/// The transformer of every stored value: the first rule matching a key's resource decides.
#[derive(Debug, Clone, Default)]
pub struct ResourceTransformers {
    rules: Vec<(ResourceMatch, Arc<ProviderChain>)>,
    readers: Vec<Arc<dyn StorageProvider>>,
}

impl ResourceTransformers {
    /// No rules: everything stored as it is.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a rule (earlier rules win, as upstream).
    pub fn rule(mut self, matcher: ResourceMatch, chain: ProviderChain) -> Self {
        for provider in chain.providers() {
            if !provider.prefix().is_empty()
                && !self.readers.iter().any(|r| r.prefix() == provider.prefix())
            {
                self.readers.push(Arc::clone(provider));
            }
        }
        self.rules.push((matcher, Arc::new(chain)));
        self
    }

    /// Bulwark's default: Secrets written with `envelope`, plaintext ones (from before
    /// encryption) still readable until they are rewritten.
    pub fn bulwark_default(envelope: Arc<EnvelopeProvider>) -> Self {
        Self::with_envelope(envelope, &[ResourceMatch::exact("", "secrets")])
    }

    /// `resources` written with `envelope` (Bulwark's own configuration: the local keyring
    /// for Secrets and whatever else the operator names), plaintext still readable.
    pub fn with_envelope(envelope: Arc<EnvelopeProvider>, resources: &[ResourceMatch]) -> Self {
        let chain = ProviderChain {
            providers: vec![envelope, Arc::new(IdentityProvider)],
        };
        resources
            .iter()
            .fold(Self::new(), |t, m| t.rule(m.clone(), chain.clone()))
    }

    /// The chain for `resource` of `group`, if a rule matches.
    pub fn chain_for(&self, group: &str, resource: &str) -> Option<&ProviderChain> {
        self.rules
            .iter()
            .find(|(m, _)| m.matches(group, resource))
            .map(|(_, chain)| chain.as_ref())
    }

    /// Whether `resource` of `group` is written encrypted.
    pub fn encrypts(&self, group: &str, resource: &str) -> bool {
        self.chain_for(group, resource)
            .is_some_and(|c| !c.writes_plaintext())
    }

    /// Every provider that reads encrypted values.
    pub fn readers(&self) -> &[Arc<dyn StorageProvider>] {
        &self.readers
    }

    /// Whether a plaintext value of `resource` of `group` reads back as it is: unless the
    /// rule for it has no identity. One rule for single values and for a list's prefix.
    fn reads_plaintext(&self, group: &str, resource: &str) -> bool {
        self.chain_for(group, resource)
            .is_none_or(ProviderChain::reads_plaintext)
    }

    fn chain_for_key(&self, key: &str) -> Option<&ProviderChain> {
        let (group, resource) = key_resource(key)?;
        self.chain_for(group, resource)
    }
}

/// The printable start of a stored value's prefix, for error messages (never its body).
fn prefix_text(stored: &[u8]) -> String {
    let end = stored
        .iter()
        .take(96)
        .rposition(|b| *b == b':')
        .map_or(0, |i| i + 1);
    String::from_utf8_lossy(stored.get(..end).unwrap_or_default()).into_owned()
}

impl ValueTransformer for ResourceTransformers {
    fn stored_form<'a>(
        &'a self,
        key: &'a str,
        plain: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, TransformError>> {
        Box::pin(async move {
            match self.chain_for_key(key).and_then(ProviderChain::writer) {
                Some(writer) => writer.seal(key, plain).await,
                None => Ok(plain.to_vec()),
            }
        })
    }

    fn plain_form<'a>(
        &'a self,
        key: &'a str,
        stored: Bytes,
    ) -> BoxFuture<'a, Result<Bytes, TransformError>> {
        Box::pin(async move {
            if is_encrypted(&stored) {
                let reader = self
                    .readers
                    .iter()
                    .find(|r| stored.starts_with(r.prefix()))
                    .ok_or_else(|| TransformError::Unreadable {
                        key: key.to_owned(),
                        reason: format!(
                            "no configured provider reads values with prefix {:?}",
                            prefix_text(&stored)
                        ),
                    })?;
                return reader.open(key, &stored).await.map(Bytes::from);
            }
            if key_resource(key)
                .is_none_or(|(group, resource)| self.reads_plaintext(group, resource))
            {
                Ok(stored)
            } else {
                Err(TransformError::Unreadable {
                    key: key.to_owned(),
                    reason: "the value is stored in plaintext and the configuration has no identity provider for it".into(),
                })
            }
        })
    }

    fn is_identity(&self) -> bool {
        self.readers.is_empty() && self.rules.iter().all(|(_, c)| c.writes_plaintext())
    }

    /// As [`Self::plain_form`] answers a plaintext value: readable unless its resource's
    /// chain has no identity. Only a prefix that names a resource (`/registry/G/R/…`) has
    /// one answer for every key under it.
    fn reads_plaintext_under(&self, prefix: &str) -> bool {
        let names_resource = prefix
            .strip_prefix("/registry/")
            .and_then(|rest| rest.splitn(3, '/').nth(2))
            .is_some();
        match key_resource(prefix) {
            Some((group, resource)) if names_resource && !resource.is_empty() => {
                self.reads_plaintext(group, resource)
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::SeedLimits;
    use crate::local::LocalKeyring;

    #[test]
    fn resource_names_read_as_upstream() {
        let m = ResourceMatch::parse("secrets").unwrap();
        assert!(m.matches("", "secrets") && !m.matches("apps", "secrets"));
        let m = ResourceMatch::parse("deployments.apps").unwrap();
        assert!(m.matches("apps", "deployments") && !m.matches("", "deployments"));
        let m = ResourceMatch::parse("*.apps").unwrap();
        assert!(m.matches("apps", "replicasets") && !m.matches("", "pods"));
        let m = ResourceMatch::parse("*.").unwrap();
        assert!(m.matches("", "configmaps") && !m.matches("apps", "deployments"));
        let m = ResourceMatch::parse("*.*").unwrap();
        assert!(m.matches("x.example.com", "widgets"));
        let m = ResourceMatch::parse("cedarpolicies.policy.bulwark.dev").unwrap();
        assert!(m.matches("policy.bulwark.dev", "cedarpolicies"));
        for bad in ["", "*", "Secrets", "a.b*", "*.a*b"] {
            assert!(ResourceMatch::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            key_resource("/registry/core/secrets/ns/a"),
            Some(("", "secrets"))
        );
        assert_eq!(
            key_resource("/registry/apps/deployments/ns/a"),
            Some(("apps", "deployments"))
        );
        assert_eq!(key_resource("/bulwark/bootstrap"), None);
    }

    /// A list may pass on unencrypted values under a collection's prefix exactly when
    /// `plain_form` would pass on each of them; a prefix that names no resource says "ask".
    #[tokio::test]
    async fn plaintext_under_a_prefix_reads_as_each_key_would() {
        let dir = tempfile::tempdir().unwrap();
        let envelope: Arc<dyn StorageProvider> = Arc::new(EnvelopeProvider::new(
            "bulwark-local",
            Arc::new(LocalKeyring::open_or_create(dir.path()).unwrap()),
            SeedLimits::default(),
        ));
        let strict = ProviderChain {
            providers: vec![envelope],
        };
        let t = ResourceTransformers::new().rule(ResourceMatch::exact("", "secrets"), strict);
        for (prefix, key, readable) in [
            (
                "/registry/core/configmaps/ns/",
                "/registry/core/configmaps/ns/a",
                true,
            ),
            (
                "/registry/core/configmaps/",
                "/registry/core/configmaps/ns/a",
                true,
            ),
            (
                "/registry/core/secrets/ns/",
                "/registry/core/secrets/ns/a",
                false,
            ),
            (
                "/registry/core/secrets/",
                "/registry/core/secrets/ns/a",
                false,
            ),
        ] {
            assert_eq!(t.reads_plaintext_under(prefix), readable, "{prefix}");
            let plain = t.plain_form(key, Bytes::from_static(b"{}")).await;
            assert_eq!(plain.is_ok(), readable, "{key}");
        }
        for vague in [
            "/registry/core/",
            "/registry/core/secrets",
            "/registry/",
            "/x/",
        ] {
            assert!(!t.reads_plaintext_under(vague), "{vague}");
        }
        assert!(crate::transformer::Identity.reads_plaintext_under("/registry/core/secrets/"));
    }

    #[tokio::test]
    async fn only_configured_resources_are_encrypted_and_all_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let envelope = Arc::new(EnvelopeProvider::new(
            "bulwark-local",
            Arc::new(LocalKeyring::open_or_create(dir.path()).unwrap()),
            SeedLimits::default(),
        ));
        let t = ResourceTransformers::bulwark_default(envelope);
        assert!(!t.is_identity());
        let secret = "/registry/core/secrets/ns/a";
        let cm = "/registry/core/configmaps/ns/a";
        let s = t.stored_form(secret, b"{\"v\":1}").await.unwrap();
        assert!(is_encrypted(&s));
        assert_eq!(
            t.plain_form(secret, Bytes::from(s.clone())).await.unwrap(),
            &b"{\"v\":1}"[..]
        );
        let c = t.stored_form(cm, b"{\"v\":1}").await.unwrap();
        assert_eq!(c, b"{\"v\":1}");
        // Plain Secrets from before encryption still read (identity is in the chain).
        assert_eq!(
            t.plain_form(secret, Bytes::from_static(b"{\"old\":1}"))
                .await
                .unwrap(),
            &b"{\"old\":1}"[..]
        );
        // A Secret's ciphertext copied under another key does not read there.
        assert!(
            t.plain_form(cm, Bytes::from(s)).await.is_err(),
            "moved: refused"
        );
        // Unknown provider prefixes are refused by name.
        let err = t
            .plain_form(
                secret,
                Bytes::from_static(b"k8s:enc:aescbc:v1:key1:xxxxxxxx"),
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("k8s:enc:aescbc:v1:key1:"), "{err}");
    }

    #[tokio::test]
    async fn without_identity_plaintext_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let envelope: Arc<dyn StorageProvider> = Arc::new(EnvelopeProvider::new(
            "kms",
            Arc::new(LocalKeyring::open_or_create(dir.path()).unwrap()),
            SeedLimits::default(),
        ));
        let t = ResourceTransformers::new().rule(
            ResourceMatch::parse("secrets").unwrap(),
            ProviderChain::new(vec![envelope]).unwrap(),
        );
        assert!(
            t.plain_form("/registry/core/secrets/a/b", Bytes::from_static(b"{}"))
                .await
                .is_err()
        );
        assert!(ResourceTransformers::new().is_identity());
    }
}
