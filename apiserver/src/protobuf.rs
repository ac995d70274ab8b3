//! Kubernetes protobuf request bodies, for the kinds clients only ever send as protobuf.
//!
//! kubectl's typed clients send protobuf (`application/vnd.kubernetes.protobuf`) for built-in
//! kinds; `kubectl auth can-i` sends its access reviews that way and cannot be told otherwise.
//! The body is the 4-byte magic `k8s\0` followed by a `runtime.Unknown` envelope whose `raw`
//! field holds the object. This module reads the wire format (varints and length-delimited
//! fields; every read is bounds-checked, so garbage gets a 400, never a panic) and maps the
//! access review kinds to their JSON shape. Other kinds still get 415 from the caller.

use serde_json::{Map, Value, json};

use crate::error::ApiError;

/// The magic prefix of a Kubernetes protobuf body.
pub const MAGIC: &[u8] = b"k8s\0";

/// One field of a protobuf message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

fn bad(what: &str) -> ApiError {
    ApiError::bad_request(format!("invalid protobuf body: {what}"))
}

fn varint(buf: &mut &[u8]) -> Result<u64, ApiError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first().ok_or_else(|| bad("truncated varint"))?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(bad("varint too long"))
}

/// The fields of one message, in order.
fn fields(mut buf: &[u8]) -> Result<Vec<(u64, Field<'_>)>, ApiError> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let (number, wire) = (key >> 3, key & 7);
        let field = match wire {
            0 => Field::Varint(varint(&mut buf)?),
            1 | 5 => {
                let n = if wire == 1 { 8 } else { 4 };
                buf = buf.get(n..).ok_or_else(|| bad("truncated fixed field"))?;
                Field::Fixed
            }
            2 => {
                let len = usize::try_from(varint(&mut buf)?).map_err(|_| bad("length"))?;
                let (bytes, rest) = (
                    buf.get(..len).ok_or_else(|| bad("truncated field"))?,
                    buf.get(len..).unwrap_or_default(),
                );
                buf = rest;
                Field::Bytes(bytes)
            }
            _ => return Err(bad("unsupported wire type")),
        };
        out.push((number, field));
    }
    Ok(out)
}

fn text(bytes: &[u8]) -> Result<String, ApiError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| bad("string is not UTF-8"))
}

/// String fields by number → JSON keys; message fields by number → nested mappers.
struct Shape {
    strings: &'static [(u64, &'static str)],
    repeated: &'static [(u64, &'static str)],
    messages: &'static [(u64, &'static str, &'static Shape)],
    bools: &'static [(u64, &'static str)],
}

const NONE: Shape = Shape {
    strings: &[],
    repeated: &[],
    messages: &[],
    bools: &[],
};

fn decode(bytes: &[u8], shape: &Shape) -> Result<Value, ApiError> {
    let mut out = Map::new();
    for (number, field) in fields(bytes)? {
        match field {
            Field::Bytes(b) => {
                if let Some((_, key)) = shape.strings.iter().find(|(n, _)| *n == number) {
                    out.insert((*key).into(), Value::String(text(b)?));
                } else if let Some((_, key)) = shape.repeated.iter().find(|(n, _)| *n == number) {
                    let entry = out.entry(*key).or_insert_with(|| json!([]));
                    if let Some(list) = entry.as_array_mut() {
                        list.push(Value::String(text(b)?));
                    }
                } else if let Some((_, key, inner)) =
                    shape.messages.iter().find(|(n, _, _)| *n == number)
                {
                    out.insert((*key).into(), decode(b, inner)?);
                }
            }
            Field::Varint(v) => {
                if let Some((_, key)) = shape.bools.iter().find(|(n, _)| *n == number) {
                    out.insert((*key).into(), Value::Bool(v != 0));
                }
            }
            Field::Fixed => {}
        }
    }
    Ok(Value::Object(out))
}

const OBJECT_META: Shape = Shape {
    strings: &[(1, "name"), (2, "generateName"), (3, "namespace")],
    ..NONE
};
const RESOURCE_ATTRIBUTES: Shape = Shape {
    strings: &[
        (1, "namespace"),
        (2, "verb"),
        (3, "group"),
        (4, "version"),
        (5, "resource"),
        (6, "subresource"),
        (7, "name"),
    ],
    ..NONE
};
const NON_RESOURCE_ATTRIBUTES: Shape = Shape {
    strings: &[(1, "path"), (2, "verb")],
    ..NONE
};
/// `SubjectAccessReviewSpec` (also the local variant's spec).
const SUBJECT_SPEC: Shape = Shape {
    strings: &[(3, "user"), (6, "uid")],
    repeated: &[(4, "groups")],
    messages: &[
        (1, "resourceAttributes", &RESOURCE_ATTRIBUTES),
        (2, "nonResourceAttributes", &NON_RESOURCE_ATTRIBUTES),
    ],
    bools: &[],
};
const SELF_SPEC: Shape = Shape {
    messages: &[
        (1, "resourceAttributes", &RESOURCE_ATTRIBUTES),
        (2, "nonResourceAttributes", &NON_RESOURCE_ATTRIBUTES),
    ],
    ..NONE
};
const RULES_SPEC: Shape = Shape {
    strings: &[(1, "namespace")],
    ..NONE
};

/// Decodes a protobuf body of `kind` (an access review) to its JSON shape; `None` for kinds
/// this module does not map.
pub fn decode_body(api_version: &str, kind: &str, body: &[u8]) -> Result<Option<Value>, ApiError> {
    let spec_shape: &'static Shape = match kind {
        "SelfSubjectAccessReview" => &SELF_SPEC,
        "SubjectAccessReview" | "LocalSubjectAccessReview" => &SUBJECT_SPEC,
        "SelfSubjectRulesReview" => &RULES_SPEC,
        _ => return Ok(None),
    };
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("missing the k8s protobuf magic prefix"))?;
    let raw = fields(envelope)?
        .into_iter()
        .find_map(|(n, f)| match (n, f) {
            (2, Field::Bytes(b)) => Some(b),
            _ => None,
        })
        .ok_or_else(|| bad("the envelope has no object"))?;
    let shape = Shape {
        messages: &[(1, "metadata", &OBJECT_META)],
        ..NONE
    };
    let mut object = decode(raw, &shape)?;
    let spec = fields(raw)?
        .into_iter()
        .find_map(|(n, f)| match (n, f) {
            (2, Field::Bytes(b)) => Some(b),
            _ => None,
        })
        .map(|b| decode(b, spec_shape))
        .transpose()?
        .unwrap_or_else(|| json!({}));
    if let Some(map) = object.as_object_mut() {
        map.insert("apiVersion".into(), json!(api_version));
        map.insert("kind".into(), json!(kind));
        map.insert("spec".into(), spec);
    }
    Ok(Some(object))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(number: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![u8::try_from(number << 3 | 2).unwrap()];
        out.push(u8::try_from(bytes.len()).unwrap());
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn decodes_a_self_subject_access_review() {
        let attrs = [
            field(1, b"team-a"),
            field(2, b"list"),
            field(5, b"configmaps"),
        ]
        .concat();
        let spec = field(1, &attrs);
        let raw = [field(1, &[]), field(2, &spec)].concat();
        let type_meta = [
            field(1, b"authorization.k8s.io/v1"),
            field(2, b"SelfSubjectAccessReview"),
        ]
        .concat();
        let body = [MAGIC.to_vec(), field(1, &type_meta), field(2, &raw)].concat();
        let v = decode_body("authorization.k8s.io/v1", "SelfSubjectAccessReview", &body)
            .unwrap()
            .unwrap();
        assert_eq!(
            v["spec"]["resourceAttributes"],
            json!({"namespace": "team-a", "verb": "list", "resource": "configmaps"})
        );
        assert!(decode_body("v1", "ConfigMap", &body).unwrap().is_none());
        assert!(decode_body("v1", "SelfSubjectRulesReview", b"k8s\0\x12\xff").is_err());
    }

    proptest::proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let mut body = MAGIC.to_vec();
            body.extend_from_slice(&bytes);
            let _ = decode_body("authorization.k8s.io/v1", "SubjectAccessReview", &body);
        }
    }
}
