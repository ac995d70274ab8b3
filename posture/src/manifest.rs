//! Offline manifests for CI gates: YAML and JSON files, multi-document streams (Helm's
//! rendered output is one), `List` kinds, and directories (walked for `*.yaml`, `*.yml` and
//! `*.json`, in name order). Work is bounded: a file larger than [`Limits::max_file_bytes`],
//! more than [`Limits::max_documents`] documents or [`Limits::max_total_bytes`] in all is
//! refused with an error naming the file, before it is parsed. Documents that are not
//! Kubernetes objects (no `apiVersion`/`kind`/`metadata.name`) are errors with their place;
//! objects of kinds the scanner does not know are kept (no workload control applies to them).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value, json};

/// The annotation that carries a manifest object's file and document (`deploy.yaml#2`).
pub const SOURCE_ANNOTATION: &str = "posture.bulwark.dev/source";

/// Bounds on what a scan reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest file read.
    pub max_file_bytes: u64,
    /// Most bytes in all.
    pub max_total_bytes: u64,
    /// Most documents (objects, after Lists are expanded) in all.
    pub max_documents: usize,
    /// Most files.
    pub max_files: usize,
}

impl Default for Limits {
    /// 16 MiB per file, 256 MiB and 100,000 objects in all, 50,000 files.
    fn default() -> Self {
        Self {
            max_file_bytes: 16 * 1024 * 1024,
            max_total_bytes: 256 * 1024 * 1024,
            max_documents: 100_000,
            max_files: 50_000,
        }
    }
}

/// Why manifests could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// A file or directory could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A file is larger than the limit.
    #[error("{path}: {size} bytes is more than the limit of {limit} bytes per file")]
    TooLarge {
        /// The path.
        path: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// More than the limit in all.
    #[error("more than {limit} {what} in all; scan fewer files at once")]
    TooMany {
        /// `bytes`, `documents` or `files`.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// A document does not parse.
    #[error("{path}: document {document}: {reason}")]
    Parse {
        /// The path.
        path: String,
        /// 1-based document number.
        document: usize,
        /// Why.
        reason: String,
    },
    /// A document is not a Kubernetes object.
    #[error("{path}: document {document}: not a Kubernetes object ({reason})")]
    NotAnObject {
        /// The path.
        path: String,
        /// 1-based document number.
        document: usize,
        /// What is missing.
        reason: String,
    },
}

/// What was read.
#[derive(Debug, Default)]
pub struct Manifests {
    /// The objects, each annotated with [`SOURCE_ANNOTATION`].
    pub objects: Vec<Value>,
    /// The files read.
    pub files: Vec<PathBuf>,
    /// Bytes read.
    pub bytes: u64,
}

fn io(path: &Path, source: std::io::Error) -> ManifestError {
    ManifestError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Every manifest file under `paths` (files as given; directories walked, in name order).
fn collect(paths: &[PathBuf], limits: &Limits) -> Result<Vec<PathBuf>, ManifestError> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = paths.iter().rev().cloned().collect();
    while let Some(path) = stack.pop() {
        let meta = std::fs::metadata(&path).map_err(|e| io(&path, e))?;
        if meta.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(&path)
                .map_err(|e| io(&path, e))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_dir() || is_manifest(p))
                .collect();
            entries.sort();
            stack.extend(entries.into_iter().rev());
        } else {
            out.push(path);
        }
        if out.len() > limits.max_files {
            return Err(ManifestError::TooMany {
                what: "files",
                limit: limits.max_files as u64,
            });
        }
    }
    Ok(out)
}

/// Reads every manifest under `paths` (`-` reads standard input).
pub fn load(paths: &[PathBuf], limits: &Limits) -> Result<Manifests, ManifestError> {
    let mut manifests = Manifests::default();
    for path in collect(paths, limits)? {
        let text = read_bounded(&path, limits, manifests.bytes)?;
        manifests.bytes += text.len() as u64;
        let shown = path.display().to_string();
        parse_into(&text, &shown, limits, &mut manifests.objects)?;
        manifests.files.push(path);
    }
    Ok(manifests)
}

fn read_bounded(path: &Path, limits: &Limits, so_far: u64) -> Result<String, ManifestError> {
    use std::io::Read;
    let too_large = |size| ManifestError::TooLarge {
        path: path.display().to_string(),
        size,
        limit: limits.max_file_bytes,
    };
    let mut reader: Box<dyn Read> = if path == Path::new("-") {
        Box::new(std::io::stdin())
    } else {
        let file = std::fs::File::open(path).map_err(|e| io(path, e))?;
        let size = file.metadata().map_err(|e| io(path, e))?.len();
        if size > limits.max_file_bytes {
            return Err(too_large(size));
        }
        Box::new(file)
    };
    // Read at most one byte past the limit, so a growing file or a pipe is bounded too.
    let mut bytes = Vec::new();
    reader
        .by_ref()
        .take(limits.max_file_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io(path, e))?;
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(too_large(bytes.len() as u64));
    }
    if so_far + bytes.len() as u64 > limits.max_total_bytes {
        return Err(ManifestError::TooMany {
            what: "bytes",
            limit: limits.max_total_bytes,
        });
    }
    String::from_utf8(bytes).map_err(|_| ManifestError::Parse {
        path: path.display().to_string(),
        document: 1,
        reason: "not UTF-8 text".to_owned(),
    })
}

/// Parses one file's text (YAML stream or JSON) into `out`, expanding Lists.
pub fn parse_into(
    text: &str,
    path: &str,
    limits: &Limits,
    out: &mut Vec<Value>,
) -> Result<(), ManifestError> {
    let mut documents = Vec::new();
    if path.ends_with(".json") {
        let value: Value = serde_json::from_str(text).map_err(|e| ManifestError::Parse {
            path: path.to_owned(),
            document: 1,
            reason: e.to_string(),
        })?;
        documents.push(value);
    } else {
        for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            let value = Value::deserialize(doc).map_err(|e| ManifestError::Parse {
                path: path.to_owned(),
                document: i + 1,
                reason: e.to_string(),
            })?;
            documents.push(value);
            if documents.len() > limits.max_documents {
                return Err(ManifestError::TooMany {
                    what: "documents",
                    limit: limits.max_documents as u64,
                });
            }
        }
    }
    for (i, doc) in documents.into_iter().enumerate() {
        let document = i + 1;
        // Empty documents (`---` twice, comment-only Helm templates) are nothing.
        if doc.is_null() {
            continue;
        }
        let items = expand(doc, path, document)?;
        for mut object in items {
            annotate(&mut object, &format!("{path}#{document}"));
            out.push(object);
            if out.len() > limits.max_documents {
                return Err(ManifestError::TooMany {
                    what: "documents",
                    limit: limits.max_documents as u64,
                });
            }
        }
    }
    Ok(())
}

fn expand(doc: Value, path: &str, document: usize) -> Result<Vec<Value>, ManifestError> {
    let not_object = |reason: &str| ManifestError::NotAnObject {
        path: path.to_owned(),
        document,
        reason: reason.to_owned(),
    };
    if !doc.is_object() {
        return Err(not_object("not a mapping"));
    }
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
    if kind == "List" || (kind.ends_with("List") && doc.get("items").is_some_and(Value::is_array)) {
        let items = doc
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            out.extend(expand(item, path, document)?);
        }
        return Ok(out);
    }
    for (field, pointer) in [
        ("apiVersion", "/apiVersion"),
        ("kind", "/kind"),
        ("metadata.name", "/metadata/name"),
    ] {
        let ok = doc
            .pointer(pointer)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty());
        // Helm's generateName-only objects still name themselves somehow.
        let generated = field == "metadata.name"
            && doc
                .pointer("/metadata/generateName")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty());
        if !ok && !generated {
            return Err(not_object(&format!("no {field}")));
        }
    }
    Ok(vec![doc])
}

fn annotate(object: &mut Value, source: &str) {
    let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if metadata.get("name").is_none() {
        let generated = metadata
            .get("generateName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        metadata.insert("name".to_owned(), json!(generated));
    }
    let annotations = metadata.entry("annotations").or_insert_with(|| json!({}));
    if !annotations.is_object() {
        *annotations = json!({});
    }
    if let Some(a) = annotations.as_object_mut() {
        a.insert(SOURCE_ANNOTATION.to_owned(), json!(source));
    }
}

/// Manifests as an evidence source: objects only; everything about a running cluster is
/// unavailable, saying why.
pub struct ManifestSource {
    objects: std::sync::Arc<crate::evidence::Objects>,
}

impl ManifestSource {
    /// The source of `manifests`.
    pub fn new(manifests: Manifests) -> Self {
        Self {
            objects: std::sync::Arc::new(crate::evidence::Objects {
                items: manifests
                    .objects
                    .into_iter()
                    .map(std::sync::Arc::new)
                    .collect(),
            }),
        }
    }
}

const OFFLINE: &str = "an offline manifest scan sees no running cluster";

impl crate::EvidenceSource for ManifestSource {
    fn name(&self) -> &str {
        "manifests"
    }
    fn server(&self) -> crate::Observed<crate::evidence::ServerConfig> {
        crate::Observed::unavailable(OFFLINE)
    }
    fn pki(&self) -> crate::Observed<crate::evidence::PkiState> {
        crate::Observed::unavailable(OFFLINE)
    }
    fn encryption(&self) -> crate::Observed<crate::evidence::EncryptionState> {
        crate::Observed::unavailable(OFFLINE)
    }
    fn policies(&self) -> crate::Observed<crate::evidence::PolicyState> {
        crate::Observed::unavailable(OFFLINE)
    }
    fn objects(&self) -> crate::Observed<std::sync::Arc<crate::evidence::Objects>> {
        crate::Observed::Available(std::sync::Arc::clone(&self.objects))
    }
    fn nodes(&self) -> crate::Observed<Vec<crate::evidence::NodeReport>> {
        crate::Observed::unavailable(OFFLINE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, path: &str) -> Result<Vec<Value>, ManifestError> {
        let mut out = Vec::new();
        parse_into(text, path, &Limits::default(), &mut out).map(|()| out)
    }

    #[test]
    fn multi_document_streams_lists_and_helm_output_are_read() {
        let text = "# Source: chart/templates/a.yaml\napiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\n---\n# Source: chart/templates/empty.yaml\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n- {apiVersion: apps/v1, kind: DeploymentList, items: [{apiVersion: apps/v1, kind: Deployment, metadata: {name: c}}]}\n";
        let objects = parse(text, "helm.yaml").unwrap();
        let names: Vec<&str> = objects
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(
            objects[0]["metadata"]["annotations"][SOURCE_ANNOTATION],
            "helm.yaml#1"
        );
        let json = parse(
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"j"}}"#,
            "x.json",
        )
        .unwrap();
        assert_eq!(json.len(), 1);
    }

    #[test]
    fn bad_documents_are_errors_that_say_where() {
        for (text, want) in [
            (
                "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\nkind: [unclosed\n",
                "document 2",
            ),
            ("- just\n- a list\n", "not a mapping"),
            ("apiVersion: v1\nmetadata: {name: a}\n", "no kind"),
            ("apiVersion: v1\nkind: Pod\n", "no metadata.name"),
        ] {
            let err = parse(text, "bad.yaml").unwrap_err().to_string();
            assert!(err.contains("bad.yaml") && err.contains(want), "{err}");
        }
        let err = parse("{", "x.json").unwrap_err().to_string();
        assert!(err.contains("x.json"), "{err}");
    }

    #[test]
    fn an_alias_bomb_is_refused_not_expanded() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let mut prev = 'a';
        for c in 'b'..='j' {
            text.push_str(&format!("{c}: &{c} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
            prev = c;
        }
        assert!(parse(&text, "bomb.yaml").is_err());
    }

    #[test]
    fn files_beyond_the_limits_are_refused_before_parsing() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.yaml");
        std::fs::write(&big, vec![b'#'; 2048]).unwrap();
        let limits = Limits {
            max_file_bytes: 1024,
            ..Limits::default()
        };
        let err = load(&[big], &limits).unwrap_err();
        assert!(
            matches!(err, ManifestError::TooLarge { size: 2048, .. }),
            "{err}"
        );
        std::fs::write(
            dir.path().join("a.yaml"),
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a manifest").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(
            dir.path().join("sub/b.yml"),
            "apiVersion: v1\nkind: Pod\nmetadata: {name: b}\n",
        )
        .unwrap();
        std::fs::remove_file(dir.path().join("big.yaml")).unwrap();
        let m = load(&[dir.path().to_path_buf()], &Limits::default()).unwrap();
        assert_eq!(m.objects.len(), 2);
        assert_eq!(m.files.len(), 2);
        let err = load(&[dir.path().join("missing.yaml")], &Limits::default()).unwrap_err();
        assert!(err.to_string().contains("missing.yaml"), "{err}");
    }
}
