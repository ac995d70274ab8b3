//! API server and control-plane endpoint checks (KSPM-API-*).

use super::{Ctx, config, list, need, not_evaluated};
use crate::outcome::Outcome;

/// Cipher suites that are AEAD and forward secret (TLS 1.3 suites are all AEAD).
const STRONG_SUITES: &[&str] = &[
    "TLS13_AES_128_GCM_SHA256",
    "TLS13_AES_256_GCM_SHA384",
    "TLS13_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
];

pub(super) fn anonymous(ctx: &Ctx<'_>) -> Vec<Outcome> {
    let server = match need(&ctx.snapshot.server, "authentication.anonymous", "false") {
        Ok(s) => s,
        Err(o) => return o,
    };
    let on = server.authentication.anonymous;
    vec![Outcome::check(
        !on,
        config("authentication.anonymous"),
        on.to_string(),
        "false",
        "anonymous requests are refused with 401",
        "anonymous requests are accepted as system:anonymous",
    )]
}

pub(super) fn static_credentials(ctx: &Ctx<'_>) -> Vec<Outcome> {
    let server = match need(
        &ctx.snapshot.server,
        "authentication.authenticators",
        "no static-token or basic-auth",
    ) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let found: Vec<&String> = server
        .authentication
        .authenticators
        .iter()
        .filter(|a| matches!(a.as_str(), "static-token" | "basic-auth" | "token-file"))
        .collect();
    vec![Outcome::check(
        found.is_empty(),
        config("authentication.authenticators"),
        list(&server.authentication.authenticators),
        "no static-token or basic-auth",
        "no static token or password authenticator is configured",
        format!("static credentials are accepted: {}", list(&found)),
    )]
}

pub(super) fn plaintext_listeners(ctx: &Ctx<'_>) -> Vec<Outcome> {
    let server = match need(&ctx.snapshot.server, "listeners", "every listener TLS") {
        Ok(s) => s,
        Err(o) => return o,
    };
    if server.listeners.is_empty() {
        return not_evaluated(
            config("listeners"),
            "every listener TLS",
            "the server reported no listener",
        );
    }
    server
        .listeners
        .iter()
        .map(|l| {
            Outcome::check(
                l.tls,
                config(&format!("listeners[{}]", l.address)),
                if l.tls { "https" } else { "plaintext" },
                "https",
                format!("{} ({}) serves TLS only", l.address, l.purpose),
                format!("{} ({}) serves plaintext", l.address, l.purpose),
            )
        })
        .collect()
}

pub(super) fn tls_strength(ctx: &Ctx<'_>) -> Vec<Outcome> {
    let expected = "TLSv1.2+ with AEAD forward-secret suites only";
    let server = match need(&ctx.snapshot.server, "tls", expected) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let tls = &server.tls;
    let old: Vec<&String> = tls
        .versions
        .iter()
        .filter(|v| !matches!(v.as_str(), "TLSv1.2" | "TLSv1.3"))
        .collect();
    let weak: Vec<&String> = tls
        .cipher_suites
        .iter()
        .filter(|s| !STRONG_SUITES.contains(&s.as_str()))
        .collect();
    if tls.versions.is_empty() || tls.cipher_suites.is_empty() {
        return not_evaluated(
            config("tls"),
            expected,
            "the server reported no TLS versions or suites",
        );
    }
    let mut out = vec![Outcome::check(
        old.is_empty(),
        config("tls.versions"),
        list(&tls.versions),
        "TLSv1.2, TLSv1.3",
        "only TLS 1.2 and 1.3 are offered",
        format!(
            "protocol versions older than TLS 1.2 are offered: {}",
            list(&old)
        ),
    )];
    out.push(Outcome::check(
        weak.is_empty(),
        config("tls.cipherSuites"),
        list(&tls.cipher_suites),
        "ECDHE with AES-GCM or ChaCha20-Poly1305; TLS 1.3 suites",
        "every cipher suite is AEAD and forward secret",
        format!("weak cipher suites are offered: {}", list(&weak)),
    ));
    out
}

pub(super) fn debug_endpoints(ctx: &Ctx<'_>) -> Vec<Outcome> {
    let server = match need(&ctx.snapshot.server, "debugEndpoints", "none") {
        Ok(s) => s,
        Err(o) => return o,
    };
    vec![Outcome::check(
        server.debug_endpoints.is_empty(),
        config("debugEndpoints"),
        list(&server.debug_endpoints),
        "none",
        "no profiling or debug endpoint is served",
        format!(
            "debug endpoints are served: {}",
            list(&server.debug_endpoints)
        ),
    )]
}

pub(super) fn internal_endpoints(ctx: &Ctx<'_>) -> Vec<Outcome> {
    let expected = "loopback only";
    let server = match need(&ctx.snapshot.server, "components", expected) {
        Ok(s) => s,
        Err(o) => return o,
    };
    if server.components.is_empty() {
        return not_evaluated(
            config("components"),
            expected,
            "no controller manager or scheduler runs in this cluster yet",
        );
    }
    let mut out = Vec::new();
    for component in &server.components {
        for endpoint in &component.endpoints {
            let loopback = is_loopback(&endpoint.address);
            out.push(Outcome::check(
                loopback,
                config(&format!("components.{}.endpoints", component.name)),
                endpoint.address.clone(),
                expected,
                format!(
                    "{} listens on loopback only ({})",
                    component.name, endpoint.address
                ),
                format!(
                    "{} listens beyond loopback ({})",
                    component.name, endpoint.address
                ),
            ));
        }
        if component.endpoints.is_empty() {
            out.push(Outcome::pass(
                config(&format!("components.{}.endpoints", component.name)),
                "none",
                expected,
                format!("{} serves no endpoint", component.name),
            ));
        }
    }
    out
}

/// Whether a `host:port` address is loopback.
fn is_loopback(address: &str) -> bool {
    let host = address
        .rsplit_once(':')
        .map_or(address, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub(super) fn request_bounds(ctx: &Ctx<'_>) -> Vec<Outcome> {
    let expected = "every request, connection and watch bounded";
    let server = match need(&ctx.snapshot.server, "limits", expected) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let l = &server.limits;
    // A limit raised out of the way (--dangerous-no-limits) is as good as none.
    let bounded = |v: Option<u64>, sane: u64| v.is_some_and(|v| v > 0 && v <= sane);
    let checks = [
        (
            "limits.maxRequestsInflight",
            l.max_requests_inflight,
            100_000,
        ),
        (
            "limits.maxConnectionsPerSource",
            l.max_connections_per_source,
            100_000,
        ),
        (
            "limits.bodyReadTimeoutSeconds",
            l.body_read_timeout_seconds,
            3_600,
        ),
        (
            "limits.idleTimeoutSeconds",
            l.idle_timeout_seconds,
            24 * 3_600,
        ),
        ("limits.maxWatchesPerUser", l.max_watches_per_user, 100_000),
        ("limits.maxBodyBytes", l.max_body_bytes, 64 * 1024 * 1024),
    ];
    checks
        .into_iter()
        .map(|(key, value, sane)| {
            let observed = value.map_or_else(|| "unset".to_owned(), |v| v.to_string());
            Outcome::check(
                bounded(value, sane),
                config(key),
                observed.clone(),
                format!("1..={sane}"),
                format!("{key} is bounded ({observed})"),
                format!("{key} is unbounded ({observed})"),
            )
        })
        .collect()
}

pub(super) fn external_ips(ctx: &Ctx<'_>) -> Vec<Outcome> {
    super::admission::probe_refused(ctx, "service-external-ips")
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn loopback_addresses() {
        assert!(is_loopback("127.0.0.1:10257"));
        assert!(is_loopback("[::1]:10257"));
        assert!(is_loopback("localhost:1"));
        assert!(!is_loopback("0.0.0.0:10257"));
        assert!(!is_loopback("10.0.0.1:10257"));
    }
}
