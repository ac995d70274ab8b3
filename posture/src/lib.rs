//! Bulwark's posture scanner (KSPM): continuous checks of the cluster's own configuration
//! and workloads against CIS, NSA/CISA and the Pod Security Standards (with SOC 2, NIST
//! 800-53, PCI DSS and MITRE ATT&CK mappings), with evidence behind every result.
//!
//! - [`catalogue`]: the controls as data (`posture/catalogue/*.yaml`), with their mappings.
//! - [`evidence`]: the [`EvidenceSource`] trait — server configuration, PKI, encryption,
//!   policies and probe answers, objects, node reports — with a fake and a conformance suite.
//! - [`probes`]: the fixed questions a live scan asks the authorizer, the admission chain and
//!   the audit policy, so effective behaviour is judged rather than configuration text.
//! - [`checks`]: one check per control; [`scan`] runs them into a [`Report`] with
//!   per-framework scores and coverage; [`exception`] applies `PostureException`s.
//! - [`manifest`]: offline manifests (YAML/JSON, multi-document, Lists, directories) for CI
//!   gates; [`export`]: JSON, SARIF 2.1.0, CSV, HTML and OSCAL; [`signing`]: Ed25519
//!   signatures that `bulwark posture verify` checks offline.
//! - [`policy_report`]: findings as `wgpolicyk8s.io/v1alpha2` PolicyReport results, for the
//!   report tooling built on the Policy WG's format.
//!
//! Decisions: a control whose subject cannot be observed is `not-evaluated` with the reason,
//! never passed; a control that cannot apply by construction (the embedded store has no
//! transport) is `not-applicable` with the reason; scores count pass against fail only and
//! coverage is reported beside them, so a scan that judged little cannot look perfect.

pub mod catalogue;
pub mod checks;
pub mod evidence;
pub mod exception;
pub mod export;
pub mod manifest;
pub mod outcome;
pub mod policy_report;
pub mod probes;
pub mod report;
pub mod scan;
pub mod signing;
pub mod workload;

pub use catalogue::{Catalogue, Control, Framework, Severity};
pub use evidence::{EvidenceSource, Observed, Snapshot};
pub use outcome::{Finding, ObjectRef, Outcome, Source, State};
pub use report::{ControlResult, FrameworkSummary, Report};
pub use scan::{ScanOptions, scan};

/// Why a posture operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PostureError {
    /// A catalogue file does not parse or breaks a rule.
    #[error("catalogue file {file}: {reason}")]
    Catalogue {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
}
