//! Progress counters that long operations update and the CLI displays.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Shared counters; cheap to update from worker threads.
#[derive(Debug, Default)]
pub struct Progress {
    /// Files (or streams) done.
    pub files: AtomicU64,
    /// Bytes processed.
    pub bytes: AtomicU64,
    /// Bytes expected, when known (0 = unknown).
    pub total_bytes: AtomicU64,
    /// What is happening now.
    pub phase: Mutex<String>,
}

impl Progress {
    /// Count processed bytes.
    pub fn add_bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// Count one finished file.
    pub fn add_file(&self) {
        self.files.fetch_add(1, Ordering::Relaxed);
    }

    /// Set the phase text.
    pub fn set_phase(&self, phase: impl Into<String>) {
        *self.phase.lock().expect("phase lock") = phase.into();
    }
}
