//! Progress bars on standard error: bytes, speed and time left. Hidden with `--json` and when
//! standard error is not a terminal, so scripts read clean output.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar of `total` bytes, named `label`.
pub fn bar(total: u64, label: &str, show: bool) -> ProgressBar {
    let target = if show {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(total), target);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:24!} [{bar:30}] {binary_bytes:>10}/{binary_total_bytes:<10} {binary_bytes_per_sec:>12} ETA {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(label.to_owned());
    bar
}

/// A byte count in binary units: 1536 -> "1.5 KiB".
pub fn human(bytes: u64) -> String {
    indicatif::BinaryBytes(bytes).to_string()
}
