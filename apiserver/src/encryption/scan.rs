//! What is stored under which key: the encrypted resources' collections read as stored
//! (without decrypting, for counts) or opened (for verification), a page at a time.

use std::collections::BTreeMap;
use std::sync::Arc;

use bulwark_encryption::envelope::stored_key;
use bulwark_encryption::is_encrypted;
use bulwark_encryption::resources::StorageProvider;
use bulwark_store::{KeyValue, ListOptions, ListPage};

use super::Backing;
use super::Encryption;
use crate::http::error::{ApiError, from_store};

/// Values per page of a scan.
pub(crate) const PAGE: usize = 500;

/// One collection a resource rule covers.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// API group (`""` for core).
    pub group: String,
    /// Resource (plural).
    pub resource: String,
    /// Its store prefix.
    pub prefix: String,
    /// The provider that writes it.
    pub writer: Arc<dyn StorageProvider>,
}

/// The collections the configuration's rules cover, among the served resources.
pub(crate) fn targets(state: &Backing, encryption: &Encryption) -> Vec<Target> {
    let table = state.registry.snapshot();
    let mut out: Vec<Target> = Vec::new();
    for def in table.iter().filter(|d| d.stored()) {
        let stored = crate::registry::convert::storage_def(def);
        let Some(writer) = encryption
            .transformers()
            .chain_for(stored.group(), stored.plural())
            .and_then(|c| c.writer())
        else {
            continue;
        };
        let prefix = crate::storage::collection_prefix(stored, None);
        if out.iter().any(|t| t.prefix == prefix) {
            continue;
        }
        out.push(Target {
            group: stored.group().to_owned(),
            resource: stored.plural().to_owned(),
            prefix,
            writer: Arc::clone(writer),
        });
    }
    out
}

/// The form a value is stored in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Form {
    /// As it is.
    Plaintext,
    /// Envelope-encrypted by `provider` under KEK `key_id`.
    Envelope {
        /// The provider name.
        provider: String,
        /// The KEK id.
        key_id: String,
    },
    /// Encrypted in another provider's format (its prefix).
    Other(String),
}

impl Form {
    /// How status names it: `provider/key`, the prefix, or `plaintext`.
    pub fn label(&self) -> String {
        match self {
            Self::Plaintext => "plaintext".into(),
            Self::Envelope { provider, key_id } => format!("{provider}/{key_id}"),
            Self::Other(prefix) => prefix.clone(),
        }
    }
}

/// The form of a stored value, read from its prefix and header only.
pub(crate) fn form_of(stored: &[u8]) -> Form {
    if !is_encrypted(stored) {
        return Form::Plaintext;
    }
    if let Some((provider, key_id)) = stored_key(stored) {
        return Form::Envelope { provider, key_id };
    }
    let end = stored
        .iter()
        .take(96)
        .rposition(|b| *b == b':')
        .map_or(0, |i| i + 1);
    Form::Other(String::from_utf8_lossy(stored.get(..end).unwrap_or_default()).into_owned())
}

/// Whether a value is stored the way `writer` writes now (with the key id `current`, for an
/// envelope provider): what rotation leaves alone.
pub(crate) fn is_current(
    stored: &[u8],
    writer: &dyn StorageProvider,
    current: Option<&str>,
) -> bool {
    if writer.prefix().is_empty() {
        return !is_encrypted(stored);
    }
    if !stored.starts_with(writer.prefix()) {
        return false;
    }
    match (writer.envelope(), current) {
        (Some(_), Some(current)) => stored_key(stored).is_some_and(|(_, key)| key == current),
        _ => true,
    }
}

/// One page of `prefix` as stored.
pub(crate) async fn page(
    state: &Backing,
    target: &Target,
    token: Option<String>,
) -> Result<ListPage, ApiError> {
    state
        .objects
        .list_stored(
            &target.prefix,
            ListOptions {
                limit: PAGE,
                continue_token: token,
                ..ListOptions::default()
            },
        )
        .await
        .map_err(|e| from_store(e, &target.group, &target.resource, ""))
}

/// The counts of one collection.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counts {
    /// Values per form label.
    pub by_form: BTreeMap<String, u64>,
    /// Values stored in plaintext.
    pub plaintext: u64,
    /// Values stored encrypted.
    pub encrypted: u64,
}

/// Counts what `target` holds, by form.
pub(crate) async fn count(state: &Backing, target: &Target) -> Result<Counts, ApiError> {
    let mut counts = Counts::default();
    let mut token = None;
    loop {
        let page = page(state, target, token.take()).await?;
        for kv in &page.items {
            let form = form_of(&kv.value);
            if form == Form::Plaintext {
                counts.plaintext += 1;
            } else {
                counts.encrypted += 1;
            }
            *counts.by_form.entry(form.label()).or_default() += 1;
        }
        match page.continue_token {
            Some(t) => token = Some(t),
            None => return Ok(counts),
        }
    }
}

/// What verification found in one collection.
#[derive(Debug, Clone, Default)]
pub(crate) struct Verified {
    /// Values read.
    pub checked: u64,
    /// Values that are ciphertext and decrypt under a live key.
    pub ok: u64,
    /// Keys of values stored in plaintext (at most [`MAX_LISTED`]).
    pub plaintext: Vec<String>,
    /// Keys of values that did not decrypt, and why (at most [`MAX_LISTED`]).
    pub failed: Vec<(String, String)>,
    /// Plaintext values in all.
    pub plaintext_count: u64,
    /// Failures in all.
    pub failed_count: u64,
}

/// Most keys a verification lists per problem.
pub(crate) const MAX_LISTED: usize = 100;

/// Reads every value of `target` and checks it is ciphertext that decrypts.
pub(crate) async fn verify(state: &Backing, target: &Target) -> Result<Verified, ApiError> {
    let mut out = Verified::default();
    let mut token = None;
    loop {
        let page = page(state, target, token.take()).await?;
        for kv in page.items {
            out.checked += 1;
            if !is_encrypted(&kv.value) {
                out.plaintext_count += 1;
                if out.plaintext.len() < MAX_LISTED {
                    out.plaintext.push(kv.key.clone());
                }
                continue;
            }
            let key = kv.key.clone();
            match state.objects.plain_form(kv).await {
                Ok(plain) if serde_json::from_slice::<serde_json::Value>(&plain.value).is_ok() => {
                    out.ok += 1;
                }
                Ok(_) => note_failure(
                    &mut out,
                    key,
                    "decrypted to something that is not an object".into(),
                ),
                Err(e) => note_failure(&mut out, key, e.to_string()),
            }
        }
        match page.continue_token {
            Some(t) => token = Some(t),
            None => return Ok(out),
        }
    }
}

fn note_failure(out: &mut Verified, key: String, why: String) {
    out.failed_count += 1;
    if out.failed.len() < MAX_LISTED {
        out.failed.push((key, why));
    }
}

/// The keys in `page` that are not stored as `writer` writes now.
pub(crate) fn stale<'a>(
    items: &'a [KeyValue],
    writer: &'a dyn StorageProvider,
    current: Option<&'a str>,
) -> impl Iterator<Item = &'a KeyValue> + 'a {
    items
        .iter()
        .filter(move |kv| !is_current(&kv.value, writer, current))
}
