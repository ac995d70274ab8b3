//! Request bodies, decoded before dispatch: handlers get the object, whatever its encoding.

use bulwark_api::StatusReason;
use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;

use super::protobuf;
use crate::http::error::ApiError;
use crate::http::request_info::Verb;

/// What a handler receives of the request body.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestBody {
    /// No body: reads, and deletes without options.
    Empty,
    /// An object (create, update, or the `DeleteOptions` of a delete), from JSON or protobuf.
    Object(Value),
    /// A patch document; its type is the request's content type (the patch handler's to read).
    Patch(Bytes),
}

impl RequestBody {
    /// The object; an empty body is a 400 for the verbs that need one.
    pub fn object(&self) -> Result<&Value, ApiError> {
        match self {
            Self::Object(v) => Ok(v),
            _ => Err(ApiError::bad_request("the request body is empty")),
        }
    }

    /// The object, if one was sent (delete options are optional).
    pub fn optional_object(&self) -> Option<&Value> {
        match self {
            Self::Object(v) => Some(v),
            _ => None,
        }
    }

    /// The patch document (empty unless the verb is patch).
    pub fn patch(&self) -> &[u8] {
        match self {
            Self::Patch(bytes) => bytes,
            _ => &[],
        }
    }
}

/// How a body's media type is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Json,
    Yaml,
    Protobuf,
}

/// Parses a YAML (or JSON) body into one object. The body is already size-limited; the
/// parser refuses alias expansion past its repetition limit (a "billion laughs" body is a
/// 400 in milliseconds) and nesting past its recursion limit.
pub fn parse_yaml(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    let value: Value = serde_yaml_ng::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid YAML: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be one object (a YAML mapping)",
        ));
    }
    Ok(value)
}

fn encoding(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    match crate::http::negotiate::content_type(headers).as_str() {
        "" | "application/json" => Ok(Encoding::Json),
        "application/yaml" => Ok(Encoding::Yaml),
        protobuf::MEDIA_TYPE => Ok(Encoding::Protobuf),
        other => Err(ApiError::new(
            StatusReason::UnsupportedMediaType,
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, {} (got {other:?})",
                protobuf::MEDIA_TYPE
            ),
        )),
    }
}

/// Whether requests of `verb` carry a body.
pub fn has_body(verb: Verb) -> bool {
    matches!(
        verb,
        Verb::Create | Verb::Update | Verb::Patch | Verb::Delete | Verb::DeleteCollection
    )
}

/// Decodes the body of a request of `verb` (415 for an unknown media type, 400 for a body
/// that does not decode).
pub fn decode(headers: &HeaderMap, verb: Verb, bytes: Bytes) -> Result<RequestBody, ApiError> {
    match verb {
        Verb::Patch => return Ok(RequestBody::Patch(bytes)),
        Verb::Delete | Verb::DeleteCollection if bytes.is_empty() => {
            return Ok(RequestBody::Empty);
        }
        Verb::Create | Verb::Update | Verb::Delete | Verb::DeleteCollection => {}
        Verb::Get | Verb::List | Verb::Watch => return Ok(RequestBody::Empty),
    }
    let value = match encoding(headers)? {
        Encoding::Json => crate::http::negotiate::parse_json(&bytes)?,
        Encoding::Yaml => parse_yaml(&bytes)?,
        Encoding::Protobuf => {
            if bytes.is_empty() {
                return Err(ApiError::bad_request("the request body is empty"));
            }
            protobuf::decode(&bytes).map_err(|e| {
                ApiError::bad_request(format!("the request body is not valid protobuf: {e}"))
            })?
        }
    };
    Ok(RequestBody::Object(value))
}

/// The body as the audit log records it: JSON, whatever the client sent.
pub fn audit_bytes(raw: &Bytes, decoded: &RequestBody, headers: &HeaderMap) -> Bytes {
    match (decoded, encoding(headers)) {
        (RequestBody::Object(v), Ok(Encoding::Protobuf | Encoding::Yaml)) => {
            Bytes::from(serde_json::to_vec(v).unwrap_or_default())
        }
        _ => raw.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(content_type: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::CONTENT_TYPE, content_type.parse().unwrap());
        h
    }

    #[test]
    fn bodies_by_verb_and_media_type() {
        let json = headers("application/json");
        let cm = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}"#;
        let decoded = decode(&json, Verb::Create, Bytes::from_static(cm)).unwrap();
        let value = decoded.object().unwrap().clone();
        assert_eq!(value["metadata"]["name"], "a");
        let pb = headers(protobuf::MEDIA_TYPE);
        let bytes = Bytes::from(protobuf::encode(&value).unwrap());
        let from_pb = decode(&pb, Verb::Update, bytes.clone()).unwrap();
        assert_eq!(from_pb, RequestBody::Object(value.clone()));
        assert_eq!(
            serde_json::from_slice::<Value>(&audit_bytes(&bytes, &from_pb, &pb)).unwrap(),
            value
        );
        assert_eq!(
            decode(&json, Verb::Delete, Bytes::new()).unwrap(),
            RequestBody::Empty
        );
        assert_eq!(
            decode(
                &headers("application/json-patch+json"),
                Verb::Patch,
                Bytes::from_static(b"[]")
            )
            .unwrap()
            .patch(),
            b"[]"
        );
        let code = |h: &HeaderMap, body: &'static [u8]| {
            decode(h, Verb::Create, Bytes::from_static(body))
                .unwrap_err()
                .code()
        };
        assert_eq!(code(&headers("text/plain"), b"x"), 415);
        assert_eq!(code(&json, b""), 400);
        assert_eq!(code(&pb, b""), 400);
        assert_eq!(code(&pb, b"k8s\0\x0a\x05"), 400);
        assert_eq!(code(&pb, b"{}"), 400);
        let yaml = headers("application/yaml");
        let from_yaml = decode(
            &yaml,
            Verb::Create,
            Bytes::from_static(b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: y}\n"),
        )
        .unwrap();
        assert_eq!(from_yaml.object().unwrap()["metadata"]["name"], "y");
        assert_eq!(code(&yaml, b"- a list"), 400);
        assert_eq!(code(&yaml, b"a: [unclosed"), 400);
        let mut bomb = String::from("a: &a [x,x,x,x,x,x,x,x,x]\n");
        let mut prev = "a".to_owned();
        for i in 0..9 {
            bomb.push_str(&format!("l{i}: &l{i} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
            prev = format!("l{i}");
        }
        let err = parse_yaml(bomb.as_bytes()).unwrap_err();
        assert!(
            err.0.message.contains("repetition limit"),
            "{}",
            err.0.message
        );
    }
}
