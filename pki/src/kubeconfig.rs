//! kubeconfig files with embedded credentials: what `kubectl` and every client library load.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::SecretPem;

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

#[cfg(test)]
mod tests {
    use super::*;

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
