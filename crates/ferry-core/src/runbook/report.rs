//! What a run record tells a person, as one list of facts (`output::Report`):
//! the terminal summary, `ferry runs show` and the GitHub step summary all
//! render this list.

use super::record::{Outcome, RunRecord, StepStatus};
use crate::output::{Fact, Report, Span, StepRow};

/// The report of a run, from its record.
pub fn of(r: &RunRecord) -> Report {
    Report {
        headline: headline(r),
        run_id: Some(r.run_id.clone()),
        steps: steps(r),
        facts: facts(r),
        log_tail: r.log_tail.clone(),
    }
}

fn headline(r: &RunRecord) -> String {
    if let Some(by) = &r.resolved_by {
        return format!("ferry {} {} was settled by run {by} (it was {})", r.command, r.env, r.outcome.as_str());
    }
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

fn mark(s: StepStatus) -> &'static str {
    match s {
        StepStatus::Pending => "pending",
        StepStatus::Running => "running",
        StepStatus::Succeeded => "ok",
        StepStatus::Failed => "FAILED",
        StepStatus::Skipped => "skipped",
        StepStatus::Interrupted => "interrupted",
    }
}

fn steps(r: &RunRecord) -> Vec<StepRow> {
    r.steps
        .iter()
        .map(|s| StepRow {
            name: s.name.to_string(),
            mark: mark(s.status),
            started_at: s.started_at,
            failed: s.status == StepStatus::Failed,
            skipped: s.status == StepStatus::Skipped,
            took_secs: s.started_at.zip(s.ended_at).map(|(a, b)| (b - a).num_seconds()),
            detail: s.detail.clone().unwrap_or_default(),
        })
        .collect()
}

fn code(s: &str) -> Span {
    Span::Code(s.to_string())
}

fn text(s: impl Into<String>) -> Span {
    Span::Text(s.into())
}

/// Who settled or abandoned the run, and what it left: snapshot, image, task, rehearsal, restore.
fn facts(r: &RunRecord) -> Vec<Fact> {
    let mut facts = vec![Fact::new("run", vec![code(&r.run_id)])];
    if let Some(by) = &r.resolved_by {
        facts.push(Fact::new("settled", vec![text("by run "), code(by)]));
    }
    if let Some(a) = &r.abandoned {
        let at = crate::output::timestamp(a.at);
        let line = format!("by {}@{} at {at} ({}); it was {}", a.by.user, a.by.host, a.reason, a.was.as_str());
        facts.push(Fact::text("abandoned", line));
    }
    if let Some(s) = &r.snapshot {
        facts.push(Fact::new("snapshot", vec![code(&s.id), text(format!(" ({}, {}%)", s.status, s.percent))]));
    }
    if let Some(image) = &r.image {
        let mut f = Fact::new("image", vec![code(image)]);
        f.aside = r.task_definition.as_ref().map(|t| ("task definition", vec![code(t)]));
        facts.push(f);
    }
    if let Some(last) = r.start_attempts.last() {
        let n = r.start_attempts.len();
        let outcome = if r.task.is_some() { "then it started" } else { "nothing started" };
        let mut f = Fact::text("capacity", format!("the platform had no room {n} time(s); {outcome}"));
        f.items = vec![format!("last at {}: {}", crate::output::timestamp(last.at), last.reason)];
        facts.push(f);
    }
    if let Some(t) = &r.task {
        let ended = match (t.exit_code, &t.stopped_reason) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(reason)) => reason.clone(),
            (None, None) => "no exit code".into(),
        };
        facts.push(Fact::new("task", vec![code(&t.arn), text(format!(" ({ended})"))]));
    }
    if let Some(h) = &r.rehearsal {
        let clone = h.clone.as_deref().unwrap_or("(none made)");
        let verdict = h.verdict.as_deref().unwrap_or("not decided");
        let fate = h.clone_fate.as_deref().unwrap_or("not deleted");
        let mut f = Fact::text("rehearsal", format!("{verdict} on clone {clone} ({fate})"));
        f.items = h.findings.clone();
        facts.push(f);
    }
    if let Some(rs) = &r.restore {
        facts.push(Fact::new("restored", vec![code(&rs.restored_cluster), text(" from "), code(&rs.snapshot_id)]));
        if let Some(f) = &rs.failed_cluster {
            facts.push(Fact::sentence(vec![text("failed database kept as "), code(f), text(", untouched")]));
        }
    }
    let closing: [(&'static str, &Option<String>); 2] = [("error", &r.error), ("state", &r.state)];
    facts.extend(closing.into_iter().filter_map(|(label, v)| v.as_ref().map(|v| Fact::text(label, v.clone()))));
    if let Some(n) = &r.next {
        facts.push(Fact::new("next", vec![code(n)]));
    }
    let task_logs = r.task.as_ref().or(r.rehearsal.as_ref().and_then(|h| h.task.as_ref()));
    if let Some(url) = task_logs.and_then(|t| t.log_url.as_ref()) {
        facts.push(Fact::new("logs", vec![Span::Link { text: "the migration's logs".into(), url: url.clone() }]));
    }
    if let Some(url) = &r.ci_url {
        facts.push(Fact::new("ci", vec![Span::Link { text: "the CI run".into(), url: url.clone() }]));
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runbook::record::RunKind;

    #[test]
    fn the_step_summary_names_the_image_and_the_revision() {
        let mut r = RunRecord::new("prod-1".into(), "prod", RunKind::Deploy, Default::default(), &[]);
        r.image = Some("app@sha256:abc".into());
        r.task_definition = Some("arn:aws:ecs:us-east-1:1:task-definition/app-migrate:8".into());
        let md = of(&r).markdown();
        assert!(md.contains("- image: `app@sha256:abc`"), "{md}");
        assert!(md.contains("- task definition: `arn:aws:ecs:us-east-1:1:task-definition/app-migrate:8`"), "{md}");
        let text = of(&r).summary().join("\n");
        assert!(
            text.contains(
                "image:    app@sha256:abc (task definition arn:aws:ecs:us-east-1:1:task-definition/app-migrate:8)"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_run_settled_by_a_later_restore_is_told_as_settled_not_running() {
        let mut r = RunRecord::new("prod-1".into(), "prod", RunKind::Deploy, Default::default(), &[]);
        r.resolved_by = Some("prod-2".into());
        let text = of(&r).summary().join("\n");
        assert!(text.starts_with("ferry deploy prod was settled by run prod-2 (it was running)"), "{text}");
        assert!(!text.contains("still running"), "{text}");
        assert_eq!(r.outcome_words(), "settled by run prod-2 (it was running)");
        r.resolved_by = None;
        assert_eq!(r.outcome_words(), "running, or its ferry died (no exit code yet)");
    }

    #[test]
    fn refused_starts_for_want_of_capacity_are_told() {
        let mut r = RunRecord::new("prod-1".into(), "prod", RunKind::Deploy, Default::default(), &[]);
        let at = chrono::Utc::now();
        for _ in 0..2 {
            r.start_attempts
                .push(crate::runbook::record::StartAttempt { at, reason: "Capacity is unavailable".into() });
        }
        let md = of(&r).markdown();
        assert!(md.contains("the platform had no room 2 time(s); nothing started"), "{md}");
        assert!(md.contains("Capacity is unavailable"), "{md}");
    }
}
