//! `bulwark kubeconfig`: onboard a person with a short-lived client certificate.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

#[derive(clap::Args)]
pub(crate) struct KubeconfigArgs {
    /// The server's data directory (holds the cluster CA).
    #[arg(long, default_value = "./bulwark-data")]
    data_dir: PathBuf,
    /// User name (certificate CN).
    #[arg(long)]
    user: String,
    /// Group (a certificate O attribute); repeat for more groups.
    #[arg(long = "group")]
    groups: Vec<String>,
    /// Validity, e.g. 30m, 24h, 7d.
    #[arg(long, default_value = "24h")]
    ttl: String,
    /// Server URL; defaults to the one in DIR/admin.kubeconfig.
    #[arg(long)]
    server: Option<String>,
    /// Where to write the kubeconfig (mode 0600).
    #[arg(long)]
    out: PathBuf,
}

fn parse_ttl(text: &str) -> anyhow::Result<Duration> {
    let ttl = crate::duration::parse(text).context("--ttl")?;
    if ttl.is_zero() || ttl > Duration::from_secs(366 * 86400) {
        bail!("--ttl must be between 1s and 366d");
    }
    Ok(ttl)
}

/// The server URL recorded in the admin kubeconfig.
fn admin_server_url(data_dir: &std::path::Path) -> Option<String> {
    let path = bulwark_pki::bootstrap::admin_kubeconfig_path(data_dir);
    bulwark_pki::kubeconfig::KubeconfigCredentials::read(&path)
        .ok()
        .map(|c| c.server)
}

pub(crate) fn run(args: &KubeconfigArgs) -> anyhow::Result<()> {
    if args.user.is_empty() {
        bail!("--user must not be empty");
    }
    let ttl = parse_ttl(&args.ttl)?;
    let ca = bulwark_pki::bootstrap::load_ca(&args.data_dir)
        .context("loading the cluster CA (has `bulwark server` run with this --data-dir?)")?;
    let server = match &args.server {
        Some(s) => s.clone(),
        None => {
            admin_server_url(&args.data_dir).unwrap_or_else(|| "https://127.0.0.1:6443".to_owned())
        }
    };
    if args.groups.iter().any(|g| g == bulwark_pki::ADMIN_GROUP) {
        tracing::warn!(user = %args.user, "issuing a certificate in the bootstrap admin group: it can do anything");
    }
    let config =
        bulwark_pki::bootstrap::user_kubeconfig(&ca, &server, &args.user, &args.groups, ttl)?;
    bulwark_pki::files::write_private(&args.out, config.expose().as_bytes())
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "wrote {} for user {:?} (groups {:?}), valid for {}",
        args.out.display(),
        args.user,
        args.groups,
        args.ttl
    );
    Ok(())
}
