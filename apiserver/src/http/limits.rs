//! Every bound the server puts on a client's work, in one place, so that no request, connection
//! or watch can make the server do unbounded work or hold unbounded memory. docs/security.md
//! lists each limit with its default and what a refusal looks like; the server's flags set
//! them. A limit that refuses a request answers with a `metav1.Status` (413, 422 or 429), is
//! counted in `/metrics` (`bulwark_limit_refusals_total{limit}`) and recorded on the request's
//! audit event (`limits.bulwark.dev/refused`). Connection-level refusals happen before there is
//! a request: they are counted and summarised in the audit log once a minute.

use std::time::Duration;

/// Limits on what one request may ask the server to decode, compute and store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLimits {
    /// Requests served at once, watches excepted (upstream's `--max-requests-inflight` plus
    /// `--max-mutating-requests-inflight`; 429 beyond).
    pub max_requests_inflight: usize,
    /// Largest request body read (413 beyond).
    pub max_body_bytes: usize,
    /// Largest object, as encoded JSON, a write may produce, after patching (413 beyond).
    /// The store's own value limit is the same 3 MiB.
    pub max_object_bytes: usize,
    /// Most operations in one JSON patch (upstream: 10,000; 413 beyond).
    pub max_json_patch_operations: usize,
    /// Most bytes a JSON patch may copy in total with `copy` operations (413 beyond): copies
    /// are the only operation that can grow a document past the size of the patch itself.
    pub max_json_patch_copy_bytes: usize,
    /// Most containers (init, regular and ephemeral together) in one pod or pod template
    /// (422 beyond): admission evaluates every container, so this bounds its work per object.
    pub max_containers_per_pod: usize,
    /// Longest request target (path and query) accepted (414 beyond).
    pub max_uri_bytes: usize,
    /// Largest total of header names and values accepted (431 beyond).
    pub max_header_bytes: usize,
    /// How long a client has to send its whole request body (408 beyond), so a body sent a
    /// byte at a time cannot hold one of the in-flight request slots for long.
    pub body_read_timeout: Duration,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            max_requests_inflight: 600,
            max_body_bytes: 3 * 1024 * 1024,
            max_object_bytes: 3 * 1024 * 1024,
            max_json_patch_operations: 10_000,
            max_json_patch_copy_bytes: 3 * 1024 * 1024,
            max_containers_per_pod: 256,
            max_uri_bytes: 16 * 1024,
            max_header_bytes: 64 * 1024,
            body_read_timeout: Duration::from_secs(60),
        }
    }
}

/// Limits on connections, enforced before and while requests are served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections in total; a connection beyond it is closed right after accept.
    pub max_connections: usize,
    /// Open connections from one source address (IPv6 sources are grouped by /64).
    pub max_connections_per_source: usize,
    /// How long a client has to complete the TLS handshake.
    pub handshake_timeout: Duration,
    /// How long a new connection may stay without a request after the handshake.
    pub first_request_timeout: Duration,
    /// How long a connection may stay open with no request in flight.
    pub idle_timeout: Duration,
    /// How long a write to a client may make no progress before the connection is closed
    /// (a client that stops reading its responses or watches).
    pub write_stall_timeout: Duration,
    /// How long a client has to send a request head (HTTP/1.1).
    pub header_read_timeout: Duration,
    /// Concurrent HTTP/2 streams per connection.
    pub max_streams_per_connection: u32,
    /// Response bytes buffered per connection (HTTP/1.1) and per stream (HTTP/2) before the
    /// server waits for the client to read.
    pub send_buffer_bytes: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 8192,
            max_connections_per_source: 1024,
            handshake_timeout: Duration::from_secs(10),
            first_request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
            write_stall_timeout: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(30),
            max_streams_per_connection: 1000,
            send_buffer_bytes: 64 * 1024,
        }
    }
}

/// Limits on watches, the requests that live longest and fan out most.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchLimits {
    /// Concurrent watches in total (429 beyond).
    pub max_watches: usize,
    /// Concurrent watches of one user (429 beyond), so one tenant cannot take them all.
    pub max_watches_per_user: usize,
    /// Stored bytes of the initial state read per step: the initial ADDED events are streamed
    /// from the list snapshot as the client reads them, never built in memory whole.
    pub initial_page_bytes: usize,
}

impl Default for WatchLimits {
    fn default() -> Self {
        Self {
            max_watches: 20_000,
            max_watches_per_user: 2_000,
            initial_page_bytes: 32 * 1024,
        }
    }
}

/// All of the server's limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Per request.
    pub request: RequestLimits,
    /// Per connection and source.
    pub connections: ConnectionLimits,
    /// Per watch.
    pub watches: WatchLimits,
}

impl Limits {
    /// Every limit raised out of the way (benchmarks measure the cost of the defaults
    /// against this). Never for production: the name says so.
    pub fn dangerous_unlimited() -> Self {
        let far = Duration::from_secs(24 * 3600);
        Self {
            request: RequestLimits {
                max_requests_inflight: usize::MAX >> 4,
                max_body_bytes: 3 * 1024 * 1024,
                max_object_bytes: usize::MAX,
                max_json_patch_operations: usize::MAX,
                max_json_patch_copy_bytes: usize::MAX,
                max_containers_per_pod: usize::MAX,
                max_uri_bytes: usize::MAX,
                max_header_bytes: usize::MAX,
                body_read_timeout: far,
            },
            connections: ConnectionLimits {
                max_connections: usize::MAX,
                max_connections_per_source: usize::MAX,
                handshake_timeout: far,
                first_request_timeout: far,
                idle_timeout: far,
                write_stall_timeout: far,
                header_read_timeout: far,
                max_streams_per_connection: u32::MAX,
                send_buffer_bytes: 1024 * 1024,
            },
            watches: WatchLimits {
                max_watches: usize::MAX,
                max_watches_per_user: usize::MAX,
                initial_page_bytes: 4 * 1024 * 1024,
            },
        }
    }
}

/// Which limit refused a request: the label of `bulwark_limit_refusals_total` and the value of
/// the audit annotation `limits.bulwark.dev/refused`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Limit {
    /// [`RequestLimits::max_body_bytes`].
    BodyBytes,
    /// [`RequestLimits::max_object_bytes`].
    ObjectBytes,
    /// [`RequestLimits::max_json_patch_operations`].
    JsonPatchOperations,
    /// [`RequestLimits::max_json_patch_copy_bytes`].
    JsonPatchCopyBytes,
    /// [`RequestLimits::max_containers_per_pod`].
    ContainersPerPod,
    /// [`RequestLimits::body_read_timeout`].
    BodyReadTimeout,
    /// [`RequestLimits::max_uri_bytes`].
    UriBytes,
    /// [`RequestLimits::max_header_bytes`].
    HeaderBytes,
    /// The in-flight request limit (`--max-requests-inflight`).
    Inflight,
    /// [`WatchLimits::max_watches`].
    Watches,
    /// [`WatchLimits::max_watches_per_user`].
    WatchesPerUser,
    /// [`ConnectionLimits::max_connections`].
    Connections,
    /// [`ConnectionLimits::max_connections_per_source`].
    ConnectionsPerSource,
    /// [`ConnectionLimits::first_request_timeout`].
    FirstRequestTimeout,
    /// [`ConnectionLimits::idle_timeout`].
    IdleTimeout,
    /// [`ConnectionLimits::write_stall_timeout`].
    WriteStall,
    /// [`ConnectionLimits::handshake_timeout`].
    HandshakeTimeout,
}

impl Limit {
    /// Every limit, for metrics that list each one even at zero.
    pub const ALL: [Self; 17] = [
        Self::BodyBytes,
        Self::ObjectBytes,
        Self::JsonPatchOperations,
        Self::JsonPatchCopyBytes,
        Self::ContainersPerPod,
        Self::BodyReadTimeout,
        Self::UriBytes,
        Self::HeaderBytes,
        Self::Inflight,
        Self::Watches,
        Self::WatchesPerUser,
        Self::Connections,
        Self::ConnectionsPerSource,
        Self::FirstRequestTimeout,
        Self::IdleTimeout,
        Self::WriteStall,
        Self::HandshakeTimeout,
    ];

    /// The limit's name in metrics, audit annotations and docs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BodyBytes => "max-body-bytes",
            Self::ObjectBytes => "max-object-bytes",
            Self::JsonPatchOperations => "max-json-patch-operations",
            Self::JsonPatchCopyBytes => "max-json-patch-copy-bytes",
            Self::ContainersPerPod => "max-containers-per-pod",
            Self::BodyReadTimeout => "body-read-timeout",
            Self::UriBytes => "max-uri-bytes",
            Self::HeaderBytes => "max-header-bytes",
            Self::Inflight => "max-requests-inflight",
            Self::Watches => "max-watches",
            Self::WatchesPerUser => "max-watches-per-user",
            Self::Connections => "max-connections",
            Self::ConnectionsPerSource => "max-connections-per-source",
            Self::FirstRequestTimeout => "first-request-timeout",
            Self::IdleTimeout => "idle-connection-timeout",
            Self::WriteStall => "write-stall-timeout",
            Self::HandshakeTimeout => "tls-handshake-timeout",
        }
    }

    /// The answer of a request this limit refuses: a `Status` of `reason` with `message`,
    /// and the limit noted for the request's audit event and `/metrics`.
    pub fn refuse(
        self,
        reason: bulwark_api::StatusReason,
        message: impl Into<String>,
    ) -> crate::http::error::ApiError {
        crate::audit::record::note_limit(self);
        crate::http::error::ApiError::new(reason, message)
    }

    /// [`Limit::refuse`] with 429 and `Retry-After: 1`: the client may try again shortly.
    pub fn too_many(self, message: impl Into<String>) -> crate::http::error::ApiError {
        let mut err = self.refuse(bulwark_api::StatusReason::TooManyRequests, message);
        err.0.details = Some(bulwark_api::status::StatusDetails {
            retry_after_seconds: Some(1),
            ..Default::default()
        });
        err
    }

    /// Whether the limit acts on connections (before any request exists).
    pub fn is_connection_level(self) -> bool {
        matches!(
            self,
            Self::Connections
                | Self::ConnectionsPerSource
                | Self::FirstRequestTimeout
                | Self::IdleTimeout
                | Self::WriteStall
                | Self::HandshakeTimeout
        )
    }
}

/// Refuses a request whose target or headers are over the request limits (414 and 431, with a
/// `Status` body), right after authentication (so the audit event names who sent it) and
/// before anything else reads them.
pub fn check_head(
    limits: &RequestLimits,
    parts: &http::request::Parts,
) -> Result<(), crate::http::error::ApiError> {
    let target = parts
        .uri
        .path_and_query()
        .map_or(parts.uri.path().len(), |p| p.as_str().len());
    if target > limits.max_uri_bytes {
        return Err(Limit::UriBytes.refuse(
            bulwark_api::StatusReason::UriTooLong,
            format!(
                "the request target is {target} bytes long, over the limit of {} bytes",
                limits.max_uri_bytes
            ),
        ));
    }
    let headers: usize = parts
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers > limits.max_header_bytes {
        return Err(Limit::HeaderBytes.refuse(
            bulwark_api::StatusReason::RequestHeaderFieldsTooLarge,
            format!(
                "the request headers are {headers} bytes, over the limit of {} bytes",
                limits.max_header_bytes
            ),
        ));
    }
    Ok(())
}

/// Refuses a pod or pod template with more containers than the request limits allow (422):
/// admission evaluates every container, so this bounds its work per object.
pub fn check_container_count(
    def: &crate::registry::ResourceDef,
    object: &serde_json::Value,
    limits: &RequestLimits,
) -> Result<(), crate::http::error::ApiError> {
    let Some(template) = def.strategy().pod_template() else {
        return Ok(());
    };
    let Some(view) = bulwark_admission::workload::pod_view(template, object) else {
        return Ok(());
    };
    let count = bulwark_admission::workload::container_count(view.spec);
    if count <= limits.max_containers_per_pod {
        return Ok(());
    }
    let field = match template {
        "" => "spec".to_owned(),
        pointer => format!("{}.spec", pointer.trim_start_matches('/').replace('/', ".")),
    };
    crate::audit::record::note_limit(Limit::ContainersPerPod);
    Err(bulwark_api::Status::invalid(
        def.group(),
        def.kind(),
        crate::rest::object::meta_str(object, "name").unwrap_or_default(),
        vec![bulwark_api::StatusCause::invalid(
            &field,
            format!(
                "Too many: {count}: must have at most {} containers (init, regular and ephemeral together)",
                limits.max_containers_per_pod
            ),
        )],
    )
    .into())
}

/// Serialized JSON size of `value` if it is at most `limit` bytes, or None: counts without
/// building the text and stops as soon as the limit is passed, so measuring costs at most
/// `limit` bytes of work.
pub fn json_size_within(value: &serde_json::Value, limit: usize) -> Option<usize> {
    struct Counter {
        written: usize,
        limit: usize,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.written = self.written.saturating_add(buf.len());
            if self.written > self.limit {
                return Err(std::io::Error::other("over the limit"));
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter { written: 0, limit };
    serde_json::to_writer(&mut counter, value).ok()?;
    Some(counter.written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_size_is_exact_and_stops_at_the_limit() {
        let v = json!({"a": "x".repeat(100), "b": [1, 2, 3]});
        let exact = serde_json::to_vec(&v).unwrap().len();
        assert_eq!(json_size_within(&v, exact), Some(exact));
        assert_eq!(json_size_within(&v, exact - 1), None);
        assert_eq!(json_size_within(&json!(null), 4), Some(4));
    }

    #[test]
    fn every_limit_has_a_distinct_name() {
        let names: std::collections::BTreeSet<_> = Limit::ALL.iter().map(|l| l.as_str()).collect();
        assert_eq!(names.len(), Limit::ALL.len());
    }
}
