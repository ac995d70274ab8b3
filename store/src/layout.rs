//! The MVCC keyspace inside an engine and the byte layout of its records.
//!
//! | engine key | value | purpose |
//! |---|---|---|
//! | `k` key | [`Meta`] | latest revision of a key (or its tombstone) |
//! | `h` key `\0` rev chunk | [`HistoryHeader`] + data (chunk 0) / data | every version, split in chunks |
//! | `l` rev | [`LogEntry`] | the change log that watch reads |
//! | `s` name | revision | system values (compaction point) |
//!
//! User keys never contain `\0`, so all versions of a key sort together and before any longer
//! key with the same prefix. Values are split into chunks of at most [`CHUNK_LEN`] bytes to stay
//! under FoundationDB's 100 KB value limit.

use crate::engine::{Stamped, prefix_end};
use crate::error::{Result, StoreError};
use crate::revision::{REVISION_LEN, Revision};

/// Largest accepted user key, in bytes.
pub const MAX_KEY_LEN: usize = 4096;
/// Largest accepted value (object), in bytes: 3 MiB.
pub const MAX_VALUE_LEN: usize = 3 * 1024 * 1024;
/// Largest engine value written by the MVCC layer (FoundationDB allows 100,000 bytes).
pub const CHUNK_LEN: usize = 96 * 1024;
/// Most chunks one version can have (the header takes room in the first).
pub const MAX_CHUNKS: usize = MAX_VALUE_LEN / CHUNK_LEN + 2;

const META: u8 = b'k';
const HISTORY: u8 = b'h';
const LOG: u8 = b'l';
const SYSTEM: u8 = b's';
const SEPARATOR: u8 = 0;
const CHUNK_INDEX_LEN: usize = 2;

/// The system key holding the compaction point.
pub fn compacted_key() -> Vec<u8> {
    let mut k = vec![SYSTEM];
    k.extend_from_slice(b"compacted");
    k
}

/// Checks a user key: non-empty, at most [`MAX_KEY_LEN`] bytes, no NUL.
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(StoreError::InvalidKey("key must not be empty".into()));
    }
    validate_prefix(key)
}

/// Checks a list/watch prefix (which may be empty, meaning everything).
pub fn validate_prefix(prefix: &str) -> Result<()> {
    if prefix.len() > MAX_KEY_LEN {
        return Err(StoreError::InvalidKey(format!(
            "key of {} bytes exceeds the limit of {MAX_KEY_LEN} bytes",
            prefix.len()
        )));
    }
    if prefix.as_bytes().contains(&SEPARATOR) {
        return Err(StoreError::InvalidKey("key must not contain NUL".into()));
    }
    Ok(())
}

/// Checks a value against [`MAX_VALUE_LEN`].
pub fn validate_value(value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_LEN {
        return Err(StoreError::ValueTooLarge {
            size: value.len(),
            limit: MAX_VALUE_LEN,
        });
    }
    Ok(())
}

/// `k` + key.
pub fn meta_key(key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + key.len());
    k.push(META);
    k.extend_from_slice(key.as_bytes());
    k
}

/// `h` + key + `\0`: the prefix of every version of `key`.
pub fn history_versions_prefix(key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + key.len() + REVISION_LEN + CHUNK_INDEX_LEN);
    k.push(HISTORY);
    k.extend_from_slice(key.as_bytes());
    k.push(SEPARATOR);
    k
}

/// The engine key of one chunk of one version.
pub fn history_key(key: &str, revision: Revision, chunk: u16) -> Vec<u8> {
    let mut k = history_versions_prefix(key);
    k.extend_from_slice(&revision.encode());
    k.extend_from_slice(&chunk.to_be_bytes());
    k
}

/// A history chunk key whose revision is filled at commit.
pub fn history_key_stamped(key: &str, chunk: u16) -> Stamped {
    let mut bytes = history_versions_prefix(key);
    let offset = bytes.len();
    bytes.extend_from_slice(&[0; REVISION_LEN]);
    bytes.extend_from_slice(&chunk.to_be_bytes());
    Stamped { bytes, offset }
}

/// The key range `[start, end)` holding every chunk of one version.
pub fn history_version_range(key: &str, revision: Revision) -> (Vec<u8>, Vec<u8>) {
    let mut start = history_versions_prefix(key);
    start.extend_from_slice(&revision.encode());
    let end = prefix_end(&start).unwrap_or_default();
    (start, end)
}

/// The key range of the history of every key starting with `prefix`.
pub fn history_prefix_range(prefix: &str) -> (Vec<u8>, Vec<u8>) {
    let mut start = vec![HISTORY];
    start.extend_from_slice(prefix.as_bytes());
    let end = prefix_end(&start).unwrap_or_else(|| vec![HISTORY + 1]);
    (start, end)
}

/// The key range of every version of exactly `key`.
pub fn history_prefix_range_of_key(key: &str) -> (Vec<u8>, Vec<u8>) {
    let start = history_versions_prefix(key);
    let end = prefix_end(&start).unwrap_or_default();
    (start, end)
}

/// The key range of the history starting at user key `from` (inclusive) within `prefix`.
pub fn history_range_from(prefix: &str, from: &str) -> (Vec<u8>, Vec<u8>) {
    let (_, end) = history_prefix_range(prefix);
    let mut start = vec![HISTORY];
    start.extend_from_slice(from.as_bytes());
    (start, end)
}

/// A parsed history key.
#[derive(Debug, PartialEq, Eq)]
pub struct HistoryKey<'a> {
    /// The user key.
    pub key: &'a str,
    /// The version's revision.
    pub revision: Revision,
    /// Chunk index.
    pub chunk: u16,
}

/// Parses an engine key from the history range.
pub fn parse_history_key(raw: &[u8]) -> Result<HistoryKey<'_>> {
    let bad = |why: &str| StoreError::corrupt(raw, why);
    let rest = raw
        .strip_prefix(&[HISTORY])
        .ok_or_else(|| bad("not a history key"))?;
    let tail_len = 1 + REVISION_LEN + CHUNK_INDEX_LEN;
    if rest.len() < tail_len {
        return Err(bad("history key too short"));
    }
    let (user, tail) = rest.split_at(rest.len() - tail_len);
    let (sep, tail) = tail.split_at(1);
    let (rev, chunk) = tail.split_at(REVISION_LEN);
    if sep != [SEPARATOR] {
        return Err(bad("missing separator"));
    }
    let revision = Revision::decode(rev).ok_or_else(|| bad("bad revision"))?;
    let chunk: [u8; 2] = chunk.try_into().map_err(|_| bad("bad chunk index"))?;
    let key = std::str::from_utf8(user).map_err(|_| bad("key is not UTF-8"))?;
    Ok(HistoryKey {
        key,
        revision,
        chunk: u16::from_be_bytes(chunk),
    })
}

/// `l` + placeholder: the log key of the committing write.
pub fn log_key_stamped() -> Stamped {
    let mut bytes = vec![LOG];
    bytes.extend_from_slice(&[0; REVISION_LEN]);
    Stamped { bytes, offset: 1 }
}

/// The log key of a write at `revision` (the key [`log_key_stamped`] becomes at commit).
pub fn log_key(revision: Revision) -> Vec<u8> {
    let mut key = vec![LOG];
    key.extend_from_slice(&revision.encode());
    key
}

/// The log range of revisions strictly after `after`.
pub fn log_range_after(after: Revision) -> (Vec<u8>, Vec<u8>) {
    let mut start = vec![LOG];
    start.extend_from_slice(&after.encode());
    start.push(0);
    (start, vec![LOG + 1])
}

/// The log range of revisions at or below `upto`.
pub fn log_range_upto(upto: Revision) -> (Vec<u8>, Vec<u8>) {
    let mut end = vec![LOG];
    end.extend_from_slice(&upto.encode());
    end.push(0);
    (vec![LOG], end)
}

/// Parses a log key into its revision.
pub fn parse_log_key(raw: &[u8]) -> Result<Revision> {
    raw.strip_prefix(&[LOG])
        .and_then(Revision::decode)
        .ok_or_else(|| StoreError::corrupt(raw, "bad log key"))
}

/// Whether a version is a value or a deletion marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A value.
    Put = 0,
    /// A deletion marker (tombstone).
    Delete = 1,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Kind> {
        match b {
            0 => Some(Kind::Put),
            1 => Some(Kind::Delete),
            _ => None,
        }
    }
}

/// The latest state of a key (`k` records).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Revision of the latest version (put or delete).
    pub mod_revision: Revision,
    /// Whether the key is currently deleted.
    pub kind: Kind,
    /// Revision at which the current incarnation was created.
    pub create_revision: Revision,
    /// Number of writes since creation (1 after create).
    pub version: u64,
}

const META_LEN: usize = REVISION_LEN + 1 + REVISION_LEN + 8;

impl Meta {
    /// Encodes a meta record whose `mod_revision` is the committing write's revision. A zero
    /// `create_revision` means "the committing write's revision" (FDB fills one placeholder per
    /// value only).
    pub fn encode_stamped(kind: Kind, create_revision: Revision, version: u64) -> Stamped {
        let mut bytes = Vec::with_capacity(META_LEN);
        bytes.extend_from_slice(&[0; REVISION_LEN]);
        bytes.push(kind as u8);
        bytes.extend_from_slice(&create_revision.encode());
        bytes.extend_from_slice(&version.to_be_bytes());
        Stamped { bytes, offset: 0 }
    }

    /// Decodes a meta record read back from the engine.
    pub fn decode(key: &[u8], raw: &[u8]) -> Result<Meta> {
        let bad = |why: &str| StoreError::corrupt(key, why);
        if raw.len() != META_LEN {
            return Err(bad("meta record has the wrong length"));
        }
        let (modr, rest) = raw.split_at(REVISION_LEN);
        let (kind, rest) = rest.split_at(1);
        let (creater, version) = rest.split_at(REVISION_LEN);
        let mod_revision = Revision::decode(modr).ok_or_else(|| bad("bad revision"))?;
        let kind = kind
            .first()
            .and_then(|b| Kind::from_byte(*b))
            .ok_or_else(|| bad("bad kind"))?;
        let create = Revision::decode(creater).ok_or_else(|| bad("bad revision"))?;
        let version: [u8; 8] = version.try_into().map_err(|_| bad("bad version"))?;
        Ok(Meta {
            mod_revision,
            kind,
            create_revision: if create == Revision::ZERO {
                mod_revision
            } else {
                create
            },
            version: u64::from_be_bytes(version),
        })
    }
}

/// The header at the start of chunk 0 of every version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryHeader {
    /// Put or delete.
    pub kind: Kind,
    /// Creation revision of the incarnation, zero meaning "this version's own revision".
    pub create_revision: Revision,
    /// Version counter (see [`Meta::version`]).
    pub version: u64,
    /// Total value length over all chunks.
    pub value_len: u32,
}

/// Length of an encoded [`HistoryHeader`].
pub const HEADER_LEN: usize = 1 + REVISION_LEN + 8 + 4;

impl HistoryHeader {
    /// Splits a version into its chunk values (header + data in chunk 0).
    pub fn encode_chunks(&self, value: &[u8]) -> Vec<Vec<u8>> {
        let mut first = Vec::with_capacity(CHUNK_LEN.min(HEADER_LEN + value.len()));
        first.push(self.kind as u8);
        first.extend_from_slice(&self.create_revision.encode());
        first.extend_from_slice(&self.version.to_be_bytes());
        first.extend_from_slice(&self.value_len.to_be_bytes());
        let first_data = value.len().min(CHUNK_LEN - HEADER_LEN);
        let (head, rest) = value.split_at(first_data);
        first.extend_from_slice(head);
        let mut chunks = vec![first];
        chunks.extend(rest.chunks(CHUNK_LEN).map(<[u8]>::to_vec));
        chunks
    }

    /// Decodes the header of chunk 0 and returns it with the chunk's data part.
    pub fn decode<'a>(key: &[u8], raw: &'a [u8]) -> Result<(HistoryHeader, &'a [u8])> {
        let bad = |why: &str| StoreError::corrupt(key, why);
        if raw.len() < HEADER_LEN {
            return Err(bad("history header too short"));
        }
        let (head, data) = raw.split_at(HEADER_LEN);
        let (kind, rest) = head.split_at(1);
        let (create, rest) = rest.split_at(REVISION_LEN);
        let (version, len) = rest.split_at(8);
        let kind = kind
            .first()
            .and_then(|b| Kind::from_byte(*b))
            .ok_or_else(|| bad("bad kind"))?;
        let create_revision = Revision::decode(create).ok_or_else(|| bad("bad revision"))?;
        let version: [u8; 8] = version.try_into().map_err(|_| bad("bad version"))?;
        let len: [u8; 4] = len.try_into().map_err(|_| bad("bad length"))?;
        Ok((
            HistoryHeader {
                kind,
                create_revision,
                version: u64::from_be_bytes(version),
                value_len: u32::from_be_bytes(len),
            },
            data,
        ))
    }
}

/// One change-log record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// Put or delete.
    pub kind: Kind,
    /// Revision of the previous version of the key (zero if the key did not exist).
    pub prev_revision: Revision,
    /// The user key.
    pub key: String,
}

impl LogEntry {
    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(1 + REVISION_LEN + self.key.len());
        v.push(self.kind as u8);
        v.extend_from_slice(&self.prev_revision.encode());
        v.extend_from_slice(self.key.as_bytes());
        v
    }

    /// Decodes a record.
    pub fn decode(key: &[u8], raw: &[u8]) -> Result<LogEntry> {
        let bad = |why: &str| StoreError::corrupt(key, why);
        if raw.len() < 1 + REVISION_LEN {
            return Err(bad("log entry too short"));
        }
        let (kind, rest) = raw.split_at(1);
        let (prev, user) = rest.split_at(REVISION_LEN);
        Ok(LogEntry {
            kind: kind
                .first()
                .and_then(|b| Kind::from_byte(*b))
                .ok_or_else(|| bad("bad kind"))?,
            prev_revision: Revision::decode(prev).ok_or_else(|| bad("bad revision"))?,
            key: String::from_utf8(user.to_vec()).map_err(|_| bad("key is not UTF-8"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn history_keys_of_a_key_sort_before_longer_keys() {
        let a = history_key("ns/a", Revision(u64::MAX), 7);
        let ab = history_key("ns/a/b", Revision(1), 0);
        assert!(a < ab);
        let (start, end) = history_prefix_range("ns/a/");
        assert!(ab >= start && ab < end);
        assert!(!(a >= start && a < end));
    }

    #[test]
    fn validates_keys() {
        assert!(validate_key("").is_err());
        assert!(validate_key("a\0b").is_err());
        assert!(validate_key(&"x".repeat(MAX_KEY_LEN + 1)).is_err());
        assert!(validate_key("/registry/pods/default/p").is_ok());
        assert!(validate_value(&vec![0; MAX_VALUE_LEN + 1]).is_err());
    }

    proptest! {
        #[test]
        fn history_key_round_trips(key in "[a-z/]{1,40}", rev: u64, chunk: u16) {
            let raw = history_key(&key, Revision(rev), chunk);
            let parsed = parse_history_key(&raw).unwrap();
            prop_assert_eq!(parsed, HistoryKey { key: &key, revision: Revision(rev), chunk });
        }

        #[test]
        fn chunks_reassemble(len in 0usize..(3 * CHUNK_LEN)) {
            let value: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let h = HistoryHeader { kind: Kind::Put, create_revision: Revision(3), version: 2, value_len: len as u32 };
            let chunks = h.encode_chunks(&value);
            prop_assert!(chunks.iter().all(|c| c.len() <= CHUNK_LEN));
            let (head, data) = HistoryHeader::decode(b"k", &chunks[0]).unwrap();
            prop_assert_eq!(head, h);
            let mut all = data.to_vec();
            for c in &chunks[1..] { all.extend_from_slice(c); }
            prop_assert_eq!(all, value);
        }

        #[test]
        fn garbage_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_history_key(&raw);
            let _ = Meta::decode(b"k", &raw);
            let _ = HistoryHeader::decode(b"k", &raw);
            let _ = LogEntry::decode(b"k", &raw);
            let _ = parse_log_key(&raw);
        }
    }

    #[test]
    fn meta_round_trips_with_self_create_revision() {
        let s = Meta::encode_stamped(Kind::Put, Revision::ZERO, 1);
        let raw = s.fill(Revision(42));
        let m = Meta::decode(b"k", &raw).unwrap();
        assert_eq!(m.mod_revision, Revision(42));
        assert_eq!(m.create_revision, Revision(42));
        assert_eq!(m.version, 1);
    }
}
