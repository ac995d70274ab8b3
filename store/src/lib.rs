//! Bulwark storage: everything the cluster knows lives here.
//!
//! An MVCC layer ([`Store`]) written once over an ordered, transactional key-value
//! [`Engine`], with two engines: [`EmbeddedEngine`] (redb, the single-node default) and
//! `FdbEngine` (FoundationDB, cargo feature `fdb`, for HA and scale). Both pass the same
//! [`conformance`] suite.
//!
//! Decisions (see also each module's docs):
//! - **Revisions** are assigned by the engine at commit. On FoundationDB they come from the
//!   commit versionstamp, so there is no hot counter key; keys embed revisions in a 10-byte
//!   layout that is exactly a versionstamp ([`revision`]). The FDB commit version therefore must
//!   stay below 2^48 (about 8.9 years of cluster time at FDB's 1M versions/s); past that the
//!   engine refuses writes with [`StoreError::RevisionOverflow`] rather than reuse revisions.
//! - **Writes** are programs: a fixed read set plus a pure planning function ([`engine`]). The
//!   embedded engine runs many per redb transaction (group commit, one fsync); FDB runs each in
//!   its own retried transaction.
//! - **History** keeps every version until compaction; lists filter versions by revision, so a
//!   list's pages (and FDB's short transactions) all read the same logical snapshot.
//! - **Watch** uses one tail per process and a broadcast ring ([`watch`]).
//! - **Limits** follow FoundationDB: values are split into chunks under 100 KB, objects are at
//!   most 3 MiB ([`layout::MAX_VALUE_LEN`]), and every engine transaction stays short.

pub mod compaction;
pub mod conformance;
pub mod continue_token;
pub mod embedded;
pub mod engine;
pub mod error;
#[cfg(feature = "fdb")]
pub mod fdb;
pub mod layout;
pub mod mvcc;
pub mod revision;
pub mod watch;

pub use compaction::{CompactionOptions, CompactionStats};
pub use embedded::EmbeddedEngine;
pub use engine::Engine;
pub use error::{Result, StoreError};
#[cfg(feature = "fdb")]
pub use fdb::FdbEngine;
pub use mvcc::{KeyValue, ListOptions, ListPage, Store, StoreOptions};
pub use revision::Revision;
pub use watch::{Event, EventKind, Watcher};
