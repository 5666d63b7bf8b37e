//! The rows-per-second progress bar of ingest and export runs (hidden when not on a terminal).

use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar with rows/s (hidden when not on a terminal).
#[derive(Clone)]
pub struct RowProgress(ProgressBar);

impl RowProgress {
    /// A bar labelled `label`; `show` false hides it.
    pub fn new(show: bool, label: &str) -> Self {
        if !show {
            return Self(ProgressBar::hidden());
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(ProgressStyle::with_template("{spinner} {msg} {human_pos} rows ({per_sec}, {elapsed})").expect("valid template"));
        bar.set_message(label.to_string());
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Self(bar)
    }

    /// Counts `n` more rows.
    pub fn inc(&self, n: u64) {
        self.0.inc(n);
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}

