//! The HTTP edge: the TLS listener and its connection bounds, what a request asks for (path,
//! query, negotiated representation, bounded body), the limits every request is held to,
//! responses and the one mapping from errors to `metav1.Status`, and metrics.

pub mod connections;
pub(crate) mod error;
pub(crate) mod inflight;
pub mod limits;
pub(crate) mod metrics;
pub mod negotiate;
pub(crate) mod request_info;
pub(crate) mod respond;
pub mod server;
pub(crate) mod stall_io;
