//! `bulwark policy …`: Cedar policy tooling for security teams.

use std::path::PathBuf;

use anyhow::{Context, bail};

#[derive(clap::Subcommand)]
pub(crate) enum PolicyCommand {
    /// Validates policy files offline against Bulwark's Kubernetes schema, strictly: syntax,
    /// unique @id annotations, entity types and attributes, and every validator warning (a
    /// policy that can never match) fail. Files are Cedar text, or YAML with CedarPolicy
    /// manifests (`.yaml`/`.yml`). Exits non-zero on any failure.
    ///
    /// Example: bulwark policy validate team-a.cedar team-b.yaml
    Validate {
        /// Policy files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Runs policy test cases: every YAML file in DIR with a top-level `cases` list names
    /// policy files (Cedar text or CedarPolicy manifests) and requests (authorization) or
    /// object writes (admission) with their expected decisions (see docs/policies.md). Prints each case, lists policies no case exercised,
    /// and exits non-zero if any case fails.
    ///
    /// Example: bulwark policy test ./policies/tests
    Test {
        /// Directories of test files.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
    /// Prints the Cedar schema policies are validated against: authorization (the default) or
    /// admission (`--admission`: the same plus one entity type per built-in kind, generated
    /// from the upstream types, and the pod security views).
    ///
    /// Example: bulwark policy schema --admission > k8s-admission.cedarschema
    Schema {
        /// Print the admission schema.
        #[arg(long)]
        admission: bool,
    },
}

pub(crate) fn run(command: &PolicyCommand) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Schema { admission } => {
            print!("{}", bulwark_policies::schema::SCHEMA_TEXT);
            if *admission {
                print!("\n{}", bulwark_policies::schema::OBJECT_SCHEMA_TEXT);
            }
            Ok(())
        }
        PolicyCommand::Validate { files } => {
            let mut failed = 0;
            for file in files {
                match bulwark_admission::policy_test::load_policy_file(file) {
                    Ok(sources) => println!(
                        "{}: ok ({} policies)",
                        file.display(),
                        sources
                            .iter()
                            .map(|s| s.compiled.policies.policies().count())
                            .sum::<usize>()
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
        PolicyCommand::Test { dirs } => {
            let (mut passed, mut failed) = (0, 0);
            for dir in dirs {
                let files = bulwark_admission::policy_test::test_files(dir)
                    .with_context(|| format!("reading {}", dir.display()))?;
                if files.is_empty() {
                    bail!(
                        "{}: no test files (YAML with a top-level `cases` list)",
                        dir.display()
                    );
                }
                for file in files {
                    let report = bulwark_admission::policy_test::run_file(&file)
                        .with_context(|| format!("running {}", file.display()))?;
                    println!("{}", file.display());
                    for outcome in &report.outcomes {
                        let mark = if outcome.passed { "ok  " } else { "FAIL" };
                        println!("  {mark} {}: {}", outcome.name, outcome.detail);
                        if outcome.passed {
                            passed += 1;
                        } else {
                            failed += 1;
                        }
                    }
                    if !report.untested.is_empty() {
                        println!("  untested policies: {}", report.untested.join(", "));
                    }
                }
            }
            println!("{passed} passed, {failed} failed");
            if failed > 0 {
                bail!("{failed} policy test cases failed");
            }
            Ok(())
        }
    }
}
