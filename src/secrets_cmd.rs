//! `bulwark secrets …`: encryption at rest for operators and auditors, through the cluster's
//! `encryption.bulwark.dev/v1` API (authorized by Cedar, audited).

use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

const API: &str = "/apis/encryption.bulwark.dev/v1";

#[derive(clap::Subcommand)]
pub(crate) enum SecretsCommand {
    /// Shows the providers and their health, every key with its age, primary flag and the
    /// values it encrypts, and per resource the values encrypted and still in plaintext.
    ///
    /// Example: bulwark secrets status --kubeconfig admin.kubeconfig
    Status(CommonArgs),
    /// Rotates the key encryption key online: a new primary key, then every encrypted value
    /// rewritten under it in batches, with a progress bar. Resumable: run it again after a
    /// crash of the server or of this command and it continues. Old local keys are retired
    /// once nothing, not even the retained history, uses them.
    ///
    /// Example: bulwark secrets rotate --kubeconfig admin.kubeconfig
    Rotate {
        #[command(flatten)]
        common: CommonArgs,
        /// Also wait for the old keys' retirement (after the store's history window).
        #[arg(long)]
        wait_for_retirement: bool,
    },
    /// Reads every stored value of the encrypted resources and proves each is ciphertext
    /// that decrypts under a live key. Exits non-zero when a value is in plaintext or does
    /// not decrypt.
    ///
    /// Example: bulwark secrets verify --kubeconfig auditor.kubeconfig
    Verify(CommonArgs),
}

/// Flags every subcommand takes.
#[derive(clap::Args)]
pub(crate) struct CommonArgs {
    /// The cluster to ask.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Print the API object as JSON instead of a summary.
    #[arg(short = 'o', long, value_parser = ["text", "json"], default_value = "text")]
    output: String,
}

async fn client(args: &CommonArgs) -> anyhow::Result<bulwark_client::ApiClient> {
    let credentials = bulwark_client::Credentials::from_kubeconfig(&args.kubeconfig)
        .with_context(|| format!("reading {}", args.kubeconfig.display()))?;
    bulwark_client::ApiClient::builder(&credentials)
        .connect()
        .await
        .with_context(|| format!("connecting to {}", credentials.server))
}

fn refused(what: &str, response: &bulwark_client::ClientResponse) -> anyhow::Error {
    let body = response.json();
    anyhow::anyhow!(
        "{what}: the cluster answered {}: {}",
        response.status,
        body.get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()
    )
}

async fn get(client: &bulwark_client::ApiClient, path: &str, what: &str) -> anyhow::Result<Value> {
    let response = client.get(path).await?;
    if !response.status.is_success() {
        return Err(refused(what, &response));
    }
    Ok(response.json())
}

pub(crate) async fn run(command: &SecretsCommand) -> anyhow::Result<()> {
    match command {
        SecretsCommand::Status(args) => status(args).await,
        SecretsCommand::Rotate {
            common,
            wait_for_retirement,
        } => rotate(common, *wait_for_retirement).await,
        SecretsCommand::Verify(args) => verify(args).await,
    }
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn number(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// "3d", "5h", "12m" since an RFC 3339 time.
fn age(created: &str) -> String {
    let Ok(t) =
        time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339)
    else {
        return "?".into();
    };
    let secs = (time::OffsetDateTime::now_utc() - t).whole_seconds().max(0);
    match secs {
        s if s >= 86_400 => format!("{}d", s / 86_400),
        s if s >= 3_600 => format!("{}h", s / 3_600),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

async fn status(args: &CommonArgs) -> anyhow::Result<()> {
    let client = client(args).await?;
    let body = get(
        &client,
        &format!("{API}/encryptionstatuses/cluster"),
        "encryption status",
    )
    .await?;
    if args.output == "json" {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    let status = body.get("status").cloned().unwrap_or_default();
    println!("configuration: {}", text(&status, "configuration"));
    println!("\nPROVIDER            TYPE    HEALTHY  CURRENT KEY");
    for p in status
        .get("providers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        println!(
            "{:<19} {:<7} {:<8} {}",
            text(p, "name"),
            text(p, "type"),
            if p.get("healthy") == Some(&Value::Bool(true)) {
                "yes"
            } else {
                "NO"
            },
            p.get("keyID").and_then(Value::as_str).unwrap_or("-"),
        );
        if p.get("healthy") != Some(&Value::Bool(true)) {
            println!("    {}", text(p, "message"));
        }
    }
    println!("\nKEY                                PROVIDER        PRIMARY  AGE    OBJECTS  STATE");
    // The status holds every key with its counts: one scan of the store, not two.
    for s in status
        .get("keys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let created = text(s, "created");
        println!(
            "{:<34} {:<15} {:<8} {:<6} {:<8} {}",
            text(s, "keyID"),
            text(s, "provider"),
            if s.get("primary") == Some(&Value::Bool(true)) {
                "yes"
            } else {
                ""
            },
            if created.is_empty() {
                "-".to_owned()
            } else {
                age(created)
            },
            number(s, "objects"),
            if s.get("retired").and_then(Value::as_str).is_some() {
                "retired"
            } else {
                "live"
            },
        );
    }
    println!("\nRESOURCE                  WRITER          ENCRYPTED  PLAINTEXT");
    for r in status
        .get("resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = match text(r, "group") {
            "" => text(r, "resource").to_owned(),
            g => format!("{}.{g}", text(r, "resource")),
        };
        println!(
            "{:<25} {:<15} {:<10} {}",
            name,
            text(r, "writer"),
            number(r, "encrypted"),
            number(r, "plaintext"),
        );
    }
    println!(
        "\n{} values encrypted, {} in plaintext",
        number(&status, "encrypted"),
        number(&status, "plaintext")
    );
    if let Some(r) = status.get("rotation").filter(|r| r.is_object()) {
        println!(
            "last rotation: {} {} ({}/{} rewritten): {}",
            text(r, "name"),
            text(r, "phase"),
            number(r, "rewritten"),
            number(r, "total"),
            text(r, "message")
        );
    }
    Ok(())
}

/// Draws the progress of a rotation on stderr (a bar on a terminal, lines otherwise).
fn progress(record: &Value, tty: bool) {
    let done = number(record, "rewritten");
    let total = number(record, "total").max(done).max(1);
    let width = 30u64;
    let filled = (done * width / total).min(width);
    let bar: String = (0..width)
        .map(|i| if i < filled { '#' } else { '-' })
        .collect();
    let line = format!(
        "[{bar}] {done}/{total} rewritten, pass {}, {}",
        number(record, "passes"),
        text(record, "phase")
    );
    let mut err = std::io::stderr();
    if tty {
        let _ = write!(err, "\r{line}\x1b[K");
    } else {
        let _ = writeln!(err, "{line}");
    }
    let _ = err.flush();
}

async fn rotate(args: &CommonArgs, wait_for_retirement: bool) -> anyhow::Result<()> {
    let client = client(args).await?;
    let response = client
        .post_json(
            &format!("{API}/keyrotations"),
            &serde_json::json!({"apiVersion": "encryption.bulwark.dev/v1", "kind": "KeyRotation"}),
        )
        .await?;
    let mut record = match response.status.as_u16() {
        201 => response.json().get("status").cloned().unwrap_or_default(),
        // One is running (started earlier, by this command before a crash, or by someone
        // else): follow it.
        409 => {
            eprintln!("a rotation is already running; following it");
            get(
                &client,
                &format!("{API}/keyrotations/latest"),
                "the running rotation",
            )
            .await?
            .get("status")
            .cloned()
            .unwrap_or_default()
        }
        _ => return Err(refused("starting the rotation", &response)),
    };
    let name = text(&record, "name").to_owned();
    let tty = std::io::stderr().is_terminal();
    if args.output == "text" {
        eprintln!(
            "rotation {name}: new primary key {}",
            text(&record, "targetKeyId")
        );
    }
    let mut last_report = String::new();
    loop {
        let phase = text(&record, "phase").to_owned();
        if args.output == "text" {
            let report = format!(
                "{}/{}/{phase}",
                number(&record, "rewritten"),
                number(&record, "passes")
            );
            if tty || report != last_report {
                progress(&record, tty);
                last_report = report;
            }
        }
        let finished = match phase.as_str() {
            "Complete" | "Failed" => true,
            "Retiring" => !wait_for_retirement,
            _ => false,
        };
        if finished {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        // The server may be restarting: keep asking until it answers again.
        match get(
            &client,
            &format!("{API}/keyrotations/latest"),
            "rotation progress",
        )
        .await
        {
            Ok(body) => record = body.get("status").cloned().unwrap_or_default(),
            Err(e) => {
                if args.output == "text" {
                    eprintln!("\n{e:#}; retrying");
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
    if tty && args.output == "text" {
        eprintln!();
    }
    if args.output == "json" {
        println!("{}", serde_json::to_string_pretty(&record)?);
    } else {
        println!(
            "rotation {name}: {}: {}",
            text(&record, "phase"),
            text(&record, "message")
        );
    }
    if text(&record, "phase") == "Failed" {
        bail!("the rotation stopped: {}", text(&record, "message"));
    }
    Ok(())
}

async fn verify(args: &CommonArgs) -> anyhow::Result<()> {
    let client = client(args).await?;
    let response = client
        .post_json(
            &format!("{API}/encryptionverifications"),
            &serde_json::json!({"apiVersion": "encryption.bulwark.dev/v1", "kind": "EncryptionVerification"}),
        )
        .await?;
    if !response.status.is_success() {
        return Err(refused("verification", &response));
    }
    let body = response.json();
    let status = body.get("status").cloned().unwrap_or_default();
    if args.output == "json" {
        println!("{}", serde_json::to_string_pretty(&body)?);
    } else {
        for r in status
            .get("resources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            println!(
                "{}: {} checked, {} ciphertext under a live key, {} plaintext, {} unreadable",
                text(r, "resource"),
                number(r, "checked"),
                number(r, "encrypted"),
                number(r, "plaintext"),
                number(r, "failed"),
            );
            for key in r
                .get("plaintextKeys")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                println!("  plaintext: {}", key.as_str().unwrap_or_default());
            }
            for f in r
                .get("failures")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                println!("  unreadable: {}: {}", text(f, "key"), text(f, "reason"));
            }
        }
    }
    if status.get("passed") != Some(&Value::Bool(true)) {
        bail!(
            "verification failed: {} values in plaintext, {} unreadable",
            number(&status, "plaintext"),
            number(&status, "failed")
        );
    }
    if args.output == "text" {
        println!("verified: every value is ciphertext under a live key");
    }
    Ok(())
}
