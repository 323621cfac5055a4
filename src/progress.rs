//! Progress on standard error for long work, only when standard error is a terminal, at most a
//! few times a second so it costs nothing on the hot path.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_millis(250);

pub struct Progress {
    enabled: bool,
    label: String,
    done: u64,
    start: Instant,
    last: Instant,
}

impl Progress {
    /// Progress that shows only if `wanted` and standard error is a terminal.
    pub fn new(label: &str, wanted: bool) -> Self {
        let now = Instant::now();
        Self {
            enabled: wanted && std::io::stderr().is_terminal(),
            label: label.to_owned(),
            done: 0,
            start: now,
            last: now,
        }
    }

    pub fn set_label(&mut self, label: &str) {
        label.clone_into(&mut self.label);
    }

    pub fn advance(&mut self, bytes: u64) {
        self.done += bytes;
        if self.enabled && self.last.elapsed() >= EVERY {
            self.last = Instant::now();
            let secs = self.start.elapsed().as_secs_f64().max(0.001);
            let mib = self.done as f64 / (1024.0 * 1024.0);
            let _ = write!(
                std::io::stderr(),
                "\r\x1b[2K{}: {mib:.1} MiB, {:.0} MiB/s",
                crate::terminal::escape(&self.label),
                mib / secs
            );
        }
    }

    pub fn finish(&mut self) {
        if self.enabled {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}
