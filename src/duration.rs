//! Durations on the command line: `90s`, `30m`, `24h`, `7d`.

use std::time::Duration;

use anyhow::{Context, bail};

/// Parses a number with an `s`, `m`, `h` or `d` suffix.
pub(crate) fn parse(text: &str) -> anyhow::Result<Duration> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .with_context(|| format!("invalid duration {text:?}"))?;
    let multiplier = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => bail!("invalid duration {text:?}: use a number with s, m, h or d"),
    };
    n.checked_mul(multiplier)
        .map(Duration::from_secs)
        .with_context(|| format!("duration {text:?} is too long"))
}
