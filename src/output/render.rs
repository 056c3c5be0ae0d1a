//! Text renderings of a run record shared by the human output and the step summary.

use crate::runbook::record::{Outcome, RunRecord, StepStatus};

pub fn outcome_line(r: &RunRecord) -> String {
    let what = match r.outcome {
        Outcome::Succeeded => "succeeded",
        Outcome::Aborted => "failed before changing anything",
        Outcome::Restored => "failed; the database was restored from the snapshot",
        Outcome::NeedsAttention => "failed and needs attention",
        Outcome::Interrupted => "was interrupted",
        Outcome::Running => "is still running (or its ferry process died)",
        Outcome::Abandoned => "was abandoned by a person",
    };
    format!("ferry {} {} {what} (exit {})", r.command, r.env, r.outcome.exit_code())
}

/// The closing block of a run: outcome, state, next command.
pub fn summary(r: &RunRecord) -> Vec<String> {
    let mut lines = vec![outcome_line(r), format!("  run:      {}", r.run_id)];
    if let Some(by) = &r.resolved_by {
        lines.push(format!("  settled:  by run {by}"));
    }
    if let Some(a) = &r.abandoned {
        lines.push(format!(
            "  abandoned: by {}@{} at {} ({}); it was {}",
            a.by.user,
            a.by.host,
            crate::output::timestamp(a.at),
            a.reason,
            a.was.as_str()
        ));
    }
    if let Some(s) = &r.snapshot {
        lines.push(format!("  snapshot: {} ({}, {}%)", s.id, s.status, s.percent));
    }
    if let Some(image) = &r.image {
        let revision = r.task_definition.as_ref().map(|t| format!(" (task definition {t})")).unwrap_or_default();
        lines.push(format!("  image:    {image}{revision}"));
    }
    if let Some(t) = &r.task {
        let ended = match (t.exit_code, &t.stopped_reason) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(reason)) => reason.clone(),
            (None, None) => "no exit code".into(),
        };
        lines.push(format!("  task:     {} ({ended})", t.arn));
    }
    if let Some(line) = rehearsal_line(r) {
        lines.push(format!("  rehearsal: {line}"));
        for f in r.rehearsal.iter().flat_map(|h| &h.findings) {
            lines.push(format!("    - {f}"));
        }
    }
    if let Some(rs) = &r.restore {
        lines.push(format!("  restored: {} from {}", rs.restored_cluster, rs.snapshot_id));
        if let Some(f) = &rs.failed_cluster {
            lines.push(format!("  kept:     {f} (the failed database, untouched)"));
        }
    }
    if let Some(e) = &r.error {
        lines.push(format!("  error:    {e}"));
    }
    if let Some(s) = &r.state {
        lines.push(format!("  state:    {s}"));
    }
    if let Some(n) = &r.next {
        lines.push(format!("  next:     {n}"));
    }
    lines
}

/// `passed on clone X (deleted)`: the rehearsal in one line, when the run had one.
pub fn rehearsal_line(r: &RunRecord) -> Option<String> {
    let h = r.rehearsal.as_ref()?;
    let clone = h.clone.as_deref().unwrap_or("(none made)");
    let verdict = h.verdict.as_deref().unwrap_or("not decided");
    let fate = h.clone_fate.as_deref().unwrap_or("not deleted");
    Some(format!("{verdict} on clone {clone} ({fate})"))
}

pub fn status_mark(s: StepStatus) -> &'static str {
    match s {
        StepStatus::Pending => "pending",
        StepStatus::Running => "running",
        StepStatus::Succeeded => "ok",
        StepStatus::Failed => "FAILED",
        StepStatus::Skipped => "skipped",
        StepStatus::Interrupted => "interrupted",
    }
}

pub fn steps_table(r: &RunRecord) -> Vec<String> {
    r.steps
        .iter()
        .map(|s| {
            let took = match (s.started_at, s.ended_at) {
                (Some(a), Some(b)) => format!(" ({}s)", (b - a).num_seconds()),
                _ => String::new(),
            };
            format!("  {:<10} {:<11}{took} {}", s.name, status_mark(s.status), s.detail.as_deref().unwrap_or(""))
        })
        .collect()
}
