//! Audit logging checks (KSPM-AUD-*).

use super::{Ctx, config, need};
use crate::outcome::{Outcome, State};
use crate::probes::AUDIT_CONCERNS;

/// Thirty days.
const RETENTION_SECONDS: u64 = 30 * 24 * 3600;

fn level_rank(level: &str) -> u8 {
    match level {
        "Metadata" => 1,
        "Request" => 2,
        "RequestResponse" => 3,
        _ => 0,
    }
}

pub(super) fn enabled(ctx: &Ctx<'_>) -> Vec<Outcome> {
    let expected = "enabled, fsynced";
    let server = match need(&ctx.snapshot.server, "audit", expected) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let a = &server.audit;
    vec![Outcome::check(
        a.enabled && a.durable,
        config("audit"),
        format!(
            "enabled {}, durable {}, directory {}",
            a.enabled,
            a.durable,
            a.directory.as_deref().unwrap_or("none")
        ),
        expected,
        "every request is recorded to a durable log",
        "audit logging is off or not durable",
    )]
}

pub(super) fn coverage(ctx: &Ctx<'_>) -> Vec<Outcome> {
    let server = match need(
        &ctx.snapshot.server,
        "audit.coverage",
        "every concern covered",
    ) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let a = &server.audit;
    AUDIT_CONCERNS
        .iter()
        .map(|concern| {
            let level = a
                .coverage
                .iter()
                .find(|c| c.concern == concern.id)
                .map(|c| c.level.as_str());
            let expected = if concern.at_most_metadata {
                "Metadata"
            } else {
                "Metadata or above"
            };
            let source = config(&format!("audit.policy[{}]", concern.id));
            let Some(level) = level else {
                return Outcome::new(
                    State::NotEvaluated,
                    source,
                    "",
                    expected,
                    format!(
                        "not evaluated: the server did not report the level for {}",
                        concern.id
                    ),
                );
            };
            let rank = level_rank(level);
            let ok = (!concern.at_least_metadata || rank >= 1)
                && (!concern.at_most_metadata || rank <= 1);
            Outcome::check(
                ok,
                source,
                level,
                expected,
                format!("{} are recorded at {level}", concern.id),
                if rank == 0 {
                    format!("{} are not recorded", concern.id)
                } else {
                    format!(
                        "{} are recorded with bodies ({level}), which leaks them into the log",
                        concern.id
                    )
                },
            )
        })
        .collect()
}

pub(super) fn retention(ctx: &Ctx<'_>) -> Vec<Outcome> {
    let expected = "at least 30 days kept; rotation by size and age";
    let server = match need(&ctx.snapshot.server, "audit.retention", expected) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let a = &server.audit;
    let capacity = a.max_segments.saturating_mul(a.max_segment_age_seconds);
    let rotates = a.max_segment_bytes > 0 && a.max_segment_age_seconds > 0;
    let mut out = vec![Outcome::check(
        rotates && capacity >= RETENTION_SECONDS,
        config("audit.maxSegments"),
        format!(
            "{} segments of at most {} MiB or {} h",
            a.max_segments,
            a.max_segment_bytes / (1024 * 1024),
            a.max_segment_age_seconds / 3600
        ),
        expected,
        format!(
            "segments rotate by size and age and at least {} days fit",
            capacity / 86_400
        ),
        "the configured segments cannot hold 30 days, or do not rotate",
    )];
    // Segments rotate by size too: once retention has removed one, the oldest event left must
    // still be 30 days old.
    if a.segments_removed {
        let age = a.oldest_event_age_seconds.unwrap_or(0);
        out.push(Outcome::check(
            age >= RETENTION_SECONDS,
            config("audit.oldestEvent"),
            format!("{} days", age / 86_400),
            "at least 30 days",
            format!("the oldest event kept is {} days old", age / 86_400),
            format!(
                "retention removed segments and the oldest event kept is {} days old: raise max segments or size",
                age / 86_400
            ),
        ));
    }
    out
}

pub(super) fn tamper_evident(ctx: &Ctx<'_>) -> Vec<Outcome> {
    let expected = "hash-chained, signed, and shipped off the cluster";
    let server = match need(&ctx.snapshot.server, "audit", expected) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let a = &server.audit;
    let mut out = vec![Outcome::check(
        a.hash_chained && a.signed,
        config("audit.integrity"),
        format!(
            "hash-chained {}, signed checkpoints {}",
            a.hash_chained, a.signed
        ),
        "hash-chained, signed",
        "the log is hash-chained with signed checkpoints (bulwark audit verify)",
        "the log is not tamper-evident",
    )];
    out.push(match &a.webhook {
        Some(w) => Outcome::check(
            !w.failing,
            config("audit.webhook"),
            format!("{} (sent {}, dropped {}, failing {})", w.url, w.sent, w.dropped, w.failing),
            "delivering",
            format!("events are shipped to {}", w.url),
            format!("the audit webhook {} is failing", w.url),
        ),
        None => Outcome::new(
            State::Manual,
            config("audit.webhook"),
            "not configured",
            "shipped off the cluster",
            "no audit webhook is configured; whether a log agent ships the audit directory cannot be seen from the server: confirm it",
        ),
    });
    out
}
