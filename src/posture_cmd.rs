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
    /// Fetches the cluster's latest posture report, rendered and signed by the server, and
    /// writes it with its signature (`FILE.sig`). Auditors may run it (the default grants let
    /// bulwark:auditors read posture.bulwark.dev).
    ///
    /// Example: bulwark posture report --kubeconfig auditor.kubeconfig --framework cis --format html --out cis.html
    Report(ReportArgs),
    /// Verifies a signed report offline: its digest, the Ed25519 signature, and that the
    /// signer's certificate was issued by the cluster CA (from --ca, or the CA data of
    /// --kubeconfig, read without connecting). Exits 1, naming the failed check, otherwise.
    ///
    /// Example: bulwark posture verify cis.html --ca ./bulwark-data/pki/ca.crt
    Verify(VerifyArgs),
}

/// `bulwark posture report` flags.
#[derive(clap::Args)]
pub(crate) struct ReportArgs {
    /// The cluster to ask.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// The framework's controls only: cis, nsa, pss, mitre, soc2, nist, pci, or all.
    #[arg(long, default_value = "all", value_parser = ["all", "cis", "nsa", "pss", "mitre", "soc2", "nist", "pci"])]
    framework: String,
    /// json, sarif, html, csv or oscal.
    #[arg(long, default_value = "json", value_parser = ["json", "sarif", "html", "csv", "oscal"])]
    format: String,
    /// Write the report here and its signature to FILE.sig (default: the report to standard
    /// output, unsigned there).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `bulwark posture verify` flags.
#[derive(clap::Args)]
pub(crate) struct VerifyArgs {
    /// The report file.
    report: PathBuf,
    /// Its signature (default: REPORT.sig).
    #[arg(long)]
    signature: Option<PathBuf>,
    /// The cluster CA certificate the signer's certificate must chain to.
    #[arg(long, conflicts_with_all = ["kubeconfig", "pubkey"])]
    ca: Option<PathBuf>,
    /// Take the cluster CA from this kubeconfig (read offline).
    #[arg(long, conflicts_with = "pubkey")]
    kubeconfig: Option<PathBuf>,
    /// Pin the signer's Ed25519 public key instead (base64 of 32 bytes, in a file).
    #[arg(long)]
    pubkey: Option<PathBuf>,
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
        PostureCommand::Report(args) => report(args).await,
        PostureCommand::Verify(args) => {
            if let Err(e) = verify(args) {
                eprintln!("verification FAILED: {e:#}");
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

async fn report(args: &ReportArgs) -> anyhow::Result<()> {
    let credentials = bulwark_client::Credentials::from_kubeconfig(&args.kubeconfig)
        .with_context(|| format!("reading {}", args.kubeconfig.display()))?;
    let client = bulwark_client::ApiClient::builder(&credentials)
        .connect()
        .await
        .with_context(|| format!("connecting to {}", credentials.server))?;
    let path = format!(
        "/apis/posture.bulwark.dev/v1/postureexports/{}.{}",
        args.format, args.framework
    );
    let response = client.get(&path).await?;
    let body = response.json();
    if !response.status.is_success() {
        anyhow::bail!(
            "the cluster answered {}: {}",
            response.status,
            body.get("message")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
        );
    }
    let content = body
        .get("content")
        .and_then(serde_json::Value::as_str)
        .context("the export has no content")?;
    match &args.out {
        None => std::io::stdout().write_all(content.as_bytes())?,
        Some(out) => {
            std::fs::write(out, content).with_context(|| format!("writing {}", out.display()))?;
            let signature = body
                .get("signature")
                .filter(|s| !s.is_null())
                .context("the server sent the report unsigned (no posture signing key)")?;
            let sig_path = signature_path(out);
            std::fs::write(&sig_path, serde_json::to_vec_pretty(signature)?)
                .with_context(|| format!("writing {}", sig_path.display()))?;
            eprintln!(
                "wrote {} and its signature {}",
                out.display(),
                sig_path.display()
            );
        }
    }
    Ok(())
}

fn signature_path(report: &std::path::Path) -> PathBuf {
    let mut name = report.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}

fn verify(args: &VerifyArgs) -> anyhow::Result<()> {
    use bulwark_posture::signing::{ReportSignature, Trust};
    let content = std::fs::read(&args.report)
        .with_context(|| format!("reading {}", args.report.display()))?;
    let sig_path = args
        .signature
        .clone()
        .unwrap_or_else(|| signature_path(&args.report));
    let sig_text = std::fs::read(&sig_path)
        .with_context(|| format!("reading the signature {}", sig_path.display()))?;
    let signature: ReportSignature = serde_json::from_slice(&sig_text)
        .with_context(|| format!("{} is not a report signature", sig_path.display()))?;
    let ca_pem;
    let pinned;
    let trust = if let Some(path) = &args.pubkey {
        use base64::Engine as _;
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        pinned = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .context("the public key file is not base64")?;
        Trust::PublicKey(&pinned)
    } else if let Some(path) = &args.ca {
        ca_pem =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Trust::Ca(&ca_pem)
    } else if let Some(path) = &args.kubeconfig {
        let credentials = bulwark_client::Credentials::from_kubeconfig(path)
            .with_context(|| format!("reading {}", path.display()))?;
        ca_pem = credentials.ca_pem.clone();
        Trust::Ca(&ca_pem)
    } else {
        anyhow::bail!("give the trust anchor: --ca CA.crt, --kubeconfig K or --pubkey FILE");
    };
    let signer = bulwark_posture::signing::verify(&content, &signature, &trust)?;
    println!(
        "verified: {} ({} report, SHA-256 {}) signed {} by {signer}",
        args.report.display(),
        signature.format,
        signature.sha256,
        signature.signed_at
    );
    Ok(())
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
