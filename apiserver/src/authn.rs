//! Authentication: who is calling. An [`Authenticator`] looks at the request (and the TLS
//! connection it came on) and either names a user, rejects the credentials, or has nothing to
//! say; the chain tries each in turn and anonymous requests are rejected (401).

pub(crate) mod impersonation;
pub mod sa_token;

use bulwark_pki::CertIdentity;
use http::request::Parts;

/// What the TLS layer learned about a connection; attached to every request on it.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: std::net::SocketAddr,
    /// The identity of the client certificate, already verified against the cluster CA.
    pub client_cert: Option<CertIdentity>,
}

/// How a user proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// A client certificate signed by the cluster CA.
    X509,
    /// A service-account bearer token.
    ServiceAccountToken,
}

impl AuthMethod {
    /// The name policies see in `context.authMethod`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::X509 => "x509",
            Self::ServiceAccountToken => "serviceaccount-token",
        }
    }
}

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// User name.
    pub name: String,
    /// Groups, including `system:authenticated`.
    pub groups: Vec<String>,
    /// How they authenticated.
    pub method: AuthMethod,
    /// The client certificate fingerprint, for x509 users.
    pub cert_fingerprint: Option<String>,
    /// For service-account tokens: the account that must still exist.
    pub bound_account: Option<crate::authn::sa_token::BoundAccount>,
}

/// The result of one authenticator.
#[derive(Debug)]
pub enum AuthOutcome {
    /// The request carries this authenticator's credentials and they are valid.
    Authenticated(UserInfo),
    /// The request carries this authenticator's credentials and they are invalid (401).
    Rejected(String),
    /// The request carries no credentials of this kind.
    NoCredentials,
}

/// One way to authenticate a request.
pub trait Authenticator: Send + Sync {
    /// Looks at the request head and its connection.
    fn authenticate(&self, parts: &Parts, conn: &ConnInfo) -> AuthOutcome;
}

/// Client certificates: CN is the user, O the groups (the TLS layer verified the chain).
#[derive(Debug, Default)]
pub struct X509Authenticator;

impl Authenticator for X509Authenticator {
    fn authenticate(&self, _parts: &Parts, conn: &ConnInfo) -> AuthOutcome {
        match &conn.client_cert {
            Some(id) => {
                let mut groups = id.groups.clone();
                groups.push("system:authenticated".into());
                AuthOutcome::Authenticated(UserInfo {
                    name: id.user.clone(),
                    groups,
                    method: AuthMethod::X509,
                    cert_fingerprint: Some(id.fingerprint.clone()),
                    bound_account: None,
                })
            }
            None => AuthOutcome::NoCredentials,
        }
    }
}

/// Runs authenticators in order: the first that recognizes credentials decides.
pub fn authenticate(
    chain: &[Box<dyn Authenticator>],
    parts: &Parts,
    conn: &ConnInfo,
) -> Result<UserInfo, String> {
    for authenticator in chain {
        match authenticator.authenticate(parts, conn) {
            AuthOutcome::Authenticated(user) => return Ok(user),
            AuthOutcome::Rejected(why) => return Err(why),
            AuthOutcome::NoCredentials => {}
        }
    }
    Err("no credentials were presented".into())
}
