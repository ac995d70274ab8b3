//! Crash test: a child process writes continuously and reports every acknowledged write; it is
//! killed with SIGKILL at random points over several rounds, and after each kill the reopened
//! store must hold every acknowledged write and be internally consistent.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation must abort the test"
)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bulwark_store::{EmbeddedEngine, ListOptions, Revision, Store, StoreOptions};
use rand::Rng;

const CHILD_ENV: &str = "BULWARK_CRASH_CHILD_DB";
const ROUND_ENV: &str = "BULWARK_CRASH_CHILD_ROUND";
const WRITERS: usize = 8;
const ROUNDS: usize = 5;

fn payload(key: &str) -> String {
    format!("{key}|{}", "x".repeat(300))
}

/// The child: writes until killed. Every line on stdout is one acknowledged (durable) write:
/// `C key revision` for creates, `U key revision value` for compare-and-swap updates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of crash_recovery_after_sigkill (spawned with --ignored)"]
async fn crash_child_writer() {
    let path = std::env::var(CHILD_ENV).expect("run by crash_recovery_after_sigkill");
    let round = std::env::var(ROUND_ENV).unwrap();
    let store = Store::open(
        EmbeddedEngine::open(path).unwrap(),
        StoreOptions::without_compaction(),
    )
    .await
    .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let printer = std::thread::spawn(move || {
        let mut out = std::io::stdout().lock();
        for line in rx {
            writeln!(out, "{line}").unwrap();
            out.flush().unwrap();
        }
    });
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let store = store.clone();
        let tx = tx.clone();
        let round = round.clone();
        tasks.spawn(async move {
            let counter = format!("crash/r{round}/{w}/counter");
            let mut at = store.create(&counter, "0").await.unwrap().mod_revision;
            for n in 1u64.. {
                let key = format!("crash/r{round}/{w}/{n:08}");
                let kv = store.create(&key, payload(&key)).await.unwrap();
                tx.send(format!("C {key} {}", kv.mod_revision)).unwrap();
                if n % 4 == 0 {
                    let kv = store
                        .update(&counter, n.to_string(), Some(at))
                        .await
                        .unwrap();
                    at = kv.mod_revision;
                    tx.send(format!("U {counter} {} {n}", kv.mod_revision))
                        .unwrap();
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    drop(tx);
    printer.join().unwrap();
}

#[derive(Default)]
struct Acked {
    creates: BTreeMap<String, Revision>,
    /// Highest acknowledged counter value per counter key.
    counters: BTreeMap<String, (Revision, u64)>,
}

fn run_child_and_kill(db: &Path, round: usize, kill_after: Duration, acked: &mut Acked) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child_writer",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, db)
        .env(ROUND_ENV, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Wait until the child is writing, then let it run a random while and kill it.
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("child acknowledged nothing");
    std::thread::sleep(kill_after);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap();
    for line in std::iter::once(first).chain(rx.try_iter()) {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["C", key, rev] => {
                acked.creates.insert(key.to_string(), rev.parse().unwrap());
            }
            ["U", key, rev, n] => {
                let entry = (rev.parse().unwrap(), n.parse().unwrap());
                let slot = acked.counters.entry(key.to_string()).or_insert(entry);
                *slot = (*slot).max(entry);
            }
            // A line torn by the kill was never fully reported, so it is not an ack.
            _ => {}
        }
    }
}

async fn verify(db: &Path, acked: &Acked) {
    let store = Store::open(
        EmbeddedEngine::open(db).unwrap(),
        StoreOptions::without_compaction(),
    )
    .await
    .unwrap();
    for (key, rev) in &acked.creates {
        let kv = store
            .get(key)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged write {key} at {rev} is lost"));
        assert_eq!(kv.mod_revision, *rev, "{key}");
        assert_eq!(kv.value, payload(key), "{key}");
    }
    for (key, (rev, n)) in &acked.counters {
        let kv = store.get(key).await.unwrap().expect("counter lost");
        let value: u64 = std::str::from_utf8(&kv.value).unwrap().parse().unwrap();
        assert!(
            kv.mod_revision >= *rev && value >= *n,
            "{key}: acked {n}@{rev}, found {value}@{}",
            kv.mod_revision
        );
    }
    // Consistency: the change log holds every revision exactly once, in order, and agrees with
    // what a list shows.
    let current = store.current_revision().await.unwrap();
    let mut latest = BTreeMap::new();
    let mut watch = store.watch("", Revision::ZERO).await.unwrap();
    let mut expected = 1;
    while expected <= current.get() {
        let event = tokio::time::timeout(Duration::from_secs(30), watch.next())
            .await
            .expect("log replay stalled")
            .unwrap();
        assert_eq!(
            event.revision().get(),
            expected,
            "gap or reordering in the change log"
        );
        latest.insert(event.kv.key.clone(), event.kv.clone());
        expected += 1;
    }
    let listed = store.list("", ListOptions::default()).await.unwrap();
    assert_eq!(listed.revision, current);
    assert_eq!(listed.items.len(), latest.len());
    for kv in &listed.items {
        assert_eq!(
            latest.get(&kv.key),
            Some(kv),
            "list and log disagree on {}",
            kv.key
        );
    }
    drop(watch);
    // Must release the file: the next round's child opens it.
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_recovery_after_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.redb");
    let mut acked = Acked::default();
    let mut rng = rand::rng();
    for round in 0..ROUNDS {
        let kill_after = Duration::from_millis(rng.random_range(50..600));
        run_child_and_kill(&db, round, kill_after, &mut acked);
        verify(&db, &acked).await;
    }
    assert!(
        acked.creates.len() > ROUNDS * WRITERS,
        "the child wrote too little to test anything"
    );
    eprintln!(
        "{} rounds, {} acknowledged creates and {} counters verified",
        ROUNDS,
        acked.creates.len(),
        acked.counters.len()
    );
}
