//! `wgpolicyk8s.io/v1alpha2`: the Kubernetes Policy WG's report format, `PolicyReport`
//! (namespaced) and `ClusterPolicyReport`. Bulwark's posture scanner publishes its results in
//! it so report tooling built for it (Policy Reporter, Kyverno's and Trivy's dashboards)
//! works unchanged; the shapes follow the WG's `v1alpha2` CRD
//! (`kubernetes-sigs/wg-policy-prototypes`, `policy-report/crd/v1alpha2`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group.
pub const GROUP: &str = "wgpolicyk8s.io";
/// The version.
pub const VERSION: &str = "v1alpha2";
/// `wgpolicyk8s.io/v1alpha2`.
pub const API_VERSION: &str = "wgpolicyk8s.io/v1alpha2";

/// `metav1.Timestamp`: when a result was found, as seconds and nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "io.wgpolicyk8s.v1alpha2.Timestamp")]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    #[serde(default)]
    pub seconds: i64,
    /// Nanoseconds within the second.
    #[serde(default)]
    pub nanos: i32,
}

/// The counts of a report's results by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "io.wgpolicyk8s.v1alpha2.PolicyReportSummary")]
pub struct PolicyReportSummary {
    /// Results whose requirements were met.
    #[serde(default)]
    pub pass: u64,
    /// Results whose requirements were not met.
    #[serde(default)]
    pub fail: u64,
    /// Unscored results whose requirements were not met (Bulwark: manual controls).
    #[serde(default)]
    pub warn: u64,
    /// Results that could not be evaluated (Bulwark: not-evaluated, with the reason).
    #[serde(default)]
    pub error: u64,
    /// Results not selected for evaluation (Bulwark: not-applicable and excepted).
    #[serde(default)]
    pub skip: u64,
}

/// One policy's result for the resources it names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "io.wgpolicyk8s.v1alpha2.PolicyReportResult")]
pub struct PolicyReportResult {
    /// The engine that produced the result (`bulwark-posture`).
    #[serde(default)]
    pub source: String,
    /// The policy (Bulwark: the control id, `KSPM-WL-01`).
    pub policy: String,
    /// The rule within the policy (Bulwark: the control's title).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rule: String,
    /// The policy's category (Bulwark: the control family).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub category: String,
    /// `critical`, `high`, `medium`, `low` or `info`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub severity: String,
    /// When the result was first found in this state.
    #[serde(default)]
    pub timestamp: Timestamp,
    /// `pass`, `fail`, `warn`, `error` or `skip`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub result: String,
    /// Whether the result counts towards a score.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub scored: bool,
    /// The resources checked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ObjectReference>,
    /// The resources checked, by label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_selector: Option<LabelSelector>,
    /// What was found, for a person.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// More about the result (Bulwark: observed, expected, source, framework mappings).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
}

/// The WG's two report kinds share one shape (the cluster one has no namespace); each is its
/// own type so the OpenAPI document names both.
macro_rules! report_kind {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $schema:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(rename_all = "camelCase")]
        #[schemars(rename = $schema)]
        pub struct $name {
            /// `wgpolicyk8s.io/v1alpha2`.
            #[serde(default, skip_serializing_if = "String::is_empty")]
            pub api_version: String,
            #[doc = concat!("`", $kind, "`.")]
            #[serde(default, skip_serializing_if = "String::is_empty")]
            pub kind: String,
            /// Standard object metadata.
            #[serde(default)]
            pub metadata: ObjectMeta,
            /// The one resource the report is about, if it is about one.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub scope: Option<ObjectReference>,
            /// The resources the report is about, by label.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub scope_selector: Option<LabelSelector>,
            /// The counts of the results.
            #[serde(default)]
            pub summary: PolicyReportSummary,
            /// The results.
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            pub results: Vec<PolicyReportResult>,
        }
    };
}

report_kind!(
    /// `wgpolicyk8s.io/v1alpha2 PolicyReport`: results for resources of one namespace.
    PolicyReport,
    "PolicyReport",
    "io.wgpolicyk8s.v1alpha2.PolicyReport"
);
report_kind!(
    /// `wgpolicyk8s.io/v1alpha2 ClusterPolicyReport`: results for the cluster itself and its
    /// cluster-scoped resources.
    ClusterPolicyReport,
    "ClusterPolicyReport",
    "io.wgpolicyk8s.v1alpha2.ClusterPolicyReport"
);

impl PolicyReportSummary {
    /// Counts `results`.
    pub fn of(results: &[PolicyReportResult]) -> Self {
        let mut summary = Self::default();
        for r in results {
            let counter = match r.result.as_str() {
                "pass" => &mut summary.pass,
                "fail" => &mut summary.fail,
                "warn" => &mut summary.warn,
                "error" => &mut summary.error,
                _ => &mut summary.skip,
            };
            *counter += 1;
        }
        summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_reads_the_wg_shape_and_counts_its_results() {
        // The WG's own example shape (`policy-report/samples`), trimmed.
        let report: PolicyReport = serde_json::from_value(serde_json::json!({
            "apiVersion": "wgpolicyk8s.io/v1alpha2",
            "kind": "PolicyReport",
            "metadata": {"name": "sample", "namespace": "default"},
            "summary": {"pass": 1, "fail": 1, "warn": 0, "error": 0, "skip": 0},
            "results": [
                {"policy": "require-ns-labels", "result": "fail", "scored": true,
                 "source": "kyverno", "severity": "medium",
                 "timestamp": {"seconds": 1_700_000_000, "nanos": 0},
                 "resources": [{"apiVersion": "v1", "kind": "Pod", "name": "nginx",
                                "namespace": "default"}]},
                {"policy": "require-ns-labels", "result": "pass", "source": "kyverno"}
            ]
        }))
        .unwrap();
        assert_eq!(report.results.len(), 2);
        assert_eq!(report.results[0].timestamp.seconds, 1_700_000_000);
        assert_eq!(PolicyReportSummary::of(&report.results), report.summary);
        let back = serde_json::to_value(&report).unwrap();
        assert_eq!(back["results"][0]["resources"][0]["name"], "nginx");
        assert!(back["results"][1].get("scored").is_none());
    }
}
