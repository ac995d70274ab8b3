//! The engine conformance suite on the embedded (redb) engine.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation must abort the test"
)]

use bulwark_store::conformance::Harness;
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

fn harness(_test: &str) -> Option<Embedded> {
    Some(Embedded {
        dir: tempfile::tempdir().unwrap(),
    })
}

bulwark_store::conformance_tests!(harness);

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
