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
    /// Explains how a running cluster decides one request of another identity: allowed or
    /// denied, the policies that decided and their reasons (asked with a SubjectAccessReview,
    /// so it needs `create` on subjectaccessreviews). The identity is also in
    /// `system:authenticated`, as every authenticated request is.
    ///
    /// Example: bulwark policy explain --kubeconfig admin.kubeconfig --as alice --as-group dev list configmaps -n team-a
    Explain {
        /// Kubeconfig of the asking user.
        #[arg(long)]
        kubeconfig: PathBuf,
        /// The user the request is explained for.
        #[arg(long = "as")]
        user: String,
        /// The user's groups (repeat).
        #[arg(long = "as-group")]
        groups: Vec<String>,
        /// The verb (get, list, create, …).
        verb: String,
        /// The resource: `configmaps`, `deployments.apps`, a short name (`deploy`), with an
        /// optional `/subresource` (`pods/log`); or a non-resource path starting with `/`.
        resource: String,
        /// The object name.
        name: Option<String>,
        /// The namespace.
        #[arg(short = 'n', long)]
        namespace: Option<String>,
    },
    /// Replays the authorization decisions recorded in an audit log against a candidate policy
    /// set and lists every decision that would change: the impact report to read before a
    /// rollout. The candidate is the whole authorization set that would be in force (policy
    /// files: Cedar text or CedarPolicy manifests; the compiled-in bootstrap tier is always
    /// in). Requests are decided again as recorded: the identity acted as, verb, resource,
    /// namespace labels, source address and authentication method.
    ///
    /// Example: bulwark policy replay new-grants.yaml guardrails.cedar --audit-log ./bulwark-data/audit
    Replay {
        /// Candidate policy files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The audit log directory (a copy is fine).
        #[arg(long)]
        audit_log: PathBuf,
        /// Print at most this many changed decisions (all are counted).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Translates RBAC manifests (Role, ClusterRole, RoleBinding, ClusterRoleBinding; YAML,
    /// multi-document or `kind: List`) into Cedar permits, one set per binding: what the
    /// cluster does with RBAC objects, shown so it can be reviewed or applied as CedarPolicy
    /// objects instead. What cannot be expressed (unknown verbs, missing roles) is reported on
    /// stderr.
    ///
    /// Example: bulwark policy from-rbac rbac.yaml -o yaml > cedar-policies.yaml
    FromRbac {
        /// RBAC manifest files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// `cedar` (policy text with a comment per binding) or `yaml` (CedarPolicy manifests).
        #[arg(short = 'o', long, default_value = "cedar")]
        output: String,
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

/// `(group, plural, subresource)` of a resource argument, resolved against the served kinds.
fn resolve(resource: &str) -> anyhow::Result<(String, String, Option<String>)> {
    let (resource, subresource) = match resource.split_once('/') {
        Some((r, s)) => (r, Some(s.to_owned())),
        None => (resource, None),
    };
    let (name, group) = match resource.split_once('.') {
        Some((n, g)) => (n, Some(g)),
        None => (resource, None),
    };
    let def = bulwark_apiserver::registry::builtin().iter().find(|d| {
        (d.plural() == name || d.singular() == name || d.short_names().any(|s| s == name))
            && group.is_none_or(|g| g == d.group())
    });
    match def {
        Some(def) => Ok((def.group().to_owned(), def.plural().to_owned(), subresource)),
        None => bail!(
            "unknown resource {resource:?}: give plural.group (e.g. widgets.example.com) for kinds this binary does not serve"
        ),
    }
}

async fn explain(
    kubeconfig: &std::path::Path,
    user: &str,
    groups: &[String],
    verb: &str,
    resource: &str,
    name: Option<&str>,
    namespace: Option<&str>,
) -> anyhow::Result<()> {
    let mut all_groups = groups.to_vec();
    if !all_groups.iter().any(|g| g == "system:authenticated") {
        all_groups.push("system:authenticated".into());
    }
    let (attributes, asked) = if resource.starts_with('/') {
        (
            serde_json::json!({"nonResourceAttributes": {"path": resource, "verb": verb}}),
            format!("{verb} {resource}"),
        )
    } else {
        let (group, plural, subresource) = resolve(resource)?;
        let shown = format!(
            "{plural}{}{}",
            if group.is_empty() {
                String::new()
            } else {
                format!(".{group}")
            },
            subresource
                .as_deref()
                .map(|s| format!("/{s}"))
                .unwrap_or_default()
        );
        let mut attrs = serde_json::json!({"verb": verb, "group": group, "resource": plural});
        for (key, value) in [
            ("subresource", subresource.as_deref()),
            ("namespace", namespace),
            ("name", name),
        ] {
            if let (Some(v), Some(map)) = (value, attrs.as_object_mut()) {
                map.insert(key.to_owned(), serde_json::Value::String(v.to_owned()));
            }
        }
        let place = match (name, namespace) {
            (Some(n), Some(ns)) => format!(" {n:?} in namespace {ns}"),
            (Some(n), None) => format!(" {n:?}"),
            (None, Some(ns)) => format!(" in namespace {ns}"),
            (None, None) => " (cluster-wide)".to_owned(),
        };
        (
            serde_json::json!({"resourceAttributes": attrs}),
            format!("{verb} {shown}{place}"),
        )
    };
    let mut spec = attributes;
    if let Some(map) = spec.as_object_mut() {
        map.insert("user".into(), serde_json::Value::String(user.to_owned()));
        map.insert("groups".into(), serde_json::json!(all_groups));
    }
    let review = serde_json::json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": spec,
    });
    let credentials = bulwark_client::Credentials::from_kubeconfig(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let client = bulwark_client::ApiClient::builder(&credentials)
        .connect()
        .await
        .with_context(|| format!("connecting to {}", credentials.server))?;
    let response = client
        .post_json(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            &review,
        )
        .await?;
    let body = response.json();
    if !response.status.is_success() {
        bail!(
            "the cluster refused the review ({}): {}",
            response.status,
            body.get("message")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
        );
    }
    let status = body.get("status").cloned().unwrap_or_default();
    let field = |name: &str| status.get(name).cloned().unwrap_or_default();
    let allowed = field("allowed").as_bool().unwrap_or(false);
    println!("request:  {asked}");
    println!("as:       {user} (groups: {})", all_groups.join(", "));
    println!("decision: {}", if allowed { "allowed" } else { "denied" });
    if let Some(reason) = field("reason").as_str().filter(|r| !r.is_empty()) {
        println!("why:      {reason}");
    }
    if let Some(error) = field("evaluationError").as_str().filter(|e| !e.is_empty()) {
        println!("note:     {error}");
    }
    Ok(())
}

/// The CedarPolicy object name for a translated binding (a DNS-1123 subdomain).
fn object_name(source: &str) -> String {
    let mut out: String = source
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    out.trim_matches(['-', '.']).chars().take(253).collect()
}

fn from_rbac(files: &[PathBuf], output: &str) -> anyhow::Result<()> {
    use serde::Deserialize as _;
    let mut set = bulwark_policies::rbac::RbacSet::with_builtin_roles();
    let mut objects = 0;
    for file in files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        for document in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = serde_json::Value::deserialize(document)
                .with_context(|| format!("parsing {}", file.display()))?;
            let items = match value.get("kind").and_then(serde_json::Value::as_str) {
                Some("List") => value
                    .get("items")
                    .and_then(serde_json::Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
                _ => vec![value],
            };
            for item in items {
                if set
                    .add(&item)
                    .with_context(|| format!("in {}", file.display()))?
                {
                    objects += 1;
                }
            }
        }
    }
    if objects == 0 {
        bail!("no RBAC objects (Role, ClusterRole, RoleBinding, ClusterRoleBinding) found");
    }
    for translation in set.translate() {
        for warning in &translation.warnings {
            eprintln!("{}: {warning}", translation.name);
        }
        match output {
            "cedar" => {
                println!(
                    "// {}{}",
                    translation.name,
                    translation
                        .namespace
                        .as_deref()
                        .map(|ns| format!(" (confined to namespace {ns})"))
                        .unwrap_or_default()
                );
                print!("{}", translation.text);
            }
            "yaml" => {
                if translation.text.is_empty() {
                    continue;
                }
                let mut spec =
                    serde_json::json!({"kind": "Authorization", "policies": translation.text});
                if let (Some(ns), Some(map)) = (&translation.namespace, spec.as_object_mut()) {
                    map.insert("namespace".into(), serde_json::Value::String(ns.clone()));
                }
                let manifest = serde_json::json!({
                    "apiVersion": "policy.bulwark.dev/v1",
                    "kind": "CedarPolicy",
                    "metadata": {"name": object_name(&translation.name), "annotations": {"bulwark.dev/translated-from": translation.name}},
                    "spec": spec,
                });
                println!("---\n{}", serde_yaml_ng::to_string(&manifest)?);
            }
            other => bail!("unknown output {other:?}: cedar or yaml"),
        }
    }
    Ok(())
}

/// A non-empty string field.
fn text(v: Option<&serde_json::Value>) -> Option<&str> {
    v.and_then(serde_json::Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Lets each request's decision through once: a streamed watch is recorded when its stream
/// starts and again, with the same decision, when it ends. Only watches whose start was seen
/// and whose end was not yet are remembered.
#[derive(Default)]
struct OncePerRequest {
    open_watches: std::collections::HashSet<String>,
}

impl OncePerRequest {
    /// Whether `event` is the first record of its request's decision.
    fn first(&mut self, event: &serde_json::Value) -> bool {
        let id = text(event.get("auditID")).unwrap_or_default();
        match text(event.get("stage")) {
            Some("ResponseStarted") => {
                self.open_watches.insert(id.to_owned());
                true
            }
            Some("ResponseComplete") => !self.open_watches.remove(id),
            _ => true,
        }
    }
}

/// One recorded decision, decided again.
struct Replayed {
    when: String,
    who: String,
    what: String,
    recorded: bool,
    now: bulwark_policies::Decision,
}

/// The request an audit event records, decided by `engine`.
fn replay_event(
    engine: &bulwark_policies::PolicyEngine,
    event: &serde_json::Value,
) -> Option<Replayed> {
    use serde_json::Value;
    let notes = event.get("annotations")?;
    let recorded = notes.get("authorization.k8s.io/decision")?.as_str()? == "allow";
    let user = event
        .get("impersonatedUser")
        .filter(|u| !u.is_null())
        .or_else(|| event.get("user"))?;
    let name = user.get("username")?.as_str()?.to_owned();
    let groups: Vec<String> = user
        .get("groups")
        .and_then(Value::as_array)
        .map(|g| {
            g.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let verb = event.get("verb")?.as_str()?;
    let labels: Vec<(String, String)> = notes
        .get("authorization.bulwark.dev/namespace-labels")
        .and_then(Value::as_str)
        .and_then(|t| serde_json::from_str::<serde_json::Map<String, Value>>(t).ok())
        .map(|m| {
            m.into_iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let object = event.get("objectRef").filter(|o| !o.is_null());
    let uri = event.get("requestURI")?.as_str()?;
    let path = uri.split('?').next().unwrap_or(uri);
    let (target, what) = match object {
        Some(o) => {
            let group = o
                .get("apiGroup")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let resource = o.get("resource")?.as_str()?;
            let subresource = text(o.get("subresource"));
            let object_name = text(o.get("name"));
            let namespace = bulwark_apiserver::authz::request_namespace(
                group,
                resource,
                text(o.get("namespace")),
                object_name,
            );
            let what = format!(
                "{verb} {resource}{}{}{}{}",
                if group.is_empty() {
                    String::new()
                } else {
                    format!(".{group}")
                },
                subresource.map(|s| format!("/{s}")).unwrap_or_default(),
                object_name.map(|n| format!(" {n}")).unwrap_or_default(),
                namespace.map(|n| format!(" in {n}")).unwrap_or_default(),
            );
            (
                bulwark_policies::Target::Resource {
                    api_group: group,
                    resource,
                    subresource,
                    namespace,
                    name: object_name,
                    namespace_labels: &labels,
                },
                what,
            )
        }
        None => (
            bulwark_policies::Target::NonResource { path },
            format!("{verb} {path}"),
        ),
    };
    let source_ip = event
        .get("sourceIPs")
        .and_then(|s| s.get(0))
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    let now = engine.decide(&bulwark_policies::AccessRequest {
        user: &name,
        groups: &groups,
        auth_method: text(notes.get("authentication.bulwark.dev/method")).unwrap_or("x509"),
        cert_fingerprint: None,
        source_ip,
        verb,
        target,
    });
    Some(Replayed {
        when: text(event.get("stageTimestamp"))
            .unwrap_or_default()
            .to_owned(),
        who: name,
        what,
        recorded,
        now,
    })
}

fn replay(files: &[PathBuf], dir: &std::path::Path, limit: usize) -> anyhow::Result<()> {
    let mut sources = Vec::new();
    for file in files {
        for source in bulwark_admission::policy_test::load_policy_file(file)? {
            match source.compiled.kind {
                bulwark_policies::PolicyKind::Authorization => {
                    sources.push(std::sync::Arc::new(source.compiled));
                }
                bulwark_policies::PolicyKind::Admission => eprintln!(
                    "note: {} holds admission policies; replay decides authorization only",
                    source.compiled.name
                ),
            }
        }
    }
    let (engine, skipped) = bulwark_policies::PolicyEngine::new(&sources)?;
    if let Some(s) = skipped.into_iter().next() {
        bail!("{}: {}", s.name, s.reason);
    }
    let (mut decisions, mut to_deny, mut to_allow) = (0u64, 0u64, 0u64);
    let mut shown = 0;
    let mut once = OncePerRequest::default();
    for segment in bulwark_audit::writer::segments(dir)? {
        let text = std::fs::read_to_string(&segment)
            .with_context(|| format!("reading {}", segment.display()))?;
        for line in text.lines() {
            let Ok(record) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let Some(replayed) = record
                .get("event")
                .filter(|e| once.first(e))
                .and_then(|e| replay_event(&engine, e))
            else {
                continue;
            };
            decisions += 1;
            if replayed.now.allowed == replayed.recorded {
                continue;
            }
            if replayed.recorded {
                to_deny += 1;
            } else {
                to_allow += 1;
            }
            if shown < limit {
                shown += 1;
                println!(
                    "{} {} {}: {} -> {} ({})",
                    replayed.when,
                    replayed.who,
                    replayed.what,
                    if replayed.recorded {
                        "allowed"
                    } else {
                        "denied"
                    },
                    if replayed.now.allowed {
                        "ALLOWED"
                    } else {
                        "DENIED"
                    },
                    if replayed.now.policies.is_empty() {
                        replayed.now.reasons.join("; ")
                    } else {
                        replayed.now.policies.join(", ")
                    }
                );
            }
        }
    }
    println!(
        "replayed {decisions} recorded decisions: {} would change ({to_deny} allowed -> denied, {to_allow} denied -> allowed)",
        to_deny + to_allow
    );
    Ok(())
}

pub(crate) async fn run(command: &PolicyCommand) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Replay {
            files,
            audit_log,
            limit,
        } => replay(files, audit_log, *limit),
        PolicyCommand::FromRbac { files, output } => from_rbac(files, output),
        PolicyCommand::Explain {
            kubeconfig,
            user,
            groups,
            verb,
            resource,
            name,
            namespace,
        } => {
            explain(
                kubeconfig,
                user,
                groups,
                verb,
                resource,
                name.as_deref(),
                namespace.as_deref(),
            )
            .await
        }
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
            let model = bulwark_apiserver::registry::admission_model()
                .context("modelling the served kinds for admission")?;
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
                    let report = bulwark_admission::policy_test::run_file(&file, &model)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watch_is_one_decision() {
        let event = |id: &str, stage: &str| serde_json::json!({"auditID": id, "stage": stage});
        let mut once = OncePerRequest::default();
        let seen: Vec<bool> = [
            event("w", "ResponseStarted"),
            event("g", "ResponseComplete"),
            event("w", "ResponseComplete"),
            event("r", "RequestReceived"),
            event("r", "ResponseComplete"),
            event("w2", "ResponseComplete"),
        ]
        .iter()
        .map(|e| once.first(e))
        .collect();
        assert_eq!(seen, [true, true, false, true, true, true]);
        assert!(once.open_watches.is_empty());
    }
}
