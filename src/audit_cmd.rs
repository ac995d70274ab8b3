//! `bulwark audit …`: tools for compliance auditors.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};

#[derive(clap::Subcommand)]
pub(crate) enum AuditCommand {
    /// Verifies an audit log offline (a copy is fine): recomputes the hash chain over every
    /// segment, checks every checkpoint signature, and reports the first record that was
    /// changed, removed, inserted, reordered or cut off, by file and line. Exits non-zero on
    /// any failure.
    ///
    /// Example: bulwark audit verify ./bulwark-data/audit --pubkey audit-signing.key.pub
    Verify {
        /// The audit log directory.
        dir: PathBuf,
        /// The audit public key (PEM). Default: `pki/audit-signing.key.pub` next to the log,
        /// which an attacker who can edit the log could also replace: auditors should pass
        /// the key they were given.
        #[arg(long)]
        pubkey: Option<PathBuf>,
        /// An exported checkpoint the log must contain (detects records cut off the end).
        /// Default: `checkpoint.json` in the log directory, if present.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
}

pub(crate) fn run(command: &AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify {
            dir,
            pubkey,
            checkpoint,
        } => {
            let default_key = dir
                .parent()
                .map(|data| data.join("pki").join("audit-signing.key.pub"));
            let key_path = match (pubkey, &default_key) {
                (Some(path), _) => Some(path.clone()),
                (None, Some(path)) if path.exists() => {
                    eprintln!(
                        "note: checking signatures with {} (pass --pubkey with the key you were given for independent assurance)",
                        path.display()
                    );
                    Some(path.clone())
                }
                _ => None,
            };
            let key = match &key_path {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    Some(bulwark_audit::chain::VerifyingKey::from_pem(&text)?)
                }
                None => None,
            };
            let exported = match checkpoint {
                Some(path) => Some(
                    std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?,
                ),
                None => bulwark_audit::verify::exported_checkpoint(dir),
            };
            let started = Instant::now();
            let report = bulwark_audit::verify::verify(dir, key.as_ref(), exported.as_deref())?;
            let elapsed = started.elapsed().as_secs_f64();
            for warning in &report.warnings {
                eprintln!("warning: {warning}");
            }
            for problem in &report.problems {
                eprintln!("FAILED: {problem}");
            }
            println!(
                "{} records ({} signed checkpoints) in {} segments, seq {}..{}, {:.1} MB in {:.2} s ({:.0} MB/s){}",
                report.records,
                report.checkpoints,
                report.segments,
                report.first_seq.unwrap_or(0),
                report.last_seq.unwrap_or(0),
                report.bytes as f64 / 1e6,
                elapsed,
                report.bytes as f64 / 1e6 / elapsed.max(1e-9),
                if report.unsigned_tail > 0 {
                    format!(
                        "; the last {} records follow the last checkpoint (chained, not yet signed)",
                        report.unsigned_tail
                    )
                } else {
                    String::new()
                }
            );
            if !report.ok() {
                bail!("the audit log did not verify");
            }
            println!("verified");
            Ok(())
        }
    }
}
