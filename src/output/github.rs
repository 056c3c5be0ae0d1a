//! The markdown summary appended to `$GITHUB_STEP_SUMMARY` under GitHub Actions.

use std::io::Write;

use super::Redactor;
use super::render::{outcome_line, rehearsal_line, status_mark};
use crate::runbook::record::RunRecord;

pub fn markdown(r: &RunRecord) -> String {
    let mut md = format!("### {}\n\n", outcome_line(r));
    md.push_str("| step | status | detail |\n|---|---|---|\n");
    for s in &r.steps {
        let detail = s.detail.as_deref().unwrap_or("").replace('|', "\\|").replace('\n', " ");
        md.push_str(&format!("| {} | {} | {} |\n", s.name, status_mark(s.status), detail));
    }
    md.push('\n');
    let mut facts = vec![format!("- run: `{}`", r.run_id)];
    if let Some(s) = &r.snapshot {
        facts.push(format!("- snapshot: `{}` ({})", s.id, s.status));
    }
    if let Some(image) = &r.image {
        facts.push(format!("- image: `{image}`"));
    }
    if let Some(revision) = &r.task_definition {
        facts.push(format!("- task definition: `{revision}`"));
    }
    if let Some(t) = &r.task {
        let exit = t.exit_code.map_or_else(|| "none".to_string(), |c| c.to_string());
        facts.push(format!("- migration task: `{}`, exit code {exit}", t.arn));
    }
    if let Some(line) = rehearsal_line(r) {
        facts.push(format!("- rehearsal: {line}"));
        for f in r.rehearsal.iter().flat_map(|h| &h.findings) {
            facts.push(format!("  - {f}"));
        }
    }
    if let Some(rs) = &r.restore {
        facts.push(format!("- restored `{}` from `{}`", rs.restored_cluster, rs.snapshot_id));
        if let Some(f) = &rs.failed_cluster {
            facts.push(format!("- failed database kept as `{f}`"));
        }
    }
    if let Some(e) = &r.error {
        facts.push(format!("- error: {e}"));
    }
    if let Some(s) = &r.state {
        facts.push(format!("- state: {s}"));
    }
    if let Some(n) = &r.next {
        facts.push(format!("- next: `{n}`"));
    }
    md.push_str(&facts.join("\n"));
    md.push('\n');
    md
}

/// Append the summary when running under GitHub Actions with a summary file.
pub fn append_step_summary(r: &RunRecord, redactor: &Redactor) -> std::io::Result<()> {
    if std::env::var("GITHUB_ACTIONS").map_or(true, |v| v != "true") {
        return Ok(());
    }
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") else { return Ok(()) };
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    f.write_all(redactor.clean(&markdown(r)).as_bytes())
}
