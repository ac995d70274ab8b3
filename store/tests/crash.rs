//! Crash test: a child process writes continuously and reports every acknowledged write; it is
//! killed with SIGKILL at random points over several rounds, and after each kill the reopened
//! store must hold every acknowledged write and be internally consistent. It runs on the
//! embedded engine always, and on FoundationDB when built with `--features fdb` and
//! `FDB_CLUSTER_FILE` names a live cluster (`scripts/fdb-tests`), in a subspace of its own.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation must abort the test"
)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bulwark_store::{EmbeddedEngine, Engine, ListOptions, Revision, Store, StoreOptions};
use rand::Rng;

const CHILD_ENV: &str = "BULWARK_CRASH_CHILD_DB";
const ROUND_ENV: &str = "BULWARK_CRASH_CHILD_ROUND";
const WRITERS: usize = 8;
const ROUNDS: usize = 5;

fn payload(key: &str) -> String {
    format!("{key}|{}", "x".repeat(300))
}

/// The store under test, as the parent passes it to the child (`CHILD_ENV`).
enum Target {
    /// The embedded engine's file.
    Embedded(PathBuf),
    /// A FoundationDB cluster file and the subspace the test owns.
    #[cfg_attr(
        not(feature = "fdb"),
        allow(dead_code, reason = "built with --features fdb")
    )]
    Fdb {
        cluster_file: String,
        prefix: String,
    },
}

impl Target {
    fn to_env(&self) -> String {
        match self {
            Target::Embedded(path) => format!("embedded:{}", path.display()),
            Target::Fdb {
                cluster_file,
                prefix,
            } => format!("fdb:{prefix}:{cluster_file}"),
        }
    }

    fn from_env(value: &str) -> Self {
        if let Some(path) = value.strip_prefix("embedded:") {
            return Target::Embedded(path.into());
        }
        let (prefix, cluster_file) = value
            .strip_prefix("fdb:")
            .and_then(|rest| rest.split_once(':'))
            .expect("embedded:PATH or fdb:PREFIX:CLUSTER_FILE");
        Target::Fdb {
            cluster_file: cluster_file.to_owned(),
            prefix: prefix.to_owned(),
        }
    }

    /// Whether revisions count up by one (embedded) rather than jump (FoundationDB's are
    /// commit versions).
    fn dense_revisions(&self) -> bool {
        matches!(self, Target::Embedded(_))
    }
}

/// Runs `job` with the target's store opened (no compaction, so the whole log stays).
macro_rules! with_store {
    ($target:expr, |$store:ident| $job:expr) => {
        match $target {
            Target::Embedded(path) => {
                let $store = Store::open(
                    EmbeddedEngine::open(path).unwrap(),
                    StoreOptions::without_compaction(),
                )
                .await
                .unwrap();
                $job
            }
            #[cfg(feature = "fdb")]
            Target::Fdb {
                cluster_file,
                prefix,
            } => {
                let $store = Store::open(
                    bulwark_store::FdbEngine::open(cluster_file, prefix.as_bytes()).unwrap(),
                    StoreOptions::without_compaction(),
                )
                .await
                .unwrap();
                $job
            }
            #[cfg(not(feature = "fdb"))]
            Target::Fdb { .. } => panic!("built without --features fdb"),
        }
    };
}

/// The child: writes until killed. Every line on stdout is one acknowledged (durable) write:
/// `C key revision` for creates, `U key revision value` for compare-and-swap updates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of crash_recovery_after_sigkill (spawned with --ignored)"]
async fn crash_child_writer() {
    let target = Target::from_env(&std::env::var(CHILD_ENV).expect("run by a crash test"));
    let round = std::env::var(ROUND_ENV).unwrap();
    with_store!(&target, |store| write_until_killed(store, round).await);
}

async fn write_until_killed<E: Engine>(store: Store<E>, round: String) {
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

fn run_child_and_kill(target: &Target, round: usize, kill_after: Duration, acked: &mut Acked) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child_writer",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, target.to_env())
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

async fn verify(target: &Target, acked: &Acked) {
    let dense = target.dense_revisions();
    with_store!(target, |store| verify_store(store, acked, dense).await);
}

async fn verify_store<E: Engine>(store: Store<E>, acked: &Acked, dense: bool) {
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
    // Consistency: the change log holds every write exactly once, in revision order (on
    // embedded: every revision from 1 on), up to the last write, and agrees with what a list
    // shows. Nothing is deleted, so the last write is the newest item of the list.
    let current = store.current_revision().await.unwrap();
    let listed = store.list("", ListOptions::default()).await.unwrap();
    let last = listed
        .items
        .iter()
        .map(|kv| kv.mod_revision)
        .max()
        .expect("nothing stored");
    if dense {
        assert_eq!(listed.revision, current);
        assert_eq!(last, current, "the newest revision holds no write");
    } else {
        assert!(last <= current && current <= listed.revision);
    }
    let mut latest = BTreeMap::new();
    let mut watch = store.watch("", Revision::ZERO).await.unwrap();
    let mut previous = Revision::ZERO;
    while previous < last {
        let event = tokio::time::timeout(Duration::from_secs(30), watch.next())
            .await
            .expect("log replay stalled")
            .unwrap();
        let revision = event.revision();
        assert!(revision > previous, "reordering in the change log");
        if dense {
            assert_eq!(revision.get(), previous.get() + 1, "gap in the change log");
        }
        assert!(revision <= last, "the log holds a write the list does not");
        latest.insert(event.kv.key.clone(), event.kv.clone());
        previous = revision;
    }
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

/// Rounds of writing, SIGKILL at a random point, and verifying, on `target`.
async fn crash_rounds(target: &Target) {
    let mut acked = Acked::default();
    let mut rng = rand::rng();
    for round in 0..ROUNDS {
        let kill_after = Duration::from_millis(rng.random_range(50..600));
        run_child_and_kill(target, round, kill_after, &mut acked);
        verify(target, &acked).await;
    }
    assert!(
        acked.creates.len() > ROUNDS * WRITERS,
        "the child wrote too little to test anything"
    );
    eprintln!(
        "{}: {} rounds, {} acknowledged creates and {} counters verified",
        target.to_env(),
        ROUNDS,
        acked.creates.len(),
        acked.counters.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_recovery_after_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    crash_rounds(&Target::Embedded(dir.path().join("crash.redb"))).await;
}

/// The same on FoundationDB: a killed client loses no acknowledged write, and nothing it
/// had in flight leaves the log and the keys disagreeing.
#[cfg(feature = "fdb")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_recovery_after_sigkill_on_fdb() {
    let Ok(cluster_file) = std::env::var("FDB_CLUSTER_FILE") else {
        eprintln!("skipped: set FDB_CLUSTER_FILE to run the crash test on FoundationDB");
        return;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    crash_rounds(&Target::Fdb {
        cluster_file,
        prefix: format!("bulwark-crash-{nanos}-{}/", std::process::id()),
    })
    .await;
}
