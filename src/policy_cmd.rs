//! `bulwark policy …`: Cedar policy tooling for security teams.

use std::path::PathBuf;

use anyhow::{Context, bail};

#[derive(clap::Subcommand)]
pub(crate) enum PolicyCommand {
    /// Validates Cedar policy files offline against Bulwark's Kubernetes schema, strictly:
    /// syntax, unique @id annotations, entity types and attributes, and every validator
    /// warning (a policy that can never match) fail. Exits non-zero on any failure.
    ///
    /// Example: bulwark policy validate team-a.cedar guardrails.cedar
    Validate {
        /// Policy files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Prints the Cedar schema policies are validated against.
    ///
    /// Example: bulwark policy schema > k8s.cedarschema
    Schema,
}

pub(crate) fn run(command: &PolicyCommand) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Schema => {
            print!("{}", bulwark_policies::schema::SCHEMA_TEXT);
            Ok(())
        }
        PolicyCommand::Validate { files } => {
            let mut failed = 0;
            for file in files {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("reading {}", file.display()))?;
                match bulwark_policies::policy_text::parse(&file.display().to_string(), &text) {
                    Ok(set) => println!(
                        "{}: ok ({} policies)",
                        file.display(),
                        set.policies().count()
                    ),
                    Err(e) => {
                        failed += 1;
                        eprintln!("{e}");
                    }
                }
            }
            if failed > 0 {
                bail!("{failed} of {} files failed validation", files.len());
            }
            Ok(())
        }
    }
}
