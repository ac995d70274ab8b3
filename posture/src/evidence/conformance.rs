//! The evidence-source conformance suite: what every [`EvidenceSource`] must hold so that the
//! checks can trust it. Run against the fake here and against the live server's source in
//! the apiserver's tests.

use serde_json::Value;

use super::{EvidenceSource, Observed};
use crate::probes::{ACCESS_PROBES, ADMISSION_PROBES, AUDIT_CONCERNS};

/// Checks `source`; every broken rule is one line of the error.
pub fn run(source: &dyn EvidenceSource) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    if source.name().trim().is_empty() {
        problems.push("the source has no name".to_owned());
    }
    let snapshot = source.snapshot(0);
    let mut reason = |area: &str, reason: Option<&str>| {
        if reason.is_some_and(|r| r.trim().is_empty()) {
            problems.push(format!("{area} is unavailable without a reason"));
        }
    };
    reason("server", snapshot.server.get().err());
    reason("pki", snapshot.pki.get().err());
    reason("encryption", snapshot.encryption.get().err());
    reason("policies", snapshot.policies.get().err());
    reason("objects", snapshot.objects.get().err());
    reason("nodes", snapshot.nodes.get().err());
    if let Observed::Available(server) = &snapshot.server {
        if server.listeners.is_empty() {
            problems.push("the server reports no listener".to_owned());
        }
        if server.tls.versions.is_empty() || server.tls.cipher_suites.is_empty() {
            problems.push("the server reports no TLS versions or suites".to_owned());
        }
        for concern in AUDIT_CONCERNS {
            let n = server
                .audit
                .coverage
                .iter()
                .filter(|c| c.concern == concern.id)
                .count();
            if n != 1 {
                problems.push(format!(
                    "audit concern {} is reported {n} times",
                    concern.id
                ));
            }
        }
    }
    if let Observed::Available(pki) = &snapshot.pki {
        for f in &pki.files {
            if !f.path.starts_with('/') {
                problems.push(format!("pki file {} is not an absolute path", f.path));
            }
        }
        for c in &pki.certificates {
            if c.not_after <= c.not_before {
                problems.push(format!("certificate {} ends before it starts", c.name));
            }
        }
    }
    if let Observed::Available(policies) = &snapshot.policies {
        for probe in ACCESS_PROBES {
            let n = policies
                .access
                .iter()
                .filter(|a| a.probe == probe.id)
                .count();
            if n != 1 {
                problems.push(format!("access probe {} is answered {n} times", probe.id));
            }
        }
        for probe in ADMISSION_PROBES {
            let n = policies
                .admission
                .iter()
                .filter(|a| a.probe == probe.id)
                .count();
            if n != 1 {
                problems.push(format!(
                    "admission probe {} is answered {n} times",
                    probe.id
                ));
            }
        }
    }
    if let Observed::Available(objects) = &snapshot.objects {
        for (i, o) in objects.items.iter().enumerate() {
            for field in ["/apiVersion", "/kind", "/metadata/name"] {
                if o.pointer(field)
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    problems.push(format!("object {i} has no {field}"));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}
