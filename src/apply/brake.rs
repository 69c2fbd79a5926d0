//! When a run stops applying: at a fatal error, or when the app fails write after write.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Stops a run's remaining actions: at a fatal error, or after `STRIKES` writes in a row
/// that the app answered with a 5xx every time (then the app is failing, not one request).
#[derive(Default)]
pub(crate) struct Brake {
    stop: AtomicBool,
    strikes: AtomicUsize,
}

impl Brake {
    pub(super) const STRIKES: usize = 5;

    pub(super) fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Counts a write the app kept failing; true when that makes `STRIKES` in a row.
    pub(super) fn strike(&self) -> bool {
        self.strikes.fetch_add(1, Ordering::SeqCst) + 1 >= Self::STRIKES
    }

    pub(super) fn clear(&self) {
        self.strikes.store(0, Ordering::SeqCst);
    }
}
