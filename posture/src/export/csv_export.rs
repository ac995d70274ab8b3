//! CSV: one row per finding, every column a spreadsheet filter. Cells that a spreadsheet
//! would run as a formula (leading `=`, `+`, `-`, `@`, tab or carriage return — object names
//! and messages are user-controlled) are prefixed with `'`.

use crate::report::Report;

const HEADER: &[&str] = &[
    "control",
    "title",
    "family",
    "severity",
    "state",
    "subject",
    "path",
    "observed",
    "expected",
    "message",
    "remediation",
    "cis",
    "nsa",
    "pss",
    "exception",
    "evaluated",
    "catalogue_version",
];

/// Defuses spreadsheet formula injection.
fn cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

pub(super) fn render(report: &Report) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let _ = writer.write_record(HEADER);
    for control in &report.controls {
        let mapping = |f: crate::Framework| {
            control
                .mappings
                .get(&f)
                .map(|v| v.join("; "))
                .unwrap_or_default()
        };
        for f in &control.findings {
            let (subject, path) = match &f.outcome.source {
                crate::Source::Object { object, path } => (object.to_string(), path.clone()),
                other => (other.to_string(), String::new()),
            };
            let exception = f.exception.as_ref().map_or_else(String::new, |e| {
                format!(
                    "{} (owner {}, {} {})",
                    e.name,
                    e.owner,
                    if e.expired { "expired" } else { "expires" },
                    e.expires
                )
            });
            let row = [
                control.id.as_str(),
                control.title.as_str(),
                control.family.as_str(),
                control.severity.as_str(),
                f.outcome.state.as_str(),
                &subject,
                &path,
                &f.outcome.observed,
                &f.outcome.expected,
                &f.outcome.message,
                &control.remediation,
                &mapping(crate::Framework::Cis),
                &mapping(crate::Framework::Nsa),
                &mapping(crate::Framework::Pss),
                &exception,
                &f.time,
                &f.catalogue_version,
            ];
            let _ = writer.write_record(row.iter().map(|c| cell(c)));
        }
    }
    writer.into_inner().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn formulas_are_defused() {
        assert_eq!(cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(cell("plain"), "plain");
    }
}
