//! Policy test cases as data, for security teams (`bulwark policy test DIR`, like `opa test`
//! or `kyverno test`): each YAML file names policy files (Cedar text or CedarPolicy
//! manifests) and cases — a request (authorization) or a write of an object (admission) and
//! the expected decision, optionally the policies that must determine it. The same runner
//! checks the shipped policies in `cargo test`.
//!
//! A `.cedar` file holds admission policies when it names `k8s::admission::…` or an object
//! type such as `k8s::core::v1::Pod`, else authorization policies; manifests say so in
//! `spec.kind`.
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
//!   - name: privileged pods are refused
//!     admission:
//!       namespace: team-a
//!       object: {apiVersion: v1, kind: Pod, metadata: {name: p},
//!                spec: {containers: [{name: c, image: i, securityContext: {privileged: true}}]}}
//!     expect: deny
//!     policies: [pss.baseline.privileged]
//! ```
//!
//! For an admission case, `policies` lists every policy that hit, whatever its mode.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use bulwark_policies::engine::{PolicyEngine, Skipped};
use bulwark_policies::{AccessRequest, CompiledPolicies, PolicyError, PolicyKind, Target};
use serde_json::Value;

use crate::engine::{AdmissionInput, AdmissionModel, AdmissionSnapshot, Mode, Operation};

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
    /// An authorization request (give this or `admission`).
    #[serde(default)]
    pub request: Option<CaseRequest>,
    /// A write to admit (give this or `request`).
    #[serde(default)]
    pub admission: Option<AdmissionCase>,
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

/// A write, for admission cases.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AdmissionCase {
    /// The writer (default `test-user`).
    #[serde(default)]
    pub user: Option<String>,
    /// Its groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// `create` (default), `update`, `delete` or `connect`.
    #[serde(default)]
    pub operation: Option<String>,
    /// The object's namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Labels of that namespace.
    #[serde(default)]
    pub namespace_labels: BTreeMap<String, String>,
    /// The object written (for delete: leave out and give `oldObject`).
    #[serde(default)]
    pub object: Option<Value>,
    /// The object before the write.
    #[serde(default)]
    pub old_object: Option<Value>,
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
    #[serde(default)]
    mode: Option<String>,
}

/// One compiled source and, for admission, its mode.
#[derive(Debug, Clone)]
pub struct LoadedSource {
    /// The policies.
    pub compiled: CompiledPolicies,
    /// The mode of admission policies (Enforce unless the manifest says otherwise).
    pub mode: Mode,
}

fn mode_of(mode: Option<&str>) -> Result<Mode, String> {
    match mode.unwrap_or("Enforce") {
        "Enforce" => Ok(Mode::Enforce),
        "Warn" => Ok(Mode::Warn),
        "Audit" => Ok(Mode::Audit),
        other => Err(format!("unknown mode {other:?}: Enforce, Warn or Audit")),
    }
}

/// Whether Cedar text is about admission: it names `k8s::admission::…` or an object type
/// (`k8s::<group>::<version>::<Kind>`).
pub fn looks_like_admission(text: &str) -> bool {
    text.match_indices("k8s::").any(|(at, _)| {
        let rest = text.get(at + 5..).unwrap_or_default();
        let mut parts = rest.split("::");
        let first = parts.next().unwrap_or_default();
        let second = parts.next().unwrap_or_default();
        first == "admission"
            || (first.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && second.starts_with('v')
                && second.chars().nth(1).is_some_and(|c| c.is_ascii_digit()))
    })
}

/// Compiles a policy file: Cedar text (`.cedar`) or YAML with CedarPolicy manifests (one
/// source per object; other documents are skipped).
pub fn load_policy_file(path: &Path) -> Result<Vec<LoadedSource>, PolicyError> {
    let text = std::fs::read_to_string(path).map_err(|e| io_error(path, e))?;
    let is_yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    if !is_yaml {
        let name = path.display().to_string();
        let compiled = if looks_like_admission(&text) {
            CompiledPolicies::compile_admission(&name, &text)?
        } else {
            CompiledPolicies::compile(&name, None, &text)?
        };
        return Ok(vec![LoadedSource {
            compiled,
            mode: Mode::Enforce,
        }]);
    }
    let mut out = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let value = serde_yaml_ng::Value::deserialize(document).map_err(|e| io_error(path, e))?;
        if value.get("kind").and_then(serde_yaml_ng::Value::as_str) != Some("CedarPolicy") {
            continue;
        }
        let manifest: Manifest = serde_yaml_ng::from_value(value).map_err(|e| io_error(path, e))?;
        let compiled = match manifest.spec.kind.as_deref().unwrap_or("Authorization") {
            "Authorization" => CompiledPolicies::compile(
                &manifest.metadata.name,
                manifest.spec.namespace.as_deref(),
                &manifest.spec.policies,
            )?,
            "Admission" => CompiledPolicies::compile_admission(
                &manifest.metadata.name,
                &manifest.spec.policies,
            )?,
            other => return Err(io_error(path, format!("unknown spec.kind {other:?}"))),
        };
        let mode = mode_of(manifest.spec.mode.as_deref()).map_err(|e| io_error(path, e))?;
        out.push(LoadedSource { compiled, mode });
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

/// What a case's subject decided: allowed or not, by which policies, why.
struct Decided {
    allowed: bool,
    policies: Vec<String>,
    reasons: Vec<String>,
}

fn authorize(
    engine: &PolicyEngine,
    case: &Case,
    r: &CaseRequest,
    path: &Path,
) -> Result<Decided, PolicyError> {
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
    Ok(Decided {
        allowed: decision.allowed,
        policies: decision.policies,
        reasons: decision.reasons,
    })
}

fn admit(
    snapshot: &AdmissionSnapshot,
    case: &Case,
    a: &AdmissionCase,
    path: &Path,
) -> Result<Decided, PolicyError> {
    let bad = |message: &str| io_error(path, format!("case {:?}: {message}", case.name));
    let operation = match a.operation.as_deref().unwrap_or("create") {
        "create" => Operation::Create,
        "update" => Operation::Update,
        "delete" => Operation::Delete,
        "connect" => Operation::Connect,
        _ => return Err(bad("operation is create, update, delete or connect")),
    };
    let subject = a
        .object
        .as_ref()
        .or(a.old_object.as_ref())
        .ok_or_else(|| bad("give object (or oldObject for delete)"))?;
    let api_version = subject
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let group = api_version
        .rsplit_once('/')
        .map(|(g, _)| g)
        .unwrap_or_default();
    let kind = subject
        .get("kind")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("the object has no kind"))?;
    let name = subject
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let labels: Vec<(String, String)> = a
        .namespace_labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let verdict = snapshot.review(&AdmissionInput {
        user: a.user.as_deref().unwrap_or("test-user"),
        groups: &a.groups,
        auth_method: "x509",
        cert_fingerprint: None,
        source_ip: IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        operation,
        group,
        kind,
        subresource: None,
        namespace: a.namespace.as_deref(),
        name,
        object: a.object.as_ref(),
        old_object: a.old_object.as_ref(),
        namespace_labels: &labels,
        dry_run: false,
    });
    let all = verdict
        .denied
        .iter()
        .chain(&verdict.warnings)
        .chain(&verdict.audited);
    Ok(Decided {
        allowed: verdict.admitted(),
        policies: all.clone().map(|f| f.policy.clone()).collect(),
        reasons: all
            .map(|f| format!("{:?}: {}", f.mode, f.message()))
            .collect(),
    })
}

/// Runs one test file, with admission cases evaluated over `model` (the API server's).
pub fn run_file(path: &Path, model: &Arc<AdmissionModel>) -> Result<FileReport, PolicyError> {
    let text = std::fs::read_to_string(path).map_err(|e| io_error(path, e))?;
    let file: TestFile = serde_yaml_ng::from_str(&text).map_err(|e| io_error(path, e))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut authorization = Vec::new();
    let mut admission = Vec::new();
    for policy_file in &file.policies {
        for source in load_policy_file(&base.join(policy_file))? {
            match source.compiled.kind {
                PolicyKind::Authorization => authorization.push(Arc::new(source.compiled)),
                PolicyKind::Admission => admission.push((Arc::new(source.compiled), source.mode)),
            }
        }
    }
    let (engine, skipped) = PolicyEngine::new(&authorization)?;
    let (snapshot, admission_skipped) = AdmissionSnapshot::build(model, &admission)
        .map_err(|e| PolicyError::Request(e.to_string()))?;
    if let Some(Skipped { name, reason }) = skipped.into_iter().chain(admission_skipped).next() {
        return Err(PolicyError::Ids {
            source_name: name,
            message: reason,
        });
    }
    let mut loaded: BTreeSet<String> = authorization
        .iter()
        .chain(admission.iter().map(|(s, _)| s))
        .flat_map(|s| s.ids())
        .collect();
    let mut outcomes = Vec::new();
    for case in &file.cases {
        let decided = match (&case.request, &case.admission) {
            (Some(r), None) => authorize(&engine, case, r, path)?,
            (None, Some(a)) => admit(&snapshot, case, a, path)?,
            _ => {
                return Err(io_error(
                    path,
                    format!(
                        "case {:?}: give exactly one of request and admission",
                        case.name
                    ),
                ));
            }
        };
        for id in &decided.policies {
            loaded.remove(id);
        }
        let allowed_ok = decided.allowed == (case.expect == Expect::Allow);
        let policies_ok = case.policies.as_ref().is_none_or(|want| {
            let mut want = want.clone();
            want.sort();
            let mut got = decided.policies.clone();
            got.sort();
            want == got
        });
        let mut detail = describe(decided.allowed, &decided.policies, &decided.reasons);
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
            determining: decided.policies,
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

#[cfg(test)]
mod tests {
    #[test]
    fn admission_text_is_recognized() {
        use super::looks_like_admission as adm;
        assert!(adm(
            "forbid (principal, action, resource is k8s::admission::Container);"
        ));
        assert!(adm(
            "forbid (principal, action, resource is k8s::core::v1::Pod);"
        ));
        assert!(adm(
            "forbid (principal, action, resource is k8s::apps::v1::Deployment);"
        ));
        assert!(!adm(
            "permit (principal in k8s::Group::\"a\", action == k8s::Action::\"get\", resource is k8s::Resource);"
        ));
        assert!(!adm(
            "permit (principal, action, resource is k8s::NonResourceURL);"
        ));
    }
}
