//! Admission checks (KSPM-ADM-*). Whether the chain refuses what it must is judged by the
//! running chain's answers to [`crate::probes::ADMISSION_PROBES`].

use serde_json::Value;

use super::{Ctx, config, is_system_namespace, list, need};
use crate::outcome::{Outcome, Source, State};
use crate::probes::ADMISSION_PROBES;
use crate::workload::object_ref;

/// The label that sets a namespace's enforced pod security level.
pub(crate) const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";

/// The outcome of admission probe `id`: the object must be refused.
pub(super) fn probe_refused(ctx: &Ctx<'_>, id: &str) -> Vec<Outcome> {
    let state = match need(&ctx.snapshot.policies, "admission.probes", "refused") {
        Ok(s) => s,
        Err(o) => return o,
    };
    let Some(probe) = ADMISSION_PROBES.iter().find(|p| p.id == id) else {
        return Vec::new();
    };
    let request = probe.description.to_owned();
    vec![match state.admission.iter().find(|a| a.probe == id) {
        None => Outcome::new(
            State::NotEvaluated,
            Source::Probe {
                request,
                policies: Vec::new(),
            },
            "",
            "refused",
            format!("not evaluated: the server did not answer probe {id}"),
        ),
        Some(answer) => Outcome::check(
            !answer.admitted,
            Source::Probe {
                request: request.clone(),
                policies: answer.policies.clone(),
            },
            if answer.admitted {
                "admitted"
            } else {
                "refused"
            },
            "refused",
            format!("refused by {}", list(&answer.policies)),
            "admitted: no admission policy refuses it",
        ),
    }]
}

pub(super) fn pod_security(ctx: &Ctx<'_>) -> Vec<Outcome> {
    let mut out = probe_refused(ctx, "privileged-pod");
    if ctx.snapshot.objects.get().is_ok() {
        for (name, ns) in &ctx.namespaces {
            if is_system_namespace(name) {
                continue;
            }
            let level = ns
                .pointer("/metadata/labels")
                .and_then(|l| l.get(ENFORCE_LABEL))
                .and_then(Value::as_str);
            let source = Source::Object {
                object: object_ref(ns),
                path: format!("metadata.labels[{ENFORCE_LABEL}]"),
            };
            out.push(match level {
                Some("privileged") => Outcome::fail(
                    source,
                    "privileged",
                    "baseline or restricted",
                    format!("namespace {name} enforces nothing (privileged)"),
                ),
                Some("baseline") => Outcome::pass(
                    source,
                    "baseline",
                    "baseline or restricted",
                    format!("namespace {name} enforces baseline"),
                ),
                Some(other) => Outcome::pass(
                    source,
                    other.to_owned(),
                    "baseline or restricted",
                    format!("namespace {name} enforces restricted"),
                ),
                None => Outcome::pass(
                    source,
                    "unset",
                    "baseline or restricted",
                    format!("namespace {name} has no label: Bulwark enforces restricted"),
                ),
            });
        }
    }
    out
}

/// The built-in plugins that must be in force.
const REQUIRED_PLUGINS: &[&str] = &["NamespaceLifecycle", "ServiceAccount", "NodeRestriction"];

pub(super) fn builtin_plugins(ctx: &Ctx<'_>) -> Vec<Outcome> {
    let expected = "NamespaceLifecycle, ServiceAccount, NodeRestriction; no AlwaysAdmit";
    let server = match need(&ctx.snapshot.server, "admission.plugins", expected) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let plugins = &server.admission.plugins;
    let missing: Vec<&str> = REQUIRED_PLUGINS
        .iter()
        .copied()
        .filter(|p| !plugins.iter().any(|q| q == p))
        .collect();
    let always = plugins.iter().any(|p| p == "AlwaysAdmit");
    vec![Outcome::check(
        missing.is_empty() && !always,
        config("admission.plugins"),
        list(plugins),
        expected,
        "the built-in admission plugins are in force",
        if always {
            "AlwaysAdmit is configured".to_owned()
        } else {
            format!("missing: {}", missing.join(", "))
        },
    )]
}

pub(super) fn image_provenance(ctx: &Ctx<'_>) -> Vec<Outcome> {
    probe_refused(ctx, "untrusted-image")
}

pub(super) fn webhooks(ctx: &Ctx<'_>) -> Vec<Outcome> {
    let mut out = Vec::new();
    for kind in [
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ] {
        for config_object in ctx.of_kind("admissionregistration.k8s.io", kind) {
            for (i, hook) in config_object
                .get("webhooks")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let mut problems = Vec::new();
                let client = hook.get("clientConfig");
                let url = client.and_then(|c| c.get("url")).and_then(Value::as_str);
                let ca = client
                    .and_then(|c| c.get("caBundle"))
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty());
                if url.is_some_and(|u| !u.starts_with("https://")) {
                    problems.push("url is not https");
                }
                if !ca {
                    problems.push("no caBundle");
                }
                if hook.get("failurePolicy").and_then(Value::as_str) == Some("Ignore") {
                    problems.push("failurePolicy Ignore");
                }
                let scoped = hook
                    .get("namespaceSelector")
                    .and_then(Value::as_object)
                    .is_some_and(|s| !s.is_empty());
                if !scoped {
                    problems.push("no namespaceSelector");
                }
                out.push(Outcome::check(
                    problems.is_empty(),
                    Source::Object {
                        object: object_ref(config_object),
                        path: format!("webhooks[{i}]"),
                    },
                    if problems.is_empty() {
                        "ok".to_owned()
                    } else {
                        problems.join(", ")
                    },
                    "https with caBundle, failurePolicy Fail, namespaceSelector",
                    "the webhook is pinned, fails closed and is scoped",
                    format!("webhook {i}: {}", problems.join(", ")),
                ));
            }
        }
    }
    if out.is_empty() {
        return match ctx.snapshot.objects.get() {
            Ok(_) => super::not_applicable(
                config("admission.webhooks"),
                "no admission webhook is configured (Bulwark's admission runs in-process, as Cedar policies)",
            ),
            Err(reason) => super::not_evaluated(
                config("admission.webhooks"),
                "pinned, fail-closed, scoped webhooks",
                reason,
            ),
        };
    }
    out
}
