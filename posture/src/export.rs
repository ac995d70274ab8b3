//! Report exports: JSON (the report itself), SARIF 2.1.0, CSV, a self-contained HTML page and
//! OSCAL Assessment Results. Every format renders from the same [`Report`], so they agree;
//! every one is deterministic for a given report (ids are name-based UUIDs), so a signature
//! over the bytes can be checked by anyone who renders the same report.

use std::fmt;

use crate::report::Report;

mod csv_export;
mod html;
mod oscal;
mod sarif;

pub use html::TrendPoint;

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The report as JSON.
    Json,
    /// SARIF 2.1.0 (failing results only).
    Sarif,
    /// One row per finding.
    Csv,
    /// A self-contained HTML page.
    Html,
    /// OSCAL Assessment Results (JSON).
    Oscal,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 5] = [
        Format::Json,
        Format::Sarif,
        Format::Csv,
        Format::Html,
        Format::Oscal,
    ];

    /// The name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Sarif => "sarif",
            Format::Csv => "csv",
            Format::Html => "html",
            Format::Oscal => "oscal",
        }
    }

    /// Parses a name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == text)
    }

    /// The media type served.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Json | Format::Oscal => "application/json",
            Format::Sarif => "application/sarif+json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Html => "text/html; charset=utf-8",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Renders `report` as `format`; `trend` is the score history the HTML page charts (empty:
/// no trend section).
pub fn render(report: &Report, format: Format, trend: &[TrendPoint]) -> Vec<u8> {
    match format {
        Format::Json => {
            let mut out = serde_json::to_vec_pretty(report).unwrap_or_default();
            out.push(b'\n');
            out
        }
        Format::Sarif => sarif::render(report),
        Format::Csv => csv_export::render(report),
        Format::Html => html::render(report, trend).into_bytes(),
        Format::Oscal => oscal::render(report),
    }
}

/// A finding's stable object name (the same subject of the same control, the same name).
pub fn finding_name(finding: &crate::Finding) -> String {
    let id = stable_uuid(&[&finding.key()]);
    format!(
        "{}-{}",
        finding.control.to_ascii_lowercase(),
        id.get(..8).unwrap_or_default()
    )
}

/// A name-based UUID (v5) in Bulwark's namespace: the same input, the same id.
pub(crate) fn stable_uuid(parts: &[&str]) -> String {
    const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6f1c_2f2e_8d3a_5b7e_9a41_3c0d_b0a5_7e11);
    uuid::Uuid::new_v5(&NAMESPACE, parts.join("\u{1f}").as_bytes()).to_string()
}
