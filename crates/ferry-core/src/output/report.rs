//! The closing report of a run, rendered for a person: the summary on stderr
//! (and `ferry runs show`) and the markdown of the GitHub step summary. Both
//! render the same [`Report`], so they say the same things; what a report
//! holds is decided by whoever builds it (`runbook::report` for a run record).

use std::io::Write;

use super::Redactor;

/// Part of a value: plain text, or a name a person may copy (an id, a command),
/// which markdown sets as code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span {
    Text(String),
    Code(String),
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
    /// Seconds from its start to its end, when it has both.
    pub took_secs: Option<i64>,
    pub detail: String,
}

/// What a person reads when a run ends (or is shown again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// `ferry deploy prod succeeded (exit 0)`.
    pub headline: String,
    pub steps: Vec<StepRow>,
    pub facts: Vec<Fact>,
}

fn plain(spans: &[Span]) -> String {
    spans
        .iter()
        .map(|s| match s {
            Span::Text(t) | Span::Code(t) => t.as_str(),
        })
        .collect()
}

fn markdown_spans(spans: &[Span]) -> String {
    spans
        .iter()
        .map(|s| match s {
            Span::Text(t) => t.clone(),
            Span::Code(c) => format!("`{c}`"),
        })
        .collect()
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
                let took = s.took_secs.map(|t| format!(" ({t}s)")).unwrap_or_default();
                format!("  {:<10} {:<11}{took} {}", s.name, s.mark, s.detail)
            })
            .collect()
    }

    /// The GitHub step summary: the headline, the steps as a table, the facts as a list.
    pub fn markdown(&self) -> String {
        let mut md = format!("### {}\n\n", self.headline);
        md.push_str("| step | status | detail |\n|---|---|---|\n");
        for s in &self.steps {
            let detail = s.detail.replace('|', "\\|").replace('\n', " ");
            md.push_str(&format!("| {} | {} | {} |\n", s.name, s.mark, detail));
        }
        md.push('\n');
        for f in &self.facts {
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
            steps: vec![StepRow { name: "migrate".into(), mark: "ok", took_secs: Some(3), detail: "a | b".into() }],
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
        assert!(md.contains("| migrate | ok | a \\| b |"), "{md}");
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
}
