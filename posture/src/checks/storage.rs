//! Storage and encryption-at-rest checks (KSPM-STO-*).

use super::{Ctx, config, need, not_applicable, not_evaluated};
use crate::evidence::ServerConfig;
use crate::outcome::Outcome;

/// Providers that encrypt well enough to be first.
const STRONG_PROVIDERS: &[&str] = &["kms-v2", "local-envelope", "aesgcm", "secretbox"];

/// Keys older than this are due for rotation.
pub(crate) const MAX_KEY_AGE_SECONDS: i64 = 90 * 24 * 3600;

pub(super) fn secrets_encrypted(ctx: &Ctx<'_>) -> Vec<Outcome> {
    let expected = "secrets: first provider encrypts; no plaintext values";
    let state = match need(&ctx.snapshot.encryption, "encryption.resources", expected) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let secrets = state.resources.iter().find(|r| r.resource == "secrets");
    let first = secrets
        .and_then(|r| r.providers.first())
        .map_or("identity", String::as_str);
    let mut out = vec![Outcome::check(
        first != "identity",
        config("encryption.resources[secrets]"),
        first,
        "an encrypting provider",
        format!("new Secrets are encrypted ({first})"),
        "Secrets are written in plaintext (identity)",
    )];
    for resource in state.resources.iter().filter(|r| r.resource != "secrets") {
        let first = resource
            .providers
            .first()
            .map_or("identity", String::as_str);
        out.push(Outcome::check(
            first != "identity",
            config(&format!("encryption.resources[{}]", resource.resource)),
            first,
            "an encrypting provider",
            format!("new {} are encrypted ({first})", resource.resource),
            format!(
                "{} are listed for encryption but written in plaintext",
                resource.resource
            ),
        ));
    }
    out.push(Outcome::check(
        state.plaintext_objects == 0,
        config("encryption.plaintextObjects"),
        state.plaintext_objects.to_string(),
        "0",
        "every stored value of an encrypted resource is ciphertext",
        format!(
            "{} stored values of encrypted resources are plaintext (run bulwark secrets rotate)",
            state.plaintext_objects
        ),
    ));
    out
}

pub(super) fn provider_strength(ctx: &Ctx<'_>) -> Vec<Outcome> {
    let expected = "kms-v2, local-envelope, aesgcm or secretbox first";
    let state = match need(&ctx.snapshot.encryption, "encryption.resources", expected) {
        Ok(s) => s,
        Err(o) => return o,
    };
    if state.resources.is_empty() {
        return vec![Outcome::fail(
            config("encryption.resources"),
            "none",
            expected,
            "no resource is encrypted at rest",
        )];
    }
    state
        .resources
        .iter()
        .map(|r| {
            let first = r.providers.first().map_or("identity", String::as_str);
            Outcome::check(
                STRONG_PROVIDERS.contains(&first),
                config(&format!("encryption.resources[{}].providers", r.resource)),
                r.providers.join(", "),
                expected,
                format!("{} are encrypted with {first}", r.resource),
                format!(
                    "{} are written with {first}, which is not a strong provider",
                    r.resource
                ),
            )
        })
        .collect()
}

pub(super) fn key_rotation(ctx: &Ctx<'_>) -> Vec<Outcome> {
    let expected = "primary key younger than 90 days; 0 values under older keys";
    let state = match need(&ctx.snapshot.encryption, "encryption.keys", expected) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let mut out = Vec::new();
    match state.keys.iter().find(|k| k.primary) {
        None => out.extend(not_evaluated(
            config("encryption.keys"),
            expected,
            "no primary key is reported (identity or a static key without a creation time)",
        )),
        Some(key) => match key.created {
            None => out.push(Outcome::new(
                crate::State::Manual,
                config(&format!("encryption.keys[{}].created", key.name)),
                "unknown",
                "younger than 90 days",
                format!(
                    "the age of key {} is not recorded (a static key from the configuration file); confirm when it was made",
                    key.name
                ),
            )),
            Some(created) => {
                let age = ctx.now.saturating_sub(created);
                out.push(Outcome::check(
                    age <= MAX_KEY_AGE_SECONDS,
                    config(&format!("encryption.keys[{}].created", key.name)),
                    format!("{} days", age / 86_400),
                    "at most 90 days",
                    format!("the primary key {} is {} days old", key.name, age / 86_400),
                    format!(
                        "the primary key {} is {} days old: rotate it (bulwark secrets rotate)",
                        key.name,
                        age / 86_400
                    ),
                ));
            }
        },
    }
    out.push(Outcome::check(
        state.stale_objects == 0,
        config("encryption.staleObjects"),
        state.stale_objects.to_string(),
        "0",
        "every encrypted value is under the primary key",
        format!(
            "{} values are under an older key (finish the rotation: bulwark secrets rotate)",
            state.stale_objects
        ),
    ));
    out
}

/// The datastore transport, or why the transport controls do not apply / cannot be judged.
pub(super) fn datastore_transport<'a>(
    ctx: &'a Ctx<'_>,
    expected: &str,
) -> Result<&'a crate::evidence::DatastoreTransport, Vec<Outcome>> {
    let server: &ServerConfig = need(&ctx.snapshot.server, "datastore", expected)?;
    if server.datastore.engine == "embedded" {
        return Err(not_applicable(
            config("datastore.engine"),
            "the embedded store runs inside the API server process: there is no datastore transport or datastore CA",
        ));
    }
    server.datastore.transport.as_ref().ok_or_else(|| {
        not_evaluated(
            config("datastore.transport"),
            expected,
            &format!(
                "the {} engine reported no transport settings",
                server.datastore.engine
            ),
        )
    })
}

pub(super) fn datastore_mtls(ctx: &Ctx<'_>) -> Vec<Outcome> {
    let expected = "TLS with client certificates";
    let t = match datastore_transport(ctx, expected) {
        Ok(t) => t,
        Err(o) => return o,
    };
    vec![Outcome::check(
        t.tls && t.mutual,
        config("datastore.transport"),
        match (t.tls, t.mutual) {
            (false, _) => "plaintext",
            (true, false) => "TLS without client certificates",
            (true, true) => "mutual TLS",
        },
        expected,
        "the datastore is reached over mutual TLS",
        "the datastore is reachable without mutual TLS",
    )]
}

pub(super) fn datastore_issued_certs(ctx: &Ctx<'_>) -> Vec<Outcome> {
    let expected = "certificates issued by a CA, not self-signed";
    let t = match datastore_transport(ctx, expected) {
        Ok(t) => t,
        Err(o) => return o,
    };
    if !t.tls {
        return vec![Outcome::fail(
            config("datastore.transport.tls"),
            "plaintext",
            expected,
            "the datastore transport has no TLS at all",
        )];
    }
    match t.self_signed {
        None => not_evaluated(
            config("datastore.transport.selfSigned"),
            expected,
            "the engine did not report how its certificates were issued",
        ),
        Some(self_signed) => vec![Outcome::check(
            !self_signed,
            config("datastore.transport.selfSigned"),
            self_signed.to_string(),
            "false",
            "datastore certificates are issued by a CA",
            "datastore certificates are self-signed or auto-generated",
        )],
    }
}
