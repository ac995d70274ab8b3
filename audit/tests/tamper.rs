//! The log proves its own integrity: every kind of tampering makes `verify` fail and name the
//! place, a crash leaves a log that verifies up to the last complete record, and the writer
//! continues after a crash without hiding the tear.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

#[path = "support/events.rs"]
mod events;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bulwark_audit::chain::{SigningKey, VerifyingKey, public_key_path};
use bulwark_audit::verify::{Report, exported_checkpoint, verify};
use bulwark_audit::writer::segments;
use bulwark_audit::{AuditLog, AuditOptions, AuditSink};
use events::event;

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    key_path: PathBuf,
}

fn options(dir: &Path) -> AuditOptions {
    let mut o = AuditOptions::new(dir.to_owned());
    o.checkpoint_every = 10;
    o.checkpoint_interval = Duration::from_secs(3600);
    o
}

async fn write(f: &Fixture, opts: AuditOptions, n: std::ops::Range<usize>) {
    let log = AuditLog::open(opts, SigningKey::load_or_create(&f.key_path).unwrap()).unwrap();
    for i in n {
        log.record(event(i)).await;
    }
    log.flush().await;
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let key_path = tmp.path().join("pki").join("audit-signing.key");
    Fixture {
        _tmp: tmp,
        dir,
        key_path,
    }
}

fn key(f: &Fixture) -> VerifyingKey {
    VerifyingKey::from_pem(&std::fs::read_to_string(public_key_path(&f.key_path)).unwrap()).unwrap()
}

fn check(f: &Fixture) -> Report {
    verify(
        &f.dir,
        Some(&key(f)),
        exported_checkpoint(&f.dir).as_deref(),
    )
    .unwrap()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn rewrite(path: &Path, lines: &[String]) {
    std::fs::write(
        path,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
}

#[tokio::test]
async fn an_untouched_log_verifies() {
    let f = fixture();
    write(&f, options(&f.dir), 0..45).await;
    let r = check(&f);
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!(
        r.records,
        45 + 5,
        "45 events and a checkpoint every 10 plus the final one"
    );
    assert_eq!(r.checkpoints, 5);
    assert_eq!(r.unsigned_tail, 0);
    // Reopening continues the same chain.
    write(&f, options(&f.dir), 45..50).await;
    let r = check(&f);
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!(r.last_seq, Some(56));
}

#[tokio::test]
async fn tampering_is_found_and_located() {
    type Tamper = fn(&mut Vec<String>);
    let cases: [(&str, Tamper, &str, usize); 4] = [
        (
            "flip a byte",
            |l| l[4] = l[4].replacen("alice", "alicf", 1),
            "was changed",
            6,
        ),
        (
            "delete a line",
            |l| {
                l.remove(6);
            },
            "record 7 is missing",
            7,
        ),
        (
            "swap two lines",
            |l| l.swap(2, 3),
            "removed or reordered",
            3,
        ),
        (
            "insert a line",
            |l| {
                let copy = l[1].clone();
                l.insert(2, copy);
            },
            "reordered or duplicated",
            3,
        ),
    ];
    for (what, tamper, expect, line) in cases {
        let f = fixture();
        write(&f, options(&f.dir), 0..30).await;
        let segment = segments(&f.dir).unwrap()[0].clone();
        let mut content = lines(&segment);
        tamper(&mut content);
        rewrite(&segment, &content);
        let r = check(&f);
        assert!(!r.ok(), "{what}: verified");
        let problem = &r.problems[0];
        assert!(problem.message.contains(expect), "{what}: {problem}");
        assert_eq!(problem.line, line, "{what}: {problem}");
        assert!(
            problem.file.ends_with(segment.file_name().unwrap()),
            "{what}: {problem}"
        );
    }
}

#[tokio::test]
async fn truncation_is_found() {
    // A damaged (truncated) segment that is not the last.
    let f = fixture();
    let mut opts = options(&f.dir);
    opts.max_segment_bytes = 4_000;
    write(&f, opts, 0..40).await;
    let all = segments(&f.dir).unwrap();
    assert!(all.len() >= 3, "{all:?}");
    let bytes = std::fs::read(&all[0]).unwrap();
    std::fs::write(&all[0], &bytes[..bytes.len() - 30]).unwrap();
    let r = check(&f);
    assert!(!r.ok());
    assert!(
        r.problems[0].message.contains("partial line"),
        "{}",
        r.problems[0]
    );

    // Cutting whole records off the end: the exported checkpoint is no longer in the log.
    let f = fixture();
    write(&f, options(&f.dir), 0..25).await;
    let segment = segments(&f.dir).unwrap()[0].clone();
    let content = lines(&segment);
    rewrite(&segment, &content[..content.len() - 4]);
    let r = check(&f);
    assert!(!r.ok());
    assert!(
        r.problems[0].message.contains("cut off the end"),
        "{}",
        r.problems[0]
    );
}

#[tokio::test]
async fn signatures_are_checked() {
    let f = fixture();
    write(&f, options(&f.dir), 0..12).await;
    let other = fixture();
    SigningKey::load_or_create(&other.key_path).unwrap();
    let r = verify(&f.dir, Some(&key(&other)), None).unwrap();
    assert!(
        r.problems[0].message.contains("signature"),
        "{}",
        r.problems[0]
    );
    let r = verify(&f.dir, None, None).unwrap();
    assert!(!r.ok() && r.problems[0].message.contains("no public key"));
    // Forging a checkpoint after rewriting history needs the private key.
    let segment = segments(&f.dir).unwrap()[0].clone();
    let mut content = lines(&segment);
    content.truncate(3);
    rewrite(&segment, &content);
    let r = verify(&f.dir, Some(&key(&f)), None).unwrap();
    assert!(
        r.ok(),
        "a shortened log with no checkpoint cut verifies without the export: {:?}",
        r.problems
    );
    assert_eq!(r.unsigned_tail, 3, "but it says how much is unsigned");
}

#[tokio::test]
async fn a_crash_leaves_a_log_that_verifies_and_the_writer_reports_the_tear() {
    let f = fixture();
    write(&f, options(&f.dir), 0..15).await;
    // A crash mid-write: half a line at the end.
    let segment = segments(&f.dir).unwrap()[0].clone();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .unwrap();
    std::io::Write::write_all(&mut file, br#"{"seq":17,"prev":"abc","event":{"kind":"Ev"#).unwrap();
    drop(file);
    let r = check(&f);
    assert!(r.ok(), "{:?}", r.problems);
    assert!(
        r.warnings.iter().any(|w| w.contains("partial")),
        "{:?}",
        r.warnings
    );
    // The writer continues in a new segment and records the tear.
    write(&f, options(&f.dir), 15..20).await;
    assert_eq!(segments(&f.dir).unwrap().len(), 2);
    let r = check(&f);
    assert!(r.ok(), "{:?}", r.problems);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("torn record") && w.contains("acknowledged")),
        "{:?}",
        r.warnings
    );
}
