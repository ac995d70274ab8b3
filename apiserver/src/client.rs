//! A small HTTPS client for Bulwark's own tools (end-to-end tests, the load generator): one
//! persistent HTTP/2 connection with client-certificate authentication, built from a
//! kubeconfig that `bulwark server` or `bulwark kubeconfig` wrote.

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bulwark_pki::SecretPem;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The kubeconfig is unreadable or lacks a field.
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    /// TLS setup failed.
    #[error("tls: {0}")]
    Tls(#[from] bulwark_pki::PkiError),
    /// Connecting or talking to the server failed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// HTTP failed.
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    /// A request could not be built.
    #[error("request: {0}")]
    Request(#[from] http::Error),
}

/// Credentials and address from a kubeconfig with embedded data.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// `https://host:port`.
    pub server: String,
    /// CA bundle, PEM.
    pub ca_pem: String,
    /// Client certificate, PEM.
    pub cert_pem: String,
    /// Client key, PEM.
    pub key_pem: SecretPem,
}

fn field(text: &str, name: &str) -> Result<String, ClientError> {
    let raw = text
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{name}: ")))
        .ok_or_else(|| ClientError::Kubeconfig(format!("missing {name}")))?;
    Ok(raw.trim().trim_matches('"').to_owned())
}

fn decoded(text: &str, name: &str) -> Result<String, ClientError> {
    let bytes = STANDARD
        .decode(field(text, name)?)
        .map_err(|e| ClientError::Kubeconfig(format!("{name}: {e}")))?;
    String::from_utf8(bytes).map_err(|e| ClientError::Kubeconfig(format!("{name}: {e}")))
}

impl Credentials {
    /// Reads a kubeconfig written by Bulwark (first cluster and user, embedded data).
    pub fn from_kubeconfig(path: &Path) -> Result<Self, ClientError> {
        let text = std::fs::read_to_string(path)?;
        Ok(Self {
            server: field(&text, "server")?,
            ca_pem: decoded(&text, "certificate-authority-data")?,
            cert_pem: decoded(&text, "client-certificate-data")?,
            key_pem: SecretPem::new(decoded(&text, "client-key-data")?),
        })
    }
}

/// A response: status, headers and the whole body.
#[derive(Debug)]
pub struct ClientResponse {
    /// HTTP status.
    pub status: StatusCode,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl ClientResponse {
    /// The body as JSON (Null if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// One HTTP/2 connection to the API server; cheap to clone (requests multiplex).
#[derive(Clone, Debug)]
pub struct ApiClient {
    sender: http2::SendRequest<Full<Bytes>>,
    authority: String,
    server_cert: Option<Vec<u8>>,
}

/// A streaming response body (for watches).
pub type StreamingBody = hyper::body::Incoming;

impl ApiClient {
    /// Connects with `credentials`; `present_cert: false` connects without a client
    /// certificate (to test anonymous access).
    pub async fn connect(
        credentials: &Credentials,
        present_cert: bool,
    ) -> Result<Self, ClientError> {
        let authority = credentials
            .server
            .strip_prefix("https://")
            .ok_or_else(|| ClientError::Kubeconfig("server must be https://".into()))?
            .trim_end_matches('/')
            .to_owned();
        let client_auth =
            present_cert.then_some((credentials.cert_pem.as_str(), &credentials.key_pem));
        let config = bulwark_pki::tls::client_config(&credentials.ca_pem, client_auth)?;
        let host = authority
            .rsplit_once(':')
            .map_or(authority.as_str(), |(h, _)| h)
            .trim_matches(['[', ']'])
            .to_owned();
        let server_name =
            ServerName::try_from(host).map_err(|e| ClientError::Kubeconfig(e.to_string()))?;
        let tcp = tokio::net::TcpStream::connect(&authority).await?;
        tcp.set_nodelay(true)?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(server_name, tcp)
            .await?;
        let server_cert = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec());
        let (sender, connection) =
            http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self {
            sender,
            authority,
            server_cert,
        })
    }

    /// The leaf certificate the server presented (DER).
    pub fn server_certificate(&self) -> Option<&[u8]> {
        self.server_cert.as_deref()
    }

    fn build(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Request<Full<Bytes>>, ClientError> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("https://{}{path}", self.authority));
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        Ok(builder.body(Full::new(Bytes::from(body)))?)
    }

    /// Sends a request and reads the whole response.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<ClientResponse, ClientError> {
        let request = self.build(method, path, headers, body)?;
        let mut sender = self.sender.clone();
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(ClientResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// Sends a request and returns the response with its body still streaming.
    pub async fn stream(
        &self,
        method: Method,
        path: &str,
    ) -> Result<http::Response<StreamingBody>, ClientError> {
        let request = self.build(method, path, &[], Vec::new())?;
        let mut sender = self.sender.clone();
        sender.ready().await?;
        Ok(sender.send_request(request).await?)
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Result<ClientResponse, ClientError> {
        self.send(Method::GET, path, &[], Vec::new()).await
    }

    /// POST a JSON body.
    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<ClientResponse, ClientError> {
        self.send(
            Method::POST,
            path,
            &[("content-type", "application/json")],
            serde_json::to_vec(body).unwrap_or_default(),
        )
        .await
    }
}
