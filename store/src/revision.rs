//! Store revisions and their engine-neutral byte encoding.

use std::fmt;

/// Width of an encoded revision in keys and values. Ten bytes is the width of a FoundationDB
/// versionstamp (8-byte commit version + 2-byte batch order), so the FDB engine can let the
/// database fill revisions into keys at commit time, while the embedded engine writes its
/// counter in the same layout.
pub const REVISION_LEN: usize = 10;

/// A point in the store's history: every committed write gets a strictly larger revision than
/// every write committed before it. Kubernetes' `resourceVersion` is its decimal form.
///
/// Revisions are not contiguous on FoundationDB (they are derived from commit versions), so
/// callers must only compare them, never count with them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision(pub u64);

impl Revision {
    /// The revision before any write.
    pub const ZERO: Revision = Revision(0);

    /// The numeric value.
    pub fn get(self) -> u64 {
        self.0
    }

    /// Encodes the revision as ten big-endian bytes (two zero bytes then the `u64`), which
    /// sort like the numbers and coincide with a FoundationDB versionstamp whose commit version
    /// is below 2^48.
    pub fn encode(self) -> [u8; REVISION_LEN] {
        let mut out = [0u8; REVISION_LEN];
        let (_, low) = out.split_at_mut(2);
        low.copy_from_slice(&self.0.to_be_bytes());
        out
    }

    /// Decodes [`Revision::encode`]'s layout; `None` if the width is wrong or the value does
    /// not fit 64 bits.
    pub fn decode(bytes: &[u8]) -> Option<Revision> {
        let raw: [u8; REVISION_LEN] = bytes.try_into().ok()?;
        let (high, low) = raw.split_at(2);
        if high != [0, 0] {
            return None;
        }
        let low: [u8; 8] = low.try_into().ok()?;
        Some(Revision(u64::from_be_bytes(low)))
    }

    /// The next revision number (used by the embedded engine's counter).
    pub fn next(self) -> Option<Revision> {
        self.0.checked_add(1).map(Revision)
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::str::FromStr for Revision {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<u64>().map(Revision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn encoding_round_trips_and_preserves_order(a: u64, b: u64) {
            let (ra, rb) = (Revision(a), Revision(b));
            prop_assert_eq!(Revision::decode(&ra.encode()), Some(ra));
            prop_assert_eq!(ra.encode().cmp(&rb.encode()), a.cmp(&b));
        }
    }

    #[test]
    fn rejects_wrong_width_and_overflow() {
        assert_eq!(Revision::decode(&[0; 9]), None);
        assert_eq!(Revision::decode(&[0, 1, 0, 0, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(Revision::decode(&[0; 10]), Some(Revision::ZERO));
    }
}
