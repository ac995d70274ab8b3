//! Policy test cases as data, for security teams (`bulwark policy test DIR`, like `opa test`
//! or `kyverno test`): each YAML file names policy files (Cedar text or CedarPolicy
//! manifests) and cases — a request and the expected decision, optionally the policies that
//! must determine it. The same runner checks the shipped policies in `cargo test`.
//!
//! ```yaml
//! policies: [team-a.yaml]          # relative to this file; the bootstrap tier is always in
//! cases:
//!   - name: developers read configmaps in team-a
//!     request: {user: alice, groups: [dev], verb: list, resource: configmaps, namespace: team-a}
//!     expect: allow
//!     policies: [team-a.dev-read-configmaps]
//!   - name: but not in prod namespaces
//!     request: {user: alice, groups: [dev], verb: list, resource: configmaps, namespace: b,
//!               namespaceLabels: {env: prod}}
//!     expect: deny
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::engine::{PolicyEngine, Skipped};
use crate::{AccessRequest, CompiledPolicies, PolicyError, Target};

/// One test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// Policy files, relative to the test file: `.cedar` text or YAML CedarPolicy manifests.
    pub policies: Vec<PathBuf>,
    /// The cases.
    pub cases: Vec<Case>,
}

/// The expected decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    /// The request is allowed.
    Allow,
    /// The request is denied.
    Deny,
}

/// One case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// What the case checks.
    pub name: String,
    /// The request.
    pub request: CaseRequest,
    /// The expected decision.
    pub expect: Expect,
    /// If given, exactly these policy ids must determine the decision.
    #[serde(default)]
    pub policies: Option<Vec<String>>,
}

/// A request, in Kubernetes terms.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CaseRequest {
    /// User name (`system:serviceaccount:NS:NAME` and `system:node:NAME` are recognized).
    pub user: String,
    /// Groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The verb.
    pub verb: String,
    /// API group ("" for core).
    #[serde(default)]
    pub api_group: String,
    /// Plural resource (or `path` for a non-resource request).
    #[serde(default)]
    pub resource: Option<String>,
    /// Subresource.
    #[serde(default)]
    pub subresource: Option<String>,
    /// Namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Object name.
    #[serde(default)]
    pub name: Option<String>,
    /// Labels of the namespace.
    #[serde(default)]
    pub namespace_labels: BTreeMap<String, String>,
    /// Non-resource path.
    #[serde(default)]
    pub path: Option<String>,
    /// Client address (default 127.0.0.1).
    #[serde(default)]
    pub source_ip: Option<IpAddr>,
    /// `x509` (default) or `serviceaccount-token`.
    #[serde(default)]
    pub auth_method: Option<String>,
}

/// One case's result.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The case name.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// The decision, its policies and reasons (and what was expected, on failure).
    pub detail: String,
    /// The policies that determined the decision.
    pub determining: Vec<String>,
}

/// A file's results.
#[derive(Debug, Clone)]
pub struct FileReport {
    /// Case outcomes, in order.
    pub outcomes: Vec<Outcome>,
    /// Policy ids loaded from the file's policies that no case's decision named.
    pub untested: Vec<String>,
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> PolicyError {
    PolicyError::Request(format!("{}: {e}", path.display()))
}

/// A CedarPolicy manifest, as far as loading its policies goes.
#[derive(Debug, Deserialize)]
struct Manifest {
    kind: String,
    metadata: ManifestMeta,
    spec: ManifestSpec,
}

#[derive(Debug, Deserialize)]
struct ManifestMeta {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestSpec {
    policies: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    kind: Option<String>,
}

/// Compiles a policy file: Cedar text (`.cedar`) or YAML with CedarPolicy manifests (one
/// source per Authorization object; other documents are skipped).
pub fn load_policy_file(path: &Path) -> Result<Vec<CompiledPolicies>, PolicyError> {
    let text = std::fs::read_to_string(path).map_err(|e| io_error(path, e))?;
    let is_yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    if !is_yaml {
        return Ok(vec![CompiledPolicies::compile(
            &path.display().to_string(),
            None,
            &text,
        )?]);
    }
    let mut out = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let value = serde_yaml_ng::Value::deserialize(document).map_err(|e| io_error(path, e))?;
        if value.get("kind").and_then(serde_yaml_ng::Value::as_str) != Some("CedarPolicy") {
            continue;
        }
        let manifest: Manifest = serde_yaml_ng::from_value(value).map_err(|e| io_error(path, e))?;
        if manifest.kind != "CedarPolicy"
            || manifest.spec.kind.as_deref().unwrap_or("Authorization") != "Authorization"
        {
            continue;
        }
        out.push(CompiledPolicies::compile(
            &manifest.metadata.name,
            manifest.spec.namespace.as_deref(),
            &manifest.spec.policies,
        )?);
    }
    Ok(out)
}

fn describe(allowed: bool, policies: &[String], reasons: &[String]) -> String {
    format!(
        "{} by [{}]: {}",
        if allowed { "allowed" } else { "denied" },
        policies.join(", "),
        reasons.join("; ")
    )
}

/// Runs one test file.
pub fn run_file(path: &Path) -> Result<FileReport, PolicyError> {
    let text = std::fs::read_to_string(path).map_err(|e| io_error(path, e))?;
    let file: TestFile = serde_yaml_ng::from_str(&text).map_err(|e| io_error(path, e))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut sources = Vec::new();
    for policy_file in &file.policies {
        sources.extend(
            load_policy_file(&base.join(policy_file))?
                .into_iter()
                .map(Arc::new),
        );
    }
    let (engine, skipped) = PolicyEngine::new(&sources)?;
    if let Some(Skipped { name, reason }) = skipped.into_iter().next() {
        return Err(PolicyError::Ids {
            source_name: name,
            message: reason,
        });
    }
    let mut loaded: BTreeSet<String> = sources.iter().flat_map(|s| s.ids()).collect();
    let mut outcomes = Vec::new();
    for case in &file.cases {
        let r = &case.request;
        let labels: Vec<(String, String)> = r
            .namespace_labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let target = match (&r.path, &r.resource) {
            (Some(path), None) => Target::NonResource { path },
            (None, Some(resource)) => Target::Resource {
                api_group: &r.api_group,
                resource,
                subresource: r.subresource.as_deref(),
                namespace: r.namespace.as_deref(),
                name: r.name.as_deref(),
                namespace_labels: &labels,
            },
            _ => {
                return Err(io_error(
                    path,
                    format!(
                        "case {:?}: give exactly one of resource and path",
                        case.name
                    ),
                ));
            }
        };
        let decision = engine.decide(&AccessRequest {
            user: &r.user,
            groups: &r.groups,
            auth_method: r.auth_method.as_deref().unwrap_or("x509"),
            cert_fingerprint: None,
            source_ip: r
                .source_ip
                .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
            verb: &r.verb,
            target,
        });
        for id in &decision.policies {
            loaded.remove(id);
        }
        let allowed_ok = decision.allowed == (case.expect == Expect::Allow);
        let policies_ok = case.policies.as_ref().is_none_or(|want| {
            let mut want = want.clone();
            want.sort();
            let mut got = decision.policies.clone();
            got.sort();
            want == got
        });
        let mut detail = describe(decision.allowed, &decision.policies, &decision.reasons);
        if !allowed_ok || !policies_ok {
            detail = format!(
                "expected {}{}, got {detail}",
                if case.expect == Expect::Allow {
                    "allow"
                } else {
                    "deny"
                },
                case.policies
                    .as_ref()
                    .map(|p| format!(" by [{}]", p.join(", ")))
                    .unwrap_or_default()
            );
        }
        outcomes.push(Outcome {
            name: case.name.clone(),
            passed: allowed_ok && policies_ok,
            detail,
            determining: decision.policies,
        });
    }
    Ok(FileReport {
        outcomes,
        untested: loaded.into_iter().collect(),
    })
}

/// The test files of a directory (`*.yaml`, `*.yml` with a top-level `cases`), sorted.
pub fn test_files(dir: &Path) -> Result<Vec<PathBuf>, PolicyError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let path = entry.map_err(|e| io_error(dir, e))?.path();
        let yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        if yaml {
            let text = std::fs::read_to_string(&path).map_err(|e| io_error(&path, e))?;
            let is_test = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text)
                .ok()
                .is_some_and(|v| v.get("cases").is_some());
            if is_test {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}
