//! The query index: for every event record of a segment, the few fields auditors search on
//! (time, user, verb, resource, namespace, decision, response code) as small integers, and
//! where the record's line is. Searching a million events is then a scan of a few tens of
//! megabytes of rows instead of parsing gigabytes of JSON; only the matches are read back.
//!
//! - The writer indexes the records as it writes them (the fields come from the same bytes
//!   that are written) and saves a closed segment's index next to it as
//!   `audit-<seq>.jsonl.idx` (and the open segment's at shutdown).
//! - A missing or stale index is rebuilt from the segment ([`SegmentIndex::extend_from`]),
//!   so a copied log without its `.idx` files can be queried too.
//! - The index is derived data, not evidence: answers are read from the log itself, and
//!   `bulwark audit verify` is what proves the log complete and unchanged.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{AuditError, io};

/// The index format version (the first field of an `.idx` file).
const VERSION: u32 = 1;

/// How a request was decided, as far as auditors search for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    /// No authorization decision was made (e.g. an event from a component, not a request).
    None,
    /// Authorized, and not refused by admission.
    Allow,
    /// Refused: authentication failed, authorization forbade it, or admission denied it.
    Deny,
}

impl Decision {
    /// The decision an event's annotations record (`note` looks one up).
    pub fn from_annotations<'a>(note: impl Fn(&str) -> Option<&'a str>) -> Self {
        let authorization = note("authorization.k8s.io/decision");
        if note("authentication.bulwark.dev/failure").is_some()
            || authorization == Some("forbid")
            || note("admission.bulwark.dev/denied").is_some()
        {
            Self::Deny
        } else if authorization == Some("allow") {
            Self::Allow
        } else {
            Self::None
        }
    }
}

/// The searchable fields of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    /// `stageTimestamp`, microseconds since the Unix epoch.
    pub time: i64,
    /// The authenticated user.
    pub user: String,
    /// The impersonated user, if any.
    pub impersonated: String,
    /// The verb.
    pub verb: String,
    /// `objectRef.resource`.
    pub resource: String,
    /// `objectRef.subresource`.
    pub subresource: String,
    /// `objectRef.namespace`.
    pub namespace: String,
    /// The decision.
    pub decision: Decision,
    /// `responseStatus.code` (0 when absent).
    pub code: u16,
}

/// The parts of an event the index reads (borrowed; everything else is skipped unparsed).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventView<'a> {
    #[serde(borrow)]
    verb: Cow<'a, str>,
    #[serde(borrow)]
    user: UserView<'a>,
    #[serde(borrow, default)]
    impersonated_user: Option<UserView<'a>>,
    #[serde(borrow, default)]
    object_ref: Option<ObjectRefView<'a>>,
    #[serde(default)]
    response_status: Option<StatusView>,
    #[serde(borrow)]
    stage_timestamp: Cow<'a, str>,
    #[serde(borrow, default)]
    annotations: BTreeMap<Cow<'a, str>, Cow<'a, str>>,
}

#[derive(Deserialize)]
struct UserView<'a> {
    #[serde(borrow, default)]
    username: Cow<'a, str>,
}

#[derive(Deserialize)]
struct ObjectRefView<'a> {
    #[serde(borrow, default)]
    resource: Cow<'a, str>,
    #[serde(borrow, default)]
    subresource: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    namespace: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct StatusView {
    #[serde(default)]
    code: u16,
}

/// A record line: only `event` is read.
#[derive(Deserialize)]
struct LineView<'a> {
    #[serde(borrow, default)]
    event: Option<&'a RawValue>,
}

/// Parses an RFC 3339 timestamp into microseconds since the epoch.
pub fn parse_time(text: &str) -> Option<i64> {
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000).ok()
}

impl EventView<'_> {
    fn fields(&self) -> Fields {
        let decision = Decision::from_annotations(|k| self.annotations.get(k).map(|v| v.as_ref()));
        let object = self.object_ref.as_ref();
        Fields {
            time: parse_time(&self.stage_timestamp).unwrap_or(0),
            user: self.user.username.clone().into_owned(),
            impersonated: self
                .impersonated_user
                .as_ref()
                .map(|u| u.username.clone().into_owned())
                .unwrap_or_default(),
            verb: self.verb.clone().into_owned(),
            resource: object.map(|o| o.resource.to_string()).unwrap_or_default(),
            subresource: object
                .and_then(|o| o.subresource.as_ref())
                .map(ToString::to_string)
                .unwrap_or_default(),
            namespace: object
                .and_then(|o| o.namespace.as_ref())
                .map(ToString::to_string)
                .unwrap_or_default(),
            decision,
            code: self.response_status.as_ref().map_or(0, |s| s.code),
        }
    }
}

impl Fields {
    /// The fields of an event (what the writer indexes; the same as
    /// [`Fields::of_event_json`] of its serialization, which rebuilding an index reads).
    pub fn of_event(event: &crate::Event) -> Self {
        let object = event.object_ref.as_ref();
        Self {
            time: parse_time(&event.stage_timestamp).unwrap_or(0),
            user: event.user.username.clone(),
            impersonated: event
                .impersonated_user
                .as_ref()
                .map(|u| u.username.clone())
                .unwrap_or_default(),
            verb: event.verb.clone(),
            resource: object.map(|o| o.resource.clone()).unwrap_or_default(),
            subresource: object
                .and_then(|o| o.subresource.clone())
                .unwrap_or_default(),
            namespace: object.and_then(|o| o.namespace.clone()).unwrap_or_default(),
            decision: Decision::from_annotations(|k| event.annotations.get(k).map(String::as_str)),
            code: event.response_status.as_ref().map_or(0, |s| s.code),
        }
    }

    /// The fields of a serialized `audit.k8s.io/v1` Event (what the writer indexes, from the
    /// very bytes it writes). `None` if it is not an event.
    pub fn of_event_json(event: &[u8]) -> Option<Self> {
        serde_json::from_slice::<EventView<'_>>(event)
            .ok()
            .map(|e| e.fields())
    }

    /// The fields of a record line: `Ok(None)` for checkpoints and recovery notes, `Err` if
    /// the line does not parse.
    /// An event that lacks the searched fields is indexed with them empty: still found by
    /// an unfiltered query, never lost.
    fn of_line(line: &[u8]) -> Result<Option<Self>, serde_json::Error> {
        Ok(serde_json::from_slice::<LineView<'_>>(line)?
            .event
            .map(|raw| Self::of_event_json(raw.get().as_bytes()).unwrap_or_else(Self::empty)))
    }

    /// No searchable fields.
    pub fn empty() -> Self {
        Self {
            time: 0,
            user: String::new(),
            impersonated: String::new(),
            verb: String::new(),
            resource: String::new(),
            subresource: String::new(),
            namespace: String::new(),
            decision: Decision::None,
            code: 0,
        }
    }
}

/// One indexed event record. Strings are ids into the segment's string table (0 = empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// Byte offset of the line in the segment.
    pub offset: u64,
    /// Line length without the newline.
    pub len: u32,
    /// `stageTimestamp`, µs since the epoch.
    pub time: i64,
    /// Authenticated user.
    pub user: u32,
    /// Impersonated user.
    pub impersonated: u32,
    /// Verb.
    pub verb: u32,
    /// Resource.
    pub resource: u32,
    /// Subresource.
    pub subresource: u32,
    /// Namespace.
    pub namespace: u32,
    /// Decision.
    pub decision: Decision,
    /// Response code.
    pub code: u16,
}

/// The index of one segment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SegmentIndex {
    version: u32,
    /// Bytes of the segment indexed (always at a line boundary).
    pub covered: u64,
    /// The string table; id 0 is "".
    strings: Vec<String>,
    #[serde(skip)]
    ids: HashMap<String, u32>,
    /// One row per event record, in log order.
    pub rows: Vec<Row>,
    /// The earliest and latest event time (µs), if any rows.
    pub span: Option<(i64, i64)>,
}

impl Default for SegmentIndex {
    fn default() -> Self {
        Self {
            version: VERSION,
            covered: 0,
            strings: vec![String::new()],
            ids: HashMap::from([(String::new(), 0)]),
            rows: Vec::new(),
            span: None,
        }
    }
}

/// The index file of `segment`.
pub fn index_path(segment: &Path) -> PathBuf {
    let mut name = segment.as_os_str().to_owned();
    name.push(".idx");
    PathBuf::from(name)
}

impl SegmentIndex {
    /// The id of `s` in this segment's table, if it occurs at all.
    pub fn id(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    /// The string with id `id`.
    pub fn string(&self, id: u32) -> &str {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.strings.get(i))
            .map_or("", String::as_str)
    }

    fn intern(&mut self, s: String) -> u32 {
        if let Some(id) = self.ids.get(&s) {
            return *id;
        }
        let id = u32::try_from(self.strings.len()).unwrap_or(u32::MAX);
        self.strings.push(s.clone());
        self.ids.insert(s, id);
        id
    }

    /// Adds the event record at `offset` (its line `len` bytes long).
    pub fn push(&mut self, offset: u64, len: u32, fields: Fields) {
        let row = Row {
            offset,
            len,
            time: fields.time,
            user: self.intern(fields.user),
            impersonated: self.intern(fields.impersonated),
            verb: self.intern(fields.verb),
            resource: self.intern(fields.resource),
            subresource: self.intern(fields.subresource),
            namespace: self.intern(fields.namespace),
            decision: fields.decision,
            code: fields.code,
        };
        self.span = Some(match self.span {
            None => (row.time, row.time),
            Some((lo, hi)) => (lo.min(row.time), hi.max(row.time)),
        });
        self.rows.push(row);
    }

    /// Indexes `segment` from [`Self::covered`] to its last complete line. A line that is
    /// not a record stops the indexing there (the verifier reports it); what was indexed
    /// stays usable.
    pub fn extend_from(&mut self, segment: &Path) -> Result<(), AuditError> {
        let mut file = std::fs::File::open(segment).map_err(io(segment))?;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(self.covered))
            .map_err(io(segment))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io(segment))?;
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let mut offset = self.covered;
        for line in bytes
            .get(..complete)
            .unwrap_or_default()
            .split_inclusive(|b| *b == b'\n')
        {
            let text = line.strip_suffix(b"\n").unwrap_or(line);
            match Fields::of_line(text) {
                Ok(Some(fields)) => {
                    self.push(
                        offset,
                        u32::try_from(text.len()).unwrap_or(u32::MAX),
                        fields,
                    );
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(segment = %segment.display(), offset, error = %e, "audit index: a line is not a record; indexed up to it");
                    return Ok(());
                }
            }
            offset += line.len() as u64;
            self.covered = offset;
        }
        Ok(())
    }

    /// Builds the index of a whole segment.
    pub fn build(segment: &Path) -> Result<Self, AuditError> {
        let mut index = Self::default();
        index.extend_from(segment)?;
        Ok(index)
    }

    /// Loads `segment`'s saved index; `None` if there is none or it does not decode.
    pub fn load(segment: &Path) -> Option<Self> {
        let bytes = std::fs::read(index_path(segment)).ok()?;
        let mut index: Self = postcard::from_bytes(&bytes).ok()?;
        if index.version != VERSION {
            return None;
        }
        index.ids = index
            .strings
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((s.clone(), u32::try_from(i).ok()?)))
            .collect();
        Some(index)
    }

    /// Saves the index next to `segment` (0600, replaced atomically).
    pub fn save(&self, segment: &Path) -> Result<(), AuditError> {
        let bytes = postcard::to_stdvec(self).map_err(|e| AuditError::Log(e.to_string()))?;
        bulwark_pki::files::write_private(&index_path(segment), &bytes)
            .map_err(|e| AuditError::Log(e.to_string()))
    }

    /// The index of `segment`: the saved one brought up to date, or a new one; and whether
    /// it differs from the saved one (so it is worth saving).
    pub fn open(segment: &Path) -> Result<(Self, bool), AuditError> {
        let saved = Self::load(segment);
        let len = std::fs::metadata(segment).map_err(io(segment))?.len();
        let (mut index, fresh) = match saved {
            Some(index) if index.covered <= len => (index, false),
            _ => (Self::default(), true),
        };
        let before = index.covered;
        index.extend_from(segment)?;
        let changed = fresh || index.covered != before;
        Ok((index, changed))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]
    use super::*;

    fn event(user: &str, verb: &str, decision: &str, denied: bool) -> Vec<u8> {
        let mut annotations = serde_json::json!({"authorization.k8s.io/decision": decision});
        if denied {
            annotations["admission.bulwark.dev/denied"] = "pss".into();
        }
        serde_json::to_vec(&serde_json::json!({
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
            "auditID": "x", "stage": "ResponseComplete", "requestURI": "/api/v1/namespaces/a/pods",
            "verb": verb, "user": {"username": user, "groups": ["g"]},
            "objectRef": {"resource": "pods", "namespace": "a", "apiGroup": "", "subresource": "status"},
            "responseStatus": {"code": 201},
            "requestObject": {"deep": [1, 2, {"x": "y\"z"}]},
            "requestReceivedTimestamp": "2026-11-21T05:12:25.000001Z",
            "stageTimestamp": "2026-11-21T05:12:25.123456Z",
            "annotations": annotations,
        }))
        .unwrap()
    }

    #[test]
    fn reads_the_searchable_fields() {
        let f = Fields::of_event_json(&event("alice", "create", "allow", false)).unwrap();
        assert_eq!(
            (f.user.as_str(), f.verb.as_str(), f.resource.as_str()),
            ("alice", "create", "pods")
        );
        assert_eq!(
            (f.subresource.as_str(), f.namespace.as_str()),
            ("status", "a")
        );
        assert_eq!((f.decision, f.code), (Decision::Allow, 201));
        assert_eq!(f.time, parse_time("2026-11-21T05:12:25.123456Z").unwrap());
        assert_eq!(f.time % 1_000_000, 123_456);
        let f = Fields::of_event_json(&event("bob", "create", "allow", true)).unwrap();
        assert_eq!(f.decision, Decision::Deny);
        let f = Fields::of_event_json(&event("bob", "get", "forbid", false)).unwrap();
        assert_eq!(f.decision, Decision::Deny);
        assert!(Fields::of_event_json(b"{\"not\":\"an event\"}").is_none());
        for body in [
            event("alice", "create", "allow", true),
            event("b", "get", "forbid", false),
        ] {
            let typed: crate::Event = serde_json::from_slice(&body).unwrap();
            assert_eq!(
                Fields::of_event(&typed),
                Fields::of_event_json(&body).unwrap()
            );
        }
    }

    fn reopened_save_roundtrip(segment: &Path) {
        let (index, _) = SegmentIndex::open(segment).unwrap();
        index.save(segment).unwrap();
        let (again, changed) = SegmentIndex::open(segment).unwrap();
        assert_eq!((again.rows, changed), (index.rows, false));
    }

    #[test]
    fn rebuilt_index_matches_written_rows_and_survives_a_save() {
        let dir = tempfile::tempdir().unwrap();
        let segment = dir.path().join("audit-00000000000000000001.jsonl");
        let mut written = SegmentIndex::default();
        let mut file = Vec::new();
        for (seq, user) in ["alice", "bob", "alice"].iter().enumerate() {
            let body = event(user, "get", "allow", false);
            let line = crate::chain::event_line(seq as u64 + 1, crate::chain::GENESIS, &body);
            written.push(
                file.len() as u64,
                line.len() as u32,
                Fields::of_event_json(&body).unwrap(),
            );
            file.extend_from_slice(&line);
            file.push(b'\n');
        }
        file.extend_from_slice(b"{\"seq\":4,\"prev\":\"x\",\"checkpoint\":{\"time\":\"t\",\"key\":\"k\",\"signature\":\"s\"}}\n");
        written.covered = file.len() as u64;
        file.extend_from_slice(b"{\"seq\":5,\"prev\":\"x\",\"ev"); // torn
        std::fs::write(&segment, &file).unwrap();

        let rebuilt = SegmentIndex::build(&segment).unwrap();
        assert_eq!(rebuilt.rows, written.rows);
        assert_eq!(rebuilt.covered, written.covered);
        assert_eq!(rebuilt.id("alice"), Some(rebuilt.rows[2].user));
        let first = rebuilt.rows[1];
        let line = &file[first.offset as usize..][..first.len as usize];
        assert!(line.starts_with(b"{\"seq\":2,"));

        rebuilt.save(&segment).unwrap();
        let loaded = SegmentIndex::load(&segment).unwrap();
        assert_eq!(loaded.rows, rebuilt.rows);
        assert_eq!(loaded.id("bob"), rebuilt.id("bob"));
        assert_eq!(loaded.span, rebuilt.span);
        std::fs::write(index_path(&segment), b"garbage").unwrap();
        assert!(SegmentIndex::load(&segment).is_none());
        let (reopened, changed) = SegmentIndex::open(&segment).unwrap();
        assert_eq!((reopened.rows, changed), (written.rows, true));
        reopened_save_roundtrip(&segment);
    }
}
