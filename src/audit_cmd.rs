//! `bulwark audit …`: tools for compliance auditors.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use bulwark_audit::index::Decision;

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
    /// Searches the audit log: who did what, when, and was it allowed? Asks a running
    /// cluster (`--kubeconfig`) or reads a log directory (`--dir`). Events are printed
    /// oldest first.
    ///
    /// Example: bulwark audit query --kubeconfig auditor.kubeconfig --user alice --decision deny --since 24h
    Query(QueryArgs),
}

/// `-o` of `bulwark audit query`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum QueryOutput {
    /// One line per event.
    Table,
    /// An `EventList` of the logged `audit.k8s.io/v1` Events, one event per line.
    Json,
}

/// `--decision` of `bulwark audit query`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum DecisionArg {
    /// Authorized and admitted.
    Allow,
    /// Refused by authentication, authorization or admission.
    Deny,
}

/// The filters of `bulwark audit query`.
#[derive(clap::Args)]
pub(crate) struct QueryArgs {
    /// The cluster to ask (its `audit.bulwark.dev/v1` API); the user needs `list` on
    /// `events.audit.bulwark.dev` (the `bulwark:auditors` group has it).
    #[arg(long, required_unless_present = "dir", conflicts_with = "dir")]
    kubeconfig: Option<PathBuf>,
    /// Search a log directory (a copy is fine) instead of a running cluster.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Requests made by this user, or impersonating it.
    #[arg(long)]
    user: Option<String>,
    /// Requests with this verb (get, list, watch, create, update, patch, delete, …).
    #[arg(long)]
    verb: Option<String>,
    /// Requests for this resource (`pods`, with any subresource) or subresource
    /// (`pods/exec`).
    #[arg(long)]
    resource: Option<String>,
    /// Requests in this namespace.
    #[arg(long, short = 'n')]
    namespace: Option<String>,
    /// Only allowed, or only refused, requests.
    #[arg(long, value_enum)]
    decision: Option<DecisionArg>,
    /// From this time on: RFC 3339 (2026-11-21T09:00:00Z) or an age (30s, 15m, 2h, 7d).
    #[arg(long)]
    since: Option<String>,
    /// Before this time (same forms as --since).
    #[arg(long)]
    until: Option<String>,
    /// Print at most this many events (the oldest matching first); 0 = all.
    #[arg(long, default_value_t = 0)]
    limit: usize,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    output: QueryOutput,
}

/// Events fetched per request.
const PAGE: usize = 1000;

/// A time argument: RFC 3339, or an age before now.
fn time_arg(text: &str, now: time::OffsetDateTime) -> anyhow::Result<time::OffsetDateTime> {
    let rfc3339 = &time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(text, rfc3339) {
        return Ok(t);
    }
    let age = crate::duration::parse(text)
        .with_context(|| format!("{text:?} is neither an RFC 3339 time nor an age like 15m"))?;
    time::Duration::try_from(age)
        .ok()
        .and_then(|age| now.checked_sub(age))
        .with_context(|| format!("{text:?}: that age reaches before any representable time"))
}

/// Where events come from: a cluster's API or a log directory.
enum Source {
    Cluster {
        client: bulwark_client::ApiClient,
        path: String,
        params: Vec<(&'static str, String)>,
    },
    Directory {
        reader: Box<bulwark_audit::AuditReader>,
        query: bulwark_audit::Query,
    },
}

/// One page: events, continue token, matches after it.
type Fetched = (Vec<serde_json::Value>, Option<String>, u64);

impl Source {
    async fn page(&self, after: Option<&str>, limit: usize) -> anyhow::Result<Fetched> {
        match self {
            Self::Cluster {
                client,
                path,
                params,
            } => {
                let mut url = form_urlencoded::Serializer::new(String::new());
                for (k, v) in params {
                    url.append_pair(k, v);
                }
                url.append_pair("limit", &limit.to_string());
                if let Some(token) = after {
                    url.append_pair("continue", token);
                }
                let response = client.get(&format!("{path}?{}", url.finish())).await?;
                let mut body = response.json();
                if !response.status.is_success() {
                    bail!(
                        "{} ({})",
                        body.pointer("/message")
                            .and_then(serde_json::Value::as_str)
                            .unwrap_or("the query failed"),
                        response.status
                    );
                }
                let items = match body.get_mut("items").map(serde_json::Value::take) {
                    Some(serde_json::Value::Array(items)) => items,
                    _ => Vec::new(),
                };
                let next = body
                    .pointer("/metadata/continue")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned);
                let remaining = body
                    .pointer("/metadata/remainingItemCount")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(0);
                Ok((items, next, remaining))
            }
            Self::Directory { reader, query } => {
                let page = reader.query(&bulwark_audit::Query {
                    after: after.map(str::to_owned),
                    limit,
                    ..query.clone()
                })?;
                let events = page
                    .events
                    .iter()
                    .map(|raw| serde_json::from_str(raw.get()))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((events, page.next, page.remaining))
            }
        }
    }
}

/// Pads each cell to its column's width.
fn print_rows(rows: &[Vec<String>], widths: &mut [usize]) -> std::io::Result<()> {
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, (w, cell)) in widths.iter().zip(row).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}   "));
            }
        }
        writeln!(std::io::stdout(), "{}", line.trim_end())?;
    }
    Ok(())
}

/// Runs a query; output cut short by the reader (`| head`) is not an error.
async fn query(args: &QueryArgs) -> anyhow::Result<()> {
    match print_query(args).await {
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(())
        }
        other => other,
    }
}

async fn print_query(args: &QueryArgs) -> anyhow::Result<()> {
    let now = time::OffsetDateTime::now_utc();
    let since = args
        .since
        .as_deref()
        .map(|t| time_arg(t, now))
        .transpose()?;
    let until = args
        .until
        .as_deref()
        .map(|t| time_arg(t, now))
        .transpose()?;
    let decision = args.decision.map(|d| match d {
        DecisionArg::Allow => Decision::Allow,
        DecisionArg::Deny => Decision::Deny,
    });
    let source = match (&args.kubeconfig, &args.dir) {
        (_, Some(dir)) => {
            let micros =
                |t: time::OffsetDateTime| i64::try_from(t.unix_timestamp_nanos() / 1000).ok();
            Source::Directory {
                reader: Box::new(bulwark_audit::AuditReader::offline(dir.clone())),
                query: bulwark_audit::Query {
                    user: args.user.clone(),
                    verb: args.verb.clone(),
                    resource: args.resource.clone(),
                    namespace: args.namespace.clone(),
                    decision,
                    since: since.and_then(micros),
                    until: until.and_then(micros),
                    limit: 1,
                    after: None,
                },
            }
        }
        (Some(kubeconfig), None) => {
            let credentials = bulwark_client::Credentials::from_kubeconfig(kubeconfig)
                .with_context(|| format!("reading {}", kubeconfig.display()))?;
            let client = bulwark_client::ApiClient::builder(&credentials)
                .connect()
                .await
                .with_context(|| format!("connecting to {}", credentials.server))?;
            let rfc3339 = |t: time::OffsetDateTime| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            };
            let mut params = Vec::new();
            for (key, value) in [
                ("user", args.user.clone()),
                ("verb", args.verb.clone()),
                ("resource", args.resource.clone()),
                (
                    "decision",
                    decision.map(|d| match d {
                        Decision::Allow => "allow".to_owned(),
                        Decision::Deny | Decision::None => "deny".to_owned(),
                    }),
                ),
                ("since", since.map(rfc3339)),
                ("until", until.map(rfc3339)),
            ] {
                if let Some(v) = value {
                    params.push((key, v));
                }
            }
            let path = match &args.namespace {
                Some(ns) => format!("/apis/audit.bulwark.dev/v1/namespaces/{ns}/events"),
                None => "/apis/audit.bulwark.dev/v1/events".to_owned(),
            };
            Source::Cluster {
                client,
                path,
                params,
            }
        }
        (None, None) => bail!("give --kubeconfig (a running cluster) or --dir (a log directory)"),
    };

    let mut widths = vec![0; bulwark_apiserver::audit::query::COLUMNS.len()];
    if matches!(args.output, QueryOutput::Table) {
        let header: Vec<String> = bulwark_apiserver::audit::query::COLUMNS
            .iter()
            .map(|c| c.to_uppercase())
            .collect();
        // Wide enough for typical values, so pages line up.
        for (w, min) in widths.iter_mut().zip([27, 24, 8, 20, 12, 16, 4, 8, 0]) {
            *w = min;
        }
        print_rows(&[header], &mut widths)?;
    } else {
        writeln!(
            std::io::stdout(),
            "{{\"kind\":\"EventList\",\"apiVersion\":\"audit.bulwark.dev/v1\",\"items\":["
        )?;
    }
    let (mut printed, mut after) = (0usize, None::<String>);
    let more = loop {
        let want = match args.limit {
            0 => PAGE,
            n => n.saturating_sub(printed).min(PAGE),
        };
        let (events, next, remaining) = source.page(after.as_deref(), want).await?;
        match args.output {
            QueryOutput::Table => {
                let rows: Vec<Vec<String>> = events
                    .iter()
                    .map(|e| {
                        bulwark_apiserver::audit::query::cells(e)
                            .into_iter()
                            .map(|c| match c {
                                serde_json::Value::String(s) => s,
                                other => other.to_string(),
                            })
                            .collect()
                    })
                    .collect();
                print_rows(&rows, &mut widths)?;
            }
            QueryOutput::Json => {
                for (i, event) in events.iter().enumerate() {
                    let comma = if printed + i == 0 { "" } else { "," };
                    writeln!(
                        std::io::stdout(),
                        "{comma}{}",
                        serde_json::to_string(event)?
                    )?;
                }
            }
        }
        printed += events.len();
        match next {
            Some(token) if args.limit == 0 || printed < args.limit => after = Some(token),
            _ => break remaining,
        }
    };
    if matches!(args.output, QueryOutput::Json) {
        writeln!(std::io::stdout(), "]}}")?;
    } else if more > 0 {
        eprintln!("{printed} events (and {more} more: raise --limit)");
    } else {
        eprintln!("{printed} events");
    }
    Ok(())
}

pub(crate) async fn run(command: &AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Query(args) => query(args).await,
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
