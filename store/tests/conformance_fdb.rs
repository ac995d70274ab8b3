//! The engine conformance suite on FoundationDB. Runs when the crate is built with
//! `--features fdb` and `FDB_CLUSTER_FILE` names a live cluster's cluster file; without the
//! variable each test prints that it was skipped. CI runs it against a local cluster
//! started from `../shared/fdb` (`scripts/fdb-tests`).
#![cfg(feature = "fdb")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation must abort the test"
)]

use std::time::{SystemTime, UNIX_EPOCH};

use bulwark_store::conformance::Harness;
use bulwark_store::{FdbEngine, StoreError};

/// Each test gets a fresh subspace (a unique prefix); a name is a sub-prefix of it.
struct Fdb {
    cluster_file: String,
    run: String,
}

impl Harness for Fdb {
    type E = FdbEngine;

    async fn open(&self, name: &str) -> Result<FdbEngine, StoreError> {
        FdbEngine::open(
            &self.cluster_file,
            format!("bulwark-test/{}/{name}/", self.run).as_bytes(),
        )
    }

    fn supports_concurrent_instances(&self) -> bool {
        true
    }
}

fn harness(test: &str) -> Option<Fdb> {
    let Ok(cluster_file) = std::env::var("FDB_CLUSTER_FILE") else {
        eprintln!("skipped: set FDB_CLUSTER_FILE to run the FoundationDB conformance suite");
        return None;
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    Some(Fdb {
        cluster_file,
        run: format!("{test}-{nanos}-{}", std::process::id()),
    })
}

bulwark_store::conformance_tests!(harness);
bulwark_store::conformance_tests!(@each harness; two_instances_share_history);
