//! Request plumbing shared by the handlers: query parameters, `Accept` negotiation (JSON,
//! protobuf or server-side Table), the request's media type, bounded body reading (413 past the limit),
//! and the `dryRun` / `fieldValidation` options.

use axum::body::Body;
use bulwark_api::StatusReason;
use http::HeaderMap;
use serde_json::Value;

use crate::codec::response::Wire;
use crate::http::error::ApiError;

/// Decoded query parameters, in order.
#[derive(Debug, Clone, Default)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Self {
        Self(
            form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean parameter (`true`/`1`).
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }

    /// A non-negative integer parameter; malformed values are a 400.
    pub fn uint(&self, key: &str) -> Result<Option<u64>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!(
                    "invalid value for {key}: {v:?}: must be a non-negative integer"
                ))
            }),
        }
    }

    /// `dryRun=All` (anything else but absent is a 400, as upstream).
    pub fn dry_run(&self) -> Result<bool, ApiError> {
        let values: Vec<&str> = self
            .0
            .iter()
            .filter(|(k, _)| k == "dryRun")
            .map(|(_, v)| v.as_str())
            .collect();
        match values.as_slice() {
            [] => Ok(false),
            ["All"] => Ok(true),
            other => Err(ApiError::bad_request(format!(
                "invalid dry run option: {other:?}; the only supported value is All"
            ))),
        }
    }

    /// The `fieldValidation` directive (default Warn, as upstream for clients that omit it).
    pub fn field_validation(&self) -> Result<FieldValidation, ApiError> {
        match self.get("fieldValidation") {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\", got {other:?}"
            ))),
        }
    }
}

/// What to do about fields the type does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    /// Reject the request (400).
    Strict,
    /// Accept, drop them, and return `Warning` headers.
    Warn,
    /// Accept and drop them silently.
    Ignore,
}

/// The representation a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Plain JSON objects.
    Json,
    /// `meta.k8s.io/v1 Table`.
    Table,
}

/// What a client asked for: the representation handlers build, and its wire encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// Objects or a Table.
    pub format: Format,
    /// JSON or protobuf.
    pub wire: Wire,
}

impl Negotiated {
    /// Plain JSON objects.
    pub const JSON: Self = Self {
        format: Format::Json,
        wire: Wire::Json,
    };
}

/// Picks the first acceptable representation from `Accept` (406 if none is); protobuf only
/// where the resource has a protobuf form (`protobuf_ok`), as upstream serves custom
/// resources as JSON to clients that prefer protobuf but accept JSON.
pub fn negotiate(headers: &HeaderMap, protobuf_ok: bool) -> Result<Negotiated, ApiError> {
    let Some(accept) = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(Negotiated::JSON);
    };
    if accept.trim().is_empty() {
        return Ok(Negotiated::JSON);
    }
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let params: Vec<(String, String)> = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
            .collect();
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        if media == crate::codec::protobuf::MEDIA_TYPE {
            if protobuf_ok && param("as").is_none() {
                return Ok(Negotiated {
                    format: Format::Json,
                    wire: Wire::Protobuf,
                });
            }
            continue;
        }
        if !matches!(media.as_str(), "application/json" | "application/*" | "*/*") {
            continue;
        }
        match param("as") {
            None => return Ok(Negotiated::JSON),
            Some("Table")
                if param("g") == Some("meta.k8s.io")
                    && matches!(param("v"), Some("v1" | "v1beta1")) =>
            {
                return Ok(Negotiated {
                    format: Format::Table,
                    wire: Wire::Json,
                });
            }
            Some(_) => continue,
        }
    }
    Err(ApiError::new(
        StatusReason::NotAcceptable,
        format!(
            "only the following media types are accepted: application/json, application/json;as=Table;v=v1;g=meta.k8s.io{} (got {accept:?})",
            if protobuf_ok {
                ", application/vnd.kubernetes.protobuf"
            } else {
                ""
            }
        ),
    ))
}

/// The media type of the request body, without parameters.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn too_large(limit: usize) -> ApiError {
    crate::http::limits::Limit::BodyBytes.refuse(
        StatusReason::RequestEntityTooLarge,
        format!("the request body is too large: limit is {limit} bytes"),
    )
}

/// Reads the body, at most `max_body_bytes` (413 beyond, before reading it when its declared
/// length is already over), within `body_read_timeout` (408 beyond).
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limits: &crate::http::limits::RequestLimits,
) -> Result<bytes::Bytes, ApiError> {
    let limit = limits.max_body_bytes;
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    let read = tokio::time::timeout(limits.body_read_timeout, axum::body::to_bytes(body, limit));
    let Ok(read) = read.await else {
        return Err(crate::http::limits::Limit::BodyReadTimeout.refuse(
            StatusReason::RequestTimeout,
            format!(
                "the request body did not arrive within {} seconds",
                limits.body_read_timeout.as_secs()
            ),
        ));
    };
    read.map_err(|e| {
        let is_limit = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if is_limit {
            too_large(limit)
        } else {
            ApiError::bad_request(format!("failed to read the request body: {e}"))
        }
    })
}

/// Parses a JSON body (400 on malformed or too deeply nested JSON).
pub fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> Result<Negotiated, ApiError> {
        let mut h = HeaderMap::new();
        h.insert(http::header::ACCEPT, v.parse().unwrap());
        negotiate(&h, true)
    }

    #[test]
    fn accept_negotiation() {
        let table = Negotiated {
            format: Format::Table,
            wire: Wire::Json,
        };
        let protobuf = Negotiated {
            format: Format::Json,
            wire: Wire::Protobuf,
        };
        assert_eq!(
            accept("application/json;as=Table;v=v1;g=meta.k8s.io,application/json").unwrap(),
            table
        );
        assert_eq!(accept("application/json").unwrap(), Negotiated::JSON);
        assert_eq!(
            accept("application/vnd.kubernetes.protobuf, */*").unwrap(),
            protobuf
        );
        assert_eq!(
            accept("application/vnd.kubernetes.protobuf").unwrap(),
            protobuf
        );
        assert_eq!(
            accept(
                "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io, application/json"
            )
            .unwrap(),
            Negotiated::JSON
        );
        assert_eq!(
            accept(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1, application/json"
            )
            .unwrap(),
            Negotiated::JSON
        );
        let mut h = HeaderMap::new();
        h.insert(
            http::header::ACCEPT,
            "application/vnd.kubernetes.protobuf,application/json"
                .parse()
                .unwrap(),
        );
        assert_eq!(negotiate(&h, false).unwrap(), Negotiated::JSON);
        h.insert(
            http::header::ACCEPT,
            "application/vnd.kubernetes.protobuf".parse().unwrap(),
        );
        assert_eq!(negotiate(&h, false).unwrap_err().code(), 406);
        assert_eq!(accept("text/html").unwrap_err().code(), 406);
        assert_eq!(
            negotiate(&HeaderMap::new(), true).unwrap(),
            Negotiated::JSON
        );
    }

    #[test]
    fn query_options() {
        let q = Query::parse(Some("dryRun=All&fieldValidation=Strict&limit=5&watch=1"));
        assert!(q.dry_run().unwrap());
        assert_eq!(q.field_validation().unwrap(), FieldValidation::Strict);
        assert_eq!(q.uint("limit").unwrap(), Some(5));
        assert!(q.flag("watch"));
        assert_eq!(
            Query::parse(Some("dryRun=Some"))
                .dry_run()
                .unwrap_err()
                .code(),
            400
        );
        assert_eq!(
            Query::parse(Some("limit=-1"))
                .uint("limit")
                .unwrap_err()
                .code(),
            400
        );
        assert_eq!(
            Query::parse(Some("fieldValidation=x"))
                .field_validation()
                .unwrap_err()
                .code(),
            400
        );
        assert_eq!(parse_json(b"{").unwrap_err().code(), 400);
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert_eq!(parse_json(deep.as_bytes()).unwrap_err().code(), 400);
    }
}
