//! The exports of a report with every state in it: SARIF and OSCAL validate against their
//! official schemas (vendored in tests/schemas), SARIF carries failing results only with the
//! control id as ruleId, CSV has a row per finding and defuses formulas, HTML escapes what the
//! cluster controls.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use bulwark_posture::export::{Format, TrendPoint, render};
use bulwark_posture::manifest::{Limits, ManifestSource, parse_into};
use bulwark_posture::{Catalogue, EvidenceSource, ScanOptions, State, scan};
use serde_json::Value;

const MANIFESTS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: "=cmd|' /C calc'!A0", namespace: "<script>alert(1)</script>"}
spec:
  hostNetwork: true
  containers: [{name: a, image: x, securityContext: {privileged: true}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  template:
    spec:
      serviceAccountName: web
      automountServiceAccountToken: false
      securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
        - name: web
          image: registry.example.com/web:1
          resources: {requests: {cpu: 1, memory: 1Gi}, limits: {cpu: 1, memory: 1Gi}}
          securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
"#;

fn report() -> bulwark_posture::Report {
    let mut objects = Vec::new();
    parse_into(
        MANIFESTS,
        "deploy/app.yaml",
        &Limits::default(),
        &mut objects,
    )
    .unwrap();
    let source = ManifestSource::new(bulwark_posture::manifest::Manifests {
        objects,
        ..Default::default()
    });
    let catalogue = Catalogue::builtin().unwrap();
    scan(
        &source.snapshot(1_796_083_200),
        &ScanOptions {
            catalogue: &catalogue,
            exceptions: &[],
            manifests_only: true,
            framework: None,
            name: "scan",
            source: "manifests",
        },
    )
}

fn validator(file: &str) -> jsonschema::Validator {
    let path = format!("{}/tests/schemas/{file}", env!("CARGO_MANIFEST_DIR"));
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

fn errors(validator: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    validator
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect()
}

#[test]
fn sarif_validates_against_the_sarif_schema_and_lists_failing_results_only() {
    let report = report();
    let doc: Value = serde_json::from_slice(&render(&report, Format::Sarif, &[])).unwrap();
    let validator = validator("sarif-schema-2.1.0.json");
    assert_eq!(errors(&validator, &doc), Vec::<String>::new());
    let results = doc["runs"][0]["results"].as_array().unwrap();
    let failing = report
        .findings()
        .filter(|f| f.outcome.state == State::Fail)
        .count();
    assert_eq!(results.len(), failing);
    assert!(failing > 3);
    let rules: Vec<&str> = results
        .iter()
        .map(|r| r["ruleId"].as_str().unwrap())
        .collect();
    assert!(
        rules.contains(&"KSPM-WL-01") && rules.contains(&"KSPM-WL-02"),
        "{rules:?}"
    );
    assert!(
        !rules.contains(&"KSPM-API-01"),
        "offline scans judge manifests only"
    );
    assert_eq!(
        results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "deploy/app.yaml"
    );
    // A broken document is caught by the validator (the test can fail).
    let mut broken = doc.clone();
    broken["runs"][0]["results"][0]["level"] = Value::from("catastrophic");
    assert!(!errors(&validator, &broken).is_empty());
}

#[test]
fn oscal_validates_against_nists_assessment_results_schema() {
    let report = report();
    let doc: Value = serde_json::from_slice(&render(&report, Format::Oscal, &[])).unwrap();
    let validator = validator("oscal_assessment-results_schema-1.2.3.json");
    assert_eq!(errors(&validator, &doc), Vec::<String>::new());
    let result = &doc["assessment-results"]["results"][0];
    let states: Vec<(&str, &str)> = result["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["target"]["target-id"].as_str().unwrap(),
                f["target"]["status"]["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        states.contains(&("KSPM-WL-01", "not-satisfied")),
        "{states:?}"
    );
    let mut broken = doc.clone();
    broken["assessment-results"]["uuid"] = Value::from("not-a-uuid");
    assert!(!errors(&validator, &broken).is_empty());
    // Deterministic: the same report renders the same bytes.
    assert_eq!(
        render(&report, Format::Oscal, &[]),
        render(&report, Format::Oscal, &[])
    );
}

#[test]
fn csv_has_a_row_per_finding_and_defuses_formulas() {
    let report = report();
    let bytes = render(&report, Format::Csv, &[]);
    let mut reader = csv::Reader::from_reader(bytes.as_slice());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), report.findings().count());
    let subjects: Vec<&str> = rows.iter().map(|r| r.get(5).unwrap()).collect();
    assert!(subjects.iter().all(|s| !s.starts_with('=')), "{subjects:?}");
}

#[test]
fn html_is_self_contained_and_escapes_what_the_cluster_controls() {
    let report = report();
    let trend = vec![
        TrendPoint {
            time: "2026-11-30T00:00:00Z".into(),
            score: Some(50.0),
            failing: 4,
        },
        TrendPoint {
            time: "2026-12-01T00:00:00Z".into(),
            score: Some(75.0),
            failing: 2,
        },
    ];
    let html = String::from_utf8(render(&report, Format::Html, &trend)).unwrap();
    assert!(
        !html.contains("<script>alert"),
        "markup from the cluster is escaped"
    );
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    for external in [
        "src=\"http",
        "href=\"http",
        "@import",
        "url(http",
        "<script",
    ] {
        assert!(!html.contains(external), "{external}");
    }
    for c in report.controls.iter().filter(|c| c.state == State::Fail) {
        assert!(html.contains(&format!("id=\"{}\"", c.id)), "{}", c.id);
    }
    assert!(html.contains("<polyline"), "the trend is charted");
}
