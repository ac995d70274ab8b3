//! The checks: one function per control, from the evidence to its outcomes. Each family has
//! a module; [`CHECKS`] maps control ids to them, and a test keeps it in step with the
//! catalogue.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::evidence::{Observed, Snapshot};
use crate::outcome::{Outcome, Source, State};
use crate::workload::{Workload, is_kind};

mod admission;
mod api;
mod audit;
mod auth;
mod network;
mod node;
mod pki;
mod storage;
mod workloads;

/// What checks read: the snapshot, and indexes built once per scan.
pub struct Ctx<'a> {
    /// The evidence.
    pub snapshot: &'a Snapshot,
    /// The objects (empty when unavailable).
    pub objects: &'a [Arc<Value>],
    /// Pods and pod templates.
    pub workloads: Vec<Workload<'a>>,
    /// Namespace objects by name.
    pub namespaces: BTreeMap<&'a str, &'a Value>,
    /// Evaluation time (Unix seconds).
    pub now: i64,
}

impl<'a> Ctx<'a> {
    /// Indexes `snapshot` for the checks.
    pub fn new(snapshot: &'a Snapshot) -> Self {
        let objects: &[Arc<Value>] = match &snapshot.objects {
            Observed::Available(o) => &o.items,
            Observed::Unavailable { .. } => &[],
        };
        let workloads = objects.iter().filter_map(|o| Workload::of(o)).collect();
        let namespaces = objects
            .iter()
            .filter(|o| is_kind(o, "", "Namespace"))
            .filter_map(|o| {
                o.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .map(|n| (n, o.as_ref()))
            })
            .collect();
        Self {
            snapshot,
            objects,
            workloads,
            namespaces,
            now: snapshot.taken,
        }
    }

    /// Objects of `group`/`kind`.
    pub fn of_kind(&self, group: &'a str, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects
            .iter()
            .map(AsRef::as_ref)
            .filter(move |o| is_kind(o, group, kind))
    }
}

/// A check: evidence in, outcomes out (none: not applicable, nothing to judge).
pub type Check = fn(&Ctx<'_>) -> Vec<Outcome>;

/// Every control's check.
pub const CHECKS: &[(&str, Check)] = &[
    ("KSPM-API-01", api::anonymous),
    ("KSPM-API-02", api::static_credentials),
    ("KSPM-API-03", api::plaintext_listeners),
    ("KSPM-API-04", api::tls_strength),
    ("KSPM-API-05", api::debug_endpoints),
    ("KSPM-API-06", api::internal_endpoints),
    ("KSPM-API-07", api::request_bounds),
    ("KSPM-API-08", api::external_ips),
    ("KSPM-STO-01", storage::secrets_encrypted),
    ("KSPM-STO-02", storage::provider_strength),
    ("KSPM-STO-03", storage::key_rotation),
    ("KSPM-STO-04", storage::datastore_mtls),
    ("KSPM-STO-05", storage::datastore_issued_certs),
    ("KSPM-PKI-01", pki::datastore_ca),
    ("KSPM-PKI-02", pki::file_modes),
    ("KSPM-PKI-03", pki::expiry),
    ("KSPM-PKI-04", pki::node_rotation),
    ("KSPM-PKI-05", pki::node_client),
    ("KSPM-PKI-06", pki::serving),
    ("KSPM-PKI-07", pki::sa_keys),
    ("KSPM-AUTH-01", auth::allow_all),
    ("KSPM-AUTH-02", auth::people_authenticators),
    ("KSPM-AUTH-03", auth::cluster_admins),
    ("KSPM-AUTH-04", auth::wildcards),
    ("KSPM-AUTH-05", auth::secret_reads),
    ("KSPM-AUTH-06", auth::escalation),
    ("KSPM-AUTH-07", auth::broad_groups),
    ("KSPM-AUTH-08", auth::sa_tokens),
    ("KSPM-AUTH-10", auth::default_service_accounts),
    ("KSPM-ADM-01", admission::pod_security),
    ("KSPM-ADM-02", admission::builtin_plugins),
    ("KSPM-ADM-04", admission::image_provenance),
    ("KSPM-ADM-05", admission::webhooks),
    ("KSPM-WL-01", workloads::privileged),
    ("KSPM-WL-02", workloads::host_namespaces),
    ("KSPM-WL-03", workloads::volumes),
    ("KSPM-WL-04", workloads::host_ports),
    ("KSPM-WL-05", workloads::capabilities),
    ("KSPM-WL-06", workloads::privilege_escalation),
    ("KSPM-WL-07", workloads::non_root),
    ("KSPM-WL-08", workloads::seccomp),
    ("KSPM-WL-09", workloads::lsm_proc_sysctls),
    ("KSPM-WL-11", workloads::read_only_root),
    ("KSPM-WL-12", workloads::resources),
    ("KSPM-WL-13", workloads::secrets_in_env),
    ("KSPM-NET-01", network::enforcement),
    ("KSPM-NET-02", network::default_deny),
    ("KSPM-NET-03", network::sensitive_endpoints),
    ("KSPM-AUD-01", audit::enabled),
    ("KSPM-AUD-02", audit::coverage),
    ("KSPM-AUD-03", audit::retention),
    ("KSPM-AUD-04", audit::tamper_evident),
    ("KSPM-NODE-01", node::anonymous),
    ("KSPM-NODE-02", node::authorization),
    ("KSPM-NODE-03", node::read_only_port),
    ("KSPM-NODE-06", node::serving_tls),
    ("KSPM-NODE-07", node::pid_limit),
    ("KSPM-NODE-08", node::seccomp_default),
    ("KSPM-NODE-09", node::files),
];

/// The check of control `id`.
pub fn check(id: &str) -> Option<Check> {
    CHECKS.iter().find(|(c, _)| *c == id).map(|(_, f)| *f)
}

/// A config source.
pub(crate) fn config(key: &str) -> Source {
    Source::Config {
        key: key.to_owned(),
    }
}

/// One not-evaluated outcome: `area` could not be observed, for `reason`.
pub(crate) fn not_evaluated(source: Source, expected: &str, reason: &str) -> Vec<Outcome> {
    vec![Outcome::new(
        State::NotEvaluated,
        source,
        "",
        expected,
        format!("not evaluated: {reason}"),
    )]
}

/// One not-applicable outcome, with the reason it cannot apply.
pub(crate) fn not_applicable(source: Source, reason: &str) -> Vec<Outcome> {
    vec![Outcome::new(State::NotApplicable, source, "", "", reason)]
}

/// The evidence of an area, or the not-evaluated outcome that stands for it.
pub(crate) fn need<'a, T>(
    observed: &'a Observed<T>,
    key: &str,
    expected: &str,
) -> Result<&'a T, Vec<Outcome>> {
    observed
        .get()
        .map_err(|reason| not_evaluated(config(key), expected, reason))
}

/// A list for evidence (`a, b, c`; `none` when empty).
pub(crate) fn list<S: AsRef<str>>(items: &[S]) -> String {
    if items.is_empty() {
        return "none".to_owned();
    }
    items
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The system namespaces (their workloads and labels are the platform's own).
pub(crate) fn is_system_namespace(name: &str) -> bool {
    matches!(name, "kube-system" | "kube-public" | "kube-node-lease")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogue_control_has_exactly_one_check_and_every_check_a_control() {
        let catalogue = crate::Catalogue::builtin().unwrap();
        for control in catalogue.controls() {
            assert_eq!(
                CHECKS.iter().filter(|(id, _)| *id == control.id).count(),
                1,
                "{}",
                control.id
            );
        }
        for (id, _) in CHECKS {
            assert!(catalogue.control(id).is_some(), "{id}");
        }
    }
}
