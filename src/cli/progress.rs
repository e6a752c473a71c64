//! Apply progress on stderr: one line per start and end with elapsed time; coloured on a
//! terminal, plain lines otherwise.

use std::io::Write;
use std::time::{Duration, Instant};

use cairn_core::{Address, Outcome, Progress};

/// Prints live progress lines.
pub struct Lines {
    start: Instant,
    color: bool,
}

impl Lines {
    /// Progress printer; `color` when stderr is a terminal and `NO_COLOR` is unset.
    pub fn new(color: bool) -> Self {
        Lines {
            start: Instant::now(),
            color,
        }
    }

    fn line(&self, code: &str, text: String) {
        let stamp = format!("[{:>6.1}s]", self.start.elapsed().as_secs_f64());
        let mut err = std::io::stderr().lock();
        let _ = if self.color {
            writeln!(err, "\x1b[2m{stamp}\x1b[0m \x1b[{code}m{text}\x1b[0m")
        } else {
            writeln!(err, "{stamp} {text}")
        };
    }
}

impl Progress for Lines {
    fn started(&self, address: &Address, what: &str) {
        let verb = if what == "gate" { "waiting on" } else { what };
        self.line("36", format!("{verb} {address} …"));
    }

    fn finished(&self, address: &Address, outcome: &Outcome, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        match outcome {
            Outcome::Done => self.line("32", format!("done {address} ({secs:.1}s)")),
            Outcome::Unchanged => {}
            Outcome::Failed(why) => {
                self.line("31", format!("FAILED {address} after {secs:.1}s: {why}"))
            }
            Outcome::Skipped(why) => self.line("33", format!("skipped {address}: {why}")),
        }
    }
}
