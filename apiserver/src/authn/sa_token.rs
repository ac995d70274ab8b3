//! Service-account tokens: bound JWTs (ES256 with the cluster's P-256 service-account key,
//! via ring) issued by TokenRequest and accepted as bearer tokens.
//!
//! A token names its service account by namespace, name and uid, carries the audiences it was
//! requested for and expires (10 minutes to 48 hours, default 1 hour). It authenticates only
//! while the service account with that uid still exists (checked per request by the pipeline),
//! so deleting the account revokes its tokens. Only `alg: ES256` with this cluster's key id is
//! accepted; `none` and every other algorithm are rejected before any other check.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bulwark_pki::SecretPem;
use http::request::Parts;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use crate::authn::{AuthMethod, AuthOutcome, Authenticator, ConnInfo, UserInfo};

/// The issuer and default audience of tokens this cluster signs.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// Token lifetime bounds, seconds.
pub const MIN_EXPIRATION: i64 = 600;
/// Longest token lifetime, seconds.
pub const MAX_EXPIRATION: i64 = 48 * 3600;
/// Default token lifetime, seconds.
pub const DEFAULT_EXPIRATION: i64 = 3600;
/// Clock skew tolerated on `nbf`/`exp`, seconds.
const LEEWAY: i64 = 30;

/// Why a signing key could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("service-account signing key: {0}")]
pub struct KeyError(String);

/// The `kubernetes.io` claim.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KubernetesClaim {
    /// The service account's namespace.
    pub namespace: String,
    /// The service account.
    pub serviceaccount: ObjectRef,
}

/// A name and uid.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ObjectRef {
    /// Name.
    pub name: String,
    /// Uid.
    pub uid: String,
}

/// The claims of a service-account token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// `system:serviceaccount:<namespace>:<name>`.
    pub sub: String,
    /// Audiences.
    pub aud: Vec<String>,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Unique token id.
    pub jti: String,
    /// The bound service account.
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaim,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    kid: String,
    #[serde(default)]
    typ: Option<String>,
}

/// Signs and verifies tokens with the cluster's service-account key.
pub struct TokenKeys {
    signer: EcdsaKeyPair,
    public: Vec<u8>,
    kid: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl TokenKeys {
    /// Loads the PKCS#8 P-256 key `bulwark server` bootstrapped.
    pub fn from_pem(pem: &SecretPem) -> Result<Self, KeyError> {
        let der = bulwark_pki::tls::key_from_pem(pem).map_err(|e| KeyError(e.to_string()))?;
        let rng = SystemRandom::new();
        let signer = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            der.secret_der(),
            &rng,
        )
        .map_err(|e| KeyError(e.to_string()))?;
        let public = signer.public_key().as_ref().to_vec();
        let digest = ring::digest::digest(&ring::digest::SHA256, &public);
        let kid = URL_SAFE_NO_PAD.encode(digest.as_ref().get(..16).unwrap_or_default());
        Ok(Self {
            signer,
            public,
            kid,
            rng,
        })
    }

    /// Issues a token for a service account.
    pub fn issue(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        audiences: Vec<String>,
        lifetime: i64,
    ) -> Result<(String, i64), KeyError> {
        let issued = now();
        let claims = Claims {
            iss: ISSUER.to_owned(),
            sub: format!("system:serviceaccount:{namespace}:{name}"),
            aud: audiences,
            exp: issued + lifetime,
            iat: issued,
            nbf: issued,
            jti: uuid::Uuid::new_v4().to_string(),
            kubernetes: KubernetesClaim {
                namespace: namespace.to_owned(),
                serviceaccount: ObjectRef {
                    name: name.to_owned(),
                    uid: uid.to_owned(),
                },
            },
        };
        let header = Header {
            alg: "ES256".into(),
            kid: self.kid.clone(),
            typ: Some("JWT".into()),
        };
        let signing_input = format!("{}.{}", b64_json(&header), b64_json(&claims));
        let sig = self
            .signer
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|e| KeyError(e.to_string()))?;
        let sig = low_s(sig.as_ref()).map_err(KeyError)?;
        Ok((
            format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)),
            claims.exp,
        ))
    }

    /// Verifies a token's signature, algorithm, issuer, audience and validity window.
    pub fn verify(&self, token: &str, audience: &str) -> Result<Claims, String> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("malformed token".into());
        };
        let header: Header = URL_SAFE_NO_PAD
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or("malformed token header")?;
        if header.alg != "ES256" || header.kid != self.kid {
            return Err("token not signed by this cluster".into());
        }
        let sig = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| "malformed token signature")?;
        // Only the low-s form of a signature is accepted: (r, s) and (r, n - s) both verify,
        // and a token must have exactly one valid encoding (no malleable copies of it).
        if low_s(&sig).ok().as_deref() != Some(sig.as_slice()) {
            return Err("invalid token signature".into());
        }
        let signed = token.len().saturating_sub(s.len() + 1);
        let input = token.get(..signed).ok_or("malformed token")?;
        UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &self.public)
            .verify(input.as_bytes(), &sig)
            .map_err(|_| "invalid token signature")?;
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or("malformed token claims")?;
        let t = now();
        if claims.iss != ISSUER {
            return Err("token issuer is not this cluster".into());
        }
        if !claims.aud.iter().any(|a| a == audience) {
            return Err("token audience does not include this API server".into());
        }
        if claims.exp + LEEWAY <= t || claims.nbf - LEEWAY > t {
            return Err("token expired or not yet valid".into());
        }
        let expected = format!(
            "system:serviceaccount:{}:{}",
            claims.kubernetes.namespace, claims.kubernetes.serviceaccount.name
        );
        if claims.sub != expected {
            return Err("token subject does not match its service account".into());
        }
        Ok(claims)
    }
}

/// The low-s form of a fixed-size (r ‖ s) P-256 signature: `s` replaced by `n - s` when it is
/// in the upper half of the group order.
fn low_s(sig: &[u8]) -> Result<Vec<u8>, String> {
    let parsed =
        p256::ecdsa::Signature::from_slice(sig).map_err(|_| "malformed token signature")?;
    let normal = parsed.normalize_s().unwrap_or(parsed);
    Ok(normal.to_bytes().to_vec())
}

/// base64url(JSON) of a token part.
fn b64_json<T: Serialize>(value: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default())
}

/// The service account a verified token is bound to; the pipeline checks it still exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundAccount {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Uid the token was issued for.
    pub uid: String,
}

/// Accepts `Authorization: Bearer <service-account token>`.
#[derive(Debug)]
pub struct ServiceAccountAuthenticator {
    keys: std::sync::Arc<TokenKeys>,
}

impl ServiceAccountAuthenticator {
    /// Verifies with `keys`.
    pub fn new(keys: std::sync::Arc<TokenKeys>) -> Self {
        Self { keys }
    }
}

impl Authenticator for ServiceAccountAuthenticator {
    fn authenticate(&self, parts: &Parts, _conn: &ConnInfo) -> AuthOutcome {
        let Some(value) = parts.headers.get(http::header::AUTHORIZATION) else {
            return AuthOutcome::NoCredentials;
        };
        // The scheme is case-insensitive (RFC 9110 §11.1), as upstream reads it.
        let Some(token) = value
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
        else {
            return AuthOutcome::Rejected("unsupported authorization scheme".into());
        };
        match self.keys.verify(token, ISSUER) {
            Ok(claims) => {
                let ns = claims.kubernetes.namespace.clone();
                AuthOutcome::Authenticated(UserInfo {
                    name: claims.sub.clone(),
                    groups: vec![
                        "system:serviceaccounts".into(),
                        format!("system:serviceaccounts:{ns}"),
                        "system:authenticated".into(),
                    ],
                    method: AuthMethod::ServiceAccountToken,
                    cert_fingerprint: None,
                    bound_account: Some(BoundAccount {
                        namespace: ns,
                        name: claims.kubernetes.serviceaccount.name,
                        uid: claims.kubernetes.serviceaccount.uid,
                    }),
                })
            }
            Err(why) => AuthOutcome::Rejected(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        let key = rcgen_free_key();
        TokenKeys::from_pem(&key).unwrap()
    }

    /// A fresh PKCS#8 P-256 key in PEM, made with ring.
    fn rcgen_free_key() -> SecretPem {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref());
        SecretPem::new(format!(
            "-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n"
        ))
    }

    #[test]
    fn issue_and_verify() {
        let k = keys();
        let (token, exp) = k
            .issue("default", "builder", "uid-1", vec![ISSUER.into()], 600)
            .unwrap();
        let claims = k.verify(&token, ISSUER).unwrap();
        assert_eq!(claims.sub, "system:serviceaccount:default:builder");
        assert_eq!(claims.exp, exp);
        assert!(k.verify(&token, "other-audience").is_err());
        // Tampering with the claims breaks the signature.
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut c: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
        c["sub"] = "system:serviceaccount:kube-system:admin".into();
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap());
        assert!(k.verify(&parts.join("."), ISSUER).is_err());
        // alg none, other keys, expired and malformed tokens are all refused.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"x"}"#),
            parts[1]
        );
        assert!(k.verify(&none, ISSUER).is_err());
        let (foreign, _) = keys()
            .issue("default", "builder", "uid-1", vec![ISSUER.into()], 600)
            .unwrap();
        assert!(k.verify(&foreign, ISSUER).is_err());
        let (expired, _) = k
            .issue("default", "b", "u", vec![ISSUER.into()], -3600)
            .unwrap();
        assert!(k.verify(&expired, ISSUER).is_err());
        for junk in ["", "a.b", "a.b.c.d", "....", "€.€.€"] {
            assert!(k.verify(junk, ISSUER).is_err());
        }
    }

    /// A signature's high-s twin (r, n - s) also verifies under ECDSA; only the low-s form is
    /// issued and accepted, so a token has one encoding.
    #[test]
    fn signatures_are_low_s_and_high_s_twins_are_refused() {
        use p256::elliptic_curve::PrimeField;
        let k = keys();
        for _ in 0..16 {
            let (token, _) = k
                .issue("default", "b", "u", vec![ISSUER.into()], 600)
                .unwrap();
            let (input, sig) = token.rsplit_once('.').unwrap();
            let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
            let parsed = p256::ecdsa::Signature::from_slice(&sig).unwrap();
            assert!(parsed.normalize_s().is_none(), "issued a high-s signature");
            let (r, s) = parsed.split_scalars();
            let twin = p256::ecdsa::Signature::from_scalars(r.to_repr(), (-*s).to_repr()).unwrap();
            // The twin is a valid ECDSA signature…
            assert!(
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &k.public)
                    .verify(input.as_bytes(), &twin.to_bytes())
                    .is_ok()
            );
            // …and still refused as a token.
            let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode(twin.to_bytes()));
            assert_eq!(
                k.verify(&forged, ISSUER).unwrap_err(),
                "invalid token signature"
            );
            assert!(k.verify(&token, ISSUER).is_ok());
        }
    }

    /// The scheme of `Authorization` is case-insensitive, as upstream reads it.
    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let k = std::sync::Arc::new(keys());
        let (token, _) = k
            .issue("default", "b", "u", vec![ISSUER.into()], 600)
            .unwrap();
        let auth = ServiceAccountAuthenticator::new(std::sync::Arc::clone(&k));
        let conn = ConnInfo {
            peer: "127.0.0.1:1".parse().unwrap(),
            client_cert: None,
        };
        for scheme in ["Bearer", "bearer", "BEARER"] {
            let (parts, ()) = http::Request::builder()
                .header(http::header::AUTHORIZATION, format!("{scheme} {token}"))
                .body(())
                .unwrap()
                .into_parts();
            assert!(
                matches!(
                    auth.authenticate(&parts, &conn),
                    AuthOutcome::Authenticated(_)
                ),
                "{scheme}"
            );
        }
        let (parts, ()) = http::Request::builder()
            .header(http::header::AUTHORIZATION, format!("Basic {token}"))
            .body(())
            .unwrap()
            .into_parts();
        assert!(matches!(
            auth.authenticate(&parts, &conn),
            AuthOutcome::Rejected(_)
        ));
    }
}
