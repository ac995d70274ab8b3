//! `bulwark posture …`: the posture scanner from the command line.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bulwark_posture::export::{Format, render};
use bulwark_posture::manifest::{Limits, ManifestSource, load};
use bulwark_posture::{Catalogue, EvidenceSource, Framework, ScanOptions, Severity, State, scan};

#[derive(clap::Subcommand)]
pub(crate) enum PostureCommand {
    /// Scans manifests offline against the workload controls (and RBAC roles, webhooks and
    /// service accounts they hold): YAML or JSON files, multi-document streams, Lists,
    /// directories (walked for *.yaml, *.yml, *.json), `-` for standard input (e.g. helm
    /// template output). Exits 1 when a finding fails at --fail-on or above, 2 when the
    /// manifests cannot be read.
    ///
    /// Example: helm template ./chart | bulwark posture scan -f - --fail-on high --format sarif --out posture.sarif
    Scan(ScanArgs),
}

/// `bulwark posture scan` flags.
#[derive(clap::Args)]
pub(crate) struct ScanArgs {
    /// Manifest files or directories (repeatable; `-` reads standard input).
    #[arg(short = 'f', long = "filename", required = true)]
    files: Vec<PathBuf>,
    /// Output: a summary for people (text), or json, sarif, html, csv, oscal.
    #[arg(long, default_value = "text", value_parser = ["text", "json", "sarif", "html", "csv", "oscal"])]
    format: String,
    /// Write the output here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Restrict to one framework's controls: cis, nsa, pss (or all).
    #[arg(long, default_value = "all", value_parser = ["all", "cis", "nsa", "pss", "mitre", "soc2", "nist", "pci"])]
    framework: String,
    /// Exit 1 when a finding fails at this severity or above (low, medium, high, critical;
    /// none never).
    #[arg(long, default_value = "low", value_parser = ["none", "low", "medium", "high", "critical"])]
    fail_on: String,
}

pub(crate) async fn run(command: &PostureCommand) -> anyhow::Result<()> {
    match command {
        PostureCommand::Scan(args) => {
            let code = scan_manifests(args)?;
            if code != ExitCode::SUCCESS {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

fn scan_manifests(args: &ScanArgs) -> anyhow::Result<ExitCode> {
    let manifests = match load(&args.files, &Limits::default()) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let files = manifests.files.len();
    let objects = manifests.objects.len();
    let source = ManifestSource::new(manifests);
    let catalogue = Catalogue::builtin()?;
    let framework = Framework::parse(&args.framework);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let report = scan(
        &source.snapshot(now),
        &ScanOptions {
            catalogue: &catalogue,
            exceptions: &[],
            manifests_only: true,
            framework,
            name: "manifests",
            source: "manifests",
        },
    );
    let bytes = match Format::parse(&args.format) {
        Some(format) => render(&report, format, &[]),
        None => text_summary(&report, files, objects).into_bytes(),
    };
    match &args.out {
        Some(path) => {
            std::fs::write(path, &bytes).with_context(|| format!("writing {}", path.display()))?
        }
        None => std::io::stdout().write_all(&bytes)?,
    }
    let failing = Severity::parse(&args.fail_on).map_or(0, |s| report.failing_at(s));
    Ok(if failing > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// What a person reads in a terminal: every failing finding, then the counts.
fn text_summary(report: &bulwark_posture::Report, files: usize, objects: usize) -> String {
    let mut out = String::new();
    let mut failing = 0;
    for control in &report.controls {
        for f in control
            .findings
            .iter()
            .filter(|f| f.outcome.state == State::Fail)
        {
            failing += 1;
            out.push_str(&format!(
                "FAIL {:<13} {:<8} {}: {} ({})\n",
                control.id,
                control.severity,
                f.outcome.source,
                f.outcome.message,
                f.outcome.observed
            ));
        }
    }
    let count = |s: State| report.controls.iter().filter(|c| c.state == s).count();
    out.push_str(&format!(
        "\n{files} files, {objects} objects, {} controls: {} pass, {} fail, {} not applicable, {} not evaluated; {failing} failing findings\n",
        report.controls.len(),
        count(State::Pass),
        count(State::Fail),
        count(State::NotApplicable),
        count(State::NotEvaluated),
    ));
    out
}
