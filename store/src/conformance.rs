//! The engine conformance suite: one set of checks that every [`Engine`] must pass through
//! the MVCC [`Store`]. The embedded engine runs it in every test run; the FoundationDB engine
//! runs it whenever `FDB_CLUSTER_FILE` points at a live cluster.
//!
//! Checks return a [`Failure`] instead of panicking so that the suite can live in the library
//! (usable by any engine's tests) under the crate's panic-free lints.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::compaction::CompactionOptions;
use crate::engine::{Engine, Mutation, WriteProgram};
use crate::error::StoreError;
use crate::layout::{CHUNK_LEN, MAX_VALUE_LEN, compacted_key, log_key};
use crate::mvcc::{KeyValue, ListOptions, Store, StoreOptions};
use crate::revision::Revision;
use crate::watch::{Event, EventKind, Watcher};

/// A failed conformance check.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Failure(pub String);

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure(format!("unexpected store error: {e}"))
    }
}

/// Result of a check.
pub type CheckResult = std::result::Result<(), Failure>;

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(Failure(format!($($fmt)+)));
        }
    };
}

/// Generates one `#[tokio::test]` per engine-independent check. `$harness` is a function
/// from the test's name to `Option<H: Harness>` (`None` skips the test, e.g. when no cluster
/// is configured). Engines with concurrent instances also run
/// [`two_instances_share_history`].
#[macro_export]
macro_rules! conformance_tests {
    ($harness:path) => {
        $crate::conformance_tests!(@each $harness;
            cas_semantics,
            concurrent_writers_one_key,
            snapshot_stable_pagination,
            byte_bounded_pages,
            watch_ordering_and_completeness,
            watch_replay_and_position,
            compaction_and_expired_tokens,
            automatic_compaction,
            large_values,
            prefix_isolation,
            one_key_reads_with_revision,
            bad_input,
            reopen_keeps_everything,
            close_ends_watchers,
            refuses_data_ahead_of_the_engine,
        );
    };
    (@each $harness:path; $($check:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() {
            let Some(h) = $harness(stringify!($check)) else { return };
            if let Err(f) = $crate::conformance::$check(&h).await {
                panic!("{}: {f}", stringify!($check));
            }
        }
    )*};
}

/// How the suite gets engines.
pub trait Harness: Send + Sync {
    /// The engine under test.
    type E: Engine;

    /// Opens the keyspace called `name`. The first open of a name in a harness starts empty;
    /// later opens see what earlier ones wrote (reopen after close, or a second instance).
    fn open(&self, name: &str) -> impl Future<Output = Result<Self::E, StoreError>> + Send;

    /// Whether two engines may be open on one name at once (two apiservers on one cluster).
    fn supports_concurrent_instances(&self) -> bool;
}

async fn store<H: Harness>(h: &H, name: &str) -> Result<Store<H::E>, Failure> {
    Ok(Store::open(h.open(name).await?, StoreOptions::without_compaction()).await?)
}

fn value(tag: &str, n: usize) -> Bytes {
    Bytes::from(format!("{tag}-{n}"))
}

/// Waits for the next event, failing after `timeout`.
async fn next_event<E: Engine>(
    w: &mut Watcher<E>,
    timeout: Duration,
) -> Result<Arc<Event>, Failure> {
    match tokio::time::timeout(timeout, w.next()).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(Failure(format!(
            "no watch event within {timeout:?} (watcher at revision {})",
            w.revision()
        ))),
    }
}

const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// Reads `n` events as (revision, key, kind).
async fn collect<E: Engine>(
    w: &mut Watcher<E>,
    n: usize,
) -> Result<Vec<(Revision, String, EventKind)>, Failure> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let e = next_event(w, EVENT_TIMEOUT).await?;
        got.push((e.revision(), e.kv.key.clone(), e.kind));
    }
    Ok(got)
}

/// Create, update and delete with compare-and-swap on revisions.
pub async fn cas_semantics<H: Harness>(h: &H) -> CheckResult {
    let s = store(h, "cas").await?;
    let a = s.create("cas/a", "1").await?;
    ensure!(
        a.version == 1 && a.create_revision == a.mod_revision,
        "create metadata: {a:?}"
    );
    ensure!(
        matches!(
            s.create("cas/a", "x").await,
            Err(StoreError::AlreadyExists { .. })
        ),
        "second create must fail with AlreadyExists"
    );
    let wrong = Revision(a.mod_revision.get() - 1);
    ensure!(
        matches!(s.update("cas/a", "x", Some(wrong)).await, Err(StoreError::Conflict { current, .. }) if current == a.mod_revision),
        "update at a stale revision must conflict and report the current one"
    );
    let b = s.update("cas/a", "2", Some(a.mod_revision)).await?;
    ensure!(b.mod_revision > a.mod_revision, "revision must grow");
    ensure!(
        b.create_revision == a.create_revision && b.version == 2,
        "update metadata: {b:?}"
    );
    let got = s.get("cas/a").await?;
    ensure!(got.as_ref() == Some(&b), "get after update: {got:?}");
    ensure!(
        s.get_at("cas/a", a.mod_revision).await?.map(|kv| kv.value) == Some(Bytes::from("1")),
        "get at the old revision must return the old value"
    );
    ensure!(
        matches!(
            s.delete("cas/a", Some(a.mod_revision)).await,
            Err(StoreError::Conflict { .. })
        ),
        "delete at a stale revision must conflict"
    );
    let (del_rev, prev) = s.delete("cas/a", Some(b.mod_revision)).await?;
    ensure!(
        del_rev > b.mod_revision && prev == b,
        "delete returns the deleted version"
    );
    ensure!(s.get("cas/a").await?.is_none(), "deleted key must be gone");
    ensure!(
        matches!(
            s.update("cas/a", "3", None).await,
            Err(StoreError::NotFound { .. })
        ),
        "update of a deleted key must be NotFound"
    );
    ensure!(
        matches!(
            s.delete("cas/a", None).await,
            Err(StoreError::NotFound { .. })
        ),
        "delete of a deleted key must be NotFound"
    );
    let c = s.create("cas/a", "4").await?;
    ensure!(
        c.version == 1 && c.create_revision == c.mod_revision && c.create_revision > del_rev,
        "re-create starts a new incarnation: {c:?}"
    );
    ensure!(
        s.current_revision().await? >= c.mod_revision,
        "current revision covers the last write"
    );
    Ok(())
}

/// N concurrent read-modify-write loops on one key: exactly one writer wins each revision.
pub async fn concurrent_writers_one_key<H: Harness>(h: &H) -> CheckResult {
    const WRITERS: usize = 16;
    const ATTEMPTS: usize = 25;
    let s = store(h, "contended").await?;
    let first = s.create("hot/key", "0").await?;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let s = s.clone();
        tasks.spawn(async move {
            let mut wins = Vec::new();
            let mut conflicts = 0usize;
            for i in 0..ATTEMPTS {
                let cur = s.get("hot/key").await?.ok_or(StoreError::NotFound {
                    key: "hot/key".into(),
                })?;
                match s
                    .update("hot/key", format!("{w}-{i}"), Some(cur.mod_revision))
                    .await
                {
                    Ok(kv) => wins.push((kv.mod_revision, cur.mod_revision, kv.value)),
                    Err(StoreError::Conflict { .. }) => conflicts += 1,
                    Err(e) => return Err(e),
                }
            }
            Ok::<_, StoreError>((wins, conflicts))
        });
    }
    let mut wins = Vec::new();
    let mut conflicts = 0;
    while let Some(r) = tasks.join_next().await {
        let (w, c) = r.map_err(|e| Failure(format!("writer task failed: {e}")))??;
        wins.extend(w);
        conflicts += c;
    }
    ensure!(
        wins.len() + conflicts == WRITERS * ATTEMPTS,
        "every attempt either wins or conflicts"
    );
    let revisions: BTreeSet<Revision> = wins.iter().map(|w| w.0).collect();
    ensure!(
        revisions.len() == wins.len(),
        "two writers were given the same revision"
    );
    let bases: BTreeSet<Revision> = wins.iter().map(|w| w.1).collect();
    ensure!(
        bases.len() == wins.len(),
        "two writers won from the same base revision"
    );
    let last = s
        .get("hot/key")
        .await?
        .ok_or(Failure("key vanished".into()))?;
    ensure!(
        last.version == 1 + wins.len() as u64,
        "version {} after {} wins",
        last.version,
        wins.len()
    );
    // The chain of winners is linear: each win's base is the previous win's revision.
    let mut sorted = wins.clone();
    sorted.sort_by_key(|w| w.0);
    let mut expected_base = first.mod_revision;
    for (rev, base, _) in &sorted {
        ensure!(
            *base == expected_base,
            "win at {rev} was based on {base}, expected {expected_base}"
        );
        expected_base = *rev;
    }
    if let Some((rev, _, v)) = sorted.last() {
        ensure!(
            last.mod_revision == *rev && last.value == *v,
            "final value is the last winner's"
        );
    }
    Ok(())
}

/// A byte budget bounds each page of a list (stopping once the page's values reach it, at
/// least one item per page), alone and together with an item limit; the pages together are
/// the whole list, values split across chunks included.
pub async fn byte_bounded_pages<H: Harness>(h: &H) -> CheckResult {
    let s = store(h, "byte-pages").await?;
    let mut expected = BTreeMap::new();
    for i in 0..40usize {
        // Sizes from 10 B to past one chunk, so chunked values are paged too.
        let len = match i % 5 {
            0 => 10,
            1 => 300,
            2 => 900,
            3 => 2_000,
            _ => CHUNK_LEN + 1_000,
        };
        let key = format!("bp/items/{i:04}");
        let v = Bytes::from(vec![b'a' + (i % 26) as u8; len]);
        s.create(&key, v.clone()).await?;
        expected.insert(key, v);
    }
    for (max_bytes, limit) in [(1_000usize, 0usize), (1, 0), (5_000, 3), (usize::MAX, 0)] {
        let mut seen = BTreeMap::new();
        let mut token = None;
        loop {
            let page = s
                .list(
                    "bp/items/",
                    ListOptions {
                        limit,
                        max_bytes,
                        continue_token: token.take(),
                        ..Default::default()
                    },
                )
                .await?;
            ensure!(!page.items.is_empty(), "an empty page before the end");
            let sizes: Vec<usize> = page.items.iter().map(|kv| kv.value.len()).collect();
            let before_last: usize = sizes.iter().rev().skip(1).sum();
            ensure!(
                before_last < max_bytes,
                "page of {sizes:?} went on past the budget of {max_bytes} bytes"
            );
            if limit > 0 {
                ensure!(page.items.len() <= limit, "page larger than the limit");
            }
            if page.continue_token.is_some() && (limit == 0 || page.items.len() < limit) {
                ensure!(
                    sizes.iter().sum::<usize>() >= max_bytes,
                    "page of {sizes:?} stopped before the budget of {max_bytes} bytes"
                );
            }
            for kv in page.items {
                ensure!(
                    seen.insert(kv.key.clone(), kv.value).is_none(),
                    "key {} listed twice",
                    kv.key
                );
            }
            match page.continue_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        ensure!(
            seen == expected,
            "byte-bounded pages ({max_bytes} B, limit {limit}) differ from the whole list"
        );
    }
    Ok(())
}

/// Pages of one list come from one snapshot while writes continue.
pub async fn snapshot_stable_pagination<H: Harness>(h: &H) -> CheckResult {
    const N: usize = 230;
    let s = store(h, "paging").await?;
    let mut expected = BTreeMap::new();
    for i in 0..N {
        let key = format!("pg/items/{i:04}");
        s.create(&key, value("v", i)).await?;
        expected.insert(key, value("v", i));
    }
    s.create("pg/itemsx", "outside the prefix").await?;
    let mut seen = BTreeMap::new();
    let mut token = None;
    let mut pages = 0;
    let mut list_revision = None;
    loop {
        let page = s
            .list(
                "pg/items/",
                ListOptions {
                    limit: 37,
                    continue_token: token.take(),
                    ..Default::default()
                },
            )
            .await?;
        ensure!(page.items.len() <= 37, "page larger than the limit");
        ensure!(
            *list_revision.get_or_insert(page.revision) == page.revision,
            "pages report different revisions"
        );
        for kv in page.items {
            ensure!(
                seen.insert(kv.key.clone(), kv.value).is_none(),
                "key {} listed twice",
                kv.key
            );
        }
        pages += 1;
        // Writes between pages: updates, deletes and creates on both sides of the cursor.
        let n = pages * 7;
        s.update(&format!("pg/items/{:04}", n % N), "changed", None)
            .await?;
        let _ = s
            .delete(&format!("pg/items/{:04}", (n * 13) % N), None)
            .await;
        s.create(&format!("pg/items/{:04}a", n % N), "new").await?;
        match page.continue_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    ensure!(
        pages == N.div_ceil(37),
        "expected {} pages, got {pages}",
        N.div_ceil(37)
    );
    ensure!(
        seen == expected,
        "paginated list differs from the snapshot ({} vs {} items)",
        seen.len(),
        expected.len()
    );
    let now = s.list("pg/items/", ListOptions::default()).await?;
    ensure!(
        now.continue_token.is_none(),
        "an unlimited list has no continue token"
    );
    ensure!(
        now.items.iter().any(|kv| kv.key == "pg/items/0007a")
            && now.items.iter().any(|kv| kv.value == "changed"),
        "a new list at the latest revision sees the writes made during pagination"
    );
    Ok(())
}

/// A watcher started in the recent past replays exactly the changes after its start (from
/// memory when the ring still holds them, from the log otherwise), and its reported position
/// never runs ahead of an event it has not returned yet.
pub async fn watch_replay_and_position<H: Harness>(h: &H) -> CheckResult {
    for ring in [4096, 4] {
        let engine = h.open(&format!("replay-{ring}")).await?;
        let s = Store::open(
            engine,
            StoreOptions {
                watch_ring: ring,
                ..StoreOptions::without_compaction()
            },
        )
        .await?;
        let start = s.current_revision().await?;
        let mut want = Vec::new();
        for i in 0..60 {
            let key = format!("r/{}/{}", i % 2, i);
            let kv = s.create(&key, value("v", i)).await?;
            if i % 2 == 0 {
                want.push(kv.mod_revision);
            }
        }
        let mut w = s.watch("r/0/", start).await?;
        let mut got = Vec::new();
        while got.len() < want.len() {
            let before = w.revision();
            let e = next_event(&mut w, EVENT_TIMEOUT).await?;
            ensure!(
                before < e.revision(),
                "ring {ring}: position {before} reported before event {} was returned",
                e.revision()
            );
            got.push(e.revision());
        }
        ensure!(
            got == want,
            "ring {ring}: replayed {got:?}, wanted {want:?}"
        );
        // The position never claims a revision the store has not reached. On embedded that is
        // the last write; on FoundationDB, a watcher that caught up from the store's log
        // stands at the read version of its last page, which may lie past the last write
        // but never past the store's current revision.
        let position = w.revision();
        let now = s.current_revision().await?;
        ensure!(
            position <= now,
            "ring {ring}: position {position} beyond the store's revision {now}"
        );
        ensure!(
            position >= *want.last().unwrap_or(&start),
            "ring {ring}: position {position} before the last event returned"
        );
        drop(w);
        s.close().await?;
    }
    Ok(())
}

/// Watchers see every committed change once, in order, with no gaps, under concurrent
/// writers — live, from the past, from a sub-prefix, and after lagging behind the ring.
pub async fn watch_ordering_and_completeness<H: Harness>(h: &H) -> CheckResult {
    const WRITERS: usize = 8;
    const OPS: usize = 40;
    let engine = h.open("watching").await?;
    // A tiny ring so that the slow watcher below must catch up from the store.
    let s = Store::open(
        engine,
        StoreOptions {
            watch_ring: 8,
            ..StoreOptions::without_compaction()
        },
    )
    .await?;
    let start = s.current_revision().await?;
    let mut live = s.watch("w/", start).await?;
    let mut sub = s.watch("w/3/", start).await?;
    let mut slow = s.watch("w/", start).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let s = s.clone();
        tasks.spawn(async move {
            let mut acked = Vec::new();
            for i in 0..OPS {
                let key = format!("w/{w}/{}", i % 5);
                let kv = match s.create(&key, value("c", i)).await {
                    Ok(kv) => (kv.mod_revision, key, EventKind::Put),
                    Err(StoreError::AlreadyExists { .. }) if i % 3 == 0 => {
                        let (rev, _) = s.delete(&key, None).await?;
                        (rev, key, EventKind::Delete)
                    }
                    Err(StoreError::AlreadyExists { .. }) => {
                        let kv = s.update(&key, value("u", i), None).await?;
                        (kv.mod_revision, key, EventKind::Put)
                    }
                    Err(e) => return Err(e),
                };
                acked.push(kv);
            }
            Ok::<_, StoreError>(acked)
        });
    }
    let mut acked = Vec::new();
    while let Some(r) = tasks.join_next().await {
        acked.extend(r.map_err(|e| Failure(format!("writer task failed: {e}")))??);
    }
    acked.sort_by_key(|a| a.0);
    let expect: Vec<(Revision, String, EventKind)> = acked.clone();
    let expect_sub: Vec<_> = acked
        .iter()
        .filter(|a| a.1.starts_with("w/3/"))
        .cloned()
        .collect();
    let check = |name: &str,
                 got: Vec<(Revision, String, EventKind)>,
                 want: &[(Revision, String, EventKind)]|
     -> CheckResult {
        for pair in got.windows(2) {
            if let [a, b] = pair {
                ensure!(
                    a.0 < b.0,
                    "{name}: revisions out of order ({} then {})",
                    a.0,
                    b.0
                );
            }
        }
        ensure!(
            got.len() == want.len(),
            "{name}: {} events for {} writes",
            got.len(),
            want.len()
        );
        ensure!(
            got == want,
            "{name}: events differ from the acknowledged writes"
        );
        Ok(())
    };
    check(
        "live watcher",
        collect(&mut live, expect.len()).await?,
        &expect,
    )?;
    check(
        "sub-prefix watcher",
        collect(&mut sub, expect_sub.len()).await?,
        &expect_sub,
    )?;
    check(
        "lagging watcher",
        collect(&mut slow, expect.len()).await?,
        &expect,
    )?;
    let mut past = s.watch("w/", start).await?;
    check(
        "watcher from the past",
        collect(&mut past, expect.len()).await?,
        &expect,
    )?;
    // Events carry values and previous values.
    let mut w = s.watch("w/9/", s.current_revision().await?).await?;
    let a = s.create("w/9/x", "one").await?;
    s.update("w/9/x", "two", None).await?;
    s.delete("w/9/x", None).await?;
    let e1 = next_event(&mut w, EVENT_TIMEOUT).await?;
    let e2 = next_event(&mut w, EVENT_TIMEOUT).await?;
    let e3 = next_event(&mut w, EVENT_TIMEOUT).await?;
    ensure!(
        e1.kind == EventKind::Put && e1.kv == a && e1.prev.is_none(),
        "create event: {e1:?}"
    );
    ensure!(
        e2.kv.value == "two" && e2.prev.as_ref().map(|p| &p.value) == Some(&Bytes::from("one")),
        "update event: {e2:?}"
    );
    ensure!(
        e3.kind == EventKind::Delete
            && e3.prev.as_ref().map(|p| &p.value) == Some(&Bytes::from("two")),
        "delete event: {e3:?}"
    );
    Ok(())
}

/// Compaction removes old history, and old reads, tokens and watches fail as compacted.
pub async fn compaction_and_expired_tokens<H: Harness>(h: &H) -> CheckResult {
    let s = store(h, "compaction").await?;
    let first = s.create("c/k", "v0").await?.mod_revision;
    let second = s.update("c/k", "v1", None).await?.mod_revision;
    for i in 2..5 {
        s.update("c/k", format!("v{i}"), None).await?;
    }
    for i in 0..10 {
        s.create(&format!("c/list/{i}"), "x").await?;
    }
    s.create("c/gone", "x").await?;
    s.delete("c/gone", None).await?;
    let old_page = s
        .list(
            "c/list/",
            ListOptions {
                limit: 3,
                ..Default::default()
            },
        )
        .await?;
    let old_token = old_page
        .continue_token
        .ok_or(Failure("expected a continue token".into()))?;
    // A write after the list, so that compacting to the current revision passes the token's.
    s.create("c/zz", "after the list").await?;
    let before = s.current_revision().await?;
    let target = before;
    let stats = s.compact(target).await?;
    ensure!(
        stats.compacted == target,
        "compaction point {}",
        stats.compacted
    );
    ensure!(
        stats.versions_removed >= 4,
        "old versions removed: {stats:?}"
    );
    ensure!(
        stats.keys_removed == 1,
        "the deleted key's record is removed: {stats:?}"
    );
    ensure!(
        s.compacted_revision().await? == target,
        "compaction point is recorded"
    );
    ensure!(
        matches!(
            s.get_at("c/k", second).await,
            Err(StoreError::Compacted { .. })
        ),
        "reads below the compaction point are Compacted"
    );
    ensure!(
        s.get_at("c/k", target).await?.map(|k| k.value) == Some(Bytes::from("v4")),
        "reads at the compaction point still work"
    );
    ensure!(
        s.get("c/k").await?.map(|k| k.version) == Some(5),
        "latest survives with its version"
    );
    ensure!(
        matches!(
            s.list(
                "c/",
                ListOptions {
                    revision: Some(first),
                    ..Default::default()
                }
            )
            .await,
            Err(StoreError::Compacted { .. })
        ),
        "lists below the compaction point are Compacted"
    );
    ensure!(
        matches!(
            s.list(
                "c/list/",
                ListOptions {
                    continue_token: Some(old_token),
                    ..Default::default()
                }
            )
            .await,
            Err(StoreError::Compacted { .. })
        ),
        "a continue token from before the compaction is expired"
    );
    ensure!(
        matches!(
            s.watch("c/", first).await,
            Err(StoreError::Compacted { .. })
        ),
        "a watch from before the compaction is expired"
    );
    let page = s.list("c/", ListOptions::default()).await?;
    ensure!(
        page.items.len() == 12,
        "list after compaction: {} items",
        page.items.len()
    );
    s.create("c/gone", "again").await?;
    let mut w = s.watch("c/", target).await?;
    s.update("c/k", "after", None).await?;
    let e = next_event(&mut w, EVENT_TIMEOUT).await?;
    ensure!(
        e.kv.key == "c/gone" && e.kind == EventKind::Put,
        "watch from the compaction point sees later writes: {e:?}"
    );
    ensure!(
        s.compact(Revision(1)).await?.compacted == target,
        "compacting backwards is a no-op"
    );
    ensure!(
        matches!(
            s.compact(Revision(u64::MAX >> 1)).await,
            Err(StoreError::FutureRevision { .. })
        ),
        "compacting to the future fails"
    );
    Ok(())
}

/// The background compactor honours its window.
pub async fn automatic_compaction<H: Harness>(h: &H) -> CheckResult {
    let engine = h.open("autocompact").await?;
    let options = StoreOptions {
        compaction: Some(CompactionOptions::with_window(Duration::from_millis(300))),
        ..StoreOptions::default()
    };
    let s = Store::open(engine, options).await?;
    let a = s.create("ac/k", "1").await?;
    s.update("ac/k", "2", None).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if s.compacted_revision().await? > a.mod_revision {
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "no automatic compaction within 20 s"
        );
        s.update("ac/k", "tick", None).await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ensure!(
        matches!(
            s.get_at("ac/k", a.mod_revision).await,
            Err(StoreError::Compacted { .. })
        ),
        "old revision compacted"
    );
    Ok(())
}

/// Values up to the 3 MiB limit round-trip through get, list and watch; larger ones are
/// refused.
pub async fn large_values<H: Harness>(h: &H) -> CheckResult {
    let s = store(h, "large").await?;
    let mut w = s.watch("big/", s.current_revision().await?).await?;
    let sizes = [
        0,
        1,
        CHUNK_LEN - 23,
        CHUNK_LEN - 22,
        CHUNK_LEN,
        CHUNK_LEN + 1,
        2 * CHUNK_LEN + 5,
        MAX_VALUE_LEN,
    ];
    let mut written = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let v: Vec<u8> = (0..*size).map(|b| (b * 31 + i) as u8).collect();
        let kv = s.create(&format!("big/{i}"), v.clone()).await?;
        written.push((kv, Bytes::from(v)));
    }
    for (kv, v) in &written {
        let got = s
            .get(&kv.key)
            .await?
            .ok_or(Failure(format!("{} missing", kv.key)))?;
        ensure!(
            got.value == *v,
            "{} of {} bytes did not round-trip",
            kv.key,
            v.len()
        );
        let e = next_event(&mut w, EVENT_TIMEOUT).await?;
        ensure!(
            e.kv.value == *v,
            "watch of {} did not carry the value",
            kv.key
        );
    }
    let listed = s.list("big/", ListOptions::default()).await?;
    let listed: Vec<&Bytes> = listed.items.iter().map(|k| &k.value).collect();
    ensure!(
        listed == written.iter().map(|w| &w.1).collect::<Vec<_>>(),
        "list did not return the values"
    );
    ensure!(
        matches!(
            s.create("big/too", vec![0u8; MAX_VALUE_LEN + 1]).await,
            Err(StoreError::ValueTooLarge { .. })
        ),
        "a value over the limit is refused"
    );
    let (_, prev) = s.delete("big/7", None).await?;
    ensure!(
        prev.value.len() == MAX_VALUE_LEN,
        "delete returns the large value"
    );
    Ok(())
}

/// A store whose data is newer than its engine's revision (on FoundationDB: a backup
/// restored into a cluster behind the original) refuses to open rather than give new writes
/// revisions below existing ones; so does one whose compaction point is ahead.
pub async fn refuses_data_ahead_of_the_engine<H: Harness>(h: &H) -> CheckResult {
    for (name, in_log) in [("ahead-log", true), ("ahead-compaction", false)] {
        let s = store(h, name).await?;
        s.create("a", "1").await?;
        let current = s.current_revision().await?;
        s.close().await?;
        // Far enough ahead that FoundationDB's clock (a million versions a second, 2^16
        // revisions each) does not reach it during the test.
        let ahead = Revision(current.get() + (1 << 50));
        let (key, value) = if in_log {
            (log_key(ahead), b"restored".to_vec())
        } else {
            (compacted_key(), ahead.encode().to_vec())
        };
        let engine = h.open(name).await?;
        engine
            .write(WriteProgram {
                reads: Vec::new(),
                plan: Box::new(move |_| {
                    let put = Mutation::Put {
                        key: key.clone(),
                        value: value.clone(),
                    };
                    Ok((vec![put], ()))
                }),
            })
            .await?;
        match Store::open(engine, StoreOptions::without_compaction()).await {
            Err(StoreError::DataAheadOfEngine { stored, current: c }) => ensure!(
                stored == ahead && c >= current && c < ahead,
                "{name}: refused naming {stored} ahead of {c}, wanted {ahead} ahead of {current}"
            ),
            Err(e) => return Err(Failure(format!("{name}: refused with {e}"))),
            Ok(_) => return Err(Failure(format!("{name}: opened with data at {ahead}"))),
        }
    }
    Ok(())
}

/// `ns/a/` never sees `ns/ab/`.
pub async fn prefix_isolation<H: Harness>(h: &H) -> CheckResult {
    let s = store(h, "prefixes").await?;
    let start = s.current_revision().await?;
    let mut w = s.watch("ns/a/", start).await?;
    for k in [
        "ns/a", "ns/ab/x", "ns/a/x", "ns/ab", "ns/a/y", "ns/b/x", "ns/a0",
    ] {
        s.create(k, k.to_string()).await?;
    }
    let keys: Vec<String> = s
        .list("ns/a/", ListOptions::default())
        .await?
        .items
        .into_iter()
        .map(|k| k.key)
        .collect();
    ensure!(
        keys == ["ns/a/x", "ns/a/y"],
        "list of ns/a/ returned {keys:?}"
    );
    let all: Vec<String> = s
        .list("ns/a", ListOptions::default())
        .await?
        .items
        .into_iter()
        .map(|k| k.key)
        .collect();
    ensure!(
        all == ["ns/a", "ns/a/x", "ns/a/y", "ns/a0", "ns/ab", "ns/ab/x"],
        "list of ns/a returned {all:?}"
    );
    let e1 = next_event(&mut w, EVENT_TIMEOUT).await?;
    let e2 = next_event(&mut w, EVENT_TIMEOUT).await?;
    ensure!(
        e1.kv.key == "ns/a/x" && e2.kv.key == "ns/a/y",
        "watch of ns/a/ saw {} and {}",
        e1.kv.key,
        e2.kv.key
    );
    ensure!(s.get("ns/a/").await?.is_none(), "a prefix is not a key");
    Ok(())
}

/// A read of one key answers at a revision, as a list would: the latest state with the
/// snapshot's revision (never older than a write acknowledged before it), or the state at an
/// older revision; deleted and absent keys read as nothing, and a prefix is not a key.
pub async fn one_key_reads_with_revision<H: Harness>(h: &H) -> CheckResult {
    let s = store(h, "one-key").await?;
    let first = s.create("one/a", "v1").await?;
    s.create("one/ab", "other").await?;
    let second = s.update("one/a", "v2", None).await?;
    let (kv, at) = s.get_with_revision("one/a", None).await?;
    ensure!(
        kv.as_ref().map(|kv| kv.value.as_ref()) == Some(b"v2".as_slice()),
        "latest read returned {kv:?}"
    );
    // On FoundationDB revisions are read versions and advance without writes: the read is at
    // or after the last acknowledged write, and at or before a later current revision.
    ensure!(
        at >= second.mod_revision && at <= s.current_revision().await?,
        "latest read answered at {at:?}, after a write at {:?}",
        second.mod_revision
    );
    let (old, at) = s
        .get_with_revision("one/a", Some(first.mod_revision))
        .await?;
    ensure!(
        at == first.mod_revision
            && old.as_ref().map(|kv| kv.value.as_ref()) == Some(b"v1".as_slice()),
        "read at {:?} returned {old:?} at {at:?}",
        first.mod_revision
    );
    let (prefix, _) = s.get_with_revision("one/", None).await?;
    ensure!(prefix.is_none(), "a prefix is not a key");
    let (deleted_at, _) = s.delete("one/a", None).await?;
    let (gone, at) = s.get_with_revision("one/a", None).await?;
    ensure!(
        gone.is_none() && at >= deleted_at && at <= s.current_revision().await?,
        "a deleted key read as {gone:?} at {at:?} (deleted at {deleted_at:?})"
    );
    let (before, _) = s
        .get_with_revision("one/a", Some(second.mod_revision))
        .await?;
    ensure!(
        before.is_some_and(|kv| kv.value == "v2"),
        "history before the delete is readable"
    );
    Ok(())
}

/// Bad input gets clear errors.
pub async fn bad_input<H: Harness>(h: &H) -> CheckResult {
    let s = store(h, "badinput").await?;
    ensure!(
        matches!(s.create("", "x").await, Err(StoreError::InvalidKey(_))),
        "empty key"
    );
    ensure!(
        matches!(s.create("a\0b", "x").await, Err(StoreError::InvalidKey(_))),
        "NUL in key"
    );
    ensure!(
        matches!(
            s.get(&"k".repeat(5000)).await,
            Err(StoreError::InvalidKey(_))
        ),
        "oversized key"
    );
    for token in [
        "",
        "garbage!",
        "eyJ2IjoxfQ",
        "eyJ2IjoxLCJydiI6MSwic3RhcnQiOiJvdGhlci94In0",
    ] {
        ensure!(
            matches!(
                s.list(
                    "mine/",
                    ListOptions {
                        continue_token: Some(token.into()),
                        ..Default::default()
                    }
                )
                .await,
                Err(StoreError::InvalidContinue(_))
            ),
            "malformed continue token {token:?} must be InvalidContinue"
        );
    }
    ensure!(
        matches!(
            s.list(
                "mine/",
                ListOptions {
                    revision: Some(Revision(u64::MAX >> 1)),
                    ..Default::default()
                }
            )
            .await,
            Err(StoreError::FutureRevision { .. })
        ),
        "a list in the future fails"
    );
    Ok(())
}

/// Closing ends every watcher with `Closed` and refuses new watches, so consumers holding
/// clones of the store let go of them and close succeeds (a graceful shutdown).
pub async fn close_ends_watchers<H: Harness>(h: &H) -> CheckResult {
    let s = store(h, "closing").await?;
    let kv = s.create("c/1", value("c", 1)).await?;
    let consumer = s.clone();
    let mut w = s.watch("c/", kv.mod_revision).await?;
    let (delivered, first) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let _ = delivered.send(w.next().await.map(|e| e.revision()));
        let ended = w.next().await;
        let after_end = w.next().await.err();
        // A consumer that watches again after the end is refused too.
        let again = consumer.watch("c/", Revision::ZERO).await.err();
        drop(consumer);
        (ended.err(), after_end, again)
    });
    let written = s.create("c/2", value("c", 2)).await?.mod_revision;
    let first = tokio::time::timeout(Duration::from_secs(10), first)
        .await
        .map_err(|_| Failure("the change was not delivered".into()))?
        .map_err(|_| Failure("the consumer ended early".into()))?;
    tokio::time::timeout(Duration::from_secs(10), s.close())
        .await
        .map_err(|_| Failure("close did not finish".into()))?
        .map_err(|e| Failure(format!("close with a watching consumer: {e}")))?;
    let (ended, after_end, again) = task.await.map_err(|e| Failure(format!("consumer: {e}")))?;
    ensure!(
        matches!(first, Ok(r) if r == written),
        "the change before close is delivered: {first:?}"
    );
    ensure!(
        matches!(ended, Some(StoreError::Closed)),
        "the watcher ends with Closed: {ended:?}"
    );
    ensure!(
        matches!(after_end, Some(StoreError::Closed)),
        "and stays ended: {after_end:?}"
    );
    ensure!(
        matches!(again, Some(StoreError::Closed)),
        "a new watch after close is refused: {again:?}"
    );
    Ok(())
}

/// Closing and reopening keeps every write and the revision sequence.
pub async fn reopen_keeps_everything<H: Harness>(h: &H) -> CheckResult {
    let s = store(h, "reopen").await?;
    let mut written = BTreeMap::new();
    for i in 0..50 {
        let kv = s.create(&format!("r/{i:02}"), value("r", i)).await?;
        written.insert(kv.key.clone(), kv);
    }
    let (_, gone) = s.delete("r/07", None).await?;
    written.remove(&gone.key);
    let kv = s.update("r/08", "updated", None).await?;
    let updated_at = kv.mod_revision;
    written.insert(kv.key.clone(), kv);
    let before = s.current_revision().await?;
    s.close()
        .await
        .map_err(|e| Failure(format!("close: {e}")))?;
    let s = store(h, "reopen").await?;
    let listed: BTreeMap<String, KeyValue> = s
        .list("r/", ListOptions::default())
        .await?
        .items
        .into_iter()
        .map(|k| (k.key.clone(), k))
        .collect();
    ensure!(
        listed == written,
        "reopened store lists {} keys, expected {}",
        listed.len(),
        written.len()
    );
    ensure!(
        s.current_revision().await? >= before,
        "revision went backwards after reopen"
    );
    let next = s.create("r/new", "x").await?;
    ensure!(
        next.mod_revision > before,
        "new writes after reopen get larger revisions"
    );
    let mut w = s.watch("r/", updated_at).await?;
    let e = next_event(&mut w, EVENT_TIMEOUT).await?;
    ensure!(
        e.kv.key == "r/new",
        "watch after reopen replays from the log: {e:?}"
    );
    Ok(())
}

/// Two instances on one keyspace (two apiservers) see each other's writes through watch,
/// in the same order. Only for harnesses that support concurrent instances.
pub async fn two_instances_share_history<H: Harness>(h: &H) -> CheckResult {
    ensure!(
        h.supports_concurrent_instances(),
        "this engine cannot open one keyspace twice"
    );
    let a = store(h, "shared").await?;
    let b = store(h, "shared").await?;
    let start = a.current_revision().await?.max(b.current_revision().await?);
    let mut wa = a.watch("s/", start).await?;
    let mut wb = b.watch("s/", start).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, st) in [a.clone(), b.clone()].into_iter().enumerate() {
        tasks.spawn(async move {
            for n in 0..30 {
                st.create(&format!("s/{i}/{n}"), "x").await?;
            }
            Ok::<_, StoreError>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.map_err(|e| Failure(format!("writer task failed: {e}")))??;
    }
    let mut seq_a = Vec::new();
    let mut seq_b = Vec::new();
    for _ in 0..60 {
        let ea = next_event(&mut wa, EVENT_TIMEOUT).await?;
        let eb = next_event(&mut wb, EVENT_TIMEOUT).await?;
        seq_a.push((ea.revision(), ea.kv.key.clone()));
        seq_b.push((eb.revision(), eb.kv.key.clone()));
    }
    ensure!(seq_a == seq_b, "the two instances saw different sequences");
    let keys: BTreeSet<&String> = seq_a.iter().map(|e| &e.1).collect();
    ensure!(keys.len() == 60, "each instance saw every write of both");
    Ok(())
}
