//! Everything ferry tells a person goes through [`Reporter`] to stderr: plain
//! timestamped lines, or on a terminal that takes them a spinner line for waits
//! (see [`escape_codes_allowed`]). `--quiet` keeps only warnings, errors and the
//! final summary. Results (`--output json`) go to stdout, and under GitHub
//! Actions a markdown summary goes to `$GITHUB_STEP_SUMMARY`.

mod redact;
mod report;
pub mod shell;

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

pub use redact::Redactor;
pub use report::{Fact, Report, Span, StepRow, append_step_summary};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// `--quiet`: only warnings, errors and the summary.
    quiet: bool,
    /// A GitHub `::group::` is open (closed before anything that must be seen).
    group_open: Mutex<bool>,
    /// The terminal's width, when the spinner line is redrawn in place: each
    /// redraw is cut to it (a wider line wraps, and `\r` would leave its first
    /// row behind). `None`: nothing is cut.
    width: Option<usize>,
    /// TTY: the spinner's wait and state, and its whole line; and the wait
    /// and state last printed whole (each is printed whole once).
    spinner: Mutex<Option<(String, String)>>,
    told: Mutex<String>,
    /// Advice already given ([`Reporter::advise`]): long advice is said once per run.
    advised: Mutex<std::collections::HashSet<String>>,
}

const FRAMES: [&str; 4] = ["|", "/", "-", "\\"];
const PLAIN_PROGRESS_EVERY: Duration = Duration::from_secs(30);

impl Reporter {
    pub fn stderr(redactor: Redactor) -> Self {
        let tty = escape_codes_allowed(
            std::io::stderr().is_terminal(),
            std::env::var_os("TERM").as_deref(),
            std::env::var_os("NO_COLOR").as_deref(),
        );
        let github = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
        let width = if tty { terminal_width() } else { None };
        Reporter::new(Arc::new(Mutex::new(std::io::stderr())), tty, github, redactor).width(width)
    }

    /// The width the spinner line is cut to (see [`terminal_width`]).
    pub fn width(mut self, width: Option<usize>) -> Self {
        self.width = width;
        self
    }

    pub fn new(sink: Sink, tty: bool, github: bool, redactor: Redactor) -> Self {
        Reporter {
            sink,
            tty,
            github,
            redactor,
            progress: Mutex::new(None),
            frame: Mutex::new(0),
            verbose: false,
            quiet: false,
            group_open: Mutex::new(false),
            width: None,
            spinner: Mutex::new(None),
            told: Mutex::new(String::new()),
            advised: Mutex::new(Default::default()),
        }
    }

    pub fn verbose(mut self, on: bool) -> Self {
        self.verbose = on;
        self
    }

    pub fn quiet(mut self, on: bool) -> Self {
        self.quiet = on;
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
                // The spinner's line, whole, in its place: once per wait and state.
                let spun = self.spinner.lock().unwrap_or_else(|e| e.into_inner()).take();
                let mut told = self.told.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((key, full)) = spun.filter(|(key, _)| *key != *told) {
                    let _ = writeln!(sink, "{full}");
                    *told = key;
                }
            }
        }
        let _ = writeln!(sink, "{line}");
        let _ = sink.flush();
    }

    /// The same format on a terminal and off it: one timestamp format everywhere.
    fn stamp(&self, t: DateTime<Utc>) -> String {
        timestamp(t)
    }

    /// A step begins.
    pub fn step(&self, name: &str, msg: &str) {
        if self.quiet {
            return;
        }
        self.write_line(&format!("{} ==> {name}: {msg}", self.stamp(Utc::now())));
    }

    pub fn info(&self, msg: &str) {
        if self.quiet {
            return;
        }
        self.write_line(&format!("{} {msg}", self.stamp(Utc::now())));
    }

    pub fn warn(&self, msg: &str) {
        self.write_line(&format!("{} warning: {msg}", self.stamp(Utc::now())));
        if self.github {
            self.write_line(&format!("::warning::{}", escape_workflow(msg)));
        }
    }

    /// Advice (how to let ferry do what it could not), said once however
    /// many lines it concerns: those lines refer to it instead of repeating it.
    pub fn advise(&self, text: &str) {
        if !self.advised.lock().unwrap_or_else(|e| e.into_inner()).insert(text.to_string()) {
            return;
        }
        self.write_line(&format!("{} note: {text}", self.stamp(Utc::now())));
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
        if self.quiet {
            return;
        }
        let line = self.redactor.clean(&format!("{what}: {state} ({}s)", waited.as_secs()));
        if self.tty {
            let Ok(mut sink) = self.sink.lock() else { return };
            let mut frame = self.frame.lock().unwrap_or_else(|e| e.into_inner());
            *frame = (*frame + 1) % FRAMES.len();
            let drawn = format!("{} {line}", FRAMES[*frame]);
            // One column spare: a line as wide as the terminal leaves the cursor past its edge.
            let drawn = match self.width {
                Some(w) => fit(&drawn, w.saturating_sub(1).max(8)),
                None => drawn,
            };
            let _ = write!(sink, "\r\x1b[2K{drawn}");
            let _ = sink.flush();
            let full = format!("{}     {line}", self.stamp(Utc::now()));
            *self.spinner.lock().unwrap_or_else(|e| e.into_inner()) = Some((format!("{what}\u{0}{state}"), full));
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

    /// One line of the migration's own output, its control characters escaped.
    pub fn log_line(&self, at: DateTime<Utc>, msg: &str) {
        if self.quiet {
            return;
        }
        self.write_line(&format!("{}   | {}", self.stamp(at), escape_controls(msg.trim_end_matches(['\n', '\r']))));
    }

    /// Under GitHub Actions, fold what follows (the task's logs) into a group.
    pub fn group_start(&self, title: &str) {
        if !self.github || self.quiet {
            return;
        }
        self.group_end();
        self.write_line(&format!("::group::{}", escape_workflow(title)));
        *self.group_open.lock().unwrap_or_else(|e| e.into_inner()) = true;
    }

    /// Close the open group, if any (again is harmless).
    pub fn group_end(&self) {
        let was_open = std::mem::take(&mut *self.group_open.lock().unwrap_or_else(|e| e.into_inner()));
        if was_open {
            self.write_line("::endgroup::");
        }
    }

    /// The closing block of a command: always shown, `--quiet` included, and
    /// never folded away inside a group (a signal may have cut the group short).
    pub fn summary(&self, lines: &[String]) {
        self.group_end();
        let stamp = self.stamp(Utc::now());
        for line in lines {
            self.write_line(&format!("{stamp} {line}"));
        }
    }
}

/// The terminal's width: `COLUMNS` when it is a positive number, else the
/// width stderr's terminal reports; `None` when neither says.
pub fn terminal_width() -> Option<usize> {
    let columns = std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse::<usize>().ok()).filter(|&c| c > 0);
    columns.or_else(|| {
        terminal_size::terminal_size_of(std::io::stderr()).map(|(w, _)| usize::from(w.0)).filter(|&w| w > 0)
    })
}

/// `line` in at most `width` characters: the longest words (ids, ARNs) are
/// shortened in their middle with `…` first, keeping both ends a person
/// recognises; what still does not fit is cut at the end with `…`.
pub fn fit(line: &str, width: usize) -> String {
    let len = |s: &str| s.chars().count();
    if len(line) <= width {
        return line.to_string();
    }
    const KEEP: usize = 13;
    let mut words: Vec<String> = line.split(' ').map(str::to_string).collect();
    loop {
        let over = words.iter().map(|w| len(w)).sum::<usize>() + words.len().saturating_sub(1);
        if over <= width {
            return words.join(" ");
        }
        let Some((i, longest)) =
            words.iter().enumerate().map(|(i, w)| (i, len(w))).filter(|&(_, n)| n > KEEP).max_by_key(|&(_, n)| n)
        else {
            break;
        };
        let target = longest.saturating_sub(over - width).max(KEEP);
        words[i] = middle(&words[i], target);
    }
    let joined = words.join(" ");
    let mut cut: String = joined.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `word` in `n` characters (n ≥ 3), its middle replaced by `…`.
fn middle(word: &str, n: usize) -> String {
    let chars: Vec<char> = word.chars().collect();
    if chars.len() <= n {
        return word.to_string();
    }
    let head = (n - 1).div_ceil(2);
    let tail = n - 1 - head;
    let mut out: String = chars[..head].iter().collect();
    out.push('…');
    out.extend(&chars[chars.len() - tail..]);
    out
}

/// Escape codes (the spinner, clearing a line) only on a terminal that takes
/// them: stderr is a terminal, `TERM` is set and not `dumb`, and `NO_COLOR` is
/// unset or empty.
pub fn escape_codes_allowed(
    stderr_is_terminal: bool,
    term: Option<&std::ffi::OsStr>,
    no_color: Option<&std::ffi::OsStr>,
) -> bool {
    stderr_is_terminal && term.is_some_and(|t| !t.is_empty() && t != "dumb") && no_color.is_none_or(|v| v.is_empty())
}

/// Workflow commands end at a newline; encode the characters GitHub documents.
pub fn escape_workflow(s: &str) -> String {
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

    #[test]
    fn a_long_progress_line_is_cut_to_the_width_its_ids_in_the_middle_and_told_whole_when_the_wait_ends() {
        let arn = "arn:aws:ecs:eu-west-1:123456789012:task/production-cluster/0123456789abcdef0123456789abcdef";
        let line = format!("task {arn}: running (12s)");
        let cut = fit(&line, 60);
        assert!(cut.chars().count() <= 60, "{cut}");
        assert!(cut.starts_with("task arn:aws:ecs:eu-") && cut.contains('…'), "{cut}");
        assert!(cut.ends_with("89abcdef: running (12s)"), "both ends kept: {cut}");
        assert_eq!(fit("short", 60), "short");
        assert_eq!(fit("no-long-words but many of them here", 12).chars().count(), 12);

        let buf = Arc::new(Mutex::new(Vec::new()));
        let r = Reporter::new(buf.clone(), true, false, Redactor::default()).width(Some(40));
        r.progress(&format!("task {arn}"), "running", Duration::from_secs(1));
        r.progress(&format!("task {arn}"), "stopped", Duration::from_secs(2));
        r.info("done");
        let out = text(&buf);
        for redraw in out.split("\x1b[2K").skip(1).filter(|d| !d.contains('\n')) {
            assert!(redraw.trim_end_matches('\r').chars().count() <= 39, "{redraw:?}");
        }
        let whole: Vec<&str> = out.lines().filter(|l| l.contains(arn)).collect();
        assert_eq!(whole.len(), 1, "the full line once: {out:?}");
        assert!(whole[0].ends_with(&format!("task {arn}: stopped (2s)")), "{out:?}");
    }

    #[test]
    fn advice_is_given_once() {
        let (r, buf) = Reporter::capture(Redactor::default());
        for _ in 0..3 {
            r.advise("set database.url next to database.cluster");
        }
        assert_eq!(text(&buf).matches("note: set database.url").count(), 1, "{}", text(&buf));
    }

    #[test]
    fn escape_codes_need_a_terminal_a_real_term_and_no_no_color() {
        use std::ffi::OsStr;
        let ok = |tty, term: Option<&str>, nc: Option<&str>| {
            escape_codes_allowed(tty, term.map(OsStr::new), nc.map(OsStr::new))
        };
        assert!(ok(true, Some("xterm-256color"), None));
        assert!(ok(true, Some("xterm"), Some("")), "an empty NO_COLOR is unset");
        assert!(!ok(false, Some("xterm"), None), "not a terminal");
        assert!(!ok(true, Some("dumb"), None), "TERM=dumb");
        assert!(!ok(true, None, None), "no TERM at all");
        assert!(!ok(true, Some("xterm"), Some("1")), "NO_COLOR");
    }

    #[test]
    fn quiet_keeps_warnings_errors_and_the_summary() {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let r = Reporter::new(buf.clone(), false, true, Redactor::default()).quiet(true);
        r.step("migrate", "running");
        r.info("task t (container migrate)");
        r.group_start("migration logs");
        r.log_line(Utc::now(), "Running upgrade");
        r.progress("task t", "running", Duration::from_secs(1));
        r.group_end();
        r.warn("cannot read logs");
        r.failure("migrate", "exited with code 1");
        r.summary(&["ferry deploy prod failed (exit 4)".to_string()]);
        let out = text(&buf);
        assert!(!out.contains("running") && !out.contains("Running upgrade") && !out.contains("::group::"), "{out}");
        assert!(out.contains("warning: cannot read logs") && out.contains("::error title=ferry migrate::"), "{out}");
        assert!(out.contains("ferry deploy prod failed (exit 4)"), "{out}");
    }

    #[test]
    fn the_summary_closes_an_open_group_first() {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let r = Reporter::new(buf.clone(), false, true, Redactor::default());
        r.group_start("migration logs (t)");
        r.log_line(Utc::now(), "Running upgrade");
        r.summary(&["ferry deploy prod was interrupted (exit 130)".to_string()]);
        r.group_end();
        let out = text(&buf);
        let end = out.find("::endgroup::").expect("group closed");
        assert!(end < out.find("was interrupted").unwrap(), "{out}");
        assert_eq!(out.matches("::endgroup::").count(), 1, "closed once: {out}");
    }
}

/// A line from elsewhere (the migration's output) made safe to print: every
/// control character but tab is shown escaped (`\r` as `\\r`, ESC as `\\x1b`),
/// so it cannot move the cursor, overwrite ferry's own lines or change the
/// terminal's state.
pub fn escape_controls(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() && c != '\t') {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\t' => out.push(c),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() && (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod escape_tests {
    use super::escape_controls;

    #[test]
    fn control_characters_but_tab_are_escaped() {
        assert_eq!(escape_controls("plain\ttext"), "plain\ttext");
        assert_eq!(escape_controls("50%\r100%"), "50%\\r100%");
        assert_eq!(escape_controls("\u{1b}[2J\u{1b}]0;title\u{7}"), "\\x1b[2J\\x1b]0;title\\x07");
        assert_eq!(escape_controls("a\u{9b}b"), "a\\x9bb");
    }
}
