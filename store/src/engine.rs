//! The seam between the MVCC layer and a key-value engine.
//!
//! An engine is an ordered, transactional byte key-value store with two operations:
//! consistent snapshots for reads, and *write programs* for atomic read-modify-write. A write
//! program declares the keys it reads up front and a pure planning function that turns what was
//! read into mutations (or a rejection such as "already exists"). Because the program is data
//! plus a pure function, each engine can run it its own way: the embedded engine runs many
//! programs in one redb transaction sharing one fsync (group commit); the FoundationDB engine
//! runs each in its own transaction inside a retry loop. Mutations may contain a revision
//! placeholder ([`Stamped`]) that the engine fills with the commit's revision (on FDB: the
//! versionstamp), so no engine needs a hot counter key.

use std::future::Future;

use crate::error::Result;
use crate::revision::{REVISION_LEN, Revision};

/// Bytes with an optional [`REVISION_LEN`]-byte placeholder that the engine overwrites with the
/// commit's revision ([`Revision::encode`] layout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamped {
    /// The bytes, including the placeholder's zeroed space.
    pub bytes: Vec<u8>,
    /// Offset of the placeholder.
    pub offset: usize,
}

impl Stamped {
    /// Writes `revision` into the placeholder and returns the final bytes.
    pub fn fill(mut self, revision: Revision) -> Vec<u8> {
        if let Some(slot) = self.bytes.get_mut(self.offset..self.offset + REVISION_LEN) {
            slot.copy_from_slice(&revision.encode());
        }
        self.bytes
    }
}

/// One change inside a write program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// Set a key to a value.
    Put {
        /// Key.
        key: Vec<u8>,
        /// Value.
        value: Vec<u8>,
    },
    /// Set a key that embeds the commit revision.
    PutStampedKey {
        /// Key with placeholder.
        key: Stamped,
        /// Value.
        value: Vec<u8>,
    },
    /// Set a value that embeds the commit revision.
    PutStampedValue {
        /// Key.
        key: Vec<u8>,
        /// Value with placeholder.
        value: Stamped,
    },
    /// Remove one key.
    Clear {
        /// Key.
        key: Vec<u8>,
    },
    /// Remove every key in `[start, end)`.
    ClearRange {
        /// Inclusive start.
        start: Vec<u8>,
        /// Exclusive end.
        end: Vec<u8>,
    },
}

impl Mutation {
    /// Whether the mutation needs the commit revision.
    pub fn is_stamped(&self) -> bool {
        matches!(
            self,
            Mutation::PutStampedKey { .. } | Mutation::PutStampedValue { .. }
        )
    }
}

/// The planning function of a write program: from the values of the declared reads (in
/// order) to the mutations and a result for the caller, or an error that rejects the write.
/// It may be called more than once (FDB retries), so it must be pure.
pub type Planner<T> = Box<dyn Fn(&[Option<Vec<u8>>]) -> Result<(Vec<Mutation>, T)> + Send + Sync>;

/// An atomic read-modify-write: read `reads`, call `plan`, apply its mutations, commit.
pub struct WriteProgram<T> {
    /// Keys read inside the transaction (their values are handed to `plan` in this order).
    pub reads: Vec<Vec<u8>>,
    /// The planning function.
    pub plan: Planner<T>,
}

/// What a committed write program produced.
#[derive(Debug)]
pub struct Committed<T> {
    /// The planner's result.
    pub output: T,
    /// The commit revision, if any mutation was stamped (unstamped writes, such as compaction
    /// deletes, do not advance the revision).
    pub revision: Option<Revision>,
}

/// A consistent, read-only view of the engine.
pub trait Snapshot: Send + Sync + 'static {
    /// The newest revision visible in this snapshot: every write with a revision at or below it
    /// is visible, none above it is.
    fn revision(&self) -> Revision;

    /// Reads one key.
    fn get(&self, key: &[u8]) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;

    /// Reads up to `limit` pairs of `[start, end)` in key order.
    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(Vec<u8>, Vec<u8>)>>> + Send;
}

/// An ordered transactional key-value engine (see the module docs).
pub trait Engine: Send + Sync + 'static {
    /// The engine's snapshot type.
    type Snapshot: Snapshot;

    /// Short engine name for errors and metrics (`embedded`, `fdb`).
    fn name(&self) -> &'static str;

    /// Opens a consistent read view.
    fn snapshot(&self) -> impl Future<Output = Result<Self::Snapshot>> + Send;

    /// Runs a write program atomically and durably.
    fn write<T: Send + 'static>(
        &self,
        program: WriteProgram<T>,
    ) -> impl Future<Output = Result<Committed<T>>> + Send;

    /// A hint channel whose value changes after commits (local ones at once, other processes'
    /// ones as soon as the engine learns of them). Watchers use it to know when to look for new
    /// changes; it carries no data, and a missed change only delays delivery.
    fn change_hint(&self) -> tokio::sync::watch::Receiver<u64>;
}

/// The smallest key strictly greater than every key that starts with `prefix`, or `None` if
/// there is none (the prefix is empty or all 0xFF).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_last_non_ff_byte() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[b'a', 0xFF]), Some(b"b".to_vec()));
        assert_eq!(prefix_end(&[0xFF, 0xFF]), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn stamped_fill_writes_revision_at_offset() {
        let s = Stamped {
            bytes: vec![1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            offset: 1,
        };
        let out = s.fill(Revision(0x0102));
        assert_eq!(out, vec![1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 2]);
    }
}
