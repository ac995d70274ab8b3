//! Building responses: JSON bodies, Table conversion, and `Warning` headers.

use axum::response::{IntoResponse, Response};
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
