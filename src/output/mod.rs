//! Everything ferry tells a person goes through [`Reporter`] to stderr: plain
//! timestamped lines, or on a TTY a spinner line for waits. Results (`--output
//! json`) go to stdout, and under GitHub Actions a markdown summary goes to
//! `$GITHUB_STEP_SUMMARY`.

mod github;
mod redact;
pub mod render;

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

pub use github::append_step_summary;
pub use redact::Redactor;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Human,
    Json,
}

/// The one timestamp format ferry shows: RFC 3339, UTC, whole seconds.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

type Sink = Arc<Mutex<dyn Write + Send>>;

pub struct Reporter {
    sink: Sink,
    tty: bool,
    github: bool,
    redactor: Redactor,
    /// TTY: whether a spinner line is shown. Plain: the last state printed and when.
    progress: Mutex<Option<(String, Duration)>>,
    frame: Mutex<usize>,
    /// `-v`: every poll of a wait is printed, not only changes.
    verbose: bool,
}

const FRAMES: [&str; 4] = ["|", "/", "-", "\\"];
const PLAIN_PROGRESS_EVERY: Duration = Duration::from_secs(30);

impl Reporter {
    pub fn stderr(redactor: Redactor) -> Self {
        let tty = std::io::stderr().is_terminal();
        let github = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
        Reporter::new(Arc::new(Mutex::new(std::io::stderr())), tty, github, redactor)
    }

    pub fn new(sink: Sink, tty: bool, github: bool, redactor: Redactor) -> Self {
        Reporter { sink, tty, github, redactor, progress: Mutex::new(None), frame: Mutex::new(0), verbose: false }
    }

    pub fn verbose(mut self, on: bool) -> Self {
        self.verbose = on;
        self
    }

    pub fn is_verbose(&self) -> bool {
        self.verbose
    }

    /// A reporter writing into a buffer, for tests.
    pub fn capture(redactor: Redactor) -> (Self, Arc<Mutex<Vec<u8>>>) {
        let buf = Arc::new(Mutex::new(Vec::new()));
        (Reporter::new(buf.clone(), false, false, redactor), buf)
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    fn write_line(&self, line: &str) {
        let line = self.redactor.clean(line);
        let Ok(mut sink) = self.sink.lock() else { return };
        if self.tty {
            let mut shown = self.progress.lock().unwrap_or_else(|e| e.into_inner());
            if shown.take().is_some() {
                let _ = write!(sink, "\r\x1b[2K");
            }
        }
        let _ = writeln!(sink, "{line}");
        let _ = sink.flush();
    }

    fn stamp(&self, t: DateTime<Utc>) -> String {
        if self.tty { t.format("%H:%M:%S").to_string() } else { t.to_rfc3339_opts(SecondsFormat::Secs, true) }
    }

    /// A step begins.
    pub fn step(&self, name: &str, msg: &str) {
        self.write_line(&format!("{} ==> {name}: {msg}", self.stamp(Utc::now())));
    }

    pub fn info(&self, msg: &str) {
        self.write_line(&format!("{} {msg}", self.stamp(Utc::now())));
    }

    pub fn warn(&self, msg: &str) {
        self.write_line(&format!("{} warning: {msg}", self.stamp(Utc::now())));
        if self.github {
            self.write_line(&format!("::warning::{}", escape_workflow(msg)));
        }
    }

    /// A step failed: under GitHub Actions also an `::error::` annotation.
    pub fn failure(&self, step: &str, msg: &str) {
        self.write_line(&format!("{} !!! {step} failed: {msg}", self.stamp(Utc::now())));
        if self.github {
            let msg = self.redactor.clean(msg);
            self.write_line(&format!("::error title=ferry {step}::{}", escape_workflow(&msg)));
        }
    }

    /// Progress of a wait. On a TTY one spinner line is rewritten in place;
    /// otherwise a plain line is printed when the state changes, and at most
    /// every 30 s while it stays the same.
    pub fn progress(&self, what: &str, state: &str, waited: Duration) {
        let line = self.redactor.clean(&format!("{what}: {state} ({}s)", waited.as_secs()));
        if self.tty {
            let Ok(mut sink) = self.sink.lock() else { return };
            let mut frame = self.frame.lock().unwrap_or_else(|e| e.into_inner());
            *frame = (*frame + 1) % FRAMES.len();
            let _ = write!(sink, "\r\x1b[2K{} {line}", FRAMES[*frame]);
            let _ = sink.flush();
            *self.progress.lock().unwrap_or_else(|e| e.into_inner()) = Some((String::new(), waited));
            return;
        }
        let key = format!("{what}\u{0}{state}");
        let mut last = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        let due = match last.as_ref() {
            Some((k, at)) => self.verbose || *k != key || waited.saturating_sub(*at) >= PLAIN_PROGRESS_EVERY,
            None => true,
        };
        if !due {
            return;
        }
        *last = Some((key, waited));
        drop(last);
        let Ok(mut sink) = self.sink.lock() else { return };
        let _ = writeln!(sink, "{}     {line}", self.stamp(Utc::now()));
    }

    /// One line of the migration's own output.
    pub fn log_line(&self, at: DateTime<Utc>, msg: &str) {
        self.write_line(&format!("{}   | {}", self.stamp(at), msg.trim_end_matches(['\n', '\r'])));
    }

    pub fn group_start(&self, title: &str) {
        if self.github {
            self.write_line(&format!("::group::{title}"));
        }
    }

    pub fn group_end(&self) {
        if self.github {
            self.write_line("::endgroup::");
        }
    }
}

/// Workflow commands end at a newline; encode the characters GitHub documents.
fn escape_workflow(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(buf: &Arc<Mutex<Vec<u8>>>) -> String {
        String::from_utf8_lossy(&buf.lock().unwrap()).into_owned()
    }

    #[test]
    fn plain_progress_prints_changes_and_a_heartbeat_not_every_poll() {
        let (r, buf) = Reporter::capture(Redactor::default());
        for s in 0..=60 {
            r.progress("snapshot s1", "creating 10%", Duration::from_secs(s));
        }
        r.progress("snapshot s1", "creating 50%", Duration::from_secs(61));
        let out = text(&buf);
        assert_eq!(out.lines().count(), 4, "{out}");
        assert!(out.contains("snapshot s1: creating 10% (0s)") && out.contains("(30s)") && out.contains("(60s)"));
        assert!(!out.contains('\r'), "no spinner without a TTY");
    }

    #[test]
    fn a_tty_gets_one_spinner_line_cleared_before_the_next_message() {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let r = Reporter::new(buf.clone(), true, false, Redactor::default());
        r.progress("task t", "running", Duration::from_secs(1));
        r.progress("task t", "running", Duration::from_secs(2));
        r.info("done");
        let out = text(&buf);
        assert_eq!(out.matches("\r\x1b[2K").count(), 3, "{out:?}");
        assert!(out.ends_with("done\n"), "{out:?}");
    }
}
