//! Node agent checks (KSPM-NODE-*), over what each node agent reports of its own
//! configuration. No node has reported yet in a cluster without node agents, so these are
//! not evaluated there, saying so.

use super::{Ctx, config, not_evaluated};
use crate::evidence::{FileKind, NodeReport};
use crate::outcome::{Outcome, Source};

/// Judges every node's report with `judge` → (ok, observed, pass message, fail message).
pub(super) fn each(
    ctx: &Ctx<'_>,
    expected: &str,
    judge: impl Fn(&NodeReport) -> (bool, String, String, String),
) -> Vec<Outcome> {
    let nodes = match ctx.snapshot.nodes.get() {
        Ok(n) => n,
        Err(reason) => return not_evaluated(config("nodes"), expected, reason),
    };
    if nodes.is_empty() {
        return not_evaluated(config("nodes"), expected, "no node agent has reported yet");
    }
    nodes
        .iter()
        .map(|n| {
            let (ok, observed, pass, fail) = judge(n);
            Outcome::check(
                ok,
                Source::Node {
                    node: n.node.clone(),
                },
                observed,
                expected,
                format!("{}: {pass}", n.node),
                format!("{}: {fail}", n.node),
            )
        })
        .collect()
}

pub(super) fn anonymous(ctx: &Ctx<'_>) -> Vec<Outcome> {
    each(ctx, "anonymous auth off", |n| {
        (
            !n.anonymous_auth,
            n.anonymous_auth.to_string(),
            "anonymous requests are refused".into(),
            "anonymous requests are accepted".into(),
        )
    })
}

pub(super) fn authorization(ctx: &Ctx<'_>) -> Vec<Outcome> {
    each(ctx, "authorization Webhook; client CA set", |n| {
        (
            n.authorization_mode == "Webhook" && n.client_ca.is_some(),
            format!(
                "mode {}, client CA {}",
                n.authorization_mode,
                n.client_ca.as_deref().unwrap_or("unset")
            ),
            "authorization is delegated and clients are verified".into(),
            "authorization is not delegated or no client CA is set".into(),
        )
    })
}

pub(super) fn read_only_port(ctx: &Ctx<'_>) -> Vec<Outcome> {
    each(ctx, "0", |n| {
        (
            n.read_only_port == 0,
            n.read_only_port.to_string(),
            "no read-only port".into(),
            format!(
                "serves an unauthenticated read-only port {}",
                n.read_only_port
            ),
        )
    })
}

pub(super) fn serving_tls(ctx: &Ctx<'_>) -> Vec<Outcome> {
    each(
        ctx,
        "serving certificate; AEAD forward-secret suites",
        |n| {
            let weak: Vec<&String> = n
                .tls_cipher_suites
                .iter()
                .filter(|s| {
                    !(s.contains("GCM") || s.contains("CHACHA20")) || s.contains("_RSA_WITH_")
                })
                .collect();
            (
                n.serving_cert.is_some() && weak.is_empty(),
                format!(
                    "cert {}, suites {}",
                    n.serving_cert.as_deref().unwrap_or("unset"),
                    super::list(&n.tls_cipher_suites)
                ),
                "serves TLS with its own certificate and strong suites".into(),
                "no serving certificate, or weak suites".into(),
            )
        },
    )
}

pub(super) fn pid_limit(ctx: &Ctx<'_>) -> Vec<Outcome> {
    each(ctx, "a positive pod PID limit", |n| {
        (
            n.pod_pids_limit.is_some_and(|l| l > 0),
            n.pod_pids_limit
                .map_or_else(|| "unlimited".to_owned(), |l| l.to_string()),
            "pods have a PID limit".into(),
            "pods have no PID limit".into(),
        )
    })
}

pub(super) fn seccomp_default(ctx: &Ctx<'_>) -> Vec<Outcome> {
    each(ctx, "RuntimeDefault by default", |n| {
        (
            n.seccomp_default,
            n.seccomp_default.to_string(),
            "pods default to RuntimeDefault".into(),
            "pods without a profile run unconfined".into(),
        )
    })
}

pub(super) fn files(ctx: &Ctx<'_>) -> Vec<Outcome> {
    each(ctx, "0600 (directories 0700), uid 0", |n| {
        let bad: Vec<String> = n
            .files
            .iter()
            .filter(|f| {
                let loose = match f.kind {
                    FileKind::Directory => f.mode & 0o077 != 0,
                    _ => f.mode & 0o177 != 0,
                };
                loose || f.uid != 0
            })
            .map(|f| format!("{} {:04o} uid {}", f.path, f.mode & 0o7777, f.uid))
            .collect();
        (
            bad.is_empty() && !n.files.is_empty(),
            if n.files.is_empty() {
                "no files reported".to_owned()
            } else if bad.is_empty() {
                "all 0600, root".to_owned()
            } else {
                bad.join("; ")
            },
            "its configuration and credential files are private".into(),
            "configuration or credential files are readable by others or not root-owned".into(),
        )
    })
}
