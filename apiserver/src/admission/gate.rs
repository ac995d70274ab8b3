//! Admission is the CPU-heavy stage of a write (a Cedar evaluation per container of a pod, per
//! policy), and it runs synchronously. Run on the async workers, a burst of large objects took
//! both cores of a small machine and every other request waited behind it (16 parallel 1 MB
//! pods slowed everyone's requests to 9.5 s). So admissions take a turn at a gate sized to the
//! machine — extra ones wait, without holding a thread — and each runs off the async workers
//! ([`off_the_workers`]), which keep serving reads, watches and light writes meanwhile.

use std::sync::Arc;

use bulwark_api::StatusReason;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::http::error::ApiError;

/// At most N admissions at once.
#[derive(Debug)]
pub struct AdmissionGate {
    permits: Arc<Semaphore>,
}

impl AdmissionGate {
    /// A gate letting `concurrent` admissions run at once (at least one).
    pub fn new(concurrent: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrent.max(1))),
        }
    }

    /// Waits for a turn; the admission runs while the returned permit is held.
    pub async fn turn(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusReason::ServiceUnavailable,
                    "the server is shutting down",
                )
            })
    }
}

impl Default for AdmissionGate {
    /// One turn per CPU core.
    fn default() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, usize::from))
    }
}

/// Runs `work` so that the async worker it is called on is replaced while it runs (tokio's
/// `block_in_place` on a multi-threaded runtime; a plain call elsewhere).
pub fn off_the_workers<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// While both admissions of a two-turn gate compute, a third waits for a turn, and the
    /// runtime still runs other tasks.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn turns_are_bounded_and_the_runtime_keeps_serving() {
        let gate = Arc::new(AdmissionGate::new(2));
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let hold = Arc::new(std::sync::Mutex::new(hold));
        let mut busy = Vec::new();
        for _ in 0..2 {
            let gate = Arc::clone(&gate);
            let hold = Arc::clone(&hold);
            busy.push(tokio::spawn(async move {
                let _turn = gate.turn().await.unwrap();
                off_the_workers(|| hold.lock().unwrap().recv().unwrap());
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(gate.permits.available_permits(), 0);
        let third = {
            let gate = Arc::clone(&gate);
            tokio::spawn(async move { gate.turn().await.map(drop) })
        };
        // The runtime is not blocked by the two computing admissions.
        let light = tokio::spawn(async { 7 });
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(5), light)
                .await
                .unwrap()
                .unwrap(),
            7
        );
        assert!(!third.is_finished());
        release.send(()).unwrap();
        release.send(()).unwrap();
        for b in busy {
            b.await.unwrap();
        }
        third.await.unwrap().unwrap();
    }
}
