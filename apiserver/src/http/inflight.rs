//! Load shedding: at most N requests are served at once (watches, which are long-lived, are
//! exempt, as upstream's `--max-requests-inflight`); beyond that a request gets 429 with
//! `Retry-After` instead of queueing without bound.

use std::sync::Arc;

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
}
