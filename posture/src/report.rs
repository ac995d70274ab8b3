//! A scan's result as reports, the API and every export carry it: per control, its state
//! and findings; per framework, score, coverage and counts by state and severity.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalogue::{Control, Framework, Severity};
use crate::outcome::{Finding, State};

/// The API version and kind reports carry.
pub const REPORT_API_VERSION: &str = "posture.bulwark.dev/v1";

/// One control's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ControlResult {
    /// The control id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Its family.
    pub family: String,
    /// Its severity.
    pub severity: Severity,
    /// The combined state of its findings.
    pub state: State,
    /// How to make it pass.
    pub remediation: String,
    /// Framework clauses.
    pub mappings: BTreeMap<Framework, Vec<String>>,
    /// Every evaluated subject.
    pub findings: Vec<Finding>,
}

impl ControlResult {
    /// The result of `control` from its findings.
    pub fn new(control: &Control, findings: Vec<Finding>) -> Self {
        Self {
            id: control.id.clone(),
            title: control.title.clone(),
            family: control.family.clone(),
            severity: control.severity,
            state: State::combine(findings.iter().map(|f| f.outcome.state)),
            remediation: control.remediation.clone(),
            mappings: control.mappings.clone(),
            findings,
        }
    }

    /// Whether it maps to `framework` (`None`: every framework).
    pub fn in_framework(&self, framework: Option<Framework>) -> bool {
        framework.is_none_or(|f| self.mappings.get(&f).is_some_and(|m| !m.is_empty()))
    }
}

/// Counts of controls in one severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeverityCounts {
    /// Passing.
    pub pass: u32,
    /// Failing.
    pub fail: u32,
    /// Accepted by an exception.
    pub excepted: u32,
    /// Not evaluated or manual.
    pub open: u32,
}

/// One framework's summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FrameworkSummary {
    /// `cis`, or `all` for every control.
    pub framework: String,
    /// Full name.
    pub title: String,
    /// Passing controls as a percentage of passing and failing ones (not-applicable, manual,
    /// not-evaluated and excepted controls are not in it); none when nothing was judged.
    pub score: Option<f64>,
    /// Evaluated controls (pass, fail, excepted) as a percentage of the applicable ones.
    pub coverage: f64,
    /// Controls by state.
    pub counts: BTreeMap<State, u32>,
    /// Controls by severity.
    pub by_severity: BTreeMap<Severity, SeverityCounts>,
    /// Controls mapped.
    pub controls: u32,
}

impl FrameworkSummary {
    /// The summary of the `controls` that map to `framework` (`None`: all).
    pub fn of(framework: Option<Framework>, controls: &[ControlResult]) -> Self {
        let mut counts: BTreeMap<State, u32> = State::ALL.into_iter().map(|s| (s, 0)).collect();
        let mut by_severity: BTreeMap<Severity, SeverityCounts> = BTreeMap::new();
        let mut total = 0;
        for c in controls.iter().filter(|c| c.in_framework(framework)) {
            total += 1;
            *counts.entry(c.state).or_default() += 1;
            let s = by_severity.entry(c.severity).or_default();
            match c.state {
                State::Pass => s.pass += 1,
                State::Fail => s.fail += 1,
                State::Excepted => s.excepted += 1,
                State::Manual | State::NotEvaluated => s.open += 1,
                State::NotApplicable => {}
            }
        }
        let n = |s: State| f64::from(counts.get(&s).copied().unwrap_or(0));
        let judged = n(State::Pass) + n(State::Fail);
        let applicable = f64::from(total) - n(State::NotApplicable);
        let evaluated = judged + n(State::Excepted);
        let round = |x: f64| (x * 10.0).round() / 10.0;
        Self {
            framework: framework.map_or("all", Framework::as_str).to_owned(),
            title: framework
                .map_or("Every control", Framework::title)
                .to_owned(),
            score: (judged > 0.0).then(|| round(100.0 * n(State::Pass) / judged)),
            coverage: if applicable > 0.0 {
                round(100.0 * evaluated / applicable)
            } else {
                0.0
            },
            counts,
            by_severity,
            controls: total,
        }
    }
}

/// A scan's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `posture.bulwark.dev/v1`.
    pub api_version: String,
    /// `PostureReport`.
    pub kind: String,
    /// `name` (`cluster` for the live report) and `creationTimestamp`.
    pub metadata: serde_json::Value,
    /// When it was generated (RFC 3339).
    pub generated: String,
    /// The catalogue version that judged it.
    pub catalogue_version: String,
    /// Where the evidence came from.
    pub source: String,
    /// The framework the report is restricted to (`all` for none).
    pub framework: String,
    /// Per framework (the restricted one, or every one plus `all`).
    pub summaries: Vec<FrameworkSummary>,
    /// Per control.
    pub controls: Vec<ControlResult>,
}

impl Report {
    /// Every finding, control by control.
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.controls.iter().flat_map(|c| c.findings.iter())
    }

    /// The same report restricted to `framework`'s controls.
    pub fn restrict(&self, framework: Option<Framework>) -> Report {
        let controls: Vec<ControlResult> = self
            .controls
            .iter()
            .filter(|c| c.in_framework(framework))
            .cloned()
            .collect();
        let summaries = summaries(framework, &controls);
        Report {
            framework: framework.map_or("all", Framework::as_str).to_owned(),
            summaries,
            controls,
            ..self.clone()
        }
    }

    /// The failing findings at `severity` or above.
    pub fn failing_at(&self, severity: Severity) -> usize {
        self.findings()
            .filter(|f| f.outcome.state == State::Fail && f.severity >= severity)
            .count()
    }
}

/// The summaries for a report restricted to `framework` (or every framework and `all`).
pub fn summaries(
    framework: Option<Framework>,
    controls: &[ControlResult],
) -> Vec<FrameworkSummary> {
    match framework {
        Some(f) => vec![FrameworkSummary::of(Some(f), controls)],
        None => std::iter::once(FrameworkSummary::of(None, controls))
            .chain(
                Framework::ALL
                    .into_iter()
                    .map(|f| FrameworkSummary::of(Some(f), controls)),
            )
            .collect(),
    }
}
