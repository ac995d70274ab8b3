//! `bulwark`: one binary for every role of a Bulwark cluster. This file only parses flags and
//! wires crates together; the logic lives in the workspace crates.

use std::path::PathBuf;

use anyhow::{Context, bail};
use bulwark_store::{Engine, ListOptions, Store, StoreOptions};
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
    /// Storage administration.
    #[command(subcommand)]
    Store(StoreCommand),
}

#[derive(Subcommand)]
enum StoreCommand {
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

#[derive(clap::Args)]
struct StoreArgs {
    /// Data directory of the embedded store (created 0700 if missing).
    #[arg(long, default_value = "./bulwark-data")]
    data_dir: PathBuf,
    /// Storage engine: `embedded` (default) or `fdb:CLUSTER_FILE` (needs the `fdb` build
    /// feature).
    #[arg(long, default_value = "embedded")]
    store: String,
}

/// File name of the embedded store inside the data directory.
const EMBEDDED_FILE: &str = "store.redb";

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    match cli.command {
        Command::Store(StoreCommand::Inspect(args)) => with_store(&args, Action::Inspect).await,
        Command::Store(StoreCommand::Keys { store, prefix }) => {
            with_store(&store, Action::Keys(prefix)).await
        }
    }
}

enum Action {
    Inspect,
    Keys(String),
}

async fn with_store(args: &StoreArgs, action: Action) -> anyhow::Result<()> {
    if args.store == "embedded" {
        create_private_dir(&args.data_dir)?;
        let path = args.data_dir.join(EMBEDDED_FILE);
        let engine = bulwark_store::EmbeddedEngine::open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        return run(engine, action).await;
    }
    if let Some(cluster_file) = args.store.strip_prefix("fdb:") {
        return run_fdb(cluster_file, action).await;
    }
    bail!(
        "unknown --store {:?}: use `embedded` or `fdb:CLUSTER_FILE`",
        args.store
    )
}

#[cfg(feature = "fdb")]
async fn run_fdb(cluster_file: &str, action: Action) -> anyhow::Result<()> {
    let engine = bulwark_store::FdbEngine::open(cluster_file, b"bulwark/")
        .with_context(|| format!("connecting to FoundationDB via {cluster_file}"))?;
    run(engine, action).await
}

#[cfg(not(feature = "fdb"))]
async fn run_fdb(_cluster_file: &str, _action: Action) -> anyhow::Result<()> {
    bail!("this bulwark was built without FoundationDB support (build with --features fdb)")
}

fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(dir = %dir.display(), mode = format!("{mode:o}"), "data directory is accessible to other users; 0700 is expected");
    }
    Ok(())
}

async fn run<E: Engine>(engine: E, action: Action) -> anyhow::Result<()> {
    let store = Store::open(engine, StoreOptions::without_compaction()).await?;
    match action {
        Action::Inspect => {
            let revision = store.current_revision().await?;
            let compacted = store.compacted_revision().await?;
            let keys = count_keys(&store, "").await?;
            println!("engine:     {}", store.engine().name());
            println!("revision:   {revision}");
            println!("compacted:  {compacted}");
            println!("keys:       {keys}");
        }
        Action::Keys(prefix) => {
            let mut token = None;
            loop {
                let page = store
                    .list(
                        &prefix,
                        ListOptions {
                            limit: 1000,
                            continue_token: token.take(),
                            ..Default::default()
                        },
                    )
                    .await?;
                for kv in &page.items {
                    println!("{}\t{}\t{} bytes", kv.key, kv.mod_revision, kv.value.len());
                }
                match page.continue_token {
                    Some(t) => token = Some(t),
                    None => break,
                }
            }
        }
    }
    store.close().await?;
    Ok(())
}

async fn count_keys<E: Engine>(store: &Store<E>, prefix: &str) -> anyhow::Result<usize> {
    let mut count = 0;
    let mut token = None;
    loop {
        let page = store
            .list(
                prefix,
                ListOptions {
                    limit: 1000,
                    continue_token: token.take(),
                    ..Default::default()
                },
            )
            .await?;
        count += page.items.len();
        match page.continue_token {
            Some(t) => token = Some(t),
            None => return Ok(count),
        }
    }
}
