//! Progress on a terminal for long reads and writes: shown only when the CLI turned it on
//! (stderr is a TTY and the command is interactive), never in the daemon or in logs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns progress display on for this process (the CLI does, for a TTY).
pub fn enable() {
    ENABLED.store(true, Ordering::SeqCst);
}

/// A spinner for a read of unknown length; hidden unless enabled.
pub fn spinner(message: &'static str) -> ProgressBar {
    if !ENABLED.load(Ordering::SeqCst) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner().with_message(message);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A bar over `len` actions; hidden unless enabled.
pub fn bar(len: u64, message: &'static str) -> ProgressBar {
    if !ENABLED.load(Ordering::SeqCst) || len == 0 {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    ProgressBar::new(len)
        .with_style(style)
        .with_message(message)
}
