//! The closing report of a run, rendered for a person: the summary on stderr
//! (and `ferry runs show`) and the markdown of the GitHub step summary. Both
//! render the same [`Report`], so they say the same things; what a report
//! holds is decided by whoever builds it (`runbook::report` for a run record).

use std::io::Write;

use chrono::{DateTime, Utc};

use super::Redactor;

/// Part of a value: plain text, a name a person may copy (an id, a command),
/// which markdown sets as code, or a link (the terminal shows its address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span {
    Text(String),
    Code(String),
    Link { text: String, url: String },
}

/// One thing the report says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    /// `run`, `snapshot`, `next`...: the terminal's left column, markdown's
    /// `label:`. `None`: the value is a sentence of its own.
    pub label: Option<&'static str>,
    pub value: Vec<Span>,
    /// Said in passing: in parentheses after the value on the terminal, a
    /// line of its own in markdown.
    pub aside: Option<(&'static str, Vec<Span>)>,
    /// Lines under the fact (the rehearsal's findings).
    pub items: Vec<String>,
}

impl Fact {
    pub fn new(label: &'static str, value: Vec<Span>) -> Self {
        Fact { label: Some(label), value, aside: None, items: Vec::new() }
    }

    pub fn text(label: &'static str, value: impl Into<String>) -> Self {
        Fact::new(label, vec![Span::Text(value.into())])
    }

    pub fn sentence(value: Vec<Span>) -> Self {
        Fact { label: None, value, aside: None, items: Vec::new() }
    }
}

/// One row of the steps table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRow {
    pub name: String,
    /// `ok`, `FAILED`, `skipped`...
    pub mark: &'static str,
    pub started_at: Option<DateTime<Utc>>,
    /// Seconds from its start to its end, when it has both.
    pub took_secs: Option<i64>,
    pub detail: String,
    /// It failed: the gantt marks it critical.
    pub failed: bool,
    /// It was skipped: a row in the table, no bar in the gantt.
    pub skipped: bool,
}

/// What a person reads when a run ends (or is shown again).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// `ferry deploy prod succeeded (exit 0)`.
    pub headline: String,
    /// The run it reports on, under the headline in markdown (the terminal
    /// has it among the facts).
    pub run_id: Option<String>,
    pub steps: Vec<StepRow>,
    pub facts: Vec<Fact>,
    /// The failed migration's last lines (already redacted by whoever kept them).
    pub log_tail: Vec<String>,
}

fn plain(spans: &[Span]) -> String {
    spans
        .iter()
        .map(|s| match s {
            Span::Text(t) | Span::Code(t) => t.as_str(),
            Span::Link { url, .. } => url.as_str(),
        })
        .collect()
}

fn markdown_spans(spans: &[Span]) -> String {
    spans
        .iter()
        .map(|s| match s {
            Span::Text(t) => t.clone(),
            Span::Code(c) => code_span(c),
            Span::Link { text, url } => format!("[{}]({})", text.replace(['[', ']'], ""), url.replace(')', "%29")),
        })
        .collect()
}

/// `c` as inline code, whatever backticks it holds.
fn code_span(c: &str) -> String {
    let longest = longest_backtick_run(c);
    if longest == 0 {
        return format!("`{c}`");
    }
    let fence = "`".repeat(longest + 1);
    format!("{fence} {c} {fence}")
}

fn longest_backtick_run(s: &str) -> usize {
    s.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// A duration as a person reads it: `42s`, `3m 05s`, `1h 02m`.
pub fn took(secs: i64) -> String {
    match secs.max(0) {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {:02}s", s / 60, s % 60),
        s => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// A mermaid gantt chart of the steps that ran: one task per step, from its
/// start for its duration (at least a second, so it shows), a failed one `crit`.
fn gantt(steps: &[StepRow]) -> Option<String> {
    let ran: Vec<&StepRow> = steps.iter().filter(|s| s.started_at.is_some() && !s.skipped).collect();
    if ran.is_empty() {
        return None;
    }
    let mut g = String::from("```mermaid\ngantt\n    dateFormat YYYY-MM-DD HH:mm:ss\n    axisFormat %H:%M:%S\n");
    for (i, s) in ran.iter().enumerate() {
        let Some(start) = s.started_at else { continue };
        let tag = match (s.failed, s.took_secs.is_some()) {
            (true, _) => "crit, ",
            (false, true) => "done, ",
            (false, false) => "active, ",
        };
        let secs = s.took_secs.unwrap_or(0).max(1);
        let name: String = s.name.chars().filter(|c| !matches!(c, ':' | '#' | ';')).collect();
        g.push_str(&format!("    {name} :{tag}s{i}, {}, {secs}s\n", start.format("%Y-%m-%d %H:%M:%S")));
    }
    g.push_str("```\n");
    Some(g)
}

impl Report {
    /// The closing block on the terminal: the headline, then one aligned line per fact.
    pub fn summary(&self) -> Vec<String> {
        let mut lines = vec![self.headline.clone()];
        for f in &self.facts {
            let mut line = match f.label {
                Some(label) => format!("  {:<9} {}", format!("{label}:"), plain(&f.value)),
                None => format!("  {}", plain(&f.value)),
            };
            if let Some((label, value)) = &f.aside {
                line.push_str(&format!(" ({label} {})", plain(value)));
            }
            lines.push(line);
            lines.extend(f.items.iter().map(|i| format!("    - {i}")));
        }
        lines
    }

    /// The steps, one aligned line each (`ferry runs show`).
    pub fn steps_table(&self) -> Vec<String> {
        self.steps
            .iter()
            .map(|s| {
                let took = s.took_secs.map(|t| format!(" ({})", took(t))).unwrap_or_default();
                format!("  {:<10} {:<11}{took} {}", s.name, s.mark, s.detail)
            })
            .collect()
    }

    /// The GitHub step summary: the headline; the steps as a table (status,
    /// start, duration) and as a gantt chart; the failed migration's last
    /// lines; the facts (the decision, what to do next, the links) as a list.
    pub fn markdown(&self) -> String {
        let mut md = format!("### {}\n\n", self.headline);
        if let Some(id) = &self.run_id {
            md.push_str(&format!("run {}\n\n", code_span(id)));
        }
        if !self.steps.is_empty() {
            md.push_str("| step | status | started | took | detail |\n|---|---|---|---|---|\n");
            for s in &self.steps {
                let detail = s.detail.replace('|', "\\|").replace('\n', " ");
                let started = s.started_at.map(super::timestamp).unwrap_or_default();
                let took = s.took_secs.map(took).unwrap_or_default();
                md.push_str(&format!("| {} | {} | {started} | {took} | {detail} |\n", s.name, s.mark));
            }
            md.push('\n');
        }
        if let Some(g) = gantt(&self.steps) {
            md.push_str(&g);
            md.push('\n');
        }
        if !self.log_tail.is_empty() {
            let fence = "`".repeat(3.max(self.log_tail.iter().map(|l| longest_backtick_run(l)).max().unwrap_or(0) + 1));
            md.push_str(&format!("The migration's last {} lines:\n\n{fence}text\n", self.log_tail.len()));
            for l in &self.log_tail {
                md.push_str(l);
                md.push('\n');
            }
            md.push_str(&format!("{fence}\n\n"));
        }
        for f in &self.facts {
            if self.run_id.is_some() && f.label == Some("run") {
                continue;
            }
            match f.label {
                Some(label) => md.push_str(&format!("- {label}: {}\n", markdown_spans(&f.value))),
                None => md.push_str(&format!("- {}\n", markdown_spans(&f.value))),
            }
            if let Some((label, value)) = &f.aside {
                md.push_str(&format!("- {label}: {}\n", markdown_spans(value)));
            }
            for i in &f.items {
                md.push_str(&format!("  - {i}\n"));
            }
        }
        md
    }
}

impl Report {
    /// The failed migration's last lines, for the terminal (`ferry runs show`).
    pub fn log_tail_lines(&self) -> Vec<String> {
        if self.log_tail.is_empty() {
            return Vec::new();
        }
        let mut lines = vec![format!("the migration's last {} lines:", self.log_tail.len())];
        lines.extend(self.log_tail.iter().map(|l| format!("  | {l}")));
        lines
    }
}

/// Append the report to `$GITHUB_STEP_SUMMARY` when running under GitHub Actions.
pub fn append_step_summary(report: &Report, redactor: &Redactor) -> std::io::Result<()> {
    if std::env::var("GITHUB_ACTIONS").map_or(true, |v| v != "true") {
        return Ok(());
    }
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") else { return Ok(()) };
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    f.write_all(redactor.clean(&report.markdown()).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let mut image = Fact::new("image", vec![Span::Code("app:1".into())]);
        image.aside = Some(("task definition", vec![Span::Code("td:8".into())]));
        let mut rehearsal = Fact::text("rehearsal", "passed on clone c (deleted)");
        rehearsal.items = vec!["no lock held".into()];
        Report {
            headline: "ferry deploy prod succeeded (exit 0)".into(),
            steps: vec![StepRow {
                name: "migrate".into(),
                mark: "ok",
                started_at: None,
                took_secs: Some(3),
                detail: "a | b".into(),
                failed: false,
                skipped: false,
            }],
            run_id: None,
            log_tail: Vec::new(),
            facts: vec![
                Fact::new("run", vec![Span::Code("prod-1".into())]),
                image,
                rehearsal,
                Fact::sentence(vec![Span::Text("failed database kept as ".into()), Span::Code("db-failed".into())]),
                Fact::new("next", vec![Span::Code("ferry status prod".into())]),
            ],
        }
    }

    #[test]
    fn the_terminal_and_markdown_say_the_same_facts_each_in_its_form() {
        let r = report();
        assert_eq!(
            r.summary(),
            [
                "ferry deploy prod succeeded (exit 0)",
                "  run:      prod-1",
                "  image:    app:1 (task definition td:8)",
                "  rehearsal: passed on clone c (deleted)",
                "    - no lock held",
                "  failed database kept as db-failed",
                "  next:     ferry status prod",
            ]
        );
        let md = r.markdown();
        assert!(md.starts_with("### ferry deploy prod succeeded (exit 0)\n"), "{md}");
        assert!(md.contains("| migrate | ok |  | 3s | a \\| b |"), "{md}");
        for line in [
            "- run: `prod-1`",
            "- image: `app:1`",
            "- task definition: `td:8`",
            "- rehearsal: passed on clone c (deleted)",
            "  - no lock held",
            "- failed database kept as `db-failed`",
            "- next: `ferry status prod`",
        ] {
            assert!(md.lines().any(|l| l == line), "{line:?} in {md}");
        }
        assert_eq!(r.steps_table(), ["  migrate    ok          (3s) a | b"]);
    }

    #[test]
    fn the_markdown_has_a_gantt_of_the_steps_that_ran_and_the_failing_lines_fenced() {
        let at = |s: &str| Some(chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc));
        let row = |name: &str, mark, started_at, took_secs, failed| StepRow {
            name: name.into(),
            mark,
            started_at,
            took_secs,
            detail: String::new(),
            failed,
            skipped: mark == "skipped",
        };
        let r = Report {
            headline: "ferry deploy prod failed (exit 4)".into(),
            run_id: Some("prod-1".into()),
            steps: vec![
                row("preflight", "ok", at("2026-12-07T10:00:00Z"), Some(0), false),
                row("migrate", "FAILED", at("2026-12-07T10:00:01Z"), Some(125), true),
                row("verify", "skipped", at("2026-12-07T10:02:06Z"), Some(0), false),
            ],
            facts: vec![Fact::new("run", vec![Span::Code("prod-1".into())])],
            log_tail: vec!["ERROR: relation \"users\" already exists".into(), "a ``` fence".into()],
        };
        let md = r.markdown();
        assert!(md.contains("run `prod-1`\n"), "{md}");
        assert!(!md.contains("- run:"), "the run id is said once, under the headline: {md}");
        assert!(md.contains("| migrate | FAILED | 2026-12-07T10:00:01Z | 2m 05s |"), "{md}");
        let gantt = md.split("```mermaid\n").nth(1).expect("a mermaid block").split("```").next().unwrap();
        assert!(gantt.starts_with("gantt\n    dateFormat YYYY-MM-DD HH:mm:ss\n"), "{gantt}");
        assert!(gantt.contains("    preflight :done, s0, 2026-12-07 10:00:00, 1s\n"), "{gantt}");
        assert!(gantt.contains("    migrate :crit, s1, 2026-12-07 10:00:01, 125s\n"), "{gantt}");
        assert!(!gantt.contains("verify"), "a skipped step is not drawn: {gantt}");
        assert!(md.contains("The migration's last 2 lines:\n\n````text\nERROR: relation"), "{md}");
        assert!(md.contains("a ``` fence\n````\n"), "the fence outlasts the lines' own: {md}");
    }
}
