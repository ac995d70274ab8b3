//! kubeconfig files: written with embedded credentials (what `kubectl` and every client
//! library load), and read back as upstream's clientcmd does (the current context's cluster
//! and user; inline data or files relative to the kubeconfig).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use crate::{PkiError, SecretPem};

/// What goes into a kubeconfig for one user of one cluster.
#[derive(Debug)]
pub struct Kubeconfig<'a> {
    /// Cluster name in the file (`bulwark`).
    pub cluster: &'a str,
    /// API server URL, `https://host:port`.
    pub server: &'a str,
    /// CA bundle that signs the serving certificate, PEM.
    pub ca_pem: &'a str,
    /// The user's name (the certificate CN).
    pub user: &'a str,
    /// The user's client certificate, PEM.
    pub client_cert_pem: &'a str,
    /// The user's private key, PEM.
    pub client_key_pem: &'a SecretPem,
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Kubeconfig<'_> {
    /// Renders the kubeconfig YAML. It holds a private key: write it with `files::write_private`.
    pub fn render(&self) -> SecretPem {
        let context = format!("{}@{}", self.user, self.cluster);
        SecretPem::new(format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {cluster}\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\ncontexts:\n- name: {context}\n  context:\n    cluster: {cluster}\n    user: {user}\ncurrent-context: {context}\npreferences: {{}}\n",
            cluster = quoted(self.cluster),
            server = quoted(self.server),
            ca = STANDARD.encode(self.ca_pem),
            user = quoted(self.user),
            cert = STANDARD.encode(self.client_cert_pem),
            key = STANDARD.encode(self.client_key_pem.expose()),
            context = quoted(&context),
        ))
    }
}

/// What a kubeconfig's current context says: where the server is and who to be.
pub struct KubeconfigCredentials {
    /// The server URL, as written.
    pub server: String,
    /// The CA bundle that signs the server's certificate, PEM, if the file names one.
    pub ca_pem: Option<String>,
    /// Whether the file asks to skip server verification (callers refuse it).
    pub insecure_skip_tls_verify: bool,
    /// Client certificate and key, PEM.
    pub client: Option<(String, SecretPem)>,
    /// A bearer token.
    pub token: Option<SecretPem>,
}

impl std::fmt::Debug for KubeconfigCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeconfigCredentials")
            .field("server", &self.server)
            .field("client_cert", &self.client.is_some())
            .field("token", &self.token.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct File {
    #[serde(default)]
    clusters: Vec<NamedCluster>,
    #[serde(default)]
    users: Vec<NamedUser>,
    #[serde(default)]
    contexts: Vec<NamedContext>,
    #[serde(rename = "current-context", default)]
    current_context: Option<String>,
}

#[derive(Debug, Deserialize)]
struct NamedCluster {
    name: String,
    cluster: Cluster,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Cluster {
    server: String,
    certificate_authority: Option<PathBuf>,
    certificate_authority_data: Option<String>,
    #[serde(default)]
    insecure_skip_tls_verify: bool,
}

#[derive(Debug, Deserialize)]
struct NamedUser {
    name: String,
    #[serde(default)]
    user: User,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct User {
    client_certificate: Option<PathBuf>,
    client_certificate_data: Option<String>,
    client_key: Option<PathBuf>,
    client_key_data: Option<String>,
    token: Option<String>,
    token_file: Option<PathBuf>,
    exec: Option<serde_yaml_ng::Value>,
    auth_provider: Option<serde_yaml_ng::Value>,
    username: Option<String>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("User(<redacted>)")
    }
}

#[derive(Debug, Deserialize)]
struct NamedContext {
    name: String,
    context: Context,
}

#[derive(Debug, Deserialize)]
struct Context {
    cluster: String,
    #[serde(default)]
    user: Option<String>,
}

fn err(message: impl Into<String>) -> PkiError {
    PkiError::Kubeconfig(message.into())
}

/// The text of inline `data` (base64) or of `file` (relative to the kubeconfig's directory).
fn data_or_file(
    what: &str,
    data: Option<&str>,
    file: Option<&Path>,
    base: &Path,
) -> Result<Option<String>, PkiError> {
    if let Some(data) = data {
        let bytes = STANDARD
            .decode(data.trim())
            .map_err(|e| err(format!("{what}-data is not base64: {e}")))?;
        return String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| err(format!("{what}-data is not PEM text")));
    }
    match file {
        Some(file) => {
            let path = base.join(file);
            std::fs::read_to_string(&path)
                .map(Some)
                .map_err(|e| err(format!("{what} {}: {e}", path.display())))
        }
        None => Ok(None),
    }
}

impl KubeconfigCredentials {
    /// Reads the kubeconfig at `path`.
    pub fn read(path: &Path) -> Result<Self, PkiError> {
        let text = std::fs::read_to_string(path).map_err(|source| PkiError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path.parent().unwrap_or(Path::new(".")))
    }

    /// Parses kubeconfig `text`: the current context's cluster and user (without a current
    /// context, the first cluster and user); relative file names are taken from `base`.
    /// Only client certificates and bearer tokens are read (not exec plugins, auth providers
    /// or basic auth, which are refused).
    pub fn parse(text: &str, base: &Path) -> Result<Self, PkiError> {
        let file: File =
            serde_yaml_ng::from_str(text).map_err(|e| err(format!("not a kubeconfig: {e}")))?;
        let context = match &file.current_context {
            Some(name) if !name.is_empty() => Some(
                file.contexts
                    .iter()
                    .find(|c| &c.name == name)
                    .ok_or_else(|| err(format!("current-context {name} is not defined")))?,
            ),
            _ => None,
        };
        let cluster = match context {
            Some(c) => file
                .clusters
                .iter()
                .find(|n| n.name == c.context.cluster)
                .ok_or_else(|| err(format!("cluster {} is not defined", c.context.cluster)))?,
            None => file
                .clusters
                .first()
                .ok_or_else(|| err("the kubeconfig names no cluster"))?,
        };
        let user = match context.and_then(|c| c.context.user.as_ref()) {
            Some(name) => Some(
                file.users
                    .iter()
                    .find(|u| &u.name == name)
                    .ok_or_else(|| err(format!("user {name} is not defined")))?,
            ),
            None if context.is_some() => None,
            None => file.users.first(),
        };
        let cluster = &cluster.cluster;
        let ca_pem = data_or_file(
            "certificate-authority",
            cluster.certificate_authority_data.as_deref(),
            cluster.certificate_authority.as_deref(),
            base,
        )?;
        let (client, token) = match user.map(|u| &u.user) {
            None => (None, None),
            Some(user) => {
                if user.exec.is_some() || user.auth_provider.is_some() || user.username.is_some() {
                    return Err(err(
                        "only client certificates and bearer tokens are supported (not exec, auth-provider or basic auth)",
                    ));
                }
                let cert = data_or_file(
                    "client-certificate",
                    user.client_certificate_data.as_deref(),
                    user.client_certificate.as_deref(),
                    base,
                )?;
                let key = data_or_file(
                    "client-key",
                    user.client_key_data.as_deref(),
                    user.client_key.as_deref(),
                    base,
                )?
                .map(SecretPem::new);
                let client = match (cert, key) {
                    (Some(cert), Some(key)) => Some((cert, key)),
                    (None, None) => None,
                    _ => {
                        return Err(err(
                            "a client certificate needs its key and a key its certificate",
                        ));
                    }
                };
                let token = match (&user.token, &user.token_file) {
                    (Some(token), _) => Some(SecretPem::new(token.trim().to_owned())),
                    (None, Some(file)) => {
                        let path = base.join(file);
                        let token = std::fs::read_to_string(&path)
                            .map_err(|e| err(format!("token-file {}: {e}", path.display())))?;
                        Some(SecretPem::new(token.trim().to_owned()))
                    }
                    (None, None) => None,
                };
                (client, token)
            }
        };
        Ok(Self {
            server: cluster.server.clone(),
            ca_pem,
            insecure_skip_tls_verify: cluster.insecure_skip_tls_verify,
            client,
            token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The current context decides, not the first entries of the file.
    #[test]
    fn reads_the_current_context() {
        let b64 = |s: &str| STANDARD.encode(s);
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: old\n  cluster:\n    server: https://old:6443\n    certificate-authority-data: {}\n- name: new\n  cluster:\n    server: https://new:6443\n    certificate-authority-data: {}\nusers:\n- name: first\n  user:\n    token: t1\n- name: second\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: a\n  context: {{cluster: old, user: first}}\n- name: b\n  context: {{cluster: new, user: second}}\ncurrent-context: b\n",
            b64("OLD CA"),
            b64("NEW CA"),
            b64("CERT"),
            b64("KEY"),
        );
        let creds = KubeconfigCredentials::parse(&text, Path::new("/")).unwrap();
        assert_eq!(creds.server, "https://new:6443");
        assert_eq!(creds.ca_pem.as_deref(), Some("NEW CA"));
        let (cert, key) = creds.client.unwrap();
        assert_eq!((cert.as_str(), key.expose()), ("CERT", "KEY"));
        assert!(creds.token.is_none());
        // A written kubeconfig reads back.
        let key = SecretPem::new("K".into());
        let written = Kubeconfig {
            cluster: "bulwark",
            server: "https://127.0.0.1:6443",
            ca_pem: "CA",
            user: "alice",
            client_cert_pem: "C",
            client_key_pem: &key,
        }
        .render();
        let back = KubeconfigCredentials::parse(written.expose(), Path::new("/")).unwrap();
        assert_eq!(back.server, "https://127.0.0.1:6443");
        for bad in [
            "current-context: nope\ncontexts: []\nclusters: []",
            "clusters: []",
            "{",
            "clusters:\n- name: c\n  cluster: {server: https://x}\nusers:\n- name: u\n  user: {exec: {command: x}}\n",
        ] {
            assert!(
                KubeconfigCredentials::parse(bad, Path::new("/")).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn quotes_names() {
        assert_eq!(quoted("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
        let key = SecretPem::new("KEY".into());
        let text = Kubeconfig {
            cluster: "bulwark",
            server: "https://127.0.0.1:6443",
            ca_pem: "CA",
            user: "alice: admin",
            client_cert_pem: "CERT",
            client_key_pem: &key,
        }
        .render();
        assert!(text.expose().contains("- name: \"alice: admin\"\n"));
        assert!(text.expose().contains("client-key-data: S0VZ\n"));
        assert!(
            text.expose()
                .contains("current-context: \"alice: admin@bulwark\"\n")
        );
    }
}
