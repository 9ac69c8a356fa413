//! Progress counters that long operations update and a front end displays
//! (the CLI draws them as a bar with rate and ETA on a terminal); the engine
//! never draws anything itself.

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
    /// Counters for an operation of `total_bytes` (0 = unknown) in `phase`.
    pub fn new(total_bytes: u64, phase: &str) -> Self {
        let p = Progress::default();
        p.total_bytes.store(total_bytes, Ordering::Relaxed);
        p.set_phase(phase);
        p
    }

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
