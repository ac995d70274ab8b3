//! The scanner: evidence in, report out. Every control's check runs over one snapshot; the
//! findings get the evaluation time and catalogue version, exceptions are applied, and the
//! results are summarised per framework.

use bulwark_api::posture::PostureException;
use serde_json::json;

use crate::catalogue::{Catalogue, Framework};
use crate::checks::{self, Ctx};
use crate::evidence::Snapshot;
use crate::exception::{self, ScopeIndex};
use crate::outcome::{Finding, Outcome, Source, State};
use crate::report::{ControlResult, REPORT_API_VERSION, Report, summaries};

/// What a scan needs besides the evidence.
pub struct ScanOptions<'a> {
    /// The catalogue.
    pub catalogue: &'a Catalogue,
    /// Exceptions in force (validated).
    pub exceptions: &'a [PostureException],
    /// Only the controls judged on manifests (offline scans).
    pub manifests_only: bool,
    /// Restrict to one framework.
    pub framework: Option<Framework>,
    /// The report's name.
    pub name: &'a str,
    /// The evidence source's name.
    pub source: &'a str,
}

/// RFC 3339 of Unix seconds.
pub fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Runs every control over `snapshot`.
pub fn scan(snapshot: &Snapshot, options: &ScanOptions<'_>) -> Report {
    let ctx = Ctx::new(snapshot);
    let index = ScopeIndex::new(ctx.objects);
    let time = rfc3339(snapshot.taken);
    let version = options.catalogue.version().to_owned();
    let controls: Vec<ControlResult> = options
        .catalogue
        .controls()
        .iter()
        .filter(|c| !options.manifests_only || c.manifests)
        .filter(|c| options.framework.is_none_or(|f| c.maps_to(f)))
        .map(|control| {
            let outcomes = match checks::check(&control.id) {
                Some(check) => check(&ctx),
                None => vec![Outcome::new(
                    State::NotEvaluated,
                    Source::Config {
                        key: "catalogue".to_owned(),
                    },
                    "",
                    "",
                    "not evaluated: this build has no check for the control",
                )],
            };
            // A check with nothing to judge still says so.
            let outcomes = if outcomes.is_empty() {
                vec![Outcome::new(
                    State::NotApplicable,
                    Source::Config {
                        key: "objects".to_owned(),
                    },
                    "",
                    "",
                    "nothing this control applies to exists",
                )]
            } else {
                outcomes
            };
            let findings = outcomes
                .into_iter()
                .map(|outcome| {
                    let mut finding = Finding {
                        control: control.id.clone(),
                        severity: control.severity,
                        outcome,
                        exception: None,
                        time: time.clone(),
                        catalogue_version: version.clone(),
                    };
                    exception::apply(&mut finding, options.exceptions, &index, snapshot.taken);
                    finding
                })
                .collect();
            ControlResult::new(control, findings)
        })
        .collect();
    Report {
        api_version: REPORT_API_VERSION.to_owned(),
        kind: "PostureReport".to_owned(),
        metadata: json!({"name": options.name, "creationTimestamp": time}),
        generated: time,
        catalogue_version: version,
        source: options.source.to_owned(),
        framework: options
            .framework
            .map_or("all", Framework::as_str)
            .to_owned(),
        summaries: summaries(options.framework, &controls),
        controls,
    }
}
