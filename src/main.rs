//! `bulwark`: one binary for every role of a Bulwark cluster. This file only parses flags and
//! wires crates together; the logic lives in the workspace crates.

mod audit_cmd;
mod duration;
mod encryption_setup;
mod kubeconfig_cmd;
mod limits_args;
mod policy_cmd;
mod posture_cmd;
mod posture_setup;
mod secrets_cmd;
mod server_cmd;
mod store_cmd;

use std::path::PathBuf;

/// mimalloc instead of the system allocator: the server allocates and frees small objects on
/// every request, often on different threads (an audit event is built on a request's thread
/// and freed on the writer's), where glibc's arenas contend. Measured: the audit log's CPU per
/// event roughly halves (docs/audit.md, Cost).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{Context, bail};
use bulwark_store::Engine;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bulwark",
    version,
    about = "A security-first cluster that speaks the Kubernetes API"
)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, default_value = "pretty", value_parser = ["pretty", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the Kubernetes API server. The first start creates the cluster CA, the serving
    /// certificate, the service-account key and DIR/admin.kubeconfig; later starts reuse them.
    ///
    /// Example: bulwark server --data-dir ./bulwark-data --listen 127.0.0.1:6443 --san api.example.com
    Server(Box<server_cmd::ServerArgs>),
    /// Issues a client certificate for a person and writes a kubeconfig for it (0600).
    ///
    /// Example: bulwark kubeconfig --data-dir ./bulwark-data --user alice --group dev --ttl 24h --out alice.kubeconfig
    Kubeconfig(kubeconfig_cmd::KubeconfigArgs),
    /// Cedar policy tooling: validate, test and explain policies, translate RBAC, print the
    /// schemas.
    #[command(subcommand)]
    Policy(policy_cmd::PolicyCommand),
    /// Encryption at rest of Secrets (and whatever else is configured): status, online key
    /// rotation, verification that nothing is stored in plaintext.
    #[command(subcommand)]
    Secrets(secrets_cmd::SecretsCommand),
    /// Audit log tooling for auditors: search the log, verify its integrity offline.
    #[command(subcommand)]
    Audit(audit_cmd::AuditCommand),
    /// Posture (KSPM): scan manifests offline for CI gates against the workload controls.
    #[command(subcommand)]
    Posture(posture_cmd::PostureCommand),
    /// Storage administration.
    #[command(subcommand)]
    Store(StoreCommand),
}

#[derive(Subcommand)]
pub(crate) enum StoreCommand {
    /// Opens the store (creating the embedded one if needed) and prints its revision,
    /// compaction point and key count. Never prints values.
    ///
    /// Example: bulwark store inspect --data-dir /var/lib/bulwark
    Inspect(StoreArgs),
    /// Lists keys under a prefix with their revisions (never values).
    ///
    /// Example: bulwark store keys --data-dir /var/lib/bulwark /registry/configmaps/
    Keys {
        #[command(flatten)]
        store: StoreArgs,
        /// Key prefix.
        #[arg(default_value = "")]
        prefix: String,
    },
}

#[derive(clap::Args, Clone)]
pub(crate) struct StoreArgs {
    /// Data directory (created 0700 if missing): the embedded store, and the server's PKI,
    /// encryption keys, audit log and admin.kubeconfig.
    #[arg(long, default_value = "./bulwark-data")]
    pub(crate) data_dir: PathBuf,
    /// Storage engine: `embedded` (default) or `fdb:CLUSTER_FILE` (needs the `fdb` build
    /// feature).
    #[arg(long, default_value = "embedded")]
    pub(crate) store: String,
    /// With `--store fdb:…`: this Bulwark cluster's name in FoundationDB. Every key is kept
    /// under `NAME/`, so several Bulwark clusters can share one FoundationDB cluster, and every
    /// API server of one Bulwark cluster must be given the same name. A DNS label (lowercase
    /// letters, digits and `-`, at most 63), so no cluster's keys can fall inside another's.
    /// Default: `bulwark`.
    #[arg(long, value_name = "NAME", value_parser = parse_fdb_prefix)]
    pub(crate) fdb_prefix: Option<String>,
}

/// The FoundationDB subspace name when `--fdb-prefix` is not given.
const DEFAULT_FDB_PREFIX: &str = "bulwark";

/// Checks `--fdb-prefix`: a DNS label. Names without `/` that are followed by one can never be
/// a prefix of one another, so two Bulwark clusters on one FoundationDB cannot read or
/// overwrite each other's keys.
fn parse_fdb_prefix(name: &str) -> Result<String, String> {
    let label = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if label {
        Ok(name.to_owned())
    } else {
        Err(
            "must be a DNS label: 1-63 lowercase letters, digits or '-', \
             starting and ending with a letter or digit"
                .to_owned(),
        )
    }
}

/// File name of the embedded store inside the data directory.
const EMBEDDED_FILE: &str = "store.redb";

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal: a log file or collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// How long an idle thread of the runtime's blocking pool waits for more work before it
/// exits. Tokio's default is 10 s; startup runs its loads, scans and policy compiles on a
/// dozen such threads, and each holds its own allocator pages while it lives, so an idle
/// server carried them all (several MB of its idle RSS). Threads are cheap to start again.
const BLOCKING_THREAD_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(1);

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_keep_alive(BLOCKING_THREAD_KEEP_ALIVE)
        .build()
        .context("starting the async runtime")?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    match cli.command {
        Command::Server(args) => {
            let store = args.storage.clone();
            with_engine(&store, server_cmd::Server(*args)).await
        }
        Command::Kubeconfig(args) => kubeconfig_cmd::run(&args),
        Command::Policy(command) => policy_cmd::run(&command).await,
        Command::Secrets(command) => secrets_cmd::run(&command).await,
        Command::Audit(command) => audit_cmd::run(&command).await,
        Command::Posture(command) => posture_cmd::run(&command).await,
        Command::Store(StoreCommand::Inspect(args)) => with_engine(&args, store_cmd::Inspect).await,
        Command::Store(StoreCommand::Keys { store, prefix }) => {
            with_engine(&store, store_cmd::Keys(prefix)).await
        }
    }
}

/// Work that runs against whichever storage engine `--store` selects.
pub(crate) trait EngineJob {
    /// Runs with the opened engine.
    async fn run<E: Engine>(self, engine: E) -> anyhow::Result<()>;
}

async fn with_engine(args: &StoreArgs, job: impl EngineJob) -> anyhow::Result<()> {
    create_private_dir(&args.data_dir)?;
    if args.store == "embedded" {
        if args.fdb_prefix.is_some() {
            bail!("--fdb-prefix applies only to --store fdb:CLUSTER_FILE");
        }
        let path = args.data_dir.join(EMBEDDED_FILE);
        let engine = bulwark_store::EmbeddedEngine::open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        return job.run(engine).await;
    }
    if let Some(cluster_file) = args.store.strip_prefix("fdb:") {
        let name = args.fdb_prefix.as_deref().unwrap_or(DEFAULT_FDB_PREFIX);
        return run_fdb(cluster_file, name, job).await;
    }
    bail!(
        "unknown --store {:?}: use `embedded` or `fdb:CLUSTER_FILE`",
        args.store
    )
}

#[cfg(feature = "fdb")]
async fn run_fdb(cluster_file: &str, name: &str, job: impl EngineJob) -> anyhow::Result<()> {
    let prefix = format!("{name}/");
    let engine = bulwark_store::FdbEngine::open(cluster_file, prefix.as_bytes())
        .with_context(|| format!("connecting to FoundationDB via {cluster_file}"))?;
    tracing::info!(cluster_file, subspace = %prefix, "storage on FoundationDB");
    job.run(engine).await
}

#[cfg(not(feature = "fdb"))]
async fn run_fdb(_cluster_file: &str, _name: &str, _job: impl EngineJob) -> anyhow::Result<()> {
    bail!("this bulwark was built without FoundationDB support (build with --features fdb)")
}

fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    bulwark_pki::files::ensure_private_dir(dir)
        .with_context(|| format!("preparing {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::parse_fdb_prefix;

    #[test]
    fn fdb_prefix_is_a_dns_label() {
        for good in ["bulwark", "prod-eu-1", "a", &"x".repeat(63)] {
            assert_eq!(parse_fdb_prefix(good).as_deref(), Ok(good), "{good}");
        }
        // A `/` would let one cluster's subspace hold another's (`a/` holds `a/k…`); the rest
        // are not DNS labels.
        for bad in [
            "",
            "a/b",
            "a/",
            "Bulwark",
            "-a",
            "a-",
            "a_b",
            "a b",
            "\u{ff}",
            &"x".repeat(64),
        ] {
            assert!(parse_fdb_prefix(bad).is_err(), "{bad:?} accepted");
        }
    }
}
