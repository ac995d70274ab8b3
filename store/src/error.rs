//! The one error type of the storage crate.

use crate::revision::Revision;

/// Everything that can go wrong in the store. The API edge maps each variant to one
/// `metav1.Status` (see the variant docs for the intended HTTP code).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The key already exists (create). API: 409 AlreadyExists.
    #[error("key {key:?} already exists")]
    AlreadyExists {
        /// The key that exists.
        key: String,
    },
    /// The key does not exist (update, delete). API: 404 NotFound.
    #[error("key {key:?} not found")]
    NotFound {
        /// The missing key.
        key: String,
    },
    /// The expected revision did not match the current one. API: 409 Conflict.
    #[error("key {key:?} was modified: expected revision {expected}, current {current}")]
    Conflict {
        /// The key that was modified concurrently.
        key: String,
        /// The revision the caller expected.
        expected: Revision,
        /// The key's current revision (0 when it no longer exists).
        current: Revision,
    },
    /// The requested revision was compacted away. API: 410 Gone ("too old resource version" /
    /// "expired continue token").
    #[error("revision {requested} has been compacted (oldest available revision is {compacted})")]
    Compacted {
        /// The revision the caller asked for.
        requested: Revision,
        /// The compaction point: revisions older than this are gone.
        compacted: Revision,
    },
    /// The requested revision is newer than anything committed. API: 504 (as upstream's
    /// "Too large resource version").
    #[error("revision {requested} is newer than the current revision {current}")]
    FutureRevision {
        /// The revision the caller asked for.
        requested: Revision,
        /// The newest committed revision.
        current: Revision,
    },
    /// The store holds a write newer than its engine's current revision, so new writes would
    /// get revisions below existing ones. On FoundationDB: a backup restored into a cluster
    /// whose commit version is behind the original's. The store refuses to open.
    #[error(
        "the store holds a write at revision {stored}, beyond the engine's current revision \
         {current}: new writes would be ordered before existing ones (on FoundationDB: a backup \
         restored into a cluster behind the original; advance that cluster with `fdbcli \
         advanceversion {}`, see docs/storage.md)",
        (.stored.get() >> 16) + 1
    )]
    DataAheadOfEngine {
        /// The newest revision found in the data.
        stored: Revision,
        /// The engine's current revision.
        current: Revision,
    },
    /// The key is not acceptable. API: 400/422.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The value exceeds the store's object size limit. API: 413.
    #[error("value of {size} bytes exceeds the limit of {limit} bytes")]
    ValueTooLarge {
        /// Size of the rejected value.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A list continue token could not be decoded or does not belong to this list. API: 400.
    #[error("invalid continue token: {0}")]
    InvalidContinue(String),
    /// A watcher fell behind a compaction while catching up. API: 410 Gone.
    #[error(
        "watch position {position} has been compacted (oldest available revision is {compacted})"
    )]
    WatchExpired {
        /// The last revision the watcher had delivered.
        position: Revision,
        /// The compaction point.
        compacted: Revision,
    },
    /// The engine could not tell whether a commit took effect (e.g. a network failure during a
    /// FoundationDB commit). The caller must re-read before retrying. API: 504.
    #[error("commit result unknown: {0}")]
    CommitUnknown(String),
    /// Stored bytes did not decode: corruption or a foreign keyspace. API: 500.
    #[error("corrupt record at {key:?}: {reason}")]
    Corrupt {
        /// The engine key (escaped) that failed to decode.
        key: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The revision space of the engine is exhausted (FoundationDB versions beyond 2^48).
    #[error("revision space exhausted")]
    RevisionOverflow,
    /// [`crate::Store::close`] was called while other handles or watchers were still alive.
    #[error("store is still in use")]
    InUse,
    /// The store was closed or its background workers stopped.
    #[error("store is closed")]
    Closed,
    /// An error from the underlying engine (I/O, transaction too old, ...). API: 500.
    #[error("{engine} engine error: {message}")]
    Engine {
        /// Engine name (`embedded`, `fdb`).
        engine: &'static str,
        /// The engine's message.
        message: String,
    },
}

impl StoreError {
    /// Wraps an engine-specific error.
    pub fn engine(engine: &'static str, err: impl std::fmt::Display) -> Self {
        Self::Engine {
            engine,
            message: err.to_string(),
        }
    }

    /// Builds a [`StoreError::Corrupt`] for an engine key.
    pub(crate) fn corrupt(key: &[u8], reason: impl Into<String>) -> Self {
        Self::Corrupt {
            key: key.escape_ascii().to_string(),
            reason: reason.into(),
        }
    }
}

/// Result alias of the storage crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
