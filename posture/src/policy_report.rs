//! A report's findings as `wgpolicyk8s.io/v1alpha2` results, so tools built for the Policy
//! WG's format (Policy Reporter) show Bulwark's posture. Each finding is one result: the
//! control id is the `policy`, its title the `rule`, its family the `category`; findings
//! about an object of a namespace go to that namespace's `PolicyReport`, every other one
//! (configuration, PKI, policies, cluster-scoped objects) to the `ClusterPolicyReport`.
//!
//! States map onto the format's five results: pass → `pass`, fail → `fail` (both scored),
//! manual → `warn`, not-evaluated → `error` (it could not be evaluated; the message says
//! why), not-applicable and excepted → `skip` (the exception is named in the properties).
//! A report holds at most [`MAX_RESULTS`] results; more are split over numbered reports, so
//! no object outgrows what a store and a watch carry.

use std::collections::BTreeMap;

use bulwark_api::k8s_openapi::api::core::v1::ObjectReference;
use bulwark_api::policy_report::{PolicyReportResult, Timestamp};

use crate::{Finding, Report, Source, State};

/// The `source` of every result, and the `managed-by` label of every report published.
pub const SOURCE: &str = "bulwark-posture";
/// The label that marks the reports the scanner owns.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The name of the first (often the only) report of a namespace, and of the cluster.
pub const REPORT_NAME: &str = "bulwark-posture";
/// Results per report object.
pub const MAX_RESULTS: usize = 1000;
/// JSON bytes of results per report object (about).
pub const MAX_REPORT_BYTES: usize = 1024 * 1024;
/// The longest message or property value kept (longer ones are cut, marked `…`).
const MAX_TEXT: usize = 1024;

/// Whether `object` carries the label of the reports the scanner owns.
pub fn is_managed(object: &serde_json::Value) -> bool {
    object
        .pointer("/metadata/labels")
        .and_then(|l| l.get(MANAGED_BY_LABEL))
        .and_then(serde_json::Value::as_str)
        == Some(SOURCE)
}

/// The format's result for a state, and whether it is scored.
pub fn result_of(state: State) -> (&'static str, bool) {
    match state {
        State::Pass => ("pass", true),
        State::Fail => ("fail", true),
        State::Manual => ("warn", false),
        State::NotEvaluated => ("error", false),
        State::NotApplicable | State::Excepted => ("skip", false),
    }
}

/// The results of `report`, by the namespace whose `PolicyReport` holds them (`None`: the
/// `ClusterPolicyReport`), each list in a stable order.
pub fn results(report: &Report) -> BTreeMap<Option<String>, Vec<PolicyReportResult>> {
    let mut out: BTreeMap<Option<String>, Vec<PolicyReportResult>> = BTreeMap::new();
    for control in &report.controls {
        for finding in &control.findings {
            let namespace = finding
                .object()
                .map(|o| o.namespace.clone())
                .filter(|ns| !ns.is_empty());
            out.entry(namespace)
                .or_default()
                .push(result(control, finding));
        }
    }
    for results in out.values_mut() {
        results.sort_by_cached_key(identity);
    }
    out
}

/// The name of a namespace's (or the cluster's) `index`th report, from 0: `bulwark-posture`,
/// then `bulwark-posture-2`, `-3` ….
pub fn report_name(index: usize) -> String {
    match index {
        0 => REPORT_NAME.to_owned(),
        i => format!("{REPORT_NAME}-{}", i + 1),
    }
}

/// Splits `results` into the contents of successive reports: at most [`MAX_RESULTS`] and
/// about [`MAX_REPORT_BYTES`] of JSON each (one result is at most a few KiB, so a report stays
/// well under what the store accepts). No results still make one, empty, report: a clean
/// namespace says so.
pub fn split(results: Vec<PolicyReportResult>) -> Vec<Vec<PolicyReportResult>> {
    let mut reports = vec![Vec::new()];
    let mut bytes = 0;
    for result in results {
        let size = serde_json::to_vec(&result).map_or(0, |b| b.len());
        if let Some(last) = reports.last()
            && !last.is_empty()
            && (last.len() >= MAX_RESULTS || bytes + size > MAX_REPORT_BYTES)
        {
            reports.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        if let Some(last) = reports.last_mut() {
            last.push(result);
        }
    }
    reports
}

/// What makes a result the same one across scans (the control, its subject and its
/// result): a result that keeps its identity keeps the time it was first found.
pub fn identity(result: &PolicyReportResult) -> String {
    let resources: Vec<String> = result
        .resources
        .iter()
        .map(|r| {
            format!(
                "{}/{}/{}/{}",
                r.api_version.as_deref().unwrap_or_default(),
                r.kind.as_deref().unwrap_or_default(),
                r.namespace.as_deref().unwrap_or_default(),
                r.name.as_deref().unwrap_or_default()
            )
        })
        .collect();
    format!(
        "{}|{}|{}|{}",
        result.policy,
        resources.join(","),
        result
            .properties
            .get("source")
            .map(String::as_str)
            .unwrap_or_default(),
        result.result
    )
}

fn result(control: &crate::ControlResult, finding: &Finding) -> PolicyReportResult {
    let (outcome, scored) = result_of(finding.outcome.state);
    let mut properties = BTreeMap::new();
    let mut put = |key: &str, value: &str| {
        if !value.is_empty() {
            properties.insert(key.to_owned(), cut(value));
        }
    };
    put("state", finding.outcome.state.as_str());
    put("observed", &finding.outcome.observed);
    put("expected", &finding.outcome.expected);
    match &finding.outcome.source {
        // The object is in `resources`; the path within it is what is left to say.
        Source::Object { path, .. } => put("path", path),
        other => put("source", &other.to_string()),
    }
    if let Some(exception) = &finding.exception {
        put("exception", &exception.name);
        put("exceptionOwner", &exception.owner);
        put("exceptionExpires", &exception.expires);
    }
    for (framework, clauses) in &control.mappings {
        put(framework.as_str(), &clauses.join(", "));
    }
    put("catalogueVersion", &finding.catalogue_version);
    let resources = finding
        .object()
        .map(|o| {
            let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
            vec![ObjectReference {
                api_version: some(&o.api_version),
                kind: some(&o.kind),
                name: some(&o.name),
                namespace: some(&o.namespace),
                resource_version: some(&o.resource_version),
                uid: some(&o.uid),
                field_path: None,
            }]
        })
        .unwrap_or_default();
    PolicyReportResult {
        source: SOURCE.to_owned(),
        policy: control.id.clone(),
        rule: control.title.clone(),
        category: control.family.clone(),
        severity: control.severity.as_str().to_owned(),
        timestamp: Timestamp {
            seconds: seconds(&finding.time),
            nanos: 0,
        },
        result: outcome.to_owned(),
        scored,
        resources,
        resource_selector: None,
        message: cut(&finding.outcome.message),
        properties,
    }
}

fn seconds(rfc3339: &str) -> i64 {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .map(time::OffsetDateTime::unix_timestamp)
        .unwrap_or_default()
}

fn cut(text: &str) -> String {
    if text.len() <= MAX_TEXT {
        return text.to_owned();
    }
    let mut end = MAX_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", text.get(..end).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::fake::FakeSource;
    use crate::{Catalogue, EvidenceSource, ScanOptions};

    fn report() -> Report {
        let baseline: serde_json::Value =
            serde_yaml_ng::from_str(include_str!("../fixtures/baseline.yaml")).unwrap();
        let mut source = FakeSource::from_value(baseline).unwrap();
        let catalogue = Catalogue::builtin().unwrap();
        let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u-1", "resourceVersion": "7"},
            "spec": {"containers": [{"name": "c", "image": "nginx",
                "securityContext": {"privileged": true}}]}});
        if let crate::Observed::Available(items) = &mut source.objects {
            items.push(pod);
        }
        let snapshot = source.snapshot(1_796_083_200);
        crate::scan(
            &snapshot,
            &ScanOptions {
                catalogue: &catalogue,
                exceptions: &[],
                manifests_only: false,
                framework: None,
                name: "cluster",
                source: "test",
            },
        )
    }

    #[test]
    fn findings_land_in_their_namespace_or_the_cluster_report_with_the_wg_results() {
        let report = report();
        let by_namespace = results(&report);
        let total: usize = by_namespace.values().map(Vec::len).sum();
        assert_eq!(total, report.findings().count(), "one result per finding");
        let shop = by_namespace.get(&Some("shop".to_owned())).unwrap();
        let privileged = shop
            .iter()
            .find(|r| r.result == "fail" && r.resources[0].name.as_deref() == Some("web"))
            .expect("the privileged pod fails in the shop namespace's report");
        assert_eq!(privileged.source, SOURCE);
        assert!(privileged.scored);
        assert_eq!(privileged.resources[0].uid.as_deref(), Some("u-1"));
        assert!(privileged.properties.contains_key("catalogueVersion"));
        assert!(
            ["critical", "high", "medium", "low"].contains(&privileged.severity.as_str()),
            "severities stay in the format's enum"
        );
        let cluster = by_namespace.get(&None).unwrap();
        assert!(
            cluster
                .iter()
                .all(|r| r.resources.iter().all(|o| o.namespace.is_none()))
        );
        assert!(cluster.iter().any(|r| r.properties.contains_key("source")));
        for results in by_namespace.values() {
            let mut sorted = results.clone();
            sorted.sort_by_cached_key(identity);
            assert_eq!(&sorted, results, "stable order");
            for r in results {
                assert!(["pass", "fail", "warn", "error", "skip"].contains(&r.result.as_str()));
            }
        }
    }

    #[test]
    fn states_map_onto_the_five_results_and_only_pass_and_fail_are_scored() {
        assert_eq!(result_of(State::Pass), ("pass", true));
        assert_eq!(result_of(State::Fail), ("fail", true));
        assert_eq!(result_of(State::Manual), ("warn", false));
        assert_eq!(result_of(State::NotEvaluated), ("error", false));
        assert_eq!(result_of(State::NotApplicable), ("skip", false));
        assert_eq!(result_of(State::Excepted), ("skip", false));
    }

    #[test]
    fn large_result_sets_split_over_numbered_reports_by_count_and_size_and_long_text_is_cut() {
        assert_eq!(report_name(0), "bulwark-posture");
        assert_eq!(report_name(2), "bulwark-posture-3");
        let one = result(&report().controls[0], &report().controls[0].findings[0]);
        assert_eq!(split(Vec::new()), vec![Vec::<PolicyReportResult>::new()]);
        let counts =
            |n: usize| -> Vec<usize> { split(vec![one.clone(); n]).iter().map(Vec::len).collect() };
        assert_eq!(counts(MAX_RESULTS), vec![MAX_RESULTS]);
        assert_eq!(
            counts(2 * MAX_RESULTS + 1),
            vec![MAX_RESULTS, MAX_RESULTS, 1]
        );
        let mut big = one.clone();
        big.message = "x".repeat(MAX_REPORT_BYTES / 3);
        let sizes: Vec<usize> = split(vec![big; 4]).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![2, 2], "bytes bound a report too");
        let long = "é".repeat(MAX_TEXT);
        let kept = cut(&long);
        assert!(kept.len() <= MAX_TEXT + '…'.len_utf8());
        assert!(kept.ends_with('…'));
    }
}
