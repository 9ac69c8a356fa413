//! Output helpers: sizes, JSON printing, and the progress line on a terminal.

use lifeboat_engine::progress::Progress;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Human size (binary units).
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Print a line on stdout; a reader that went away (broken pipe, e.g.
/// `lifeboat ls latest | head`) ends the program quietly with success.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            $crate::output::stdout_failed(e);
        }
    }};
}

/// Handle a failed write to stdout.
pub fn stdout_failed(e: std::io::Error) {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("lifeboat: error: writing to standard output: {e}");
    std::process::exit(1);
}

/// Print a value as pretty JSON on stdout.
pub fn json(value: &serde_json::Value) {
    crate::outln!("{}", serde_json::to_string_pretty(value).expect("json"));
}

/// A progress line on stderr, only when stderr is a terminal.
pub struct ProgressLine {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ProgressLine {
    /// Start drawing `progress` unless quiet or not on a terminal.
    pub fn start(progress: Arc<Progress>, quiet: bool) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let stop = stop.clone();
            std::thread::spawn(move || draw(&progress, &stop))
        });
        ProgressLine { stop, thread }
    }
}

fn draw(p: &Progress, stop: &AtomicBool) {
    let start = Instant::now();
    let mut err = std::io::stderr();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
        let bytes = p.bytes.load(Ordering::Relaxed);
        let secs = start.elapsed().as_secs_f64().max(0.001);
        let total = p.total_bytes.load(Ordering::Relaxed);
        let pct = if total > 0 {
            format!(" {:>3.0}%", 100.0 * bytes as f64 / total as f64)
        } else {
            String::new()
        };
        let phase = p.phase.lock().map(|s| s.clone()).unwrap_or_default();
        let _ = write!(
            err,
            "\r\x1b[K{phase}: {} files, {}{pct}, {}/s, {:.0}s",
            p.files.load(Ordering::Relaxed),
            size(bytes),
            size((bytes as f64 / secs) as u64),
            secs
        );
        let _ = err.flush();
    }
    let _ = write!(err, "\r\x1b[K");
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
