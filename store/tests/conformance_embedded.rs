//! The engine conformance suite on the embedded (redb) engine.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation must abort the test"
)]

use bulwark_store::conformance::{self, Harness};
use bulwark_store::{EmbeddedEngine, StoreError};

/// Each test gets its own directory; a name is one database file in it.
struct Embedded {
    dir: tempfile::TempDir,
}

impl Harness for Embedded {
    type E = EmbeddedEngine;

    async fn open(&self, name: &str) -> Result<EmbeddedEngine, StoreError> {
        EmbeddedEngine::open(self.dir.path().join(format!("{name}.redb")))
    }

    fn supports_concurrent_instances(&self) -> bool {
        false
    }
}

macro_rules! conformance_tests {
    ($($check:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() {
            let h = Embedded { dir: tempfile::tempdir().unwrap() };
            if let Err(f) = conformance::$check(&h).await {
                panic!("{}: {f}", stringify!($check));
            }
        }
    )*};
}

conformance_tests!(
    cas_semantics,
    concurrent_writers_one_key,
    snapshot_stable_pagination,
    watch_ordering_and_completeness,
    compaction_and_expired_tokens,
    automatic_compaction,
    large_values,
    prefix_isolation,
    bad_input,
    reopen_keeps_everything,
);

#[test]
fn database_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    drop(EmbeddedEngine::open(&path).unwrap());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn second_open_of_one_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let _first = EmbeddedEngine::open(&path).unwrap();
    assert!(EmbeddedEngine::open(&path).is_err());
}
