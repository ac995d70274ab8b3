//! Kubernetes protobuf (`application/vnd.kubernetes.protobuf`) for every upstream kind, in
//! both directions, transcoded to and from the JSON objects the server works with.
//!
//! A body is the magic `k8s\0` followed by a `runtime.Unknown` envelope: the object's
//! `apiVersion` and `kind`, and its message in `raw`. Watch streams are length-prefixed
//! (4 bytes, big-endian) `WatchEvent` messages without the magic, whose `object` holds the
//! enveloped object, as upstream frames them. The messages are described by `schema.txt`,
//! derived from upstream's proto files and Go types; Bulwark's own kinds (`*.bulwark.dev`)
//! have no protobuf form, as custom resources upstream have none.
//!
//! Bounded work: reading is linear in the body (already size-limited), every read is
//! bounds-checked, and nesting is capped at 64 levels. Error messages name the field,
//! never its value (a Secret's data must not reach a response or the audit log).

mod decode;
mod encode;
mod special;
pub(crate) mod wire;

use serde_json::Value;

use crate::registry::schema::{SCHEMA, Schema};
use wire::{Reader, put_bytes};

/// The media type of protobuf bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The media type of protobuf watch streams.
pub const WATCH_MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf;stream=watch";

/// The magic prefix of an enveloped protobuf object.
pub const MAGIC: &[u8] = b"k8s\0";

/// Deepest nesting of messages accepted (upstream objects nest far less).
const MAX_DEPTH: usize = 64;

/// Why a body could not be transcoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The body lacks the `k8s\0` prefix.
    #[error("the body does not start with the protobuf magic \"k8s\\x00\"")]
    NoMagic,
    /// A length or varint runs past the end.
    #[error("the message is truncated")]
    Truncated,
    /// A malformed part of the wire format.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// A field arrived with a wire type its schema does not have.
    #[error("unexpected wire type")]
    WireType,
    /// A string is not UTF-8.
    #[error("a string is not valid UTF-8")]
    NotUtf8,
    /// Messages nested deeper than the cap (64 levels).
    #[error("messages are nested too deeply")]
    TooDeep,
    /// No protobuf form is known for this kind.
    #[error("no protobuf encoding is known for kind {kind:?} in {api_version:?}")]
    UnknownKind {
        /// The object's apiVersion.
        api_version: String,
        /// The object's kind.
        kind: String,
    },
    /// The envelope names a content encoding or type other than plain protobuf.
    #[error("the envelope's content encoding or type is not supported")]
    ContentEncoding,
    /// A JSON value of the wrong shape for its field.
    #[error("expected {0}")]
    Expected(&'static str),
    /// The schema text did not parse (a build defect; a unit test rules it out).
    #[error("the protobuf schema is unavailable: {0}")]
    Schema(String),
    /// A failure inside a named field.
    #[error("field {field}: {cause}")]
    At {
        /// The field path, in JSON names.
        field: String,
        /// What went wrong there.
        cause: Box<CodecError>,
    },
}

/// The message at `index`, for a walk at `depth` (too deep is an error).
fn message_at(
    schema: &Schema,
    index: usize,
    depth: usize,
) -> Result<&crate::registry::schema::Message, CodecError> {
    if depth > MAX_DEPTH {
        return Err(CodecError::TooDeep);
    }
    schema
        .message(index)
        .ok_or(CodecError::Malformed("message index"))
}

/// `err` as having happened inside `field` (paths join with dots).
fn at(field: &str, err: CodecError) -> CodecError {
    match err {
        CodecError::At {
            field: inner,
            cause,
        } => CodecError::At {
            field: format!("{field}.{inner}"),
            cause,
        },
        other => CodecError::At {
            field: field.to_owned(),
            cause: Box::new(other),
        },
    }
}

fn schema() -> Result<&'static Schema, CodecError> {
    SCHEMA.as_ref().map_err(|e| CodecError::Schema(e.clone()))
}

/// Whether objects of `kind` in `api_version` have a protobuf form.
pub fn supports(api_version: &str, kind: &str) -> bool {
    schema().is_ok_and(|s| s.kind(api_version, kind).is_some())
}

/// Decodes an enveloped object (`k8s\0` + `runtime.Unknown`) into its JSON form, with
/// `apiVersion` and `kind` from the envelope.
pub fn decode(bytes: &[u8]) -> Result<Value, CodecError> {
    decode_enveloped(schema()?, bytes, 0)
}

fn decode_enveloped(schema: &Schema, bytes: &[u8], depth: usize) -> Result<Value, CodecError> {
    let body = bytes.strip_prefix(MAGIC).ok_or(CodecError::NoMagic)?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    let mut reader = Reader::new(body);
    while let Some((number, value)) = reader.next_field()? {
        let bytes = match value {
            wire::Value::Bytes(b) => b,
            _ => return Err(CodecError::WireType),
        };
        match number {
            1 => {
                let mut type_meta = Reader::new(bytes);
                while let Some((n, v)) = type_meta.next_field()? {
                    let wire::Value::Bytes(text) = v else {
                        return Err(CodecError::WireType);
                    };
                    let text = std::str::from_utf8(text).map_err(|_| CodecError::NotUtf8)?;
                    match n {
                        1 => text.clone_into(&mut api_version),
                        2 => text.clone_into(&mut kind),
                        _ => {}
                    }
                }
            }
            2 => raw = bytes,
            3 | 4 if !bytes.is_empty() => return Err(CodecError::ContentEncoding),
            _ => {}
        }
    }
    let index = schema
        .kind(&api_version, &kind)
        .ok_or_else(|| CodecError::UnknownKind {
            api_version: api_version.clone(),
            kind: kind.clone(),
        })?;
    let mut value = decode::message(schema, index, raw, depth)?;
    if let Value::Object(obj) = &mut value {
        obj.insert("apiVersion".to_owned(), Value::String(api_version));
        obj.insert("kind".to_owned(), Value::String(kind));
    }
    Ok(value)
}

/// Encodes a JSON object as an enveloped protobuf object, by its `apiVersion` and `kind`.
pub fn encode(value: &Value) -> Result<Vec<u8>, CodecError> {
    let schema = schema()?;
    let text = |key: &str| value.get(key).and_then(Value::as_str).unwrap_or_default();
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    let index = schema
        .kind(api_version, kind)
        .ok_or_else(|| CodecError::UnknownKind {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
        })?;
    let mut raw = Vec::with_capacity(256);
    encode::message(schema, index, value, &mut raw, 0)?;
    let mut type_meta = Vec::with_capacity(api_version.len() + kind.len() + 4);
    put_bytes(&mut type_meta, 1, api_version.as_bytes());
    put_bytes(&mut type_meta, 2, kind.as_bytes());
    let mut out = Vec::with_capacity(raw.len() + type_meta.len() + 16);
    out.extend_from_slice(MAGIC);
    put_bytes(&mut out, 1, &type_meta);
    put_bytes(&mut out, 2, &raw);
    put_bytes(&mut out, 3, b"");
    put_bytes(&mut out, 4, b"");
    Ok(out)
}

/// One frame of a protobuf watch stream: the length, then `WatchEvent{type, object}`.
pub fn encode_watch_event(event_type: &str, object: &Value) -> Result<Vec<u8>, CodecError> {
    let embedded = encode(object)?;
    let mut raw_extension = Vec::with_capacity(embedded.len() + 8);
    put_bytes(&mut raw_extension, 1, &embedded);
    let mut event = Vec::with_capacity(raw_extension.len() + event_type.len() + 8);
    put_bytes(&mut event, 1, event_type.as_bytes());
    put_bytes(&mut event, 2, &raw_extension);
    let len = u32::try_from(event.len()).map_err(|_| CodecError::Malformed("frame length"))?;
    let mut frame = Vec::with_capacity(event.len() + 4);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&event);
    Ok(frame)
}

/// Decodes one watch frame's `WatchEvent` (without its length prefix): type and object.
pub fn decode_watch_event(event: &[u8]) -> Result<(String, Value), CodecError> {
    let schema = schema()?;
    let (mut event_type, mut object) = (String::new(), Value::Null);
    let mut reader = Reader::new(event);
    while let Some((number, value)) = reader.next_field()? {
        let wire::Value::Bytes(bytes) = value else {
            return Err(CodecError::WireType);
        };
        match number {
            1 => std::str::from_utf8(bytes)
                .map_err(|_| CodecError::NotUtf8)?
                .clone_into(&mut event_type),
            2 => {
                let mut raw = Reader::new(bytes);
                while let Some((n, v)) = raw.next_field()? {
                    if let (1, wire::Value::Bytes(embedded)) = (n, v) {
                        object = decode_enveloped(schema, embedded, 1)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok((event_type, object))
}

#[cfg(test)]
mod tests;
