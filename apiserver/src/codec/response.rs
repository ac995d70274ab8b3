//! Responses, encoded after the handler: JSON as handlers write it, or transcoded to
//! protobuf when the client negotiated that (objects, lists, `Status` errors and watch
//! streams alike).

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt as _;
use serde_json::Value;

use super::protobuf;

/// The encoding a client gets responses in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Wire {
    /// JSON (also for every kind without a protobuf form, and for Tables).
    #[default]
    Json,
    /// `application/vnd.kubernetes.protobuf`.
    Protobuf,
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

fn with_body(response: Response, content_type: &'static str, body: Body) -> Response {
    let (mut head, _) = response.into_parts();
    head.headers.remove(http::header::CONTENT_LENGTH);
    head.headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    Response::from_parts(head, body)
}

/// Encodes `response` as `wire` asks; `watch` marks a successful watch stream.
pub async fn encode(wire: Wire, watch: bool, response: Response) -> Response {
    if wire == Wire::Json || !is_json(&response) {
        return response;
    }
    if watch && response.status().is_success() {
        let (head, body) = response.into_parts();
        let frames = watch_frames(body);
        return with_body(
            Response::from_parts(head, Body::empty()),
            protobuf::WATCH_MEDIA_TYPE,
            Body::from_stream(frames),
        );
    }
    let (head, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return Response::from_parts(head, Body::empty());
    };
    let encoded = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| protobuf::encode(&v).ok());
    match encoded {
        Some(pb) => with_body(
            Response::from_parts(head, Body::empty()),
            protobuf::MEDIA_TYPE,
            Body::from(pb),
        ),
        // A body with no protobuf form stays JSON (the client accepted it when negotiating).
        None => Response::from_parts(head, Body::from(bytes)),
    }
}

/// One watch line (`{"type": …, "object": …}`) as a protobuf frame.
fn frame(line: &[u8]) -> Result<Vec<u8>, String> {
    let event: Value = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let event_type = event
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let object = event.get("object").unwrap_or(&Value::Null);
    protobuf::encode_watch_event(event_type, object).map_err(|e| e.to_string())
}

/// The JSON watch lines of `body`, as protobuf frames. An event that cannot be encoded ends
/// the stream with an ERROR event (never a silently dropped change).
fn watch_frames(
    body: Body,
) -> impl futures::Stream<Item = Result<Bytes, axum::Error>> + Send + 'static {
    async_stream::stream! {
        let mut data = body.into_data_stream();
        let mut pending: Vec<u8> = Vec::new();
        while let Some(chunk) = data.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    yield Err(e);
                    return;
                }
            };
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                match frame(&line) {
                    Ok(f) => yield Ok(Bytes::from(f)),
                    Err(cause) => {
                        tracing::error!(%cause, "a watch event has no protobuf form");
                        let status = bulwark_api::Status::failure(
                            bulwark_api::StatusReason::InternalError,
                            "the watch event could not be encoded as protobuf",
                        );
                        let object = serde_json::to_value(&status).unwrap_or_default();
                        if let Ok(f) = protobuf::encode_watch_event("ERROR", &object) {
                            yield Ok(Bytes::from(f));
                        }
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;
    use serde_json::json;

    fn json_response(v: &Value) -> Response {
        crate::http::respond::json(http::StatusCode::OK, v, &["careful".to_owned()])
    }

    #[tokio::test]
    async fn objects_and_errors_become_protobuf_and_own_kinds_stay_json() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}});
        let response = encode(Wire::Protobuf, false, json_response(&cm)).await;
        assert_eq!(response.headers()["content-type"], protobuf::MEDIA_TYPE);
        assert_eq!(response.headers()["warning"], "299 - \"careful\"");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(protobuf::decode(&body).unwrap(), cm);

        let err = crate::http::error::ApiError::bad_request("no").into_response();
        let response = encode(Wire::Protobuf, false, err).await;
        assert_eq!(response.status(), 400);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let status = protobuf::decode(&body).unwrap();
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["message"], "no");
        assert_eq!(status["code"], 400);

        let own = json!({"apiVersion": "policy.bulwark.dev/v1", "kind": "CedarPolicy"});
        let response = encode(Wire::Protobuf, false, json_response(&own)).await;
        assert_eq!(response.headers()["content-type"], "application/json");
        let untouched = encode(Wire::Json, false, json_response(&cm)).await;
        assert_eq!(untouched.headers()["content-type"], "application/json");
    }

    #[tokio::test]
    async fn watch_lines_become_frames() {
        let lines = concat!(
            r#"{"type":"ADDED","object":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}}"#,
            "\n",
            r#"{"type":"DELETED","object":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}}"#,
            "\n",
            r#"{"type":"ADDED","object":{"apiVersion":"policy.bulwark.dev/v1","kind":"CedarPolicy"}}"#,
            "\n",
        );
        let response = Response::builder()
            .header("content-type", "application/json")
            .body(Body::from(lines))
            .unwrap();
        let response = encode(Wire::Protobuf, true, response).await;
        assert_eq!(
            response.headers()["content-type"],
            protobuf::WATCH_MEDIA_TYPE
        );
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let mut rest = &body[..];
        let mut events = Vec::new();
        while rest.len() >= 4 {
            let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            let (event_type, object) = protobuf::decode_watch_event(&rest[4..4 + len]).unwrap();
            events.push((event_type, object["kind"].clone()));
            rest = &rest[4 + len..];
        }
        assert_eq!(
            events,
            [
                ("ADDED".to_owned(), json!("ConfigMap")),
                ("DELETED".to_owned(), json!("ConfigMap")),
                ("ERROR".to_owned(), json!("Status")),
            ]
        );
    }
}
