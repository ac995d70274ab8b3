//! Load shedding: at most N requests are served at once (watches, which are long-lived, are
//! exempt, as upstream's `--max-requests-inflight`); beyond that a request gets 429 with
//! `Retry-After` instead of queueing without bound.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::http::error::ApiError;

/// The in-flight request limit.
#[derive(Debug)]
pub struct InflightLimit {
    permits: Arc<Semaphore>,
}

impl InflightLimit {
    /// Allows `max` concurrent requests.
    pub fn new(max: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
        }
    }

    /// A slot for one request, or 429.
    pub fn acquire(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        Arc::clone(&self.permits).try_acquire_owned().map_err(|_| {
            crate::http::limits::Limit::Inflight
                .too_many("too many requests, please try again later")
        })
    }
}

impl Default for InflightLimit {
    /// Upstream's default for non-mutating plus mutating requests.
    fn default() -> Self {
        Self::new(crate::http::limits::RequestLimits::default().max_requests_inflight)
    }
}

/// `response` with the request's in-flight slot held until its body has been handed to the
/// connection, when the body is still being produced (a streamed list goes on reading the
/// store after its handler returned, and that work counts against the limit as upstream's
/// does). A body already complete in memory releases the slot with the handler.
pub fn held_until_sent(response: Response, permit: Option<OwnedSemaphorePermit>) -> Response {
    match permit {
        Some(permit)
            if http_body::Body::size_hint(response.body())
                .exact()
                .is_none() =>
        {
            response.map(|body| {
                Body::new(HoldingBody {
                    body,
                    _permit: permit,
                })
            })
        }
        _ => response,
    }
}

/// A body that holds an in-flight slot until it is dropped.
struct HoldingBody {
    body: Body,
    _permit: OwnedSemaphorePermit,
}

impl http_body::Body for HoldingBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheds_past_the_limit_and_recovers() {
        let limit = InflightLimit::new(2);
        let a = limit.acquire().unwrap();
        let _b = limit.acquire().unwrap();
        let err = limit.acquire().unwrap_err();
        assert_eq!(err.code(), 429);
        assert_eq!(err.0.reason, "TooManyRequests");
        assert_eq!(err.0.details.as_ref().unwrap().retry_after_seconds, Some(1));
        drop(a);
        assert!(limit.acquire().is_ok());
    }

    /// A streamed body keeps its slot until it is dropped; a complete one gives it back at
    /// once.
    #[test]
    fn a_streamed_body_holds_its_slot_until_dropped() {
        let limit = InflightLimit::new(1);
        let streamed = Body::from_stream(futures::stream::iter([Ok::<_, std::io::Error>(
            Bytes::from_static(b"x"),
        )]));
        let response = held_until_sent(Response::new(streamed), Some(limit.acquire().unwrap()));
        assert_eq!(limit.acquire().unwrap_err().code(), 429);
        drop(response);
        let complete = held_until_sent(
            Response::new(Body::from("done")),
            Some(limit.acquire().unwrap()),
        );
        assert!(limit.acquire().is_ok());
        drop(complete);
    }
}
