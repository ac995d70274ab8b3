//! A small HTTPS client for Bulwark's own tools (the CLI, end-to-end tests, benchmarks): one
//! persistent HTTP/2 connection with client-certificate authentication, built from a
//! kubeconfig's current context (as `bulwark server` or `bulwark kubeconfig` write them).
//!
//! ```no_run
//! # async fn demo() -> Result<(), bulwark_client::ClientError> {
//! let creds = bulwark_client::Credentials::from_kubeconfig("admin.kubeconfig".as_ref())?;
//! let client = bulwark_client::ApiClient::builder(&creds).connect().await?;
//! let namespaces = client.get("/api/v1/namespaces").await?;
//! # Ok(()) }
//! ```

use std::path::Path;
use std::sync::Arc;

use bulwark_pki::SecretPem;
use bulwark_pki::kubeconfig::KubeconfigCredentials;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The kubeconfig lacks what a client needs.
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    /// The kubeconfig or the TLS setup failed.
    #[error("{0}")]
    Pki(#[from] bulwark_pki::PkiError),
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

impl Credentials {
    /// Reads a kubeconfig: its current context's server, CA and client certificate.
    pub fn from_kubeconfig(path: &Path) -> Result<Self, ClientError> {
        let creds = KubeconfigCredentials::read(path)?;
        let missing =
            |what: &str| ClientError::Kubeconfig(format!("{} has no {what}", path.display()));
        let (cert_pem, key_pem) = creds.client.ok_or_else(|| missing("client certificate"))?;
        Ok(Self {
            server: creds.server,
            ca_pem: creds
                .ca_pem
                .ok_or_else(|| missing("certificate authority"))?,
            cert_pem,
            key_pem,
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

/// How to connect: [`ApiClient::builder`].
#[derive(Debug)]
pub struct ClientBuilder<'a> {
    credentials: &'a Credentials,
    present_cert: bool,
}

impl<'a> ClientBuilder<'a> {
    /// Options that weaken authentication, for tests of what the server does without it.
    pub fn dangerous(self) -> DangerousClientBuilder<'a> {
        DangerousClientBuilder(self)
    }

    /// Connects (TLS 1.2+, verifying the server against the credentials' CA; HTTP/2).
    pub async fn connect(self) -> Result<ApiClient, ClientError> {
        ApiClient::connect(self.credentials, self.present_cert).await
    }
}

/// [`ClientBuilder`] options that weaken authentication.
#[derive(Debug)]
pub struct DangerousClientBuilder<'a>(ClientBuilder<'a>);

impl<'a> DangerousClientBuilder<'a> {
    /// Connects without presenting the client certificate (an anonymous client).
    pub fn without_client_cert(mut self) -> ClientBuilder<'a> {
        self.0.present_cert = false;
        self.0
    }
}

/// A streaming response body (for watches).
pub type StreamingBody = hyper::body::Incoming;

impl ApiClient {
    /// A connection to the server `credentials` name, as their user.
    pub fn builder(credentials: &Credentials) -> ClientBuilder<'_> {
        ClientBuilder {
            credentials,
            present_cert: true,
        }
    }

    async fn connect(credentials: &Credentials, present_cert: bool) -> Result<Self, ClientError> {
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
