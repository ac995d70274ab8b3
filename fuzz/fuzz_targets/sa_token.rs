//! Service-account bearer tokens (JWS ES256): header, claims and signature parsing before and
//! after the signature check.
#![no_main]
use std::sync::LazyLock;

use bulwark_apiserver::authn::sa_token::{ISSUER, TokenKeys};
use libfuzzer_sys::fuzz_target;

static KEYS: LazyLock<TokenKeys> = LazyLock::new(|| {
    let ca =
        bulwark_pki::CertificateAuthority::generate("fuzz", std::time::Duration::from_secs(3600))
            .expect("a key");
    TokenKeys::from_pem(&ca.key_pem()).expect("a P-256 key")
});

fuzz_target!(|text: &str| {
    let _ = KEYS.verify(text, ISSUER);
    // A real token with the fuzz input spliced into each part.
    if let Ok((token, _)) = KEYS.issue("default", "robot", "uid", vec![ISSUER.into()], 600) {
        let parts: Vec<&str> = token.split('.').collect();
        for i in 0..parts.len() {
            let mut forged: Vec<&str> = parts.clone();
            if let Some(part) = forged.get_mut(i) {
                *part = text;
            }
            assert!(KEYS.verify(&forged.join("."), ISSUER).is_err() || text == parts[i]);
        }
    }
});
