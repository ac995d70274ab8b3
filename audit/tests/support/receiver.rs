//! A real HTTPS audit webhook receiver for tests: TLS with its own CA, client certificates
//! verified when offered, HTTP/1.1. It keeps every accepted `EventList` and can be told to
//! answer the next requests with an error, the way a failing SIEM would.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test support"
)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bulwark_pki::ca::{CertificateAuthority, LeafSpec, Usage};
use bulwark_pki::tls::ReloadableCert;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// What the receiver saw.
#[derive(Debug, Default)]
pub struct Received {
    /// Accepted request bodies (EventLists).
    pub batches: Vec<serde_json::Value>,
    /// Every request, accepted or not.
    pub requests: u64,
    /// The `Authorization` header of every request.
    pub authorization: Vec<Option<String>>,
    /// Whether each request's connection presented a client certificate.
    pub client_certs: Vec<bool>,
    /// Answer this many requests with `fail_status`.
    pub fail_next: u64,
    /// The error status to answer with.
    pub fail_status: u16,
}

/// A running receiver.
pub struct Receiver {
    /// `https://127.0.0.1:<port>/audit`.
    pub url: String,
    /// The CA that signed the receiver's certificate (and issues client certificates).
    pub ca: CertificateAuthority,
    /// What it saw.
    pub state: Arc<Mutex<Received>>,
}

impl Receiver {
    /// Listens on a free port of 127.0.0.1 on the current runtime.
    pub async fn start() -> Self {
        let ca = CertificateAuthority::generate("siem-ca", Duration::from_secs(3600)).unwrap();
        let leaf = ca
            .issue(&LeafSpec {
                common_name: "siem".into(),
                organizations: vec![],
                sans: vec!["127.0.0.1".into()],
                usage: Usage::Server,
                validity: Duration::from_secs(3600),
            })
            .unwrap();
        let cert = Arc::new(ReloadableCert::new(&leaf.cert_pem, &leaf.key_pem).unwrap());
        let mut config = bulwark_pki::tls::server_config(cert, ca.cert_pem()).unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}/audit", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(Received::default()));
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let client_cert = tls.get_ref().1.peer_certificates().is_some();
                    let service =
                        service_fn(move |request: http::Request<hyper::body::Incoming>| {
                            let state = Arc::clone(&state);
                            async move {
                                let authorization = request
                                    .headers()
                                    .get(http::header::AUTHORIZATION)
                                    .map(|v| v.to_str().unwrap().to_owned());
                                let body = request.into_body().collect().await?.to_bytes();
                                let mut state = state.lock().unwrap();
                                state.requests += 1;
                                state.authorization.push(authorization);
                                state.client_certs.push(client_cert);
                                let status = if state.fail_next > 0 {
                                    state.fail_next -= 1;
                                    state.fail_status
                                } else {
                                    state.batches.push(serde_json::from_slice(&body).unwrap());
                                    200
                                };
                                let mut response = http::Response::new(Full::new(Bytes::new()));
                                *response.status_mut() =
                                    http::StatusCode::from_u16(status).unwrap();
                                Ok::<_, hyper::Error>(response)
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self { url, ca, state }
    }

    /// Answers the next `n` requests with `status`.
    pub fn fail_next(&self, n: u64, status: u16) {
        let mut state = self.state.lock().unwrap();
        state.fail_next = n;
        state.fail_status = status;
    }

    /// Every event received, in order of arrival.
    pub fn events(&self) -> Vec<serde_json::Value> {
        let state = self.state.lock().unwrap();
        state
            .batches
            .iter()
            .flat_map(|b| b["items"].as_array().unwrap().clone())
            .collect()
    }

    /// The checkpoint line of the last accepted batch.
    pub fn last_checkpoint(&self) -> Option<String> {
        let state = self.state.lock().unwrap();
        state
            .batches
            .iter()
            .rev()
            .find_map(|b| b["checkpoint"].as_str().map(str::to_owned))
    }

    /// Writes a kubeconfig for sending here (into `dir`): the CA inline, and a bearer token
    /// or a client certificate (files next to it, as operators write them).
    pub fn kubeconfig(&self, dir: &Path, token: Option<&str>, client_cert: bool) -> PathBuf {
        let mut user = String::new();
        if let Some(token) = token {
            user.push_str(&format!("    token: {token}\n"));
        }
        if client_cert {
            let issued = self
                .ca
                .issue(&LeafSpec {
                    common_name: "bulwark-audit".into(),
                    organizations: vec![],
                    sans: vec![],
                    usage: Usage::Client,
                    validity: Duration::from_secs(3600),
                })
                .unwrap();
            std::fs::write(dir.join("webhook.crt"), &issued.cert_pem).unwrap();
            std::fs::write(dir.join("webhook.key"), issued.key_pem.expose()).unwrap();
            user.push_str("    client-certificate: webhook.crt\n    client-key: webhook.key\n");
        }
        if user.is_empty() {
            user.push_str("    {}\n");
        }
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: siem\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: bulwark\n  user:\n{user}contexts:\n- name: audit\n  context:\n    cluster: siem\n    user: bulwark\ncurrent-context: audit\n",
            self.url,
            STANDARD.encode(self.ca.cert_pem()),
        );
        let path = dir.join("webhook.kubeconfig");
        std::fs::write(&path, text).unwrap();
        path
    }
}
