//! Opaque list continue tokens: the snapshot revision of the first page and the key to resume
//! at, so every page of one list comes from the same snapshot even while writes continue.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::revision::Revision;

/// Longest token accepted before decoding (keys are at most 4 KiB).
const MAX_TOKEN_LEN: usize = 8 * 1024;
const TOKEN_VERSION: u8 = 1;

/// A decoded continue token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContinueToken {
    /// Layout version.
    #[serde(rename = "v")]
    pub version: u8,
    /// Revision of the list snapshot.
    #[serde(rename = "rv")]
    pub revision: u64,
    /// First key of the next page (inclusive).
    #[serde(rename = "start")]
    pub start: String,
}

impl ContinueToken {
    /// A token for the page starting at `start` of the snapshot at `revision`.
    pub fn new(revision: Revision, start: String) -> Self {
        Self {
            version: TOKEN_VERSION,
            revision: revision.get(),
            start,
        }
    }

    /// The token's string form.
    pub fn encode(&self) -> String {
        // Serializing a struct of plain fields cannot fail; fall back to an empty (invalid)
        // token rather than panicking if it ever did.
        let json = serde_json::to_vec(self).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    /// Parses a token and checks that it belongs to a list of `prefix`.
    pub fn decode(token: &str, prefix: &str) -> Result<Self> {
        let bad = |why: &str| StoreError::InvalidContinue(why.to_string());
        if token.len() > MAX_TOKEN_LEN {
            return Err(bad("token too long"));
        }
        let raw = URL_SAFE_NO_PAD
            .decode(token.trim_end_matches('='))
            .map_err(|_| bad("not base64"))?;
        let parsed: ContinueToken = serde_json::from_slice(&raw).map_err(|_| bad("not a token"))?;
        if parsed.version != TOKEN_VERSION {
            return Err(bad("unsupported token version"));
        }
        if parsed.revision == 0 {
            return Err(bad("token has no revision"));
        }
        if parsed.start.is_empty() || !parsed.start.starts_with(prefix) {
            return Err(bad("token does not belong to this list"));
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips_and_checks_prefix() {
        let t = ContinueToken::new(Revision(9), "ns/a/x".into());
        let s = t.encode();
        assert_eq!(ContinueToken::decode(&s, "ns/a/").unwrap(), t);
        assert!(ContinueToken::decode(&s, "ns/b/").is_err());
        assert!(ContinueToken::decode("!!!", "").is_err());
        assert!(ContinueToken::decode("e30", "").is_err()); // "{}"
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_panic(s in ".{0,200}") {
            let _ = ContinueToken::decode(&s, "");
        }
    }
}
