//! The score's history, stored outside the object keyspace (`/bulwark/posture/history/…`: never
//! served as an object, never seen by the scanner's `/registry/` watch), so "since when" has
//! an answer after a restart. A point is stored when the score or the failing count changed,
//! or when a full interval passed since the last stored one (change-driven rescans of a busy
//! cluster do not flood it); points older than the retention are deleted as new ones come.

use bulwark_posture::export::TrendPoint;
use bulwark_store::ListOptions;

use crate::state::ApiState;

/// Where points are stored: `<prefix><unix seconds, 12 digits>-<scan number>`.
pub(crate) const PREFIX: &str = "/bulwark/posture/history/";
/// Points listed (and deleted) per page.
const PAGE: usize = 500;

fn key(at: i64, scan: u64) -> String {
    format!("{PREFIX}{at:012}-{scan:08}")
}

fn time_of(key: &str) -> Option<i64> {
    key.strip_prefix(PREFIX)?.split('-').next()?.parse().ok()
}

/// Every stored point at or after `since` (Unix seconds), oldest first.
pub(crate) async fn load(state: &ApiState, since: i64) -> Vec<TrendPoint> {
    let Ok(stored) = super::evidence::list_all(state, PREFIX).await else {
        tracing::warn!("posture: the stored history could not be read; the trend starts now");
        return Vec::new();
    };
    stored
        .iter()
        .filter(|kv| time_of(&kv.key).is_some_and(|t| t >= since))
        .filter_map(|kv| serde_json::from_slice::<TrendPoint>(&kv.value).ok())
        .collect()
}

/// Stores `point` (taken at `at`), and deletes points older than `cutoff`.
pub(crate) async fn append(state: &ApiState, point: &TrendPoint, at: i64, scan: u64, cutoff: i64) {
    let Ok(bytes) = serde_json::to_vec(point) else {
        return;
    };
    if let Err(e) = state.objects.create(&key(at, scan), bytes).await {
        tracing::warn!(error = %e, "posture: storing a history point failed");
    }
    // The oldest points come first: delete from the front until one is recent enough.
    let options = ListOptions {
        limit: PAGE,
        ..ListOptions::default()
    };
    let Ok(page) = state.objects.list(PREFIX, options).await else {
        return;
    };
    for kv in &page.items {
        let key = kv.key.clone();
        if time_of(&key).is_none_or(|t| t >= cutoff) {
            break;
        }
        let _ = state.objects.delete(&key, None).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_time_and_carry_it() {
        assert!(key(99, 5) < key(100, 1));
        assert_eq!(time_of(&key(1_796_083_200, 3)), Some(1_796_083_200));
        assert_eq!(time_of("/bulwark/posture/history/garbage"), None);
    }
}
