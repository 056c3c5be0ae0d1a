//! What a run record tells a person, as one list of facts (`output::Report`):
//! the terminal summary, `ferry runs show` and the GitHub step summary all
//! render this list.

use super::record::{NothingChangedProof, Outcome, RunRecord, StepStatus};
use crate::output::{Fact, Report, Span, StepRow};

/// The report of a run, from its record.
pub fn of(r: &RunRecord) -> Report {
    Report {
        headline: headline(r),
        run_id: Some(r.run_id.to_string()),
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
        Outcome::NothingChanged => "failed on a lock timeout and changed nothing; nothing was restored",
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
    facts.extend(attempts(r));
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
        facts.push(Fact::new("restored", vec![code(&rs.restored_cluster), text(" from "), code(&rs.source())]));
        if let Some(f) = &rs.failed_cluster {
            facts.push(Fact::sentence(vec![text("failed database kept as "), code(f), text(", untouched")]));
        }
        if let Some(d) = &rs.discarded {
            let from = d.from.map_or_else(|| "the snapshot".to_string(), crate::output::timestamp);
            let mut f = Fact::new(
                "not restored",
                vec![
                    text(format!("writes from {from} to {} (kept in ", crate::output::timestamp(d.until))),
                    code(&d.kept_in),
                    text(")"),
                ],
            );
            f.items = match (&d.tables, &d.not_counted) {
                (Some(t), _) if t.is_empty() => vec!["no rows written in that window".into()],
                (Some(t), _) => t.iter().map(ToString::to_string).collect(),
                (None, Some(why)) => vec![format!("not counted per table: {why}")],
                (None, None) => Vec::new(),
            };
            facts.push(f);
        }
        if let Some(s) = &rs.set_aside {
            facts.push(Fact::new("set aside", vec![code(&s.id), text(format!(": {}", s.note))]));
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

/// The migration's attempts, when there was more than one or one failed with
/// evidence: how each ended, who blocked it, and what the proof found.
fn attempts(r: &RunRecord) -> Vec<Fact> {
    let list = &r.migration_attempts;
    if list.len() < 2 && list.iter().all(|a| a.proof.is_none() && a.blockers.is_empty()) {
        return Vec::new();
    }
    let mut f = Fact::text("attempts", format!("the migration ran {} time(s)", list.len()));
    for a in list {
        let ended = match (a.exit_code, a.ended_at) {
            (_, None) => "running".to_string(),
            (Some(0), _) => "exit code 0".to_string(),
            (Some(c), _) if a.lock_timeout => format!("exit code {c}, lock timeout"),
            (Some(c), _) => format!("exit code {c}"),
            (None, _) => "no exit code".to_string(),
        };
        f.items.push(format!("attempt {}: task {} ({ended})", a.attempt, a.task));
        for b in &a.blockers {
            f.items.push(format!(
                "attempt {}: blocked by pid {}, its transaction open {}s: {}",
                a.attempt, b.pid, b.age_secs, b.query
            ));
        }
        if let Some(p) = &a.proof {
            f.items.push(format!("attempt {}: {}", a.attempt, proof_line(p)));
        }
    }
    vec![f]
}

/// Which evidence held, in one line.
fn proof_line(p: &NothingChangedProof) -> String {
    let mark = |held: bool| if held { "yes" } else { "no" };
    let pieces = format!(
        "lock timeout in its output: {}; Alembic's transactional DDL: {}; version table unchanged: {}; schema \
         unchanged: {}",
        mark(p.lock_timeout),
        mark(p.transactional_ddl),
        mark(p.versions_unchanged),
        mark(p.schema_unchanged)
    );
    if p.holds() {
        format!("nothing changed, proved: {pieces}")
    } else {
        format!("no proof that nothing changed ({}): {pieces}", p.missing.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runbook::record::RunKind;

    #[test]
    fn the_step_summary_names_the_image_and_the_revision() {
        let mut r = RunRecord::new(
            crate::runbook::record::RunId::recorded("prod-1"),
            "prod",
            RunKind::Deploy,
            Default::default(),
            &[],
        );
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
        let mut r = RunRecord::new(
            crate::runbook::record::RunId::recorded("prod-1"),
            "prod",
            RunKind::Deploy,
            Default::default(),
            &[],
        );
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
        let mut r = RunRecord::new(
            crate::runbook::record::RunId::recorded("prod-1"),
            "prod",
            RunKind::Deploy,
            Default::default(),
            &[],
        );
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
