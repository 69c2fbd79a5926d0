//! Progress on a terminal for long reads and writes: shown only when the CLI turns it on
//! (`Config::progress`: stderr is a TTY and the command is interactive), never in the
//! daemon or in logs.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A spinner for a read of unknown length; hidden unless `shown`.
pub fn spinner(shown: bool, message: &'static str) -> ProgressBar {
    if !shown {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner().with_message(message);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A bar over `len` actions; hidden unless `shown`.
pub fn bar(shown: bool, len: u64, message: &'static str) -> ProgressBar {
    if !shown || len == 0 {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({rate}, eta {eta})")
        .map(|s| {
            // A rate people read: `7.6/s`, not indicatif's `7.5648/s`.
            s.with_key(
                "rate",
                |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.1}/s", state.per_sec());
                },
            )
        })
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    ProgressBar::new(len)
        .with_style(style)
        .with_message(message)
}
