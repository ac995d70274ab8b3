//! OSCAL Assessment Results (JSON, OSCAL 1.2.3): one result per scan; one observation per
//! finding (method TEST, with its evidence as properties); one OSCAL finding per control that
//! was judged (satisfied / not-satisfied), linked to its observations. Controls that were not
//! evaluated, manual or not applicable have observations but no determination.

use serde_json::{Value, json};

use crate::export::stable_uuid;
use crate::outcome::State;
use crate::report::Report;

/// The OSCAL version the document declares (and is validated against).
pub const OSCAL_VERSION: &str = "1.2.3";
/// Namespace of Bulwark's properties.
const NS: &str = "https://bulwark.dev/ns/posture";

/// An OSCAL string: no leading or trailing whitespace, never empty.
fn text(s: &str) -> String {
    let t = s.trim();
    if t.is_empty() {
        "-".to_owned()
    } else {
        t.to_owned()
    }
}

fn prop(name: &str, value: &str) -> Value {
    json!({"name": name, "ns": NS, "value": text(value)})
}

pub(super) fn render(report: &Report) -> Vec<u8> {
    let doc_id = stable_uuid(&[
        "assessment-results",
        &report.generated,
        &report.catalogue_version,
        &report.source,
        &report.framework,
    ]);
    let plan_id = stable_uuid(&["plan", &report.catalogue_version]);
    let mut observations = Vec::new();
    let mut findings = Vec::new();
    for control in &report.controls {
        let mut related = Vec::new();
        for f in &control.findings {
            let id = stable_uuid(&[&doc_id, &f.key()]);
            related.push(json!({"observation-uuid": id}));
            let mut props = vec![
                prop("control", &control.id),
                prop("state", f.outcome.state.as_str()),
                prop("severity", control.severity.as_str()),
                prop("source", &f.outcome.source.to_string()),
                prop("catalogue-version", &f.catalogue_version),
            ];
            if !f.outcome.observed.trim().is_empty() {
                props.push(prop("observed", &f.outcome.observed));
            }
            if !f.outcome.expected.trim().is_empty() {
                props.push(prop("expected", &f.outcome.expected));
            }
            if let Some(e) = &f.exception {
                props.push(prop("exception", &e.name));
            }
            observations.push(json!({
                "uuid": id,
                "title": text(&format!("{}: {}", control.id, f.outcome.source)),
                "description": text(&f.outcome.message),
                "props": props,
                "methods": ["TEST"],
                "types": [if f.outcome.state == State::Fail { "finding" } else { "control-objective" }],
                "relevant-evidence": [{"description": text(&format!("observed {} (expected {}) at {}", f.outcome.observed, f.outcome.expected, f.outcome.source))}],
                "collected": f.time,
            }));
        }
        let (state, reason) = match control.state {
            State::Pass => ("satisfied", "pass"),
            State::Fail => ("not-satisfied", "fail"),
            State::Excepted => ("not-satisfied", "other"),
            State::Manual | State::NotApplicable | State::NotEvaluated => continue,
        };
        let mut finding = json!({
            "uuid": stable_uuid(&[&doc_id, "finding", &control.id]),
            "title": text(&control.title),
            "description": text(&format!("{} is {} ({} findings). Remediation: {}", control.id, control.state, control.findings.len(), control.remediation)),
            "props": [prop("severity", control.severity.as_str()), prop("state", control.state.as_str())],
            "target": {
                "type": "objective-id",
                "target-id": control.id,
                "status": {"state": state, "reason": reason}
            },
        });
        if let (false, Some(map)) = (related.is_empty(), finding.as_object_mut()) {
            map.insert("related-observations".to_owned(), Value::Array(related));
        }
        findings.push(finding);
    }
    let mut result = json!({
        "uuid": stable_uuid(&[&doc_id, "result"]),
        "title": text(&format!("Bulwark posture scan ({})", report.source)),
        "description": text(&format!(
            "Automated posture scan of {} against the Bulwark control catalogue {} (framework: {}).",
            report.source, report.catalogue_version, report.framework
        )),
        "start": report.generated,
        "end": report.generated,
        "reviewed-controls": {"control-selections": [{
            "include-controls": report.controls.iter().map(|c| json!({"control-id": c.id})).collect::<Vec<_>>()
        }]},
    });
    if let Some(map) = result.as_object_mut() {
        if !observations.is_empty() {
            map.insert("observations".to_owned(), Value::Array(observations));
        }
        if !findings.is_empty() {
            map.insert("findings".to_owned(), Value::Array(findings));
        }
        if report.controls.is_empty() {
            map.insert(
                "reviewed-controls".to_owned(),
                json!({"control-selections": [{"include-all": {}}]}),
            );
        }
    }
    let doc = json!({"assessment-results": {
        "uuid": doc_id,
        "metadata": {
            "title": text(&format!("Bulwark posture assessment results: {}", report.source)),
            "last-modified": report.generated,
            "version": report.catalogue_version,
            "oscal-version": OSCAL_VERSION,
        },
        "import-ap": {"href": format!("#{plan_id}")},
        "results": [result],
        "back-matter": {"resources": [{
            "uuid": plan_id,
            "title": text(&format!("Bulwark posture control catalogue {}", report.catalogue_version)),
            "description": "The controls, their framework mappings and the automated checks Bulwark evaluates (posture/catalogue in the Bulwark source). The assessment plan is the full catalogue, evaluated by the scanner.",
        }]},
    }});
    let mut out = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    out.push(b'\n');
    out
}
