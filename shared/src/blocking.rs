//! Blocking work (SQLite, file I/O, hashing) runs on tokio's blocking threads, at most [`SLOTS`]
//! jobs at once: a burst of slow uploads or a database locked by another process waits its turn
//! instead of holding every blocking thread, and so every request. Image decoding has its own,
//! smaller bound (`service::thumbnails`).

use tokio::sync::Semaphore;

use crate::store::{StoreError, StoreResult};

/// Blocking jobs at once, in this process.
pub const SLOTS: usize = 32;

static JOBS: Semaphore = Semaphore::const_new(SLOTS);

/// Runs `work` on a blocking thread once a slot is free, and waits for it; a job that panicked
/// (a bug, contained to its job) leaves storage unable to answer. The semaphore is never
/// closed; if it ever were, jobs would run unbounded rather than not at all.
pub async fn run<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> StoreResult<T> {
    // Boxed, so that tokio's task machinery is built once per answer type rather than once per
    // caller: every copy would add kilobytes to each function's binary (the size row).
    run_boxed(Box::new(work)).await
}

async fn run_boxed<T: Send + 'static>(work: Box<dyn FnOnce() -> T + Send>) -> StoreResult<T> {
    let permit = JOBS.acquire().await.ok();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    })
    .await
    .map_err(|e| StoreError::Unavailable(format!("a blocking job failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn at_most_the_slots_run_at_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let jobs = (0..SLOTS * 3).map(|_| {
            let (running, most) = (running.clone(), most.clone());
            run(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(5));
                running.fetch_sub(1, Ordering::SeqCst);
            })
        });
        for r in futures_util::future::join_all(jobs).await {
            r.unwrap();
        }
        assert!(most.load(Ordering::SeqCst) <= SLOTS);
        // A job that panics is an error of its own, not of the caller.
        assert!(run(|| panic!("bug")).await.is_err());
    }
}
