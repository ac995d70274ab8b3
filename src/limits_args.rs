//! `bulwark server`'s flags for the server's limits (`bulwark_apiserver::http::limits`), one per
//! limit and named as the limit is in `/metrics` and audit events. Each defaults to the
//! documented default (docs/security.md).

use std::time::Duration;

use bulwark_apiserver::http::limits::Limits;

fn parse_duration(text: &str) -> Result<Duration, String> {
    match crate::duration::parse(text) {
        Ok(d) if d.is_zero() => Err("must be at least 1s".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("{e:#}")),
    }
}

fn parse_count(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn parse_streams(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// The limit flags; unset ones keep the defaults.
#[derive(clap::Args, Debug, Default)]
#[command(
    next_help_heading = "Limits (defaults and what each refusal looks like: docs/security.md)"
)]
pub(crate) struct LimitArgs {
    /// Requests served at once, watches excepted (429 beyond). Default 600.
    #[arg(long, value_parser = parse_count)]
    max_requests_inflight: Option<usize>,
    /// Largest request body (413 beyond). Default 3 MiB.
    #[arg(long, value_parser = parse_count)]
    max_body_bytes: Option<usize>,
    /// Largest object a patch may produce (413 beyond). Default 3 MiB.
    #[arg(long, value_parser = parse_count)]
    max_object_bytes: Option<usize>,
    /// Most operations in one JSON patch (413 beyond). Default 10000.
    #[arg(long, value_parser = parse_count)]
    max_json_patch_operations: Option<usize>,
    /// Most bytes the copy operations of one JSON patch may copy (413 beyond). Default 3 MiB.
    #[arg(long, value_parser = parse_count)]
    max_json_patch_copy_bytes: Option<usize>,
    /// Most containers in a pod or pod template (422 beyond). Default 256.
    #[arg(long, value_parser = parse_count)]
    max_containers_per_pod: Option<usize>,
    /// Longest request target, path and query (414 beyond). Default 16 KiB.
    #[arg(long, value_parser = parse_count)]
    max_uri_bytes: Option<usize>,
    /// Largest total of request header names and values (431 beyond). Default 64 KiB.
    #[arg(long, value_parser = parse_count)]
    max_header_bytes: Option<usize>,
    /// How long a client has to send its request body (408 beyond). Default 60s.
    #[arg(long, value_parser = parse_duration)]
    body_read_timeout: Option<Duration>,
    /// Watches open at once on this server (429 beyond). Default 20000.
    #[arg(long, value_parser = parse_count)]
    max_watches: Option<usize>,
    /// Watches one user may have open at once (429 beyond). Default 2000.
    #[arg(long, value_parser = parse_count)]
    max_watches_per_user: Option<usize>,
    /// Connections open at once (closed at accept beyond). Default 8192.
    #[arg(long, value_parser = parse_count)]
    max_connections: Option<usize>,
    /// Connections open at once from one address, IPv6 by /64 (closed at accept beyond).
    /// Default 1024.
    #[arg(long, value_parser = parse_count)]
    max_connections_per_source: Option<usize>,
    /// How long a client has to finish the TLS handshake. Default 10s.
    #[arg(long, value_parser = parse_duration)]
    tls_handshake_timeout: Option<Duration>,
    /// How long a new connection may go without a request. Default 10s.
    #[arg(long, value_parser = parse_duration)]
    first_request_timeout: Option<Duration>,
    /// How long a connection may stay with nothing in flight. Default 90s.
    #[arg(long, value_parser = parse_duration)]
    idle_connection_timeout: Option<Duration>,
    /// How long a write to a client that does not read may wait before the connection is
    /// closed. Default 60s.
    #[arg(long, value_parser = parse_duration)]
    write_stall_timeout: Option<Duration>,
    /// Concurrent HTTP/2 streams per connection. Default 1000.
    #[arg(long, value_parser = parse_streams)]
    http2_max_streams_per_connection: Option<u32>,
    /// Raises every limit out of the way (benchmarks measure what the limits cost with it).
    /// Leaves the server open to the exhaustion the limits prevent: never in production.
    #[arg(long)]
    dangerous_no_limits: bool,
}

/// Puts a flag's value, if it was given, in place of the default.
fn set<T: Copy>(target: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *target = v;
    }
}

impl LimitArgs {
    /// The defaults with every given flag applied.
    pub(crate) fn limits(&self) -> Limits {
        let mut l = if self.dangerous_no_limits {
            Limits::dangerous_unlimited()
        } else {
            Limits::default()
        };
        set(
            &mut l.request.max_requests_inflight,
            self.max_requests_inflight,
        );
        set(&mut l.request.max_body_bytes, self.max_body_bytes);
        set(&mut l.request.max_object_bytes, self.max_object_bytes);
        set(
            &mut l.request.max_json_patch_operations,
            self.max_json_patch_operations,
        );
        set(
            &mut l.request.max_json_patch_copy_bytes,
            self.max_json_patch_copy_bytes,
        );
        set(
            &mut l.request.max_containers_per_pod,
            self.max_containers_per_pod,
        );
        set(&mut l.request.max_uri_bytes, self.max_uri_bytes);
        set(&mut l.request.max_header_bytes, self.max_header_bytes);
        set(&mut l.request.body_read_timeout, self.body_read_timeout);
        set(&mut l.watches.max_watches, self.max_watches);
        set(
            &mut l.watches.max_watches_per_user,
            self.max_watches_per_user,
        );
        set(&mut l.connections.max_connections, self.max_connections);
        set(
            &mut l.connections.max_connections_per_source,
            self.max_connections_per_source,
        );
        set(
            &mut l.connections.handshake_timeout,
            self.tls_handshake_timeout,
        );
        set(
            &mut l.connections.first_request_timeout,
            self.first_request_timeout,
        );
        set(
            &mut l.connections.idle_timeout,
            self.idle_connection_timeout,
        );
        set(
            &mut l.connections.write_stall_timeout,
            self.write_stall_timeout,
        );
        set(
            &mut l.connections.max_streams_per_connection,
            self.http2_max_streams_per_connection,
        );
        l
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        limits: LimitArgs,
    }

    #[test]
    fn flags_override_only_what_they_name() {
        let cli = Cli::parse_from([
            "x",
            "--max-watches-per-user",
            "5",
            "--idle-connection-timeout",
            "2m",
        ]);
        let limits = cli.limits.limits();
        let mut expected = Limits::default();
        expected.watches.max_watches_per_user = 5;
        expected.connections.idle_timeout = Duration::from_secs(120);
        assert_eq!(limits, expected);
        assert!(Cli::try_parse_from(["x", "--max-connections", "0"]).is_err());
        assert!(Cli::try_parse_from(["x", "--first-request-timeout", "0s"]).is_err());
    }
}
