//! Output helpers: sizes, JSON printing, and the progress bar on a terminal.

use lifeboat_engine::progress::Progress;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

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

/// A progress bar on stderr (indicatif), drawn only when stderr is a
/// terminal and progress is wanted (not `--quiet`, not `--json`): a bar with
/// rate and ETA once the total is known, a spinner with the rate before.
/// It polls the engine's counters; the engine knows nothing of terminals.
pub struct ProgressBar {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ProgressBar {
    /// Start drawing `progress` when `wanted` and stderr is a terminal.
    pub fn start(progress: Arc<Progress>, wanted: bool) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = (wanted && std::io::stderr().is_terminal()).then(|| {
            let stop = stop.clone();
            std::thread::spawn(move || draw(&progress, &stop))
        });
        ProgressBar { stop, thread }
    }
}

const BAR: &str =
    "{msg} [{wide_bar}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}";
const SPINNER: &str = "{spinner} {msg} {binary_bytes} {binary_bytes_per_sec} {elapsed}";

fn style(template: &str) -> indicatif::ProgressStyle {
    indicatif::ProgressStyle::with_template(template)
        .expect("valid progress template")
        .progress_chars("=> ")
}

fn draw(p: &Progress, stop: &AtomicBool) {
    let bar = indicatif::ProgressBar::with_draw_target(
        None,
        indicatif::ProgressDrawTarget::stderr_with_hz(10),
    );
    bar.set_style(style(SPINNER));
    let mut sized = false;
    // Draw at least once, however short the operation.
    loop {
        let total = p.total_bytes.load(Ordering::Relaxed);
        if total > 0 && !sized {
            bar.set_style(style(BAR));
            bar.set_length(total);
            sized = true;
        }
        bar.set_position(p.bytes.load(Ordering::Relaxed));
        let phase = p.phase.lock().map(|s| s.clone()).unwrap_or_default();
        bar.set_message(format!(
            "{phase}: {} files",
            p.files.load(Ordering::Relaxed)
        ));
        bar.tick();
        if stop.load(Ordering::Relaxed) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bar.finish_and_clear();
}

impl Drop for ProgressBar {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
