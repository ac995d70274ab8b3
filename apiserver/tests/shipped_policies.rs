//! Every shipped policy (and every example) has test cases, and they pass against the
//! served kinds (the registry's admission model).
#![allow(clippy::unwrap_used, clippy::panic, reason = "test code")]

use std::path::Path;

use bulwark_admission::policy_test::{FileReport, test_files};

fn run_file(path: &Path) -> Result<FileReport, bulwark_policies::PolicyError> {
    let model = bulwark_apiserver::registry::admission_model().unwrap();
    bulwark_admission::policy_test::run_file(path, &model)
}

fn check(dir: &str, all_tested: bool) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../policies")
        .join(dir);
    let files = test_files(&dir).unwrap();
    assert!(!files.is_empty(), "no test files in {}", dir.display());
    for file in files {
        let report = run_file(&file).unwrap();
        for outcome in &report.outcomes {
            assert!(
                outcome.passed,
                "{}: {}: {}",
                file.display(),
                outcome.name,
                outcome.detail
            );
        }
        if all_tested {
            assert!(
                report.untested.is_empty(),
                "{}: untested policies {:?}",
                file.display(),
                report.untested
            );
        }
    }
}

#[test]
fn shipped_policies_pass_their_tests() {
    check("tests", true);
}

/// The compiled-in bootstrap tier is not loaded from a test file, so "untested" cannot see it:
/// every bootstrap policy must determine some case of the shipped tests.
#[test]
fn every_bootstrap_policy_is_exercised() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/tests");
    let mut determining = std::collections::BTreeSet::new();
    for file in test_files(&dir).unwrap() {
        for outcome in run_file(&file).unwrap().outcomes {
            determining.extend(outcome.determining);
        }
    }
    let bootstrap = bulwark_policies::policy_text::parse(
        "bootstrap.cedar",
        bulwark_policies::engine::BOOTSTRAP_POLICIES,
    )
    .unwrap();
    for policy in bootstrap.policies() {
        let id = policy.id().to_string();
        assert!(
            determining.contains(&id),
            "no shipped test case exercises {id}"
        );
    }
}

#[test]
fn examples_pass_their_tests() {
    check("examples", true);
}

#[test]
fn a_wrong_expectation_fails_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.cedar"), r#"@id("a") permit (principal in k8s::Group::"g", action == k8s::Action::"get", resource is k8s::Resource);"#).unwrap();
    std::fs::write(
        dir.path().join("t.yaml"),
        "policies: [p.cedar]\ncases:\n  - name: wrong\n    request: {user: u, groups: [g], verb: list, resource: pods, namespace: a}\n    expect: allow\n",
    )
    .unwrap();
    let report = run_file(&dir.path().join("t.yaml")).unwrap();
    assert!(!report.outcomes[0].passed);
    assert!(
        report.outcomes[0]
            .detail
            .starts_with("expected allow, got denied"),
        "{}",
        report.outcomes[0].detail
    );
    assert_eq!(report.untested, ["a"]);
}
