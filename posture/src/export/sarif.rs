//! SARIF 2.1.0: one rule per control, one result per failing finding (`ruleId` the control
//! id), located at the manifest file (offline scans) or logically at the object or
//! configuration key (live scans).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::Severity;
use crate::outcome::{Source, State};
use crate::report::Report;

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "note",
    }
}

/// GitHub code scanning's `security-severity` (CVSS-like score).
fn security_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
    }
}

pub(super) fn render(report: &Report) -> Vec<u8> {
    let mut index = BTreeMap::new();
    let rules: Vec<Value> = report
        .controls
        .iter()
        .enumerate()
        .map(|(i, c)| {
            index.insert(c.id.as_str(), i);
            let tags: Vec<String> = std::iter::once("security".to_owned())
                .chain(
                    c.mappings
                        .iter()
                        .filter(|(_, v)| !v.is_empty())
                        .map(|(f, v)| format!("{f}:{}", v.join(","))),
                )
                .collect();
            json!({
                "id": c.id,
                "name": c.id.replace('-', ""),
                "shortDescription": {"text": c.title},
                "fullDescription": {"text": c.title},
                "help": {"text": c.remediation, "markdown": c.remediation},
                "defaultConfiguration": {"level": level(c.severity)},
                "properties": {
                    "tags": tags,
                    "security-severity": security_severity(c.severity),
                    "family": c.family,
                    "severity": c.severity.as_str(),
                }
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings()
        .filter(|f| f.outcome.state == State::Fail)
        .map(|f| {
            let location = match &f.outcome.source {
                Source::Object { object, path } if !object.file.is_empty() => {
                    let file = object.file.split('#').next().unwrap_or_default();
                    json!({
                        "physicalLocation": {"artifactLocation": {"uri": file}},
                        "logicalLocations": [{"fullyQualifiedName": format!("{object}{}", if path.is_empty() { String::new() } else { format!(".{path}") }), "kind": "resource"}]
                    })
                }
                Source::Object { object, path } => json!({
                    "logicalLocations": [{"fullyQualifiedName": format!("{object}{}", if path.is_empty() { String::new() } else { format!(".{path}") }), "kind": "resource"}]
                }),
                other => json!({
                    "logicalLocations": [{"fullyQualifiedName": other.to_string(), "kind": "declaration"}]
                }),
            };
            let mut result = json!({
                "ruleId": f.control,
                "ruleIndex": index.get(f.control.as_str()).copied().unwrap_or(0),
                "level": level(f.severity),
                "kind": "fail",
                "message": {"text": format!("{} (observed: {}; expected: {})", f.outcome.message, f.outcome.observed, f.outcome.expected)},
                "locations": [location],
                "partialFingerprints": {"bulwarkFinding/v1": crate::export::stable_uuid(&[&f.key()])},
                "properties": {
                    "observed": f.outcome.observed,
                    "expected": f.outcome.expected,
                    "source": f.outcome.source.to_string(),
                    "evaluated": f.time,
                    "catalogueVersion": f.catalogue_version,
                }
            });
            if let (Some(exception), Some(props)) = (&f.exception, result.get_mut("properties").and_then(Value::as_object_mut)) {
                props.insert("expiredException".to_owned(), json!(exception.name));
            }
            result
        })
        .collect();
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "bulwark-posture",
                "version": env!("CARGO_PKG_VERSION"),
                "semanticVersion": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://bulwark.dev/docs/posture",
                "rules": rules,
                "properties": {"catalogueVersion": report.catalogue_version}
            }},
            "automationDetails": {"id": format!("bulwark-posture/{}/{}", report.source, report.framework)},
            "invocations": [{"executionSuccessful": true, "endTimeUtc": report.generated}],
            "results": results
        }]
    });
    let mut out = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    out.push(b'\n');
    out
}
