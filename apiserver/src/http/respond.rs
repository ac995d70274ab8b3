//! Building responses: JSON bodies, Table conversion, and `Warning` headers.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use serde_json::{Value, json};

use crate::codec::table::{self, IncludeObject};
use crate::http::negotiate::Format;
use crate::registry::ResourceDef;

/// A JSON response with `code` and `Warning: 299` headers.
pub fn json(code: StatusCode, body: &Value, warnings: &[String]) -> Response {
    let mut response = json_bytes(code, serde_json::to_vec(body).unwrap_or_default());
    for warning in warnings {
        let text = format!(
            "299 - {}",
            serde_json::to_string(warning).unwrap_or_default()
        );
        if let Ok(value) = HeaderValue::from_str(&text) {
            response.headers_mut().append(http::header::WARNING, value);
        }
    }
    response
}

/// A JSON body that is already encoded (an object served from its stored bytes).
pub fn json_bytes(code: StatusCode, mut bytes: Vec<u8>) -> Response {
    // Upstream's JSON bodies end with a newline (clients compare error texts byte for byte).
    bytes.push(b'\n');
    (
        code,
        [(http::header::CONTENT_TYPE, "application/json")],
        bytes,
    )
        .into_response()
}

/// A JSON body sent as the parts it was built in (a list's head, its runs of items, its
/// tail), so a list of many megabytes is not copied into one buffer first.
pub fn json_parts(code: StatusCode, parts: Vec<Bytes>) -> Response {
    (
        code,
        [(http::header::CONTENT_TYPE, "application/json")],
        Body::new(PartsBody::new(parts)),
    )
        .into_response()
}

/// A body of several buffers, sent in order, with its exact length known up front.
struct PartsBody {
    parts: std::collections::VecDeque<Bytes>,
    remaining: u64,
}

impl PartsBody {
    fn new(parts: Vec<Bytes>) -> Self {
        let remaining = parts.iter().map(|p| p.len() as u64).sum();
        Self {
            parts: parts.into_iter().filter(|p| !p.is_empty()).collect(),
            remaining,
        }
    }
}

impl http_body::Body for PartsBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let next = self.parts.pop_front();
        if let Some(part) = &next {
            self.remaining = self.remaining.saturating_sub(part.len() as u64);
        }
        std::task::Poll::Ready(next.map(|part| Ok(http_body::Frame::data(part))))
    }

    fn is_end_stream(&self) -> bool {
        self.parts.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

/// One object, as JSON or as a one-row Table.
pub fn object(
    def: &ResourceDef,
    format: Format,
    include: IncludeObject,
    code: StatusCode,
    obj: &Value,
    warnings: &[String],
) -> Response {
    match format {
        Format::Json => json(code, obj, warnings),
        Format::Table => {
            let rv = obj
                .pointer("/metadata/resourceVersion")
                .cloned()
                .unwrap_or(Value::Null);
            json(
                code,
                &table::table(
                    def,
                    std::slice::from_ref(obj),
                    json!({"resourceVersion": rv}),
                    include,
                ),
                warnings,
            )
        }
    }
}
