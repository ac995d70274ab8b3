//! The webhook sink against a real HTTPS receiver: every event arrives once, in order, in
//! upstream's EventList batches with the latest signed checkpoint (which then proves a cut
//! tail the local log no longer shows); failures are retried; whatever does not arrive is
//! counted and recorded in the log with the records it missed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

#[path = "support/events.rs"]
mod events;
#[path = "support/receiver.rs"]
mod receiver;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use bulwark_audit::chain::{Record, SigningKey, VerifyingKey, public_key_path};
use bulwark_audit::verify::verify;
use bulwark_audit::webhook::{WebhookEndpoint, WebhookOptions};
use bulwark_audit::writer::{checkpoint_path, segments};
use bulwark_audit::{AuditLog, AuditOptions, AuditSink};
use events::event;
use receiver::Receiver;

struct Fixture {
    tmp: tempfile::TempDir,
    dir: PathBuf,
    key_path: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let key_path = tmp.path().join("pki").join("audit-signing.key");
    Fixture { tmp, dir, key_path }
}

/// Fast batching and retries, so a test runs in a second or two.
fn webhook_options(kubeconfig: &Path) -> WebhookOptions {
    let mut o = WebhookOptions::new(WebhookEndpoint::from_kubeconfig(kubeconfig).unwrap());
    o.max_batch = 50;
    o.max_wait = Duration::from_millis(20);
    o.initial_backoff = Duration::from_millis(20);
    o.max_backoff = Duration::from_millis(100);
    o.drop_report_interval = Duration::from_millis(50);
    o
}

fn open(f: &Fixture, webhook: WebhookOptions) -> AuditLog {
    let mut options = AuditOptions::new(f.dir.clone());
    options.checkpoint_every = 100;
    options.webhook = Some(webhook);
    AuditLog::open(options, SigningKey::load_or_create(&f.key_path).unwrap()).unwrap()
}

/// Every record of the log, in order.
fn records(dir: &Path) -> Vec<Record> {
    segments(dir)
        .unwrap()
        .iter()
        .flat_map(|s| {
            std::fs::read_to_string(s)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<Record>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn key(f: &Fixture) -> VerifyingKey {
    VerifyingKey::from_pem(&std::fs::read_to_string(public_key_path(&f.key_path)).unwrap()).unwrap()
}

#[tokio::test]
async fn events_arrive_once_in_order_with_a_checkpoint_that_proves_a_cut_tail() {
    let receiver = Receiver::start().await;
    let f = fixture();
    let kubeconfig = receiver.kubeconfig(f.tmp.path(), Some("s3cret-token"), true);
    let log = open(&f, webhook_options(&kubeconfig));
    for i in 0..1_000 {
        log.record(event(i)).await;
    }
    log.flush().await;
    assert!(log.drain_webhook(Duration::from_secs(20)).await);

    // Every event once, in the log's order, exactly as logged.
    let logged: Vec<serde_json::Value> = records(&f.dir)
        .into_iter()
        .filter_map(|r| r.event)
        .collect();
    assert_eq!(logged.len(), 1_000);
    assert_eq!(receiver.events(), logged);
    {
        let state = receiver.state.lock().unwrap();
        assert!(state.batches.len() >= 20, "batches of at most 50");
        for batch in &state.batches {
            assert_eq!(batch["kind"], "EventList");
            assert_eq!(batch["apiVersion"], "audit.k8s.io/v1");
            assert!(batch["items"].as_array().unwrap().len() <= 50);
        }
        assert!(
            state
                .authorization
                .iter()
                .all(|a| a.as_deref() == Some("Bearer s3cret-token"))
        );
        assert!(
            state.client_certs.iter().all(|c| *c),
            "client certificate presented"
        );
    }
    let stats = log.webhook_stats().unwrap();
    assert_eq!(stats.sent.load(Ordering::Relaxed), 1_000);
    assert_eq!(stats.dropped.load(Ordering::Relaxed), 0);

    // The receiver holds the final checkpoint: the log verifies against it...
    let checkpoint = receiver.last_checkpoint().expect("a checkpoint was sent");
    assert_eq!(
        checkpoint.trim(),
        std::fs::read_to_string(checkpoint_path(&f.dir))
            .unwrap()
            .trim()
    );
    drop(log);
    let report = verify(&f.dir, Some(&key(&f)), Some(&checkpoint)).unwrap();
    assert!(report.ok(), "{:?}", report.problems);

    // ...and when the tail is cut off and the local export removed, only the receiver's copy
    // still shows it.
    let segment = segments(&f.dir).unwrap().pop().unwrap();
    let text = std::fs::read_to_string(&segment).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let kept = lines[..lines.len() - 5].join("\n") + "\n";
    std::fs::write(&segment, kept).unwrap();
    std::fs::remove_file(checkpoint_path(&f.dir)).unwrap();
    let local = verify(&f.dir, Some(&key(&f)), None).unwrap();
    assert!(
        local.ok(),
        "without the receiver's checkpoint the cut is invisible"
    );
    let remote = verify(&f.dir, Some(&key(&f)), Some(&checkpoint)).unwrap();
    assert!(!remote.ok());
    assert!(
        remote.problems[0].message.contains("cut off the end"),
        "{}",
        remote.problems[0]
    );
}

/// Drop records in the log: (count, first seq, last seq) each.
fn drop_records(dir: &Path) -> Vec<(u64, u64, u64, String)> {
    records(dir)
        .into_iter()
        .filter_map(|r| r.event)
        .filter(|e| e["user"]["username"] == "system:bulwark:audit-webhook")
        .map(|e| {
            assert_eq!(e["verb"], "drop");
            let notes = &e["annotations"];
            let count = notes["audit.bulwark.dev/dropped"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            let (first, last) = notes["audit.bulwark.dev/dropped-seq"]
                .as_str()
                .unwrap()
                .split_once('-')
                .unwrap();
            (
                count,
                first.parse().unwrap(),
                last.parse().unwrap(),
                e["responseStatus"]["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Every event in the log either reached the receiver or lies in a recorded drop, and the
/// recorded counts add up to exactly the events that did not arrive.
fn assert_accounted(f: &Fixture, receiver: &Receiver) -> u64 {
    let received: HashSet<String> = receiver
        .events()
        .iter()
        .map(|e| e["auditID"].as_str().unwrap().to_owned())
        .collect();
    let seqs: HashMap<String, u64> = records(&f.dir)
        .into_iter()
        .filter_map(|r| {
            r.event
                .map(|e| (e["auditID"].as_str().unwrap().to_owned(), r.seq))
        })
        .collect();
    let drops = drop_records(&f.dir);
    let missing: Vec<u64> = seqs
        .iter()
        .filter(|(id, _)| !received.contains(*id))
        .map(|(_, seq)| *seq)
        .collect();
    for seq in &missing {
        assert!(
            drops
                .iter()
                .any(|(_, first, last, _)| first <= seq && seq <= last),
            "record {seq} neither arrived nor was recorded as dropped ({drops:?})"
        );
    }
    let counted: u64 = drops.iter().map(|d| d.0).sum();
    assert_eq!(counted, missing.len() as u64, "{drops:?}");
    counted
}

#[tokio::test]
async fn failures_are_retried_and_refused_batches_recorded() {
    let receiver = Receiver::start().await;
    let f = fixture();
    let kubeconfig = receiver.kubeconfig(f.tmp.path(), None, false);
    let log = open(&f, webhook_options(&kubeconfig));

    // Three 503s, then success: retried, nothing lost.
    receiver.fail_next(3, 503);
    for i in 0..10 {
        log.record(event(i)).await;
    }
    log.flush().await;
    assert!(log.drain_webhook(Duration::from_secs(20)).await);
    assert_eq!(receiver.events().len(), 10);
    let stats = log.webhook_stats().unwrap();
    assert_eq!(stats.failures.load(Ordering::Relaxed), 3);
    assert!(
        receiver
            .state
            .lock()
            .unwrap()
            .authorization
            .iter()
            .all(Option::is_none)
    );
    assert!(
        receiver
            .state
            .lock()
            .unwrap()
            .client_certs
            .iter()
            .all(|c| !c)
    );

    // A 400 is not retried: the batch is dropped from the webhook, and the drop recorded in
    // the log (and then sent too).
    receiver.fail_next(1, 400);
    for i in 10..20 {
        log.record(event(i)).await;
    }
    log.flush().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    log.flush().await;
    assert!(log.drain_webhook(Duration::from_secs(20)).await);
    assert_eq!(stats.failures.load(Ordering::Relaxed), 4);
    let drops = drop_records(&f.dir);
    assert_eq!(drops.len(), 1, "{drops:?}");
    assert!(drops[0].3.contains("400"), "{}", drops[0].3);
    let dropped = stats.dropped.load(Ordering::Relaxed);
    assert!(dropped > 0);
    assert_eq!(assert_accounted(&f, &receiver), dropped);
    assert!(
        receiver
            .events()
            .iter()
            .any(|e| e["verb"] == "drop" && e["user"]["username"] == "system:bulwark:audit-webhook"),
        "the receiver learns of its gap"
    );
}

#[tokio::test]
async fn a_full_buffer_drops_new_events_and_records_which() {
    let receiver = Receiver::start().await;
    let f = fixture();
    let kubeconfig = receiver.kubeconfig(f.tmp.path(), None, false);
    let mut options = webhook_options(&kubeconfig);
    options.buffer = 20;
    options.max_batch = 5;
    options.max_attempts = 1_000;
    let log = open(&f, options);

    // The receiver is down (500 to everything) while 200 events are written: the buffer
    // holds 20 and a batch is in flight; the rest cannot wait.
    receiver.fail_next(u64::MAX, 500);
    for i in 0..200 {
        log.record(event(i)).await;
    }
    log.flush().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    receiver.fail_next(0, 500);
    tokio::time::sleep(Duration::from_millis(300)).await;
    log.flush().await;
    assert!(log.drain_webhook(Duration::from_secs(20)).await);
    // The drop records written meanwhile are delivered too.
    log.flush().await;
    assert!(log.drain_webhook(Duration::from_secs(20)).await);

    let stats = log.webhook_stats().unwrap();
    let dropped = stats.dropped.load(Ordering::Relaxed);
    assert!(dropped >= 175, "{dropped}");
    assert_eq!(assert_accounted(&f, &receiver), dropped);
    let drops = drop_records(&f.dir);
    assert!(drops[0].3.contains("buffer"), "{}", drops[0].3);
    // The events kept are the oldest ones, in order.
    let ids: Vec<String> = receiver
        .events()
        .iter()
        .filter(|e| e["verb"] == "get")
        .map(|e| e["auditID"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids[0], "id-0");
    let numbers: Vec<usize> = ids
        .iter()
        .map(|id| id.trim_start_matches("id-").parse().unwrap())
        .collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
}
