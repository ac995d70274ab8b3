//! Stored objects served from their bytes. A GET or LIST of a kind that is served as it is
//! stored needs the stored JSON with `metadata.resourceVersion` written in, and the labels
//! when a label selector asks: building the object's tree for that (and serializing it again)
//! was most of a list's time.
//!
//! Three ways, the cheapest that applies: (1) find the `metadata` member (without parsing
//! when the object starts as this server writes them, `{"apiVersion":…,"kind":…,"metadata":{`,
//! and holds no `"resourceVersion"` at all; else by parsing up to its end), then splice
//! `"resourceVersion":"N"` in as its first member; stored values never
//! hold a `resourceVersion` ([`super::encode`] removes it), and one that does is left to
//! (2) splitting the top level and `metadata` into borrowed members and writing them again
//! without it; (3) whatever neither can read (a key with escape sequences before or inside
//! `metadata`, a `metadata` that is not an object) goes through the full decoder. All three
//! make the same object as [`super::decode_stored`].

use bulwark_store::KeyValue;
use serde::de::{Error as _, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::http::error::ApiError;

/// Labels of an object, as label selectors read them.
type Labels = Map<String, Value>;

/// A stored object with `metadata.resourceVersion` set, as JSON bytes, without its tree.
pub struct RawObject {
    /// The object's JSON, `metadata.resourceVersion` set.
    pub bytes: Vec<u8>,
    /// `metadata.labels`, parsed when asked for.
    labels: Option<Labels>,
}

impl RawObject {
    /// `metadata.labels` (`None` when there are none or they were not asked for).
    pub fn labels(&self) -> Option<&Labels> {
        self.labels.as_ref()
    }
}

/// The object stored in `kv` with `resourceVersion` set, and its labels when `labels`.
pub fn decode_raw(kv: &KeyValue, labels: bool) -> Result<RawObject, ApiError> {
    let mut bytes = Vec::with_capacity(kv.value.len() + 48);
    let labels = append_raw(kv, &mut bytes, labels)?;
    Ok(RawObject { bytes, labels })
}

/// Appends the object stored in `kv` to `out` with `resourceVersion` set (a list writes its
/// items straight into the response body); returns its labels when `labels` asks for them.
/// On error nothing is appended.
pub fn append_raw(
    kv: &KeyValue,
    out: &mut Vec<u8>,
    labels: bool,
) -> Result<Option<Labels>, ApiError> {
    if let Some(found) = splice(kv, out, labels) {
        return Ok(found);
    }
    if let Some(found) = rewrite_members(kv, out, labels) {
        return Ok(found);
    }
    let obj = super::decode_stored(kv)?;
    serde_json::to_writer(&mut *out, &obj).map_err(ApiError::internal)?;
    Ok(labels
        .then(|| crate::rest::object::labels(&obj).cloned())
        .flatten())
}

/// Why the search for a member stopped early (never seen by anyone: the span is the answer).
const FOUND: &str = "member found";

/// Finds the top-level member `name` and records where its value lies in the input; stops
/// parsing there by failing on purpose, so the bytes after it are never read.
struct MemberSpan<'s> {
    name: &'static str,
    base: usize,
    span: &'s mut Option<(usize, usize)>,
}

impl<'de> Visitor<'de> for MemberSpan<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
        while let Some(key) = map.next_key::<&'de str>()? {
            if key == self.name {
                let value: &'de RawValue = map.next_value()?;
                let start = value.get().as_ptr().addr().wrapping_sub(self.base);
                *self.span = Some((start, start.saturating_add(value.get().len())));
                return Err(M::Error::custom(FOUND));
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
}

/// Where the value of the top-level member `name` lies in `json`, if it is there.
fn member_span(json: &[u8], name: &'static str) -> Option<(usize, usize)> {
    let mut span = None;
    let mut de = serde_json::Deserializer::from_slice(json);
    let visitor = MemberSpan {
        name,
        base: json.as_ptr().addr(),
        span: &mut span,
    };
    let _ = serde::Deserializer::deserialize_map(&mut de, visitor);
    span.filter(|&(start, end)| start < end && end <= json.len())
}

/// `"resourceVersion"` as a JSON key or string.
static RESOURCE_VERSION: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"resourceVersion\""));

/// Where the `{` of `metadata` is in an object that starts the way this server writes them,
/// `{"apiVersion":"…","kind":"…","metadata":{` with strings free of quotes and escapes, and
/// that holds no `"resourceVersion"` anywhere: found without parsing (parsing `metadata`,
/// `managedFields` and all, to find its end was most of a long list's encoding).
fn written_metadata_start(json: &[u8]) -> Option<usize> {
    /// Where a string's closing quote is, if the string has no escape sequences.
    fn plain_string_end(s: &[u8]) -> Option<usize> {
        let end = memchr::memchr2(b'"', b'\\', s)?;
        (s.get(end) == Some(&b'"')).then_some(end)
    }
    let rest = json.strip_prefix(b"{\"apiVersion\":\"")?;
    let rest = rest.get(plain_string_end(rest)?..)?;
    let rest = rest.strip_prefix(b"\",\"kind\":\"")?;
    let rest = rest.get(plain_string_end(rest)?..)?;
    let rest = rest.strip_prefix(b"\",\"metadata\":{")?;
    if RESOURCE_VERSION.find(json).is_some() {
        return None;
    }
    json.len().checked_sub(rest.len() + 1)
}

/// Where the `{` of `metadata` is, found by parsing up to its end (and `metadata`'s labels
/// when `want_labels`); `None` when `metadata` is not an object or holds a `resourceVersion`.
fn parsed_metadata_start(json: &[u8], want_labels: bool) -> Option<(usize, Option<Labels>)> {
    let (start, end) = member_span(json, "metadata")?;
    let metadata = json.get(start..end)?;
    if metadata.first() != Some(&b'{') || RESOURCE_VERSION.find(metadata).is_some() {
        return None;
    }
    let labels = if want_labels {
        let members: RawMembers<'_> = serde_json::from_slice(metadata).ok()?;
        labels_among(&members.0)?
    } else {
        None
    };
    Some((start, labels))
}

/// Way 1 (see the module docs); `None` when it does not apply and nothing was appended.
fn splice(kv: &KeyValue, out: &mut Vec<u8>, want_labels: bool) -> Option<Option<Labels>> {
    let value = kv.value.as_ref();
    // Labels need `metadata` parsed anyway: the unparsed search is for lists without them.
    let found = if want_labels {
        None
    } else {
        written_metadata_start(value).map(|start| (start, None))
    };
    let (start, labels) = match found {
        Some(found) => found,
        None => parsed_metadata_start(value, want_labels)?,
    };
    let empty = value
        .get(start + 1..)?
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'}');
    out.reserve(value.len() + 32);
    out.extend_from_slice(value.get(..=start)?);
    out.extend_from_slice(b"\"resourceVersion\":\"");
    out.extend_from_slice(itoa::Buffer::new().format(kv.mod_revision.0).as_bytes());
    out.push(b'"');
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(value.get(start + 1..)?);
    Some(labels)
}

/// `labels` among the members of a `metadata` object, parsed: `None` if they do not
/// parse, `Some(None)` if there are none.
fn labels_among(metadata: &[(&str, &RawValue)]) -> Option<Option<Labels>> {
    match metadata.iter().find(|(k, _)| *k == "labels") {
        Some((_, raw)) => serde_json::from_str(raw.get()).ok().map(Some),
        None => Some(None),
    }
}

/// The members of one JSON object in their order, keys borrowed and values left unparsed.
/// Keys with escape sequences do not borrow, so they fail to parse here.
struct RawMembers<'a>(Vec<(&'a str, &'a RawValue)>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for RawMembers<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Members<'a> {
            type Value = RawMembers<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(RawMembers(members))
            }
        }
        deserializer.deserialize_map(Members(std::marker::PhantomData))
    }
}

/// Appends `"key":value` (with a leading comma after the first member).
fn push_member(bytes: &mut Vec<u8>, first: &mut bool, key: &str, value: &[u8]) {
    if !std::mem::take(first) {
        bytes.push(b',');
    }
    // A borrowed key has no escape sequences and no control characters: it is valid as is.
    bytes.push(b'"');
    bytes.extend_from_slice(key.as_bytes());
    bytes.extend_from_slice(b"\":");
    bytes.extend_from_slice(value);
}

/// Way 2 (see the module docs); `None` when it does not apply and nothing was appended.
fn rewrite_members(kv: &KeyValue, out: &mut Vec<u8>, want_labels: bool) -> Option<Option<Labels>> {
    let top: RawMembers<'_> = serde_json::from_slice(&kv.value).ok()?;
    let metadata = match top.0.iter().find(|(k, _)| *k == "metadata") {
        Some((_, raw)) => serde_json::from_str::<RawMembers<'_>>(raw.get()).ok()?.0,
        None => Vec::new(),
    };
    let labels = if want_labels {
        labels_among(&metadata)?
    } else {
        None
    };
    let revision = format!("\"{}\"", kv.mod_revision.0);
    let mut meta = Vec::new();
    meta.push(b'{');
    let mut first = true;
    for (key, value) in metadata.iter().filter(|(k, _)| *k != "resourceVersion") {
        push_member(&mut meta, &mut first, key, value.get().as_bytes());
    }
    push_member(
        &mut meta,
        &mut first,
        "resourceVersion",
        revision.as_bytes(),
    );
    meta.push(b'}');
    out.reserve(kv.value.len() + 48);
    out.push(b'{');
    let mut first = true;
    for (key, value) in &top.0 {
        let value = if *key == "metadata" {
            meta.as_slice()
        } else {
            value.get().as_bytes()
        };
        push_member(out, &mut first, key, value);
    }
    out.push(b'}');
    Some(labels)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]
    use super::*;
    use crate::registry::lookup;
    use crate::storage::{decode, encode};

    fn configmaps() -> std::sync::Arc<crate::registry::ResourceDef> {
        lookup(&bulwark_api::GroupVersionResource::new(
            "",
            "v1",
            "configmaps",
        ))
        .unwrap()
    }

    fn stored(value: &str) -> KeyValue {
        KeyValue {
            key: "/registry/core/configmaps/d/x".into(),
            value: value.as_bytes().to_vec().into(),
            create_revision: bulwark_store::Revision(3),
            mod_revision: bulwark_store::Revision(7),
            version: 2,
        }
    }

    /// Every way gives the object the full decoder gives, and the labels it holds.
    fn same_as_full_decoding(kv: &KeyValue) -> Vec<u8> {
        let cm = configmaps();
        let raw = decode_raw(kv, true).unwrap();
        let reparsed: Value = serde_json::from_slice(&raw.bytes).unwrap();
        let full = decode(&cm, kv).unwrap();
        assert_eq!(reparsed, full, "{}", String::from_utf8_lossy(&kv.value));
        assert_eq!(raw.labels(), crate::rest::object::labels(&full));
        assert_eq!(decode_raw(kv, false).unwrap().bytes, raw.bytes);
        raw.bytes
    }

    #[test]
    fn raw_decoding_matches_full_decoding() {
        let obj = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x", "labels": {"a": "b"}, "resourceVersion": "stale"},
            "data": {"metadata": "{\"not\": \"this\"}", "k": "v"}});
        let kv = stored(std::str::from_utf8(&encode(&configmaps(), &obj).unwrap()).unwrap());
        let bytes = same_as_full_decoding(&kv);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains(r#""resourceVersion":"7""#), "{text}");
        // Members keep their order; metadata's too.
        assert!(text.find("\"name\"") < text.find("\"labels\""), "{text}");
    }

    /// The shapes each way is for, and those that fall through to the next.
    #[test]
    fn every_shape_decodes_like_the_full_decoder() {
        for (way, value) in [
            // Way 1: metadata first, last, alone, empty; the name quoted in a value.
            (
                1,
                r#"{"metadata":{"name":"x","labels":{"a":"b"}},"kind":"ConfigMap","data":{"k":"v"}}"#,
            ),
            (
                1,
                r#"{"kind":"ConfigMap","data":{"metadata":{"resourceVersion":"1"}},"metadata":{"name":"x"}}"#,
            ),
            (1, r#"{"metadata":{}}"#),
            (
                1,
                r#"{"kind":"ConfigMap","metadata":{"annotations":{"a":"\"resourceVersion\""}}}"#,
            ),
            // Way 2: a stored resourceVersion (not written by this server, but readable); no
            // metadata at all.
            (
                2,
                r#"{"kind":"ConfigMap","metadata":{"resourceVersion":"1","labels":{"a":"b"}}}"#,
            ),
            (2, r#"{"kind":"ConfigMap","data":{"k":"v"}}"#),
            // Way 3: an escaped key before metadata, metadata that is not an object.
            (
                3,
                r#"{"kind":"ConfigMap","d\u0061ta":{},"metadata":{"name":"x","labels":{"a":"b"}}}"#,
            ),
            (3, r#"{"kind":"ConfigMap","metadata":null}"#),
        ] {
            let kv = stored(value);
            let ways = (
                splice(&kv, &mut Vec::new(), true).is_some(),
                rewrite_members(&kv, &mut Vec::new(), true).is_some(),
            );
            let expected = match way {
                1 => ways.0,
                2 => !ways.0 && ways.1,
                _ => !ways.0 && !ways.1,
            };
            assert!(expected, "{value} should take way {way}: {ways:?}");
            same_as_full_decoding(&kv);
        }
    }

    /// Objects in the shape this server writes are spliced without parsing, into the same
    /// bytes as parsing gives; any other shape, or a `"resourceVersion"` anywhere, is parsed.
    #[test]
    fn the_written_shape_is_found_without_parsing() {
        for (found, value) in [
            (
                true,
                r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","labels":{"a":"b"}},"data":{"k":"v"}}"#,
            ),
            (
                true,
                r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}"#,
            ),
            (
                true,
                r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{ }}"#,
            ),
            (
                true,
                r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"annotations":{"a":"\"resourceVersion\""}}}"#,
            ),
            (
                false,
                r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"resourceVersion":"1"}}"#,
            ),
            (
                false,
                r#"{"apiVersion":"v1","kind":"Con\u0066igMap","metadata":{"name":"x"}}"#,
            ),
            (
                false,
                r#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{}}"#,
            ),
            (
                false,
                r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":null}"#,
            ),
            (false, r#"{"apiVersion":"v1","kind":"ConfigMap"}"#),
            (false, r#"{"apiVersion":"v1"#),
        ] {
            let start = written_metadata_start(value.as_bytes());
            assert_eq!(start.is_some(), found, "{value}");
            if let Some(start) = start {
                assert_eq!(
                    &value[..=start],
                    r#"{"apiVersion":"#.to_owned() + &value[14..=start]
                );
                assert!(value[..start].ends_with(r#""metadata":"#), "{value}");
                assert_eq!(value.as_bytes()[start], b'{');
            }
            if value.ends_with('}') {
                same_as_full_decoding(&stored(value));
            }
        }
    }

    #[test]
    fn appending_leaves_what_was_there() {
        let mut out = b"[".to_vec();
        let labels = append_raw(
            &stored(r#"{"metadata":{"labels":{"a":"b"}}}"#),
            &mut out,
            true,
        );
        assert_eq!(labels.unwrap().unwrap()["a"], "b");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"[{"metadata":{"resourceVersion":"7","labels":{"a":"b"}}}"#
        );
        let mut out = b"[".to_vec();
        assert!(append_raw(&stored("not json"), &mut out, false).is_err());
        assert_eq!(out, b"[");
    }
}
