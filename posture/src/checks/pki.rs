//! PKI checks (KSPM-PKI-*).

use super::{Ctx, config, need, not_evaluated};
use crate::evidence::FileKind;
use crate::outcome::{Outcome, Source};

/// Leaves valid longer than this are refused by browsers (CA/Browser Forum), and by us.
const MAX_LEAF_SECONDS: i64 = 398 * 24 * 3600;
/// CAs valid longer than this outlive any key-hygiene assumption.
const MAX_CA_SECONDS: i64 = 10 * 366 * 24 * 3600;
/// A long-lived certificate this close to expiry needs attention.
const WARN_SECONDS: i64 = 30 * 24 * 3600;
/// How far past its renewal point (a third of its life left) a certificate the server renews
/// itself may be: the server checks hourly, so two checks' worth, lest a scan between two
/// checks report a renewal that is merely not yet due to run.
const RENEWAL_GRACE_SECONDS: i64 = 2 * 3600;

pub(super) fn datastore_ca(ctx: &Ctx<'_>) -> Vec<Outcome> {
    let expected = "a CA used only by the datastore";
    let t = match super::storage::datastore_transport(ctx, expected) {
        Ok(t) => t,
        Err(o) => return o,
    };
    match t.dedicated_ca {
        None => not_evaluated(
            config("datastore.transport.ca"),
            expected,
            "the engine did not report which CA issued its certificates",
        ),
        Some(dedicated) => vec![Outcome::check(
            dedicated,
            config("datastore.transport.ca"),
            t.ca.clone().unwrap_or_else(|| "unknown".to_owned()),
            expected,
            "the datastore has a CA of its own",
            "the datastore trusts the cluster CA",
        )],
    }
}

pub(super) fn file_modes(ctx: &Ctx<'_>) -> Vec<Outcome> {
    let expected = "keys 0600, certificates <= 0644, directories 0700, owned by the server's user";
    let pki = match need(&ctx.snapshot.pki, "pki.files", expected) {
        Ok(p) => p,
        Err(o) => return o,
    };
    if pki.files.is_empty() {
        return not_evaluated(
            config("pki.files"),
            expected,
            "the server reported no PKI files",
        );
    }
    pki.files
        .iter()
        .map(|f| {
            let mode = f.mode & 0o7777;
            let (ok_mode, want) = match f.kind {
                FileKind::PrivateKey => (mode & 0o177 == 0, "0600 or stricter"),
                FileKind::Certificate => (mode & 0o133 == 0, "0644 or stricter"),
                FileKind::Directory => (mode & 0o077 == 0, "0700 or stricter"),
            };
            let owned = f.uid == pki.service_uid;
            let source = Source::File {
                path: f.path.clone(),
                mode: format!("{mode:04o}"),
            };
            let observed = format!("{mode:04o} uid {}", f.uid);
            let expected = format!("{want}, uid {}", pki.service_uid);
            if !ok_mode {
                Outcome::fail(
                    source,
                    observed,
                    expected,
                    format!("{} is mode {mode:04o}", f.path),
                )
            } else if !owned {
                Outcome::fail(
                    source,
                    observed,
                    expected,
                    format!(
                        "{} is owned by uid {}, not the server's user",
                        f.path, f.uid
                    ),
                )
            } else {
                Outcome::pass(
                    source,
                    observed,
                    expected,
                    format!("{} is {mode:04o}", f.path),
                )
            }
        })
        .collect()
}

pub(super) fn expiry(ctx: &Ctx<'_>) -> Vec<Outcome> {
    let expected = "not near expiry; leaves <= 398 days, CAs <= 10 years";
    let pki = match need(&ctx.snapshot.pki, "pki.certificates", expected) {
        Ok(p) => p,
        Err(o) => return o,
    };
    if pki.certificates.is_empty() {
        return not_evaluated(
            config("pki.certificates"),
            expected,
            "the server reported no certificates",
        );
    }
    pki.certificates
        .iter()
        .map(|c| {
            let lifetime = c.not_after.saturating_sub(c.not_before);
            let left = c.not_after.saturating_sub(ctx.now);
            let days = |s: i64| s / 86_400;
            let source = Source::File {
                path: c.path.clone(),
                mode: String::new(),
            };
            let observed = format!("{} days left of {}", days(left), days(lifetime));
            let max = if c.is_ca {
                MAX_CA_SECONDS
            } else {
                MAX_LEAF_SECONDS
            };
            // A certificate the server renews itself must be renewed by a third of its life;
            // any other must not be within 30 days of expiry.
            let due = if c.auto_renewed {
                left < lifetime / 3 - RENEWAL_GRACE_SECONDS
            } else {
                left < WARN_SECONDS.min(lifetime / 3)
            };
            if left <= 0 {
                Outcome::fail(
                    source,
                    observed,
                    expected,
                    format!("{} has expired", c.name),
                )
            } else if lifetime > max {
                Outcome::fail(
                    source,
                    observed,
                    expected,
                    format!(
                        "{} is valid for {} days, more than allowed",
                        c.name,
                        days(lifetime)
                    ),
                )
            } else if due {
                Outcome::fail(
                    source,
                    observed,
                    expected,
                    format!(
                        "{} expires in {} days and has not been renewed",
                        c.name,
                        days(left)
                    ),
                )
            } else {
                Outcome::pass(
                    source,
                    observed,
                    expected,
                    format!("{} is valid for {} more days", c.name, days(left)),
                )
            }
        })
        .collect()
}

pub(super) fn node_rotation(ctx: &Ctx<'_>) -> Vec<Outcome> {
    super::node::each(ctx, "client and serving rotation on", |n| {
        let ok = n.rotate_client_cert && n.rotate_serving_cert;
        (
            ok,
            format!(
                "client {}, serving {}",
                n.rotate_client_cert, n.rotate_serving_cert
            ),
            "certificate rotation is on".to_owned(),
            "certificate rotation is off".to_owned(),
        )
    })
}

pub(super) fn node_client(ctx: &Ctx<'_>) -> Vec<Outcome> {
    let expected = "client certificate and node CA set";
    let server = match need(&ctx.snapshot.server, "nodeClient", expected) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let Some(client) = &server.node_client else {
        return not_evaluated(
            config("nodeClient"),
            expected,
            "the API server does not connect to node agents yet (no exec, logs or proxy to nodes)",
        );
    };
    vec![Outcome::check(
        client.client_cert.is_some() && client.verify_ca.is_some(),
        config("nodeClient"),
        format!(
            "client cert {}, CA {}",
            client.client_cert.as_deref().unwrap_or("unset"),
            client.verify_ca.as_deref().unwrap_or("unset")
        ),
        expected,
        "the API server authenticates to node agents and verifies them",
        "the API server reaches node agents without a client certificate or without verifying them",
    )]
}

pub(super) fn serving(ctx: &Ctx<'_>) -> Vec<Outcome> {
    let expected = "serving cert, key and client CA configured";
    let server = match need(&ctx.snapshot.server, "tls", expected) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let t = &server.tls;
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "unset".to_owned());
    vec![Outcome::check(
        t.serving_cert.is_some() && t.serving_key.is_some() && t.client_ca.is_some(),
        config("tls"),
        format!(
            "cert {}, key {}, client CA {}",
            show(&t.serving_cert),
            show(&t.serving_key),
            show(&t.client_ca)
        ),
        expected,
        "the API server has its serving certificate, key and client CA",
        "the serving certificate, key or client CA is missing",
    )]
}

pub(super) fn sa_keys(ctx: &Ctx<'_>) -> Vec<Outcome> {
    let expected = "a signing key and a separate verification key";
    let server = match need(&ctx.snapshot.server, "serviceAccounts", expected) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let sa = &server.service_accounts;
    let ok = match (&sa.signing_key, &sa.verify_key) {
        (Some(s), Some(v)) => s != v,
        _ => false,
    };
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "unset".to_owned());
    vec![Outcome::check(
        ok,
        config("serviceAccounts.keys"),
        format!(
            "signing {}, verifying {}",
            show(&sa.signing_key),
            show(&sa.verify_key)
        ),
        expected,
        "tokens are signed with a private key and verified with its public key",
        "the token signing or verification key is missing, or they are the same file",
    )]
}
