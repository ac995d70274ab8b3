//! Open watches, counted in total and per user ([`crate::http::limits::WatchLimits`]): a watch is
//! the one request that stays in flight for as long as the client likes and is exempt from
//! the in-flight limit, so without a count of its own one tenant could open watches until the
//! server's memory or file descriptors ran out. Beyond either cap a watch gets 429.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::http::error::ApiError;
use crate::http::limits::{Limit, WatchLimits};

/// The open watches (also shown in the `bulwark_open_watches` gauge).
#[derive(Debug)]
pub struct WatchSlots {
    max_total: usize,
    max_per_user: usize,
    open: Mutex<(usize, HashMap<String, usize>)>,
    gauge: prometheus_client::metrics::gauge::Gauge,
}

/// One open watch; dropping it (the stream ended or the client went away) frees its place.
#[derive(Debug)]
pub struct WatchSlot {
    slots: Arc<WatchSlots>,
    user: String,
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        self.slots.gauge.dec();
        if let Ok(mut open) = self.slots.open.lock() {
            open.0 = open.0.saturating_sub(1);
            if let Some(n) = open.1.get_mut(&self.user) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    open.1.remove(&self.user);
                }
            }
        }
    }
}

impl WatchSlots {
    /// Slots under `limits`, showing the open watches in `gauge`.
    pub fn new(limits: &WatchLimits, gauge: prometheus_client::metrics::gauge::Gauge) -> Arc<Self> {
        Arc::new(Self {
            max_total: limits.max_watches,
            max_per_user: limits.max_watches_per_user,
            open: Mutex::new((0, HashMap::new())),
            gauge,
        })
    }

    /// A slot for one watch of `user`, or 429 naming the cap (the refusal is noted for the
    /// request's audit event and metrics).
    pub fn acquire(self: &Arc<Self>, user: &str) -> Result<WatchSlot, ApiError> {
        let mut open = self
            .open
            .lock()
            .map_err(|_| ApiError::internal("the watch table is poisoned"))?;
        if open.0 >= self.max_total {
            return Err(Limit::Watches.too_many(format!(
                "too many watches open on this server (limit {}), please try again later",
                self.max_total
            )));
        }
        let mine = open.1.entry(user.to_owned()).or_insert(0);
        if *mine >= self.max_per_user {
            return Err(Limit::WatchesPerUser.too_many(format!(
                "user {user:?} has too many watches open (limit {}); close some first",
                self.max_per_user
            )));
        }
        *mine += 1;
        open.0 += 1;
        self.gauge.inc();
        Ok(WatchSlot {
            slots: Arc::clone(self),
            user: user.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_user_and_in_total() {
        let gauge = prometheus_client::metrics::gauge::Gauge::default();
        let slots = WatchSlots::new(
            &WatchLimits {
                max_watches: 3,
                max_watches_per_user: 2,
                ..WatchLimits::default()
            },
            gauge.clone(),
        );
        let a1 = slots.acquire("alice").unwrap();
        let _a2 = slots.acquire("alice").unwrap();
        let err = slots.acquire("alice").unwrap_err();
        assert_eq!(err.code(), 429);
        assert!(err.0.message.contains("alice"), "{}", err.0.message);
        let _b1 = slots.acquire("bob").unwrap();
        assert_eq!(slots.acquire("carol").unwrap_err().code(), 429);
        assert_eq!(gauge.get(), 3);
        drop(a1);
        assert_eq!(gauge.get(), 2);
        assert!(slots.acquire("carol").is_ok());
    }
}
